/**
 * The one resolved form: `resolveHosts` turns a stack's raw config, or one KiloHost's arguments (read as a
 * one-host stack), into `{ specs, errors, warnings }`, one `HostSpec` per host with the fleet settings and
 * the host's overrides applied once. validate, render, hostkeys, lock, doctor, `pulumi up` and KiloHost all
 * consume it. Defaults live in the schema (deployer/settings.ts) and nowhere else.
 */
import * as pulumi from "@pulumi/pulumi";
import { fitsInOneArgument, MAX_ARG_BYTES } from "../common/argLimit";
import { limitsForWindow, tokensNeeded, usableInput } from "../common/contextWindow";
import { apiKeyEntryErrors, missingApiKeyErrors, setApiKeyCommand } from "./apiKeys";
import { caCertificatesWarnings } from "./caCertificates";
import type { HostSpec, SettingsWarning } from "./hostSpec";
import { hostStepCommands } from "./hostSteps";
import {
  type KiloLock,
  LockError,
  lockedIntegrity,
  lockProblems,
  pinnedVersions,
  readLockFile,
  shippedLock,
} from "./kiloLock";
import { npmRegistryWarning } from "./npmRegistry";
import { mergedPolicy, renderPolicy } from "./policy";
import {
  CONFIG_NAMESPACE,
  isLoopbackHost,
  type KeyNaming,
  keyName,
  keyscanLine,
  type ModelSettings,
  parseSettings,
  parseSettingsInput,
  SECRET_KEYS,
  SECRET_MAP_KEYS,
  type Settings,
  type SettingsError,
  settingsSchema,
} from "./settings";
/** What to resolve: a stack's raw config (full keys, `kilo-fleet:model`), or one KiloHost's arguments. */
export type HostSource = { stack: Record<string, unknown> } | { kiloHost: string; args: Record<string, unknown> };

export interface ResolveOptions {
  /**
   * A stack's lock file, checked against every pinned version (`shown`: how errors name it). Default: none
   * read (KiloHost: its `kiloLock` argument, else the shipped lock). `false`: no lock check (hostkeys).
   */
  lockFile?: { path: string; shown?: string } | false;
  /** An SSH host without `hostKey` is no error (`hostkeys`, which is how a stack gets them). */
  unpinnedHostKeys?: boolean;
  /**
   * Which secrets a stack has (never their values), checked against its hosts: `missingKey` says whether
   * a host without a key is an error (`pulumi up`) or a warning (validate: secrets often come later);
   * `sshAuth: false` makes every SSH host an error (no private key, no agent).
   */
  secrets?: { fleetKey: boolean; apiKeyHosts: readonly string[]; missingKey: "error" | "warning"; sshAuth?: boolean };
}

/** Every host of the source, resolved, or every error at once (then `specs` is empty). */
export interface Resolved {
  specs: HostSpec[];
  errors: SettingsError[];
  warnings: SettingsWarning[];
  /** The lock read from `lockFile` (undefined: none, or no such file). */
  lock?: KiloLock;
}

/** The KiloHost arguments that are not settings: secrets and the lock. */
const NOT_SETTINGS = ["apiKey", "sshPrivateKey", "sshJumpPrivateKey", "npmToken", "proxyCredentials", "kiloLock"];
/**
 * The stack keys a KiloHost takes as arguments: all but the secrets, the host list and the fleet's SSH dial
 * settings (its `shells` and `ssh` are its one host's).
 */
const HOST_ARG_KEYS = Object.keys(settingsSchema.shape).filter(
  (k) => !([...SECRET_KEYS, ...SECRET_MAP_KEYS, "hosts", "ssh"] as string[]).includes(k),
);
/** Placeholders that pass the SSH field rules, standing in for values not known until deploy. */
const UNKNOWN_SSH: Record<string, unknown> = { host: "unknown.invalid", user: "unknown" };
/** The one host's name while a KiloHost's arguments are validated (its resource name may be any text). */
const ARGS_HOST_NAME = "host";

