/**
 * Typed stack settings for the whole `kilo-fleet:` config namespace.
 *
 * One zod schema, one parse function: the Pulumi program (`index.ts`) and the offline CLI both call
 * `parseSettings`, so a stack that passes `npm run kilo-fleet -- validate` is the stack `pulumi up` sees.
 * Every error names the full key path (`kilo-fleet:hosts[1].ssh.port: must be 1-65535`) and all errors
 * are reported at once.
 */
import { z } from "zod";
import { shQuote } from "../common/shellQuote";
import { SHELL_RC_FILES, type ShellName } from "../common/shells";
import { caCertificatesProblems } from "./caCertificates";
import { reservedEnvVarReason } from "./envVarName";
import { checkNpmRegistryUrl } from "./npmRegistry";
import { becomeSchema, hostPolicySchema, policySchema } from "./policy";
import { checkPoolerBaseUrl } from "./poolerUrl";

export { SHELL_RC_FILES, type ShellName };

export const CONFIG_NAMESPACE = "kilo-fleet";

/** The keys that hold one secret; `pulumi up` reads them with `Config.getSecret`, never as plain config. */
export const SECRET_KEYS = [
  "codexPoolerApiKey",
  "sshPrivateKey",
  "npmToken",
  "proxyCredentials",
  "sshJumpPrivateKey",
] as const;
/** The key holding one secret per host (`apiKeys.<host>`): its names are structure, its values secrets. */
export const SECRET_MAP_KEYS = ["apiKeys"] as const;

/** The seed's model entry (docs/codex-pooler.md, point 3): the default of `models`. */
export const SEED_MODEL = {
  name: "GPT-5.5 via Codex Pooler",
  tool_call: true,
  reasoning: true,
  temperature: false,
  attachment: true,
  modalities: { input: ["text", "image"], output: ["text"] },
  limit: { context: 272000, input: 228000, output: 64000 },
} as const;

/** Top-level kilo.jsonc keys kilo-fleet owns; `kiloSettings` may not set them. */
export const MANAGED_TOP_LEVEL_KEYS = [
  "$schema",
  "model",
  "enabled_providers",
  "provider",
  "compaction",
  "autoupdate",
  "permission",
] as const;

const SEMVER = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

const noControlChars = (s: string) => !CONTROL_CHARS.test(s);
const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

const kiloVersion = z.string().refine((v) => v === "latest" || SEMVER.test(v), {
  message: 'must be an exact version such as "7.7.7", or "latest"',
});

const modelId = z
  .string()
  .min(1, { message: "must not be empty" })
  .refine(noControlChars, { message: "must not contain control characters or newlines" });

/** Keys of a free-form object written into kilo.jsonc must be printable: they also land in its header comment. */
function refuseUnprintableKeys(o: Record<string, unknown>, ctx: z.RefinementCtx): void {
  for (const k of Object.keys(o)) {
    if (k === "" || !noControlChars(k)) {
      ctx.addIssue({
        code: "custom",
        path: [k],
        message: "keys must be non-empty, without control characters or newlines",
      });
    }
  }
}

const positiveInt = z
  .number({ error: "must be a positive integer" })
  .int({ message: "must be a positive integer" })
  .positive({ message: "must be a positive integer" });

/** `limit.input`/`limit.output` above `limit.context`; tolerates invalid input (it also runs on raw config). */
function limitIssues(limit: unknown): { path: (string | number)[]; message: string }[] {
  if (!isPlainObject(limit) || typeof limit.context !== "number") return [];
  const context = limit.context;
  return (["input", "output"] as const)
    .filter((k) => typeof limit[k] === "number" && (limit[k] as number) > context)
    .map((k) => ({ path: ["limit", k], message: `must not exceed limit.context (${context})` }));
}

const modality = z.enum(["text", "audio", "image", "video", "pdf"]);

