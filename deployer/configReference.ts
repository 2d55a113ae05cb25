/**
 * The config reference in docs/configuration.md, generated: one row per key of the settings schema, the
 * defaults read from the schema itself, so the docs cannot drift from what `parseSettings` does
 * (`npm run docs` rewrites that copy; test/readme.test.ts fails when they differ).
 */
import { CONFIG_NAMESPACE, SHELL_RC_FILES, settingsSchema } from "./settings";

/** What the schema cannot say about a key: its type and rule in words. */
interface KeyDoc {
  type: string;
  rule: string;
  /** Replaces the default column, for keys whose requirement the schema cannot express. */
  defaultText?: string;
}

/** Hand-written per key; a schema key missing here makes `configReference` throw. */
export const KEY_DOCS: Record<keyof typeof settingsSchema.shape, KeyDoc> = {
  poolerBaseUrl: {
    type: "string",
    rule: "http(s) URL ending in `/v1`; never `…/chat/completions`, `…/responses` or `/backend-api/codex` (Kilo appends `/chat/completions` itself)",
  },
  codexPoolerApiKey: {
    type: "secret string",
    defaultText: "required for `pulumi up` unless every host has an `apiKeys` entry",
    rule: "the fleet key, for every host without its own in `apiKeys`; set with `pulumi config set --secret`; never printed; reaches hosts only as `$apiKeyEnvVar`",
  },
  apiKeys: {
    type: "secret map of host name → key",
    rule: "one Pool API key per host (`pulumi config set --secret --path 'apiKeys.<host>' <key>`); every entry must name a host of `hosts`; each value one line",
  },
  providerId: { type: "string", rule: "`[a-z0-9][a-z0-9-_.]*`, no `/`" },
  apiKeyEnvVar: { type: "string", rule: "a shell variable name `[A-Za-z_][A-Za-z0-9_]*`" },
  kiloVersion: {
    type: "string",
    rule: "exact semver, or `latest` (allowed, with a warning that the fleet is no longer pinned); pinned adds `autoupdate: false`",
  },
  model: { type: "string", rule: "must be a key of `models`" },
  models: {
    type: "map of model id → kilo model object (`name`, `tool_call`, `reasoning`, `temperature`, `attachment`, `modalities`, `limit`)",
    rule: "at least one; `limit.context`/`input`/`output` positive integers, `input` and `output` ≤ `context`",
  },
  compactionThresholdPercent: { type: "integer or null", rule: "1–100; null omits `compaction`" },
  permission: {
    type: "object",
    rule: 'object form only, e.g. `{"bash": "allow"}`; a bare string like `"ask"` is refused',
  },
  kiloSettings: {
    type: "object",
    rule: "extra top-level kilo.jsonc keys (e.g. `share`), merged last; may not set a managed key",
  },
  smokeCheck: {
    type: "`{enabled, timeoutSeconds, level}`",
    rule: "`timeoutSeconds` an integer 10–3600; `level` `kilo-run` (the pool checks, then a real `kilo run`: ~2 requests, ~25k tokens) or `pool` (`/readyz` and `/v1/models` only, no tokens), also per host",
  },
  install: {
    type: "`{method}`",
    rule: "`method` `package` (kilo's platform package, downloaded by sh with curl or wget and checked against `stacks/kilo-fleet.lock.json`: no node needed on the host) or `npm` (`npm install -g`: node ≥ 18 and npm on the host), also per host",
  },
  npmRegistry: {
    type: "URL",
    rule: "http(s) registry mirror for the kilo install (both methods); no credentials, query or fragment in it (use `npmToken`); plain http to a non-loopback host is warned about",
  },
  npmToken: {
    type: "secret string",
    rule: "the registry's auth token (one line), for `npmRegistry`; set with `pulumi config set --secret npmToken`; never printed",
  },
  caCertificates: {
    type: "PEM text",
    rule: "one or more CA certificates (each checked as X.509; a private key is refused) the hosts trust: npm's install (`--cafile`) and kilo (`NODE_EXTRA_CA_CERTS`); `hosts[i].caCertificates` overrides it per host",
  },
  reconcile: {
    type: "string",
    rule: "any one line (e.g. a date); changing it re-runs every step of every host in place (nothing deleted first); `hosts[i].reconcile` overrides it per host",
  },
  ssh: {
    type: "`{connectTimeoutSeconds, connectAttempts}`",
    rule: "for every SSH host (`hosts[i].ssh` overrides each): seconds per dial 1–600 and dials 1–20 before the host's step fails",
  },
  hosts: {
    type: "list of `{name, local: true}` or `{name, ssh: {host, user, port?, hostKey?, insecureIgnoreHostKey?, connectTimeoutSeconds?, connectAttempts?}}`, plus optional `kiloVersion`, `model`, `shells`, `smokeCheck: {level}`, `install: {method}`, `caCertificates`, `reconcile`",
    rule: `non-empty; names unique \`[a-z0-9-]+\`; ssh needs host and user; port 1–65535; hostKey one \`ssh-keyscan\` line, required unless \`insecureIgnoreHostKey: true\` (warned; get keys with \`npm run kilo-fleet -- hostkeys\`); shells from ${Object.keys(
      SHELL_RC_FILES,
    )
      .map((s) => `\`${s}\``)
      .join(", ")}`,
  },
  sshPrivateKey: { type: "secret string", rule: "for ssh hosts unless an ssh agent is used; never printed" },
};

/** Defaults longer than this go below the table as JSON blocks instead of into a cell. */
const INLINE_LIMIT = 60;

/** Each key's default as the schema declares it: `undefined` for none, `REQUIRED` when it must be set. */
export const REQUIRED = Symbol("required");
export function schemaDefaults(): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(settingsSchema.shape)) {
    const def = (schema as unknown as { _zod: { def: { type: string; defaultValue?: unknown } } })._zod.def;
    out[key] = def.type === "default" ? def.defaultValue : def.type === "optional" ? undefined : REQUIRED;
  }
  return out;
}

const cell = (s: string) => s.replaceAll("|", "\\|").replaceAll("\n", " ");

/** The markdown config reference: a table of every key, then the long defaults in full. */
export function configReference(): string {
  const defaults = schemaDefaults();
  const rows: string[] = ["| key | type | default | rule |", "|---|---|---|---|"];
  const blocks: string[] = [];
  for (const key of Object.keys(settingsSchema.shape) as (keyof typeof KEY_DOCS)[]) {
    const doc = KEY_DOCS[key];
    if (!doc) throw new Error(`configReference: no KEY_DOCS entry for ${key}`);
    const value = defaults[key];
    let shown: string;
    if (doc.defaultText) shown = doc.defaultText;
    else if (value === REQUIRED) shown = "required";
    else if (value === undefined) shown = "absent";
    else {
      const json = JSON.stringify(value);
      if (json.length <= INLINE_LIMIT) shown = `\`${json}\``;
      else {
        shown = `see [below](#default-${key.toLowerCase()})`;
        blocks.push(
          `<a id="default-${key.toLowerCase()}"></a>Default \`${key}\`:\n\n\`\`\`json\n${JSON.stringify(value, null, 2)}\n\`\`\``,
        );
      }
    }
    rows.push(`| \`${key}\` | ${cell(doc.type)} | ${cell(shown)} | ${cell(doc.rule)} |`);
  }
  const intro = `Every key lives in the \`${CONFIG_NAMESPACE}:\` namespace (\`pulumi config set ${CONFIG_NAMESPACE}:model gpt-5.5\`, or \`--path\` for structured keys). Unknown keys are errors.`;
  return [intro, "", ...rows, ...blocks.flatMap((b) => ["", b])].join("\n");
}

export const REFERENCE_START = "<!-- config-reference:start -->";
export const REFERENCE_END = "<!-- config-reference:end -->";

/** `readme` with the text between the config-reference markers replaced by `configReference()`. */
export function spliceConfigReference(readme: string): string {
  const start = readme.indexOf(REFERENCE_START);
  const end = readme.indexOf(REFERENCE_END);
  if (start === -1 || end < start) {
    throw new Error(`README has no ${REFERENCE_START} … ${REFERENCE_END} block`);
  }
  return `${readme.slice(0, start + REFERENCE_START.length)}\n${configReference()}\n${readme.slice(end)}`;
}