/** Resolves every host of `source` (see the module comment). */
export function resolveHosts(source: HostSource, options: ResolveOptions = {}): Resolved {
  const naming: KeyNaming = "stack" in source ? "stack" : "args";
  const errors: SettingsError[] = [];
  let parsed: ReturnType<typeof parseSettings>;
  let deferred: Record<string, unknown> = {};
  let hostNames: string[];
  const parseOpts = { naming, unpinnedHostKeys: options.unpinnedHostKeys };
  if ("stack" in source) {
    parsed = parseSettings(source.stack, parseOpts);
    hostNames = parsed.ok ? parsed.settings.hosts.map((h) => h.name) : rawHostNames(source.stack);
  } else {
    const asStack = kiloHostAsStack(source.args);
    deferred = asStack.deferred;
    errors.push(...asStack.errors);
    // A hostKey that is an Output pins the host (checked at deploy), so its absence here is no error.
    parsed = parseSettingsInput(asStack.input, { ...parseOpts, unpinnedHostKeys: "hostKey" in deferred });
    hostNames = [source.kiloHost];
  }
  if (!parsed.ok) errors.push(...parsed.errors);
  if (options.secrets)
    errors.push(...keyErrors(hostNames, options.secrets, parsed, "stack" in source ? source.stack : {}));
  const warnings: SettingsWarning[] = options.secrets ? keyWarnings(hostNames, options.secrets) : [];
  if (!parsed.ok || errors.length > 0) return { specs: [], errors, warnings };

  const settings = parsed.settings;
  const specs = settings.hosts.map((h) =>
    hostSpec(settings, h, "kiloHost" in source ? { name: source.kiloHost, deferred } : undefined),
  );
  warnings.push(...settingsWarnings(settings, specs, naming));
  let lock: KiloLock | undefined;
  if ("stack" in source) {
    if (options.lockFile) {
      try {
        lock = readLockFile(options.lockFile.path);
        errors.push(...lockProblems(lock, pinnedVersions(settings), options.lockFile.shown ?? options.lockFile.path));
      } catch (e) {
        if (!(e instanceof LockError)) throw e;
        errors.push({ key: "kilo-fleet lock file", message: e.message });
      }
    }
  } else if (settings.install.method === "package") {
    lock = (source.args.kiloLock as KiloLock | undefined) ?? shippedLock();
    try {
      lockedIntegrity(lock, settings.kiloVersion);
    } catch (e) {
      if (!(e instanceof LockError)) throw e;
      errors.push({ key: "kiloVersion", message: `${e.message} (install.method package)` });
    }
  }
  if (errors.length === 0) errors.push(...specs.flatMap((spec, i) => stepSizeErrors(spec, settings, i, naming, lock)));
  if (errors.length > 0) return { specs: [], errors, warnings };
  return { specs, errors, warnings, ...(lock !== undefined ? { lock } : {}) };
}

/**
 * A KiloHost's arguments as a one-host stack's settings: the host's `ssh` and `shells` under `hosts[0]`,
 * SSH fields that are Outputs or Promises replaced by placeholders (and kept aside, to be put back).
 */
function kiloHostAsStack(args: Record<string, unknown>): {
  input: Record<string, unknown>;
  deferred: Record<string, unknown>;
  errors: SettingsError[];
} {
  const input: Record<string, unknown> = {};
  const host: Record<string, unknown> = { name: ARGS_HOST_NAME };
  const deferred: Record<string, unknown> = {};
  const errors: SettingsError[] = [];
  for (const [k, v] of Object.entries(args)) {
    if (NOT_SETTINGS.includes(k) || v === undefined) continue;
    if (HOST_ARG_KEYS.includes(k)) input[k] = v;
    else if (k === "shells") host.shells = v;
    else if (k !== "ssh") errors.push({ key: k, message: "unknown argument" });
  }
  const ssh = args.ssh;
  if (ssh !== null && typeof ssh === "object" && !Array.isArray(ssh)) {
    const plain: Record<string, unknown> = { ...(ssh as Record<string, unknown>) };
    for (const [k, v] of Object.entries(plain)) {
      if (pulumi.Output.isInstance(v) || v instanceof Promise) {
        deferred[k] = v;
        if (k in UNKNOWN_SSH) plain[k] = UNKNOWN_SSH[k];
        else delete plain[k];
      }
    }
    host.ssh = plain;
    if ("hostKey" in deferred && plain.insecureIgnoreHostKey === true) {
      errors.push({
        key: "ssh.insecureIgnoreHostKey",
        message: "must not be true when hostKey is set (the pinned key would be ignored); remove one of them",
      });
    }
  } else if (ssh !== undefined) host.ssh = ssh;
  else host.local = true;
  input.hosts = [host];
  return { input, deferred, errors };
}