const modelSchema = z
  .strictObject({
    name: z.string().refine(noControlChars, { message: "must not contain control characters" }).optional(),
    tool_call: z.boolean().optional(),
    reasoning: z.boolean().optional(),
    temperature: z.boolean().optional(),
    attachment: z.boolean().optional(),
    modalities: z
      .strictObject({ input: z.array(modality).optional(), output: z.array(modality).optional() })
      .optional(),
    limit: z.strictObject({
      context: positiveInt,
      input: positiveInt.optional(),
      output: positiveInt,
    }),
  })
  .superRefine(
    (m, ctx) => {
      for (const issue of limitIssues(m.limit)) ctx.addIssue({ code: "custom", ...issue });
    },
    // Report this together with every other error instead of only once the rest of the model is valid.
    { when: (payload) => isPlainObject(payload.value) },
  );
export type ModelSettings = z.infer<typeof modelSchema>;

const shellName = z.enum(Object.keys(SHELL_RC_FILES) as [ShellName, ...ShellName[]], {
  error: `must be one of ${Object.keys(SHELL_RC_FILES).join(", ")}`,
});

const hostName = z
  .string()
  .regex(/^[a-z0-9-]+$/, { message: "must match [a-z0-9-]+ (lower-case letters, digits, '-')" });

const sshTarget = z
  .string()
  .min(1, { message: "is required" })
  .refine((s) => noControlChars(s) && !/\s/.test(s), { message: "must not contain whitespace or control characters" })
  .refine((s) => !s.startsWith("-"), { message: "must not start with '-' (ssh would read it as an option)" });

/** PEM text with one or more CA certificates (deployer/caCertificates.ts); never a private key. */
const caCertificates = z.string({ error: "must be PEM text (one or more certificates)" }).superRefine((s, ctx) => {
  for (const message of caCertificatesProblems(s)) ctx.addIssue({ code: "custom", message });
});

/** An egress proxy's URL: `http://host:port`, nothing else (its credentials are `proxyCredentials`, a secret). */
const proxyUrl = z
  .string({ error: "must be an http:// proxy URL such as http://proxy.corp:3128" })
  .superRefine((s, ctx) => {
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      ctx.addIssue({ code: "custom", message: "must be an http:// proxy URL such as http://proxy.corp:3128" });
      return;
    }
    if (u.protocol !== "http:") {
      ctx.addIssue({
        code: "custom",
        message: "must be an http:// proxy URL (the tunnel to https servers is CONNECT)",
      });
    } else if (u.username || u.password) {
      ctx.addIssue({
        code: "custom",
        message: "must not carry credentials (they would be plain text in the state): set the proxyCredentials secret",
      });
    } else if ((u.pathname !== "/" && u.pathname !== "") || u.search || u.hash) {
      ctx.addIssue({ code: "custom", message: "must be only scheme, host and port (no path, query or fragment)" });
    }
  });

/** `proxy`: the egress proxy every request of a host's steps and of kilo goes through (docs/design.md, "The egress proxy"). */
export const egressProxy = z.strictObject({
  https: proxyUrl,
  http: proxyUrl.optional(),
  noProxy: z
    .string()
    .regex(/^[A-Za-z0-9.,:*_[\]-]+$/, {
      message: "must be a comma-separated list of hosts, domains (.corp) or IPs, without spaces",
    })
    .optional(),
});

/** How much the smoke check does: `kilo-run` (the pool checks, then the seed's `kilo run`) or `pool` (the pool checks only). */
export const smokeCheckLevel = z.enum(["kilo-run", "pool"], { error: 'must be "kilo-run" or "pool"' });

/** How kilo gets onto a host: `package` (its platform package, by sh; no node needed) or `npm`. */
export const installMethod = z.enum(["package", "npm"], { error: 'must be "package" or "npm"' });
/**
 * Any text; changing it re-runs every step of the hosts it covers, in place (`update`, nothing deleted
 * first): the way to put back what someone changed by hand (`doctor`, then `pulumi config set reconcile
 * "$(date +%F)"`, then `pulumi up`).
 */
const reconcile = z
  .string({ error: "must be a string (e.g. a date)" })
  .max(200, { message: "must be at most 200 characters" })
  .refine(noControlChars, { message: "must be one line without control characters" });

const connectTimeoutSeconds = z
  .number({ error: "must be an integer 1-600" })
  .int({ message: "must be an integer 1-600" })
  .min(1, { message: "must be an integer 1-600" })
  .max(600, { message: "must be an integer 1-600" });
