/**
 * The one table of settings: for every stack key and KiloHost argument, what it is (description), its type
 * and rules in words, and its default as the schema (deployer/settings.ts) declares it. The config reference
 * (cli/configReference.ts, docs/configuration.md) and KiloHostArgs' doc comments (deployer/kiloHost.ts,
 * rewritten by `npm run docs`) are both generated from it.
 */
import { SHELL_RC_FILES } from "../common/shells";
import { hostOverrides, settingsSchema, sshConnection } from "./settings";

/** One setting's documentation. */
export interface SettingDoc {
  /** What it is: the KiloHost argument's doc comment (its default is appended from the schema). */
  description: string;
  /** Stack keys: the type in words (the reference's type column). */
  type?: string;
  /** Stack keys: the rules in words (the reference's rule column). */
  rule?: string;
  /** Replaces the default read from the schema where the schema cannot say it (secrets, long values). */
  defaultText?: string;
  /** Replaces the reference's default column, for keys whose requirement the schema cannot express. */
  referenceDefault?: string;
}

/** A default the schema does not give: the key must be set. */
export const REQUIRED = Symbol("required");

/**
 * Every setting by path: stack keys by their name under `kilo-fleet:`, KiloHost arguments by their argument
 * path (`ssh.port`, `smokeCheck.level`); most are both.
 */