/** The names of a raw stack's hosts that have one (known even when other keys are invalid). */
function rawHostNames(raw: Record<string, unknown>): string[] {
  const hosts = raw[`${CONFIG_NAMESPACE}:hosts`] === undefined ? [{ name: "local" }] : rawHosts(raw);
  return hosts.flatMap((h) =>
    h !== null && typeof h === "object" && typeof (h as { name?: unknown }).name === "string"
      ? [(h as { name: string }).name]
      : [],
  );
}

/** The spec of `host` in `settings`; a KiloHost's own name and its deferred SSH fields replace the stack's. */
function hostSpec(
  settings: Settings,
  host: Settings["hosts"][number],
  kiloHost?: { name: string; deferred: Record<string, unknown> },
): HostSpec {
  const caCertificates = host.caCertificates ?? settings.caCertificates;
  const reconcile = host.reconcile ?? settings.reconcile;
  const policy = mergedPolicy(settings.policy, host.policy);
  const become = host.become ?? settings.become;
  const proxy = host.proxy ?? settings.proxy;
  const ssh = host.ssh ? ({ ...host.ssh, ...kiloHost?.deferred } as Record<string, unknown>) : undefined;
  return {
    name: kiloHost?.name ?? host.name,
    poolerBaseUrl: settings.poolerBaseUrl,
    providerId: settings.providerId,
    apiKeyEnvVar: settings.apiKeyEnvVar,
    kiloVersion: host.kiloVersion ?? settings.kiloVersion,
    model: host.model ?? settings.model,
    models: settings.models,
    // 0 omits compaction as null does (a language without null, e.g. Pulumi YAML, says 0).
    compactionThresholdPercent: settings.compactionThresholdPercent || null,
    ...(settings.permission !== undefined ? { permission: settings.permission } : {}),
    kiloSettings: settings.kiloSettings,
    smokeCheck: { ...settings.smokeCheck, ...(host.smokeCheck?.level ? { level: host.smokeCheck.level } : {}) },
    install: { method: host.install?.method ?? settings.install.method },
    ...(settings.npmRegistry !== undefined ? { npmRegistry: settings.npmRegistry } : {}),
    ...(caCertificates !== undefined ? { caCertificates } : {}),
    ...(proxy !== undefined ? { proxy } : {}),
    ...(reconcile !== undefined ? { reconcile } : {}),
    ...(policy !== undefined
      ? {
          policy: renderPolicy(policy, settings),
          ...(become === "sudo" ? { become } : {}),
          policyEnv: { ...settings.policyEnv },
        }
      : {}),
    ...(host.shells !== undefined ? { shells: host.shells } : {}),
    ...(host.wave !== undefined && host.wave > 0 ? { wave: host.wave } : {}),
    ...(host.ssh !== undefined && ssh !== undefined
      ? {
          ssh: {
            host: ssh.host as pulumi.Input<string>,
            user: ssh.user as pulumi.Input<string>,
            port: ssh.port as pulumi.Input<number>,
            ...(ssh.hostKey !== undefined ? { hostKey: ssh.hostKey as pulumi.Input<string> } : {}),
            ...(host.ssh.insecureIgnoreHostKey === true ? { insecureIgnoreHostKey: true } : {}),
            connectTimeoutSeconds: host.ssh.connectTimeoutSeconds ?? settings.ssh.connectTimeoutSeconds,
            connectAttempts: host.ssh.connectAttempts ?? settings.ssh.connectAttempts,
            ...((host.ssh.proxy ?? settings.ssh.proxy) !== undefined
              ? { proxy: host.ssh.proxy ?? settings.ssh.proxy }
              : {}),
          },
        }
      : {}),
  };
}

/** Per-host API keys: entries naming no host are errors; a host left without any key is `missingKey`'s. */
function keyErrors(
  hostNames: string[],
  secrets: NonNullable<ResolveOptions["secrets"]>,
  parsed: ReturnType<typeof parseSettings>,
  raw: Record<string, unknown>,
): SettingsError[] {
  const errors = apiKeyEntryErrors(secrets.apiKeyHosts, hostNames);
  if (secrets.missingKey === "error") {
    if (secrets.apiKeyHosts.length === 0 && !secrets.fleetKey) {
      errors.push({
        key: keyName(["codexPoolerApiKey"]),
        message: `is required (the Pool API key): pulumi config set --secret codexPoolerApiKey <key>, or one key per host: ${setApiKeyCommand("<host>")}`,
      });
    } else errors.push(...missingApiKeyErrors(hostNames, secrets.apiKeyHosts, secrets.fleetKey));
  }
  if (secrets.sshAuth === false) {
    const hosts: unknown[] = parsed.ok ? parsed.settings.hosts : rawHosts(raw);
    hosts.forEach((h, i) => {
      if (h !== null && typeof h === "object" && (h as { ssh?: unknown }).ssh !== undefined) {
        errors.push({
          key: keyName(["hosts", i, "ssh"]),
          message:
            "no way to authenticate: set the sshPrivateKey secret (pulumi config set --secret sshPrivateKey < key-file) or run Pulumi with an SSH agent (SSH_AUTH_SOCK)",
        });
      }
    });
  }
  return errors;
}