const connectAttempts = z
  .number({ error: "must be an integer 1-20" })
  .int({ message: "must be an integer 1-20" })
  .min(1, { message: "must be an integer 1-20" })
  .max(20, { message: "must be an integer 1-20" });
/** The SSH dial's defaults: an offline host fails after about attempts x timeout seconds, not minutes. */
export const SSH_CONNECT_DEFAULTS = { connectTimeoutSeconds: 10, connectAttempts: 3 } as const;

/** The SSH port when a host names none. */
const SSH_PORT_DEFAULT = 22;

export const hostOverrides = {
  /** Overrides `reconcile` for this host. */
  reconcile: reconcile.optional(),
  /** Overrides `caCertificates` for this host. */
  caCertificates: caCertificates.optional(),
  /** Overrides `kiloVersion` for this host. */
  kiloVersion: kiloVersion.optional(),
  /** Overrides `install.method` for this host (e.g. `npm` on a host whose platform kilo ships no package for). */
  install: z.strictObject({ method: installMethod.optional() }).optional(),
  /** Overrides `model` for this host (must be a key of `models`). */
  model: modelId.optional(),
  /** Shells whose startup files get the managed block; default: those whose rc file exists, plus sh. */
  shells: z.array(shellName).min(1, { message: "must list at least one shell" }).optional(),
  /** Overrides `smokeCheck.level` for this host (e.g. the full `kilo-run` on a few canary hosts only). */
  smokeCheck: z.strictObject({ level: smokeCheckLevel.optional() }).optional(),
  /** This host's policy keys over the fleet's (key by key), or false for no policy on this host. */
  policy: hostPolicySchema.optional(),
  /** Overrides `become` for this host. */
  become: becomeSchema.optional(),
  /** Overrides `proxy` for this host (the whole object). */
  proxy: egressProxy.optional(),
};

/** An SSH port, 22 when not given. */
const sshPort = z
  .number({ error: "must be 1-65535" })
  .int({ message: "must be 1-65535" })
  .min(1, { message: "must be 1-65535" })
  .max(65535, { message: "must be 1-65535" })
  .default(SSH_PORT_DEFAULT);