export const SETTING_DOCS: Record<string, SettingDoc> = {
  poolerBaseUrl: {
    description:
      "The pooler's OpenAI-compatible `/v1` *base* URL, e.g. `https://pooler.example.com/v1` (kilo appends `/chat/completions` itself).",
    type: "string",
    rule: "http(s) URL ending in `/v1`; never `…/chat/completions`, `…/responses` or `/backend-api/codex` (Kilo appends `/chat/completions` itself)",
  },
  apiKey: {
    description:
      "The Pool API key. Pass a secret (`config.requireSecret(...)`): it reaches the host only as the env command's stdin and is written to the 0600 env file, never to kilo.jsonc.",
    defaultText: "Required; no default.",
  },
  codexPoolerApiKey: {
    description: "The fleet's Pool API key.",
    type: "secret string",
    referenceDefault: "required for `pulumi up` unless every host has an `apiKeys` entry",
    rule: "the fleet key, for every host without its own in `apiKeys`; set with `pulumi config set --secret`; never printed; reaches hosts only as `$apiKeyEnvVar`",
  },
  apiKeys: {
    description: "One Pool API key per host.",
    type: "secret map of host name → key",
    rule: "one Pool API key per host (`pulumi config set --secret --path 'apiKeys.<host>' <key>`); every entry must name a host of `hosts`; each value one line",
  },
  ssh: {
    description: "Reach the host over SSH.",
    type: "`{connectTimeoutSeconds, connectAttempts, proxy?}`",
    rule: "for every SSH host (`hosts[i].ssh` overrides each): seconds per dial 1–600 and dials 1–20 before the host's step fails",
    defaultText: "Default: not set, meaning the machine running Pulumi (a local host).",
  },
  "ssh.host": { description: "Host name or address to connect to; may not start with `-`." },
  "ssh.user": { description: "The remote user whose HOME gets kilo; may not start with `-`." },
  "ssh.port": { description: "SSH port." },
  "ssh.hostKey": {
    description:
      "The server's public host key, one `ssh-ed25519 AAAA...` line (from `ssh-keyscan`, or `npm run kilo-fleet -- hostkeys`). Pins the server's identity: the provider refuses any other key before a command runs.",
    defaultText: "Required unless `insecureIgnoreHostKey` is true; no default.",
  },
  "ssh.insecureIgnoreHostKey": {
    description:
      "Accept whatever host key the server offers (anyone who can answer for `host` then receives the API key); a warning is logged. Only allowed without `hostKey`.",
    defaultText: "Default: false (a `hostKey` is required).",
  },
  "ssh.connectTimeoutSeconds": { description: "Seconds one SSH dial may take before it counts as failed (1-600)." },
  "ssh.connectAttempts": { description: "Dials before the host's step fails, e.g. for an offline laptop (1-20)." },
  sshPrivateKey: {
    description: "The SSH private key (PEM/OpenSSH text) for `ssh`. Pass a secret.",
    type: "secret string",
    rule: "for ssh hosts unless an ssh agent is used; never printed",
    defaultText:
      "Default: not set, meaning the SSH agent at `SSH_AUTH_SOCK` of the process running Pulumi; with neither, construction fails.",
  },
  providerId: {
    description: "The kilo provider id (`provider.<id>` in kilo.jsonc, `<id>/<model>` on the command line).",
    type: "string",
    rule: "`[a-z0-9][a-z0-9-_.]*`, no `/`",
  },
  apiKeyEnvVar: {
    description:
      "The environment variable holding the key; kilo.jsonc says `{env:<name>}`. Names that change how shells, loaders or runtimes behave (`PATH`, `LD_*`, `NODE_*`, …) and kilo's own (`KILO_*`, `XDG_*`) are refused.",
    type: "string",
    rule: "a shell variable name `[A-Za-z_][A-Za-z0-9_]*`, not one that changes how shells, loaders or runtimes behave (`PATH`, `HOME`, `IFS`, `BASH_ENV`, `LD_*`, `DYLD_*`, `NODE_*`, `BUN_*`, `PYTHON*`, …) nor kilo's or kilo-fleet's own (`KILO_*`, `XDG_*`)",
  },
  kiloVersion: {
    description: 'The exact `@kilocode/cli` version to install, or "latest" (unpinned: warned about).',
    type: "string",
    rule: "exact semver, or `latest` (allowed, with a warning that kilo is not pinned); pinned adds `autoupdate: false`",
  },
  model: {
    description: "The default model id; must be a key of `models`.",
    type: "string",
    rule: "must be a key of `models`",
  },
  models: {
    description: "The models the pool serves, as kilo model entries.",
    type: "map of model id → kilo model object (`name`, `tool_call`, `reasoning`, `temperature`, `attachment`, `modalities`, `limit`)",
    rule: "at least one; `limit.context`/`input`/`output` positive integers, `input` and `output` ≤ `context`",
    defaultText: "Default: the Codex Pooler docs' `gpt-5.5` entry.",
  },
  compactionThresholdPercent: {
    description: "`compaction.threshold_percent` (1-100), or 0 (or null) to leave compaction out.",
    type: "integer or null",
    rule: "1–100; 0 or null omits `compaction`",
  },
  permission: {
    description: 'kilo\'s `permission` object, e.g. `{ bash: "allow" }`.',
    type: "object",
    rule: 'object form only, e.g. `{"bash": "allow"}`; a bare string like `"ask"` is refused',
    defaultText: "Default: not set (kilo's own defaults).",
  },
  kiloSettings: {
    description: 'Extra kilo.jsonc keys (not the ones kilo-fleet manages), e.g. `{ share: "disabled" }`.',
    type: "object",
    rule: "extra top-level kilo.jsonc keys (e.g. `share`), merged last; may not set a managed key",
  },
  smokeCheck: {
    description: "The post-deploy smoke check.",
    type: "`{enabled, timeoutSeconds, level}`",
    rule: "`timeoutSeconds` an integer 10–3600; `level` `kilo-run` (the pool checks, then a real `kilo run`: ~2 requests, ~25k tokens) or `pool` (`/readyz` and `/v1/models` only, no tokens), also per host",
  },
  "smokeCheck.enabled": { description: "Run the post-deploy smoke check (its `level` says how much it does)." },
  "smokeCheck.timeoutSeconds": { description: "How long the smoke check may take, in seconds (10-3600)." },
  "smokeCheck.level": {
    description:
      "`kilo-run`: the pool checks (key, URL, models; no tokens), then the seed's tool-using `kilo run` (~30 KB to the pool). `pool`: the pool checks only — for all but a few canary hosts of a large fleet.",
  },
  install: {
    description:
      'How kilo gets onto the host: `{ method: "package" }` downloads kilo\'s platform package with curl or wget and checks its sha512 against `kiloLock` (plain sh: no node needed on the host); `{ method: "npm" }` runs `npm install -g --prefix ~/.local` (node >= 18 and npm on the host).',
    type: "`{method}`",
    rule: "`method` `package` (kilo's platform package, downloaded by sh with curl or wget and checked against `stacks/kilo-fleet.lock.json`: no node needed on the host) or `npm` (`npm install -g`: node ≥ 18 and npm on the host), also per host",
  },
  "install.method": {
    description:
      "`package`: kilo's platform package, downloaded by sh and checked against `kiloLock` (no node on the host); `npm`: `npm install -g` (node >= 18 and npm on the host).",
  },
  "models.*.name": { description: "The name kilo shows for the model." },
  "models.*.tool_call": { description: "The model calls tools (kilo's agent needs it)." },
  "models.*.reasoning": { description: "The model reasons before it answers." },
  "models.*.temperature": { description: "The model takes a temperature." },
  "models.*.attachment": { description: "The model takes attachments (files, images)." },
  "models.*.modalities": { description: "What the model takes in and gives out." },
  "models.*.modalities.input": { description: "What the model takes in." },
  "models.*.modalities.output": { description: "What the model gives out." },
  "models.*.limit": {
    description: "The model's token limits: kilo compacts a session before its input reaches them.",
    defaultText: "Required.",
  },
  "models.*.limit.context": {
    description: "The whole window: input plus output (at most the pool's `context_length`).",
    defaultText: "Required.",
  },
  "models.*.limit.input": {
    description: "Input tokens before kilo compacts (less its reserve); at most `context`.",
  },
  "models.*.limit.output": {
    description: "Output tokens a reply may take; at most `context`.",
    defaultText: "Required.",
  },
  kiloLock: {
    description:
      'The kilo lock (`readLockFile("stacks/kilo-fleet.lock.json")`, written by `npm run kilo-fleet -- lock`): each platform package\'s sha512 for each pinned version. With install.method package, a pinned `kiloVersion` missing from it fails construction naming that command (`latest` installs unlocked).',
    defaultText:
      "Default: the lock kilo-fleet ships (`stacks/kilo-fleet.lock.json` in its own directory), which locks the default `kiloVersion`.",
  },
  npmRegistry: {
    description: "Registry URL to install kilo from (either method).",
    type: "URL",
    rule: "http(s) registry mirror for the kilo install (both methods); no credentials, query or fragment in it (use `npmToken`); plain http to a non-loopback host is warned about",
    defaultText: "Default: not set (package: https://registry.npmjs.org; npm: npm's configured registry).",
  },
  shells: {
    description: "Shells whose startup files get the env block.",
    defaultText: "Default: not set (those whose rc file exists, plus sh).",
  },
  npmToken: {
    description:
      "The npm registry's auth token (for `npmRegistry`). Pass a secret: it reaches the host only as the install command's stdin, written to a temporary 0600 npmrc for that install and removed after.",
    type: "secret string",
    rule: "the registry's auth token (one line), for `npmRegistry`; set with `pulumi config set --secret npmToken`; never printed",
  },
  caCertificates: {
    description:
      "PEM text of CA certificates the host must trust (a TLS-inspecting proxy, a private pooler or registry): npm's install gets them with `--cafile` (plus node's roots), the package download when the host's own CAs refuse the registry's certificate, kilo through `NODE_EXTRA_CA_CERTS`.",
    type: "PEM text",
    rule: "one or more CA certificates (each checked as X.509; a private key is refused) the hosts trust: the install (npm's `--cafile`; the package download once the host's CAs refuse the registry) and kilo (`NODE_EXTRA_CA_CERTS`); `hosts[i].caCertificates` overrides it per host",
  },
  "ssh.proxy": {
    description:
      "A jump host (bastion) every SSH connection to the host goes through (`{host, user, port?, hostKey}`, hostKey required); it authenticates with `sshJumpPrivateKey`, else `sshPrivateKey`, else the agent.",
  },
  "ssh.proxy.host": { description: "The jump host's name or address." },
  "ssh.proxy.user": { description: "The user on the jump host." },
  "ssh.proxy.port": { description: "The jump host's SSH port." },
  "ssh.proxy.hostKey": { description: "The jump host's public key line, pinned (required)." },
  sshJumpPrivateKey: {
    description: "The jump host's SSH private key, when it is not `sshPrivateKey`.",
    type: "secret string",
    rule: "a private key for `ssh.proxy` (default: `sshPrivateKey`, else the agent); set with `pulumi config set --secret sshJumpPrivateKey < key-file`",
  },
  proxy: {
    description:
      "An egress proxy: the kilo download (curl or wget), npm, the smoke check's pool checks (a CONNECT tunnel) and kilo (the env file's `HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`) go through it.",
    type: "`{https, http?, noProxy?}`",
    rule: "`https` (and `http`, default `https`'s): an `http://host:port` proxy URL without credentials (use `proxyCredentials`); `noProxy`: hosts, `.domains` or IPs reached directly, comma-separated; `hosts[i].proxy` overrides it per host",
  },
  "proxy.https": { description: "The proxy for https URLs, `http://host:port`." },
  "proxy.http": { description: "The proxy for plain http URLs." },
  "proxy.noProxy": { description: "Hosts reached directly, comma-separated (as NO_PROXY)." },
  proxyCredentials: {
    description:
      "The egress proxy's `user:password`. Pass a secret: it reaches the host only as a line of the install's and the env step's stdin, and lands in the 0600 env file (kilo needs it there).",
    type: "secret string",
    rule: "`user:password` (one line) for `proxy`; set with `pulumi config set --secret proxyCredentials`; never printed",
  },
  reconcile: {
    description:
      "Any text. Changing it re-runs every step of this host in place (`update`; nothing is deleted first), e.g. a date after `kilo-fleet doctor` found drift.",
    type: "string",
    rule: "any one line (e.g. a date); changing it re-runs every step of every host in place (nothing deleted first); `hosts[i].reconcile` overrides it per host",
  },
  policy: {
    description:
      "The organisation's policy: kilo.jsonc keys written to kilo's managed config (`/etc/kilo/kilo.jsonc`, macOS `/Library/Application Support/kilo/kilo.jsonc`), root-owned, which win over each user's and project's config (docs/policy.md). `provider` and `enabled_providers` default to the pool.",
    type: "object of kilo.jsonc keys",
    rule: "kilo 7.7.7's top-level keys only (no `$schema`, no `autoupdate`); `permission` an object; `share` manual/auto/disabled; `model`/`small_model` a key of `models` (written `<providerId>/<id>`) or `provider/model`; every `apiKey` under `provider` an `{env:VAR}`; `hosts[i].policy` overrides it key by key (`false`: none on that host); needs root: see `become`",
  },
  become: {
    description:
      'How the policy step gets root: `"sudo"` runs that one step through `sudo -n` (passwordless sudo; a host whose SSH user is root needs none); `"none"` runs it as the user.',
    type: '`"sudo"` or `"none"`',
    rule: "only the policy step uses it (every other step stays unprivileged); `hosts[i].become` overrides it per host; sudo missing or wanting a password fails that step in one line, nothing written",
  },
  policyEnv: {
    description:
      "With a policy, what the user's env file adds, since kilo reads these only from the user's side: telemetry off (`KILO_TELEMETRY_LEVEL=off`) and sharing off (`KILO_DISABLE_SHARE=1`).",
    type: "`{telemetryOff, shareOff}`",
    rule: "booleans; only for hosts with a policy (a pinned kilo gets `KILO_DISABLE_AUTOUPDATE=1` in any case)",
  },
  "policyEnv.telemetryOff": { description: "The env file sets `KILO_TELEMETRY_LEVEL=off`." },
  "policyEnv.shareOff": { description: "The env file sets `KILO_DISABLE_SHARE=1`." },
  hosts: {
    description: "The fleet's hosts.",
    type: "list of `{name, local: true}` or `{name, ssh: {host, user, port?, hostKey?, insecureIgnoreHostKey?, connectTimeoutSeconds?, connectAttempts?, proxy?}}`, plus optional `wave`, `kiloVersion`, `model`, `shells`, `smokeCheck: {level}`, `install: {method}`, `caCertificates`, `proxy`, `reconcile`, `policy`, `become`",
    rule: `non-empty; names unique \`[a-z0-9-]+\`; \`wave\` an integer >= 0 (default 0): no step of a host starts before every host of a lower wave passed its smoke check (its env step where the check is off); ssh needs host and user (neither starting with \`-\`); port 1–65535; hostKey one \`ssh-keyscan\` line, required unless \`insecureIgnoreHostKey: true\` (warned; get keys with \`npm run kilo-fleet -- hostkeys\`); shells from ${Object.keys(
      SHELL_RC_FILES,
    )
      .map((s) => `\`${s}\``)
      .join(", ")}`,
  },
};

type ZodLike = { _zod: { def: { type: string; defaultValue?: unknown } } };

/** A schema's default: its value, `undefined` when optional, `REQUIRED` otherwise. */
function defaultOf(schema: unknown): unknown {
  const def = (schema as ZodLike)._zod.def;
  return def.type === "default" ? def.defaultValue : def.type === "optional" ? undefined : REQUIRED;
}

/** Each top-level stack key's default as the schema declares it. */
export function schemaDefaults(): Record<string, unknown> {
  return Object.fromEntries(Object.keys(settingsSchema.shape).map((k) => [k, settingDefault(k)]));
}

/**
 * A setting's default as the schema declares it (`ssh.*` from a host's SSH connection, whose dial settings
 * default to the fleet's `ssh`; `shells` a host's own).
 */
export function settingDefault(path: string): unknown {
  const [top, sub] = path.split(".");
  if (top === "shells") return defaultOf(hostOverrides.shells);
  if (top === "ssh" && sub !== undefined) {
    const fleet = defaultOf(settingsSchema.shape.ssh) as Record<string, unknown>;
    if (sub in fleet) return fleet[sub];
    return defaultOf(sshConnection.shape[sub as keyof typeof sshConnection.shape]);
  }
  const shape = settingsSchema.shape as Record<string, unknown>;
  if (!(top in shape)) return undefined;
  const value = defaultOf(shape[top]);
  return sub === undefined || value === undefined || value === REQUIRED
    ? value
    : (value as Record<string, unknown>)[sub];
}

/** The default as a sentence: `Default: 22.`, `Required; no default.`, or the table's own words. */
export function defaultSentence(path: string): string {
  const doc = SETTING_DOCS[path];
  if (doc?.defaultText?.match(/^(Default|Required)/)) return doc.defaultText;
  const value = settingDefault(path);
  if (value === REQUIRED) return "Required; no default.";
  if (value === undefined) return "Default: not set.";
  return `Default: ${JSON.stringify(value)}.`;
}

/** KiloHostArgs' doc comment for argument `path`, as its lines at `indent` (wrapped at 120 columns). */
export function argDocComment(path: string, indent: string): string[] {
  const doc = SETTING_DOCS[path];
  if (!doc) throw new Error(`settingsDocs: no entry for the KiloHost argument ${path}`);
  const text = `${doc.description} ${defaultSentence(path)}`;
  if (indent.length + text.length + 7 <= 120) return [`${indent}/** ${text} */`];
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && indent.length + 3 + line.length + 1 + word.length > 120) {
      lines.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  lines.push(line);
  return [`${indent}/**`, ...lines.map((l) => `${indent} * ${l}`), `${indent} */`];
}

/** The KiloHost argument interfaces whose fields' doc comments come from the table, and each one's path prefix. */
export const ARG_INTERFACES: Record<string, string> = {
  SshHost: "ssh.",
  SshJumpHost: "ssh.proxy.",
  EgressProxy: "proxy.",
  SmokeCheck: "smokeCheck.",
  PolicyEnv: "policyEnv.",
  Install: "install.",
  KiloModel: "models.*.",
  KiloModelLimit: "models.*.limit.",
  KiloModelModalities: "models.*.modalities.",
  KiloHostArgs: "",
};

/** `source` (deployer/kiloHostArgs.ts) with every argument's doc comment generated from the table. */
export function renderArgDocs(source: string): string {
  const lines = source.split("\n");
  const out: string[] = [];
  let prefix: string | undefined;
  for (const line of lines) {
    const open = /^export interface (\w+) \{$/.exec(line);
    if (open) prefix = ARG_INTERFACES[open[1]];
    else if (line === "}") prefix = undefined;
    const field = prefix !== undefined ? /^( {2})(\w+)\??: /.exec(line) : null;
    if (field && prefix !== undefined) {
      // Drop the comment above the field, then put the generated one.
      if (out.length > 0 && /^\s*(\/\*\*.*\*\/|\*\/)$/.test(out[out.length - 1])) {
        if (out[out.length - 1].includes("/**")) out.pop();
        else {
          while (out.length > 0 && !out[out.length - 1].includes("/**")) out.pop();
          out.pop();
        }
      }
      out.push(...argDocComment(`${prefix}${field[2]}`, field[1]));
    }
    out.push(line);
  }
  return out.join("\n");
}