/** validate: a host without a key is a warning (a stack is often checked before its secrets are set). */
function keyWarnings(hostNames: string[], secrets: NonNullable<ResolveOptions["secrets"]>): SettingsWarning[] {
  if (secrets.missingKey !== "warning") return [];
  return missingApiKeyErrors(hostNames, secrets.apiKeyHosts, secrets.fleetKey).map((m) => ({
    key: m.key,
    message: `${m.message} (pulumi up refuses the stack until then)`,
  }));
}

/** The raw `hosts` list (JSON text or structured), or [] when it is not one. */
function rawHosts(raw: Record<string, unknown>): unknown[] {
  let hosts = raw[`${CONFIG_NAMESPACE}:hosts`];
  if (typeof hosts === "string") {
    try {
      hosts = JSON.parse(hosts);
    } catch {
      return [];
    }
  }
  return Array.isArray(hosts) ? hosts : [];
}

/** Where a host's `caCertificates` comes from: its own override, else the fleet's. */
const caPath = (settings: Settings, i: number) =>
  settings.hosts[i].caCertificates !== undefined ? ["hosts", i, "caCertificates"] : ["caCertificates"];

/**
 * A step command the host could not execute (one argument over MAX_ARG_BYTES: E2BIG), naming the setting
 * that weighs most in it.
 */
function stepSizeErrors(
  spec: HostSpec,
  settings: Settings,
  i: number,
  naming: KeyNaming,
  lock: KiloLock | undefined,
): SettingsError[] {
  let commands: ReturnType<typeof hostStepCommands>;
  try {
    commands = hostStepCommands(spec.name, spec, { id: "000000000000", file: "/tool" }, spec.ssh ? "ssh" : "local", {
      ...(lock !== undefined ? { lock } : {}),
    });
  } catch (e) {
    if (e instanceof LockError) return [];
    throw e;
  }
  const bytes = (v: unknown) => (v === undefined ? 0 : Buffer.byteLength(JSON.stringify(v)));
  const weights: Record<string, [(string | number)[], number][]> = {
    config: [
      ...Object.entries(settings.models).map(([id, m]): [(string | number)[], number] => [["models", id], bytes(m)]),
      ...Object.entries(settings.kiloSettings).map(([k, v]): [(string | number)[], number] => [
        ["kiloSettings", k],
        bytes(v),
      ]),
      [["permission"], bytes(settings.permission)],
    ],
    install: [
      [caPath(settings, i), bytes(spec.caCertificates)],
      [["npmRegistry"], bytes(spec.npmRegistry)],
    ],
    env: [[caPath(settings, i), bytes(spec.caCertificates)]],
    policy: [
      ...Object.entries(settings.policy ?? {}).map(([k, v]): [(string | number)[], number] => [
        ["policy", k],
        bytes(v),
      ]),
      ...Object.entries(settings.hosts[i].policy || {}).map(([k, v]): [(string | number)[], number] => [
        ["hosts", i, "policy", k],
        bytes(v),
      ]),
    ],
  };
  weights.smoke = weights.policy;
  const errors: SettingsError[] = [];
  for (const step of ["tool", "install", "config", "env", "policy", "smoke"] as const) {
    const create = commands[step]?.create;
    if (create === undefined || fitsInOneArgument(create)) continue;
    const heaviest = [...(weights[step] ?? [])].sort((a, b) => b[1] - a[1])[0];
    errors.push({
      key: keyName(heaviest?.[0] ?? ["hosts", i], naming),
      message: `makes host "${spec.name}"'s ${step} step ${Buffer.byteLength(create)} bytes, over the ${MAX_ARG_BYTES}-byte limit of one argument a host can execute (E2BIG); make it smaller`,
    });
  }
  return errors;
}