/** One public host key line, as `ssh-keyscan` prints it; `missing` is the message when it is required and absent. */
const hostKeyLine = (missing?: string) =>
  z
    .string(missing ? { error: missing } : undefined)
    .regex(/^(ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+ [A-Za-z0-9+/=]+( [^\n\r]*)?$/, {
      message: 'must be one public key line such as "ssh-ed25519 AAAA..." (see ssh-keyscan)',
    });

/**
 * `ssh.proxy`: a jump host (bastion) every SSH connection of a host goes through, pinned like the host itself.
 * It authenticates with `sshJumpPrivateKey`, else `sshPrivateKey`, else the agent.
 */
export const sshJumpHost = z.strictObject({
  host: sshTarget,
  user: sshTarget,
  port: sshPort,
  hostKey: hostKeyLine("is required: the jump host's key, pinned like the host's (see ssh-keyscan)"),
});

export const sshConnection = z.strictObject({
  host: sshTarget,
  user: sshTarget,
  port: sshPort,
  hostKey: hostKeyLine().optional(),
  /** Accept any host key (no pinning): only with this set may `hostKey` be absent. */
  insecureIgnoreHostKey: z.boolean({ error: "must be true or false" }).optional(),
  /** Seconds one SSH dial may take; overrides `ssh.connectTimeoutSeconds`. */
  connectTimeoutSeconds: connectTimeoutSeconds.optional(),
  /** How many times to dial before the host's step fails; overrides `ssh.connectAttempts`. */
  connectAttempts: connectAttempts.optional(),
  /** The jump host for this host; overrides `ssh.proxy`. */
  proxy: sshJumpHost.optional(),
});

// One object with both shapes' keys, so errors inside `ssh` keep their own paths; exactly one kind.
const hostSchema = z
  .strictObject({
    name: hostName,
    local: z.literal(true, { error: "must be true" }).optional(),
    ssh: sshConnection.optional(),
    /** Rollout wave: no step of a host starts before every host of a lower wave passed its smoke check. */
    wave: z
      .number({ error: "must be an integer >= 0" })
      .int({ message: "must be an integer >= 0" })
      .min(0, { message: "must be an integer >= 0" })
      .optional(),
    ...hostOverrides,
  })
  .superRefine(
    (h, ctx) => {
      if (h.local && h.ssh)
        ctx.addIssue({ code: "custom", message: "must be either local: true or ssh: {...}, not both" });
      if (!h.local && !h.ssh) ctx.addIssue({ code: "custom", message: 'needs "local: true" or "ssh: {host, user}"' });
    },
    // Also when e.g. the name is invalid: every error at once.
    { when: (payload) => isPlainObject(payload.value) },
  );
export type HostSettings = z.infer<typeof hostSchema>;

/** A secret value: a string at run time, or a `{secure: ...}` blob when read from a stack file. */
const secretValue = z.union([
  z.string().min(1, { message: "must not be empty" }),
  z.strictObject({ secure: z.string() }).transform(() => ENCRYPTED),
]);

/**
 * A one-line secret that `Settings` never holds: validated (messages never quote it), then replaced by
 * the placeholder, so the plaintext cannot reach the settings even if the program passes it in.
 */
const redactedSecret = z
  .union(
    [
      z
        .string()
        .min(1, { message: "must not be empty" })
        .refine(noControlChars, { message: "must be one line without control characters" }),
      z.strictObject({ secure: z.string() }),
    ],
    { error: "must be a secret string (pulumi config set --secret ...)" },
  )
  .transform((): typeof ENCRYPTED => ENCRYPTED);
/** Stands in for a secret that is present but encrypted (stack files are never decrypted offline). */
export const ENCRYPTED = "[encrypted]";

const COMPACTION_RULE = "must be an integer 1-100, or 0 or null to omit compaction";

/** The schema of every key in the `kilo-fleet:` namespace, with defaults. */
export const settingsSchema = z.strictObject({
  poolerBaseUrl: z.string({ error: "is required (the pooler's /v1 base URL)" }).superRefine((s, ctx) => {
    const problem = checkPoolerBaseUrl(s);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  }),
  codexPoolerApiKey: secretValue.optional(),
  apiKeys: z
    .record(z.string(), redactedSecret, {
      error:
        "must be an object from host name to that host's secret key (pulumi config set --secret --path 'apiKeys.<host>' <key>)",
    })
    .optional(),
  providerId: z
    .string()
    .regex(/^[a-z0-9][a-z0-9\-_.]*$/, { message: "must match [a-z0-9][a-z0-9-_.]* (no '/')" })
    .default("codex-pooler"),
  apiKeyEnvVar: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: "must be a shell variable name ([A-Za-z_][A-Za-z0-9_]*)" })
    .superRefine((name, ctx) => {
      const reason = reservedEnvVarReason(name);
      if (reason) ctx.addIssue({ code: "custom", message: `is refused: ${reason}` });
    })
    .default("CODEX_POOLER_API_KEY"),
  kiloVersion: kiloVersion.default("7.7.7"),
  model: modelId.default("gpt-5.5"),
  models: z
    .record(modelId, modelSchema)
    .refine((m) => Object.keys(m).length > 0, { message: "must define at least one model" })
    // Defaults are functions so every parse gets its own copy (a shared object would leak mutations).
    .default(() => ({ "gpt-5.5": structuredClone(SEED_MODEL) as unknown as ModelSettings })),
  compactionThresholdPercent: z
    .number({ error: COMPACTION_RULE })
    .int({ message: COMPACTION_RULE })
    .min(0, { message: COMPACTION_RULE })
    .max(100, { message: COMPACTION_RULE })
    .nullable()
    .default(75),
  permission: z
    .record(z.string(), z.unknown(), {
      error: 'must be an object such as {"bash": "allow"}; a bare string like "ask" is not a valid shape',
    })
    .superRefine(refuseUnprintableKeys)
    .optional(),
  kiloSettings: z
    .record(z.string(), z.unknown(), {
      error: 'must be an object of extra kilo.jsonc keys, e.g. {"share": "disabled"}',
    })
    .superRefine(refuseUnprintableKeys)
    .superRefine((o, ctx) => {
      for (const k of Object.keys(o)) {
        if ((MANAGED_TOP_LEVEL_KEYS as readonly string[]).includes(k)) {
          ctx.addIssue({
            code: "custom",
            path: [k],
            message: `is managed by kilo-fleet; set it through its own config key instead (${managedKeyHint(k)})`,
          });
        }
      }
    })
    .default(() => ({})),
  smokeCheck: z
    .strictObject({
      enabled: z.boolean({ error: "must be true or false" }).default(true),
      timeoutSeconds: z
        .number({ error: "must be an integer 10-3600" })
        .int({ message: "must be an integer 10-3600" })
        .min(10, { message: "must be an integer 10-3600" })
        .max(3600, { message: "must be an integer 10-3600" })
        .default(180),
      level: smokeCheckLevel.default("kilo-run"),
    })
    .default(() => ({ enabled: true, timeoutSeconds: 180, level: "kilo-run" as const })),
  install: z.strictObject({ method: installMethod.default("package") }).default(() => ({ method: "package" as const })),
  npmRegistry: z
    .string()
    .superRefine((s, ctx) => {
      const problem = checkNpmRegistryUrl(s);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    })
    .optional(),
  npmToken: redactedSecret.optional(),
  caCertificates: caCertificates.optional(),
  proxy: egressProxy.optional(),
  proxyCredentials: redactedSecret.optional(),
  reconcile: reconcile.optional(),
  policy: policySchema.optional(),
  become: becomeSchema.default("none"),
  policyEnv: z
    .strictObject({
      telemetryOff: z.boolean({ error: "must be true or false" }).default(true),
      shareOff: z.boolean({ error: "must be true or false" }).default(true),
    })
    .default(() => ({ telemetryOff: true, shareOff: true })),
  ssh: z
    .strictObject({
      connectTimeoutSeconds: connectTimeoutSeconds.default(SSH_CONNECT_DEFAULTS.connectTimeoutSeconds),
      connectAttempts: connectAttempts.default(SSH_CONNECT_DEFAULTS.connectAttempts),
      proxy: sshJumpHost.optional(),
    })
    .default(() => ({ ...SSH_CONNECT_DEFAULTS })),
  hosts: z
    .array(hostSchema)
    .min(1, { message: "must list at least one host" })
    .default(() => [{ name: "local", local: true as const }]),
  sshPrivateKey: secretValue.optional(),
  sshJumpPrivateKey: secretValue.optional(),
});

/**
 * Rules across keys (model ↔ models, unique host names, pinned host keys). Checked on the raw input, not in
 * the schema, so they are reported together with every other error instead of only once the rest is valid.
 */
function crossKeyErrors(input: Record<string, unknown>, opts: ParseOptions): SettingsError[] {
  const naming = opts.naming ?? "stack";
  const errors: SettingsError[] = [];
  const models = input.models;
  const defined =
    models !== null && typeof models === "object" && !Array.isArray(models) ? Object.keys(models) : ["gpt-5.5"];
  const checkModel = (m: unknown, path: (string | number)[]) => {
    if (typeof m === "string" && defined.length > 0 && !defined.includes(m)) {
      errors.push({
        key: keyName(path, naming),
        message: `"${m}" is not a key of models (defined: ${defined.join(", ")})`,
      });
    }
  };
  checkModel(input.model ?? "gpt-5.5", ["model"]);
  // A policy's model without a provider is one of the pool's: a key of models.
  const checkPolicyModels = (policy: unknown, path: (string | number)[]) => {
    if (!isPlainObject(policy)) return;
    for (const k of ["model", "small_model"]) {
      const m = policy[k];
      if (typeof m === "string" && !m.includes("/")) checkModel(m, [...path, k]);
    }
  };
  checkPolicyModels(input.policy, ["policy"]);
  // zod skips object refinements after some field errors (e.g. a non-integer limit): check limits here too.
  if (isPlainObject(models)) {
    for (const [id, m] of Object.entries(models)) {
      if (!isPlainObject(m)) continue;
      for (const issue of limitIssues(m.limit)) {
        errors.push({ key: keyName(["models", id, ...issue.path], naming), message: issue.message });
      }
    }
  }
  if (Array.isArray(input.hosts)) {
    const seen = new Map<string, number>();
    input.hosts.forEach((h: unknown, i) => {
      if (h === null || typeof h !== "object") return;
      const host = h as Record<string, unknown>;
      checkModel(host.model, ["hosts", i, "model"]);
      checkPolicyModels(host.policy, ["hosts", i, "policy"]);
      if (!opts.unpinnedHostKeys) errors.push(...hostKeyErrors(host.ssh, i, naming));
      if (typeof host.name !== "string") return;
      const first = seen.get(host.name);
      if (first !== undefined) {
        errors.push({
          key: keyName(["hosts", i, "name"], naming),
          message: `duplicate host name "${host.name}" (also hosts[${first}])`,
        });
      } else seen.set(host.name, i);
    });
  }
  return errors;
}