/**
 * kilo's own arithmetic (common/contextWindow.ts): a model whose usable input plus `limit.output` exceeds its
 * `limit.context` lets a long session overflow the window before kilo compacts. The warning names the
 * `limit.input` that fits.
 */
function contextOverflowWarning(limit: ModelSettings["limit"], thresholdPercent: number | null): string | undefined {
  const needed = tokensNeeded(limit, { thresholdPercent });
  if (needed <= limit.context) return undefined;
  const fit = limitsForWindow(limit.context, limit.output);
  return `kilo compacts at ${usableInput(limit, { thresholdPercent })} input tokens, which with limit.output ${limit.output} is ${needed}, over limit.context ${limit.context}: a long session overflows the model's window; set limit.input to ${fit.input} (limit.context − limit.output + kilo's compaction reserve)${thresholdPercent === null ? " or set compactionThresholdPercent" : ""}`;
}

/** The warnings of valid settings, one text each, keyed as `naming` spells keys. */
function settingsWarnings(settings: Settings, specs: HostSpec[], naming: KeyNaming): SettingsWarning[] {
  const warnings: SettingsWarning[] = [];
  const warn = (path: (string | number)[], message: string, host?: string) =>
    warnings.push({ key: keyName(path, naming), message, ...(host !== undefined ? { host } : {}) });
  const latest = (hosts: HostSpec[]) =>
    `"latest" means kilo is not pinned: hosts drift as Kilo releases, and kilo may update itself${
      hosts.some((s) => s.install.method === "package")
        ? "; install.method package installs it unlocked (no sha512 from the lock file to check)"
        : ""
    }`;
  const fleetLatest = specs.filter((_, i) => settings.hosts[i].kiloVersion === undefined);
  if (settings.kiloVersion === "latest" && fleetLatest.length > 0) {
    warn(["kiloVersion"], latest(fleetLatest), naming === "args" ? specs[0].name : undefined);
  }
  settings.hosts.forEach((h, i) => {
    if (h.kiloVersion === "latest") warn(["hosts", i, "kiloVersion"], latest([specs[i]]), specs[i].name);
  });
  const pooler = new URL(settings.poolerBaseUrl);
  if (pooler.protocol === "http:" && !isLoopbackHost(pooler.hostname)) {
    warn(
      ["poolerBaseUrl"],
      `plain http to ${pooler.hostname}: the API key crosses the network unencrypted (use https for a deployed pooler)`,
    );
  }
  settings.hosts.forEach((h, i) => {
    if (h.ssh?.insecureIgnoreHostKey !== true) return;
    const host = specs[i].ssh?.host;
    const known = typeof host === "string";
    warn(
      ["hosts", i, "ssh", "insecureIgnoreHostKey"],
      `the server's host key is not checked, so anyone who can answer for ${known ? host : "the host"} receives the API key; pin it instead (${known ? keyscanLine(host, h.ssh.port) : "ssh.hostKey, from `npm run kilo-fleet -- hostkeys` or ssh-keyscan"})`,
      specs[i].name,
    );
  });
  if (settings.npmRegistry !== undefined) {
    const w = npmRegistryWarning(settings.npmRegistry);
    if (w) warn(["npmRegistry"], w);
  }
  if (settings.caCertificates !== undefined) {
    for (const w of caCertificatesWarnings(settings.caCertificates)) warn(["caCertificates"], w);
  }
  for (const [id, model] of Object.entries(settings.models)) {
    const w = contextOverflowWarning(model.limit, settings.compactionThresholdPercent || null);
    if (w) warn(["models", id, "limit"], w);
  }
  // The policy step needs root: a user that is not root without become fails it at deploy.
  specs.forEach((spec, i) => {
    if (spec.policy === undefined || spec.become !== undefined) return;
    const user = spec.ssh ? spec.ssh.user : process.getuid?.() === 0 ? "root" : "this machine's user";
    if (typeof user !== "string" || user === "root") return;
    warn(
      settings.hosts[i].become !== undefined ? ["hosts", i, "become"] : ["become"],
      `host "${spec.name}" has a policy, which needs root to write kilo's managed config, and ${spec.ssh ? `its SSH user ${user}` : user} is not root: set become to "sudo" (passwordless sudo), or its policy step fails`,
      spec.name,
    );
  });
  settings.hosts.forEach((h, i) => {
    if (h.caCertificates === undefined) return;
    for (const w of caCertificatesWarnings(h.caCertificates)) warn(["hosts", i, "caCertificates"], w, specs[i].name);
  });
  return warnings;
}