export type Settings = z.output<typeof settingsSchema>;
function managedKeyHint(k: string): string {
  switch (k) {
    case "model":
      return "kilo-fleet:model";
    case "provider":
    case "enabled_providers":
      return "kilo-fleet:providerId, poolerBaseUrl, models";
    case "compaction":
      return "kilo-fleet:compactionThresholdPercent";
    case "autoupdate":
      return "kilo-fleet:kiloVersion";
    case "permission":
      return "kilo-fleet:permission";
    default:
      return "it is always set";
  }
}

export interface SettingsError {
  /** Full key path, e.g. `kilo-fleet:hosts[1].ssh.port`. */
  key: string;
  message: string;
}

export type ParseResult = { ok: true; settings: Settings } | { ok: false; errors: SettingsError[] };

/**
 * How errors name a key: a stack's `kilo-fleet:hosts[0].ssh.port`, or a KiloHost's argument `ssh.port` (its
 * arguments are read as a one-host stack, so `hosts[0].` is left out).
 */
export type KeyNaming = "stack" | "args";

export interface ParseOptions {
  naming?: KeyNaming;
  /** An SSH host without `hostKey` is no error (`kilo-fleet hostkeys` is how a stack gets its keys). */
  unpinnedHostKeys?: boolean;
}

/** A config path as `naming` spells it. */
export function keyName(path: readonly PropertyKey[], naming: KeyNaming = "stack"): string {
  if (naming === "stack") return formatKeyPath(path);
  return formatArgPath(path[0] === "hosts" && path[1] === 0 ? path.slice(2) : path);
}

/** `ssh.port`, `models["gpt-5.5"].limit.input`: an argument path as a person writes it. */
export function formatArgPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(String(p))) out += out === "" ? String(p) : `.${String(p)}`;
    else out += `[${JSON.stringify(String(p))}]`;
  }
  return out || "(arguments)";
}

/** Formats a config path the way `pulumi config set --path` spells it. */
export function formatKeyPath(path: readonly PropertyKey[]): string {
  let out = CONFIG_NAMESPACE;
  path.forEach((p, i) => {
    if (typeof p === "number") out += `[${p}]`;
    else if (i === 0) out += `:${String(p)}`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(String(p))) out += `.${String(p)}`;
    else out += `[${JSON.stringify(String(p))}]`;
  });
  return out;
}

/** Levenshtein distance, for "did you mean" hints on unknown keys. */
function editDistance(a: string, b: string): number {
  const d: number[] = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0];
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j];
      d[j] = Math.min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length];
}

/** The known key `key` was probably meant to be: close by edit distance, or one it abbreviates. */
export function didYouMean(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const dist = editDistance(key.toLowerCase(), k.toLowerCase());
    if (dist < bestD) {
      bestD = dist;
      best = k;
    }
  }
  if (best !== undefined && bestD <= Math.max(2, Math.floor(key.length / 3))) return best;
  // A shortened key (`timeout` for `timeoutSeconds`) is far by edit distance but plainly meant.
  const lower = key.toLowerCase();
  return lower.length >= 4 ? known.find((k) => k.toLowerCase().startsWith(lower)) : undefined;
}

/** The keys a strict object at `path` accepts, for "did you mean" hints. */
function knownKeysAt(path: readonly PropertyKey[]): string[] {
  const p = path.filter((x) => typeof x !== "number").map(String);
  const top = Object.keys(settingsSchema.shape);
  if (p.length === 0) return top;
  if (p[0] === "hosts" && p.length === 1) return ["name", "local", "ssh", ...Object.keys(hostOverrides)];
  if (p[0] === "hosts" && p[1] === "ssh") {
    return ["host", "user", "port", "hostKey", "insecureIgnoreHostKey", "connectTimeoutSeconds", "connectAttempts"];
  }
  if (p[0] === "ssh") return ["connectTimeoutSeconds", "connectAttempts"];
  if (p[0] === "smokeCheck") return ["enabled", "timeoutSeconds", "level"];
  if (p[0] === "policyEnv") return ["telemetryOff", "shareOff"];
  if (p[0] === "hosts" && p[1] === "smokeCheck") return ["level"];
  if (p[0] === "install" || (p[0] === "hosts" && p[1] === "install")) return ["method"];
  if (p[0] === "models" && p.length === 2) return Object.keys(SEED_MODEL);
  if (p[0] === "models" && p[2] === "limit") return ["context", "input", "output"];
  if (p[0] === "models" && p[2] === "modalities") return ["input", "output"];
  return [];
}

/** Keys whose values are not strings: Pulumi hands these to the program as JSON text. */
const STRUCTURED_KEYS = new Set([
  "models",
  "compactionThresholdPercent",
  "permission",
  "kiloSettings",
  "policy",
  "policyEnv",
  "smokeCheck",
  "install",
  "hosts",
  "apiKeys",
  "ssh",
  "proxy",
]);

/**
 * `__proto__` keys (possible in JSON text from `pulumi config`) would be dropped silently by the schema and
 * by any plain-object copy: refuse them, naming where they are.
 */
function prototypeKeyErrors(value: unknown, naming: KeyNaming, path: (string | number)[] = []): SettingsError[] {
  if (value === null || typeof value !== "object") return [];
  const errors: SettingsError[] = [];
  if (!Array.isArray(value) && Object.hasOwn(value, "__proto__")) {
    errors.push({ key: keyName([...path, "__proto__"], naming), message: "is not allowed as a key" });
  }
  for (const [k, v] of Object.entries(value)) {
    errors.push(...prototypeKeyErrors(v, naming, [...path, Array.isArray(value) ? Number(k) : k]));
  }
  return errors;
}

/**
 * The `kilo-fleet:` keys of a raw config, decoded: `raw` maps full keys (`kilo-fleet:model`) to values,
 * strings as the Pulumi runtime gives them (structured values as JSON text), or structured values as read
 * from a stack YAML file. Keys of other namespaces are left out.
 */
export function decodeConfig(raw: Record<string, unknown>): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  for (const [fullKey, value] of Object.entries(raw)) {
    const [ns, ...rest] = fullKey.split(":");
    if (ns !== CONFIG_NAMESPACE || rest.length === 0) continue;
    const key = rest.join(":");
    let v = value;
    if (STRUCTURED_KEYS.has(key) && typeof v === "string") {
      try {
        v = JSON.parse(v);
      } catch {
        // Not JSON: leave the plain string for the schema, whose message says what shape is wanted.
      }
    }
    // Pulumi hands a YAML `null` to the program as "": for the one nullable key that means null.
    if (key === "compactionThresholdPercent" && v === "") v = null;
    input[key] = v;
  }
  return input;
}

/** Parses the raw `kilo-fleet:` config (see `decodeConfig`): the settings, or every error at once. */
export function parseSettings(raw: Record<string, unknown>, opts: ParseOptions = {}): ParseResult {
  return parseSettingsInput(decodeConfig(raw), opts);
}

/** Validates decoded settings (keys without the namespace) and applies the schema's defaults. */
export function parseSettingsInput(input: Record<string, unknown>, opts: ParseOptions = {}): ParseResult {
  const naming = opts.naming ?? "stack";
  const errors: SettingsError[] = [...prototypeKeyErrors(input, naming)];
  const result = settingsSchema.safeParse(input, { error: typeErrorMessage });
  if (!result.success) {
    for (const issue of result.error.issues) {
      if (issue.code === "unrecognized_keys") {
        const known = knownKeysAt(issue.path);
        for (const k of issue.keys) {
          const hint = didYouMean(k, known);
          errors.push({
            key: keyName([...issue.path, k], naming),
            message: `${naming === "args" ? "unknown argument" : "unknown key"}${hint ? ` (did you mean ${hint}?)` : ""}`,
          });
        }
      } else {
        errors.push({ key: keyName(issue.path, naming), message: issue.message });
      }
    }
  }
  errors.push(...crossKeyErrors(input, opts));
  if (errors.length > 0) return { ok: false, errors: dedupe(errors) };
  return { ok: true, settings: (result as { data: Settings }).data };
}

/** The `ssh-keyscan` command line that fetches a server's ed25519 host key. */
export function keyscanLine(host: string, port: number): string {
  const h = /^[A-Za-z0-9._:@[\]-]+$/.test(host) && !host.startsWith("-") ? host : shQuote(host);
  return `ssh-keyscan -p ${port} -t ed25519 ${h}`;
}

/**
 * An SSH host must pin its server's host key, or say `insecureIgnoreHostKey: true` (checked on the raw
 * input, so it is reported with every other error).
 */
function hostKeyErrors(ssh: unknown, i: number, naming: KeyNaming): SettingsError[] {
  if (!isPlainObject(ssh)) return [];
  const insecure = ssh.insecureIgnoreHostKey === true;
  if (ssh.hostKey !== undefined && insecure) {
    return [
      {
        key: keyName(["hosts", i, "ssh", "insecureIgnoreHostKey"], naming),
        message: "must not be true when hostKey is set (the pinned key would be ignored); remove one of them",
      },
    ];
  }
  if (ssh.hostKey !== undefined || insecure) return [];
  // A host the schema refuses (whitespace, control characters) is not repeated here.
  const host = typeof ssh.host === "string" && sshTarget.safeParse(ssh.host).success ? ssh.host : "<host>";
  if (naming === "args") {
    return [
      {
        key: "ssh.hostKey",
        message:
          "is required: pin the server's host key (one `ssh-keyscan` line, e.g. from `npm run kilo-fleet -- hostkeys`), or anyone who can answer for the host receives the API key; to accept any host key instead, set ssh.insecureIgnoreHostKey: true",
      },
    ];
  }
  const port = typeof ssh.port === "number" ? ssh.port : SSH_PORT_DEFAULT;
  return [
    {
      key: formatKeyPath(["hosts", i, "ssh", "hostKey"]),
      message: `is required: pin the server's host key, or anyone who can answer for ${host} receives the API key. Get it with \`${keyscanLine(host, port)}\` (or \`npm run kilo-fleet -- hostkeys --stack NAME\`), compare its fingerprint out of band, then: pulumi config set --path 'hosts[${i}].ssh.hostKey' '<type> <base64>'. To accept any host key instead, set hosts[${i}].ssh.insecureIgnoreHostKey: true`,
    },
  ];
}

export function isLoopbackHost(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/** Messages for wrong types that name what is wanted and what was given, never the value (it may be secret). */
function typeErrorMessage(iss: { code?: string; input?: unknown; expected?: string }): string | undefined {
  if (iss.code !== "invalid_type") return undefined;
  if (iss.input === undefined) return "is required";
  const wanted: Record<string, string> = {
    string: "a string",
    number: "a number",
    int: "an integer",
    boolean: "true or false",
    array: "a list",
    object: "an object",
    record: "an object",
  };
  const given =
    iss.input === null
      ? "null"
      : Array.isArray(iss.input)
        ? "a list"
        : typeof iss.input === "object"
          ? "an object"
          : `a ${typeof iss.input}`;
  return `must be ${wanted[iss.expected ?? ""] ?? iss.expected}, not ${given}`;
}

function dedupe(errors: SettingsError[]): SettingsError[] {
  const seen = new Set<string>();
  return errors.filter((e) => {
    const k = `${e.key}\0${e.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Formats errors one per line, `key: message`. */
export function formatErrors(errors: readonly SettingsError[]): string {
  return errors.map((e) => `${e.key}: ${e.message}`).join("\n");
}
