/**
 * `KiloHost`: one developer machine (this one, or one reached over SSH) with the Kilo Code CLI
 * installed, configured for a Codex Pooler, and the Pool API key in the user's shell environment.
 *
 * Usable on its own from any Pulumi program:
 *
 * ```ts
 * import * as pulumi from "@pulumi/pulumi";
 * import { KiloHost } from "kilo-fleet/deployer/kiloHost";
 * const cfg = new pulumi.Config();
 * const laptop = new KiloHost("alice-laptop", {
 *   poolerBaseUrl: "https://pooler.example.com/v1",
 *   apiKey: cfg.requireSecret("codexPoolerApiKey"),
 *   ssh: { host: "alice-laptop.lan", user: "alice", hostKey: "ssh-ed25519 AAAA..." },
 *   sshPrivateKey: cfg.requireSecret("sshPrivateKey"),
 * });
 * export const kiloVersion = laptop.kiloVersion;
 * ```
 *
 * Children, in order, each depending on the one before, all `{ parent: this }`:
 * `<name>-preflight` → `-install` → `-config` → `-env` → `-smoke` (the last one only when the smoke
 * check is enabled). Local hosts get `command:local:Command`s run by `/bin/sh -c`; SSH hosts get
 * `command:remote:Command`s running `remoteCommandLine(script)`.
 *
 * How the inputs are laid out, given `@pulumi/command` 1.2.1 (a change to `triggers` replaces the
 * resource; a change to any other input re-runs `update`, or `create` when there is none; `delete` runs
 * with the old stored inputs; a replacement is create-before-delete unless `deleteBeforeReplace`):
 *
 * - Every step's inputs are its own script text and nothing else that varies, so a setting reaches only
 *   the steps whose script uses it: `kiloVersion` → install; model/provider settings → config; the
 *   API key → env (it is the env command's `stdin` and is in no other input); nothing is random or
 *   time-based, and every object is built in a fixed key order, so evaluating the same config twice
 *   gives identical inputs.
 * - The first four steps have no `triggers`: a change is an in-place `update` that re-runs the
 *   (idempotent) script. All steps still set `deleteBeforeReplace`, so that if a replacement ever does
 *   happen (e.g. a `pulumi up --replace`), the old step's `delete` cannot undo the new step's files.
 * - The smoke check is the one step that must re-run when *other* steps' inputs change. Its `triggers`
 *   are `kilo=<version>`, `config=sha256:<hash of the rendered kilo.jsonc>`, `prompt=sha256:<hash of the
 *   smoke prompt>` and `key=hmac-sha256:<HMAC of a fixed per-stack, per-host label keyed with the API
 *   key>`, the last one wrapped in `pulumi.secret`. A change to any of them replaces (= re-runs) the
 *   smoke check. Why an HMAC, as a secret: the key itself in `triggers` would put a second copy of the
 *   key into the state and make the smoke command an input carrier of it; a plain `sha256(key)` would
 *   be the same in every stack and every tool that hashes keys, so it could be matched against leaked
 *   hashes elsewhere. The HMAC is keyed *by* the API key over a label naming project, stack and host,
 *   so it reveals nothing about the key without the key, differs per host and stack, and is
 *   deterministic (no salt to store). It is additionally a secret, so the state holds it encrypted.
 * - SSH hosts: the connection (host, user, port, hostKey, the `sshPrivateKey` secret; the SDK makes the
 *   whole connection secret) is an input of every remote step, so changing it, e.g. rotating the SSH
 *   key, re-runs every step of the SSH hosts (idempotent: same bytes on the host). Without
 *   `sshPrivateKey` the provider uses the agent at `SSH_AUTH_SOCK`; the socket path is not put into
 *   the inputs, since it changes with every login and would re-run everything.
 * - The API key travels only as the env command's `stdin` (never in a command line, an environment
 *   variable, or a trigger). The env and smoke commands, the only ones that handle it, log nothing
 *   (`logging: "none"`) and keep `stdout`/`stderr` secret. No command gets `addPreviousOutputInEnv`
 *   (remote hosts refuse unknown environment variables, and old output has no business in the env).
 */
import { createHash, createHmac } from "node:crypto";
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { ENV_FILE, KILO_CONFIG_FILE } from "../common/hostPaths";
import type { HostScript } from "./hostScripts";
import * as hostScripts from "./hostScripts";
import { parseSmokeOutput, SMOKE_PROMPT } from "./hostScripts/smoke";
import { renderKiloConfig } from "./kiloConfig";
import {
  CONFIG_NAMESPACE,
  type ModelSettings,
  parseSettings,
  type ResolvedHost,
  resolveHost,
  type Settings,
  type SettingsError,
  type ShellName,
} from "./settings";

export const KILO_HOST_TYPE = "kilo-fleet:index:KiloHost";

/** The steps of a host, in order; each is a child named `<host>-<step>`. */
export const HOST_STEPS = ["preflight", "install", "config", "env", "smoke"] as const;
export type HostStep = (typeof HOST_STEPS)[number];

/** How to reach an SSH host. */
export interface KiloHostSshArgs {
  /** Host name or address to connect to. Required. */
  host: string;
  /** The remote user whose HOME gets kilo. Required. */
  user: string;
  /** SSH port. Default: 22. */
  port?: number;
  /**
   * The server's public host key, one `ssh-ed25519 AAAA...` line (from `ssh-keyscan`). Pins the
   * server's identity. Default: not pinned (any host key is accepted, and a warning is logged).
   */
  hostKey?: string;
}

/** The smoke check's settings. */
export interface KiloHostSmokeCheckArgs {
  /** Run the post-deploy smoke check (a real `kilo run` against the pooler). Default: true. */
  enabled?: boolean;
  /** How long the smoke check may take, in seconds (10-3600). Default: 180. */
  timeoutSeconds?: number;
}

/**
 * The arguments of a `KiloHost`. Only `poolerBaseUrl` and `apiKey` are required. Defaults are those
 * of the `kilo-fleet:` stack settings (deployer/settings.ts, `settingsSchema`) and are applied there
 * and nowhere else: a `KiloHost` is validated by the same schema as a stack's config, with the same
 * messages.
 *
 * Settings are plain values (not `pulumi.Input`s) because they are rendered into the host scripts when
 * the component is constructed; only the secrets are `Input`s.
 */
export interface KiloHostArgs {
  /**
   * The pooler's OpenAI-compatible `/v1` *base* URL, e.g. `https://pooler.example.com/v1` (kilo appends
   * `/chat/completions` itself). Required; no default.
   */
  poolerBaseUrl: string;
  /**
   * The Pool API key. Required; no default. Pass a secret (`config.requireSecret(...)`): it reaches the
   * host only as the env command's stdin and is written to the 0600 env file, never to kilo.jsonc.
   */
  apiKey: pulumi.Input<string>;
  /** Reach the host over SSH. Default: not set, meaning the machine running Pulumi (a local host). */
  ssh?: KiloHostSshArgs;
  /**
   * The SSH private key (PEM/OpenSSH text) for `ssh`. Pass a secret. Default: not set, meaning the SSH
   * agent at `SSH_AUTH_SOCK` of the process running Pulumi; with neither, construction fails.
   */
  sshPrivateKey?: pulumi.Input<string>;
  /** The kilo provider id (`provider.<id>` in kilo.jsonc, `<id>/<model>` on the command line). Default: "codex-pooler". */
  providerId?: string;
  /** The environment variable holding the key; kilo.jsonc says `{env:<name>}`. Default: "CODEX_POOLER_API_KEY". */
  apiKeyEnvVar?: string;
  /** The exact `@kilocode/cli` version to install, or "latest" (unpinned: warned about). Default: "7.7.7". */
  kiloVersion?: string;
  /** The default model id; must be a key of `models`. Default: "gpt-5.5". */
  model?: string;
  /** The models the pool serves, as kilo model entries. Default: the Codex Pooler docs' `gpt-5.5` entry. */
  models?: Record<string, ModelSettings>;
  /** `compaction.threshold_percent` (1-100), or null to leave compaction out. Default: 75. */
  compactionThresholdPercent?: number | null;
  /** kilo's `permission` object, e.g. `{ bash: "allow" }`. Default: not set (kilo's own defaults). */
  permission?: Record<string, unknown>;
  /** Extra kilo.jsonc keys (not the ones kilo-fleet manages), e.g. `{ share: "disabled" }`. Default: {}. */
  kiloSettings?: Record<string, unknown>;
  /** The post-deploy smoke check. Default: `{ enabled: true, timeoutSeconds: 180 }`. */
  smokeCheck?: KiloHostSmokeCheckArgs;
  /** npm registry URL to install kilo from. Default: not set (npm's configured registry). */
  npmRegistry?: string;
  /** Shells whose startup files get the env block. Default: not set (those whose rc file exists, plus sh). */
  shells?: ShellName[];
  /**
   * Log setting warnings (unpinned host key, "latest") with `pulumi.log.warn` on this resource.
   * Default: true. `deployFleet` passes false because it reports them once, against the stack's keys.
   */
  logWarnings?: boolean;
}

/** What a passing smoke check reported. */
export interface SmokeResult {
  /** Always true: a failing smoke check fails the deploy instead. */
  pass: boolean;
  /** The kilo version the check ran. */
  kiloVersion: string;
  /** How long the check took, in seconds. */
  seconds: number;
}

/** The config step's stdout: `kilo-fleet: <kilo.jsonc path> created|updated|already up to date (...)`. */
const CONFIG_LINE = /^kilo-fleet: (.+) (?:created|updated|already up to date) \(kilo-fleet manages: /;
/** The env step's stdout: `kilo-fleet: <VAR> written to <env file> (mode 0600); ...`. */
const ENV_LINE = /^kilo-fleet: \S+ written to (.+) \(mode 0600\)/;

/** The installed version from the install step's stdout (its last `kilo-fleet: kilo <v> installed at <path>`). */
export function parseInstalledVersion(stdout: string): string | undefined {
  return hostScripts.parseInstallOutput(stdout)?.version;
}

/** The last line of `stdout` matching `re`, its first group. */
function lastMatch(stdout: string, re: RegExp): string | undefined {
  const lines = stdout.split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = re.exec(lines[i].trim());
    if (m) return m[1];
  }
  return undefined;
}

/** The kilo.jsonc path the config step reports (resolved on the host). */
export function parseConfigPath(stdout: string): string | undefined {
  return lastMatch(stdout, CONFIG_LINE);
}

/** The env file path the env step reports (only the path: the rest of its stdout is kept secret). */
export function parseEnvFilePath(stdout: string): string | undefined {
  return lastMatch(stdout, ENV_LINE);
}

/** The smoke result from the smoke step's stdout (its last line); only the parsed fields, never other text. */
export function parseSmokeResult(stdout: string): SmokeResult | undefined {
  const r = parseSmokeOutput(stdout);
  return r ? { pass: r.passed, kiloVersion: r.kiloVersion, seconds: r.seconds } : undefined;
}

/** A host path expression (`${XDG_CONFIG_HOME:-$HOME/.config}/...`) as a person reads it (`~/.config/...`). */
export function displayPath(shPath: string): string {
  return shPath.replace("${XDG_CONFIG_HOME:-$HOME/.config}", "~/.config").replace("$HOME", "~");
}

export const sha256Hex = (text: string): string => createHash("sha256").update(text, "utf8").digest("hex");

/**
 * The smoke trigger's stand-in for the key: HMAC-SHA256 keyed with the API key over a label naming
 * project, stack and host (see the module comment for why).
 */
export function keyFingerprint(apiKey: string, label: string): string {
  return `key=hmac-sha256:${createHmac("sha256", apiKey).update(`kilo-fleet smoke trigger v1\n${label}`, "utf8").digest("hex")}`;
}

/** Thrown (as a clean `pulumi.RunError`) when the arguments are invalid. */
function argsError(name: string, errors: readonly SettingsError[]): pulumi.RunError {
  const lines = errors.map((e) => `  ${libraryKey(e.key)}: ${e.message}`);
  return new pulumi.RunError(`KiloHost "${name}": invalid arguments:\n${lines.join("\n")}`);
}

/** `kilo-fleet:hosts[0].ssh.port` → `ssh.port`; `kilo-fleet:hosts[0].name` → `name` (the resource name); `kilo-fleet:model` → `model`. */
function libraryKey(key: string): string {
  return key.replace(`${CONFIG_NAMESPACE}:`, "").replace(/^hosts\[0\]\.?/, "") || "host";
}

/**
 * Validates `args` and applies the defaults (the settings schema's, the one place defaults live):
 * returns the settings the host scripts are rendered from (with no secrets in them: the key and the SSH
 * key stay `Input`s) and this host, resolved.
 */
export function resolveKiloHostArgs(
  name: string,
  args: KiloHostArgs,
): { settings: Settings; host: ResolvedHost; warnings: string[] } {
  const raw: Record<string, unknown> = {};
  const put = (key: string, value: unknown) => {
    if (value !== undefined) raw[`${CONFIG_NAMESPACE}:${key}`] = value;
  };
  put("poolerBaseUrl", args.poolerBaseUrl);
  put("providerId", args.providerId);
  put("apiKeyEnvVar", args.apiKeyEnvVar);
  put("kiloVersion", args.kiloVersion);
  put("model", args.model);
  put("models", args.models);
  put("compactionThresholdPercent", args.compactionThresholdPercent);
  put("permission", args.permission);
  put("kiloSettings", args.kiloSettings);
  put("smokeCheck", args.smokeCheck);
  put("npmRegistry", args.npmRegistry);
  const hostEntry: Record<string, unknown> = { name };
  if (args.ssh !== undefined) hostEntry.ssh = args.ssh;
  else hostEntry.local = true;
  if (args.shells !== undefined) hostEntry.shells = args.shells;
  put("hosts", [hostEntry]);

  const parsed = parseSettings(raw);
  if (!parsed.ok) throw argsError(name, parsed.errors);
  const settings = parsed.settings;
  const warnings = parsed.warnings.map((w) => `KiloHost "${name}": ${libraryKey(w)}`);
  return { settings, host: resolveHost(settings, settings.hosts[0]), warnings };
}

/** Resource options and extra inputs of one step. */
interface StepOptions {
  /** The env step's key. */
  stdin?: pulumi.Input<string>;
  /** The smoke step's re-run triggers. */
  triggers?: pulumi.Input<unknown>[];
  /** The step handles the key (or may print it): no logging, secret stdout/stderr. */
  sensitive: boolean;
}

export class KiloHost extends pulumi.ComponentResource {
  /** The settings this host's scripts were rendered from (no secrets in them). */
  readonly settings: Settings;
  /** This host, resolved (kind, ssh connection, version, model, shells). */
  readonly host: ResolvedHost;
  /** The steps, in order. `smoke` is undefined when the smoke check is disabled. */
  readonly steps: {
    preflight: command.local.Command | command.remote.Command;
    install: command.local.Command | command.remote.Command;
    config: command.local.Command | command.remote.Command;
    env: command.local.Command | command.remote.Command;
    smoke?: command.local.Command | command.remote.Command;
  };
  /** The kilo version the install step reports having installed. */
  readonly kiloVersion: pulumi.Output<string>;
  /** Where kilo.jsonc is on the host (`~` is the host user's HOME). */
  readonly configPath: pulumi.Output<string>;
  /** Where the 0600 env file with the key is on the host. */
  readonly envFilePath: pulumi.Output<string>;
  /** The smoke check's result; undefined when the smoke check is disabled. Not secret. */
  readonly smoke: pulumi.Output<SmokeResult | undefined>;

  constructor(name: string, args: KiloHostArgs, opts?: pulumi.ComponentResourceOptions) {
    // Validate before registering anything: invalid arguments leave no half-made host behind.
    const { settings, host, warnings } = resolveKiloHostArgs(name, args);
    super(KILO_HOST_TYPE, name, {}, opts);
    this.settings = settings;
    this.host = host;
    if (args.logWarnings ?? true) for (const w of warnings) void pulumi.log.warn(w, this);

    const connection = host.kind === "ssh" ? sshConnection(name, host, args.sshPrivateKey) : undefined;
    const step = (
      role: HostStep,
      script: HostScript,
      options: StepOptions,
      dependsOn: pulumi.Resource | undefined,
    ): command.local.Command | command.remote.Command => {
      const resourceOptions: pulumi.CustomResourceOptions = {
        parent: this,
        ...(dependsOn ? { dependsOn: [dependsOn] } : {}),
        deleteBeforeReplace: true,
        ...(options.sensitive ? { additionalSecretOutputs: ["stdout", "stderr"] } : {}),
      };
      const wrap = connection ? (s: string) => hostScripts.remoteCommandLine(s) : (s: string) => s;
      const inputs = {
        create: wrap(script.create),
        ...(script.update !== undefined ? { update: wrap(script.update) } : {}),
        ...(script.delete !== undefined ? { delete: wrap(script.delete) } : {}),
        ...(options.stdin !== undefined ? { stdin: options.stdin } : {}),
        ...(options.triggers !== undefined ? { triggers: options.triggers } : {}),
        ...(options.sensitive ? { logging: "none" as const } : {}),
        addPreviousOutputInEnv: false,
      };
      const childName = `${name}-${role}`;
      return connection
        ? new command.remote.Command(childName, { connection, ...inputs }, resourceOptions)
        : new command.local.Command(childName, { interpreter: ["/bin/sh", "-c"], ...inputs }, resourceOptions);
    };

    // Render every script before creating any child: a builder error leaves no half-registered host.
    const scripts = {
      preflight: hostScripts.preflightScript(settings, host),
      install: hostScripts.installScript(settings, host),
      config: hostScripts.configScript(settings, host),
      env: hostScripts.envScript(settings, host),
    };
    const smokeScript = settings.smokeCheck.enabled ? hostScripts.smokeScript(settings, host) : undefined;

    const preflight = step("preflight", scripts.preflight, { sensitive: false }, undefined);
    const install = step("install", scripts.install, { sensitive: false }, preflight);
    const config = step("config", scripts.config, { sensitive: false }, install);
    const env = step("env", scripts.env, { sensitive: true, stdin: pulumi.secret(args.apiKey) }, config);
    let smoke: command.local.Command | command.remote.Command | undefined;
    if (smokeScript) {
      const label = `${pulumi.getProject()}/${pulumi.getStack()}/${name}`;
      const triggers: pulumi.Input<unknown>[] = [
        `kilo=${host.kiloVersion}`,
        `config=sha256:${sha256Hex(JSON.stringify(renderKiloConfig(settings, host)))}`,
        `prompt=sha256:${sha256Hex(SMOKE_PROMPT)}`,
        pulumi.secret(pulumi.output(args.apiKey).apply((key) => keyFingerprint(key, label))),
      ];
      smoke = step("smoke", smokeScript, { sensitive: true, triggers }, env);
    }
    this.steps = { preflight, install, config, env, smoke };

    this.kiloVersion = install.stdout.apply((stdout) => {
      const v = parseInstalledVersion(stdout ?? "");
      if (v === undefined) {
        throw new Error(
          `KiloHost "${name}": the install step printed no "kilo-fleet: kilo <version> installed at <path>" line`,
        );
      }
      return v;
    });
    // As the host reports them; the generic form if a step's output ever changes shape.
    this.configPath = config.stdout.apply((stdout) => parseConfigPath(stdout ?? "") ?? displayPath(KILO_CONFIG_FILE));
    // The env stdout is secret (the step handles the key); only the path leaves it.
    this.envFilePath = pulumi.unsecret(
      env.stdout.apply((stdout) => parseEnvFilePath(stdout ?? "") ?? displayPath(ENV_FILE)),
    );
    // The smoke stdout is secret (it could echo the key); only the parsed fields leave it.
    this.smoke = smoke
      ? pulumi.unsecret(smoke.stdout.apply((stdout) => parseSmokeResult(stdout ?? "")))
      : pulumi.output(undefined);

    this.registerOutputs({
      kiloVersion: this.kiloVersion,
      configPath: this.configPath,
      envFilePath: this.envFilePath,
      smoke: this.smoke,
    });
  }
}

/** The SSH connection of a host: the host entry, plus the private key (secret) or the agent. */
function sshConnection(
  name: string,
  host: ResolvedHost,
  privateKey: pulumi.Input<string> | undefined,
): command.types.input.remote.ConnectionArgs {
  const ssh = host.ssh;
  if (!ssh) throw new Error(`KiloHost "${name}": an ssh host without an ssh entry`);
  if (privateKey === undefined && !process.env.SSH_AUTH_SOCK) {
    throw new pulumi.RunError(
      `KiloHost "${name}": cannot reach ${ssh.user}@${ssh.host}: no sshPrivateKey was given and no SSH agent is running (SSH_AUTH_SOCK is not set)`,
    );
  }
  return {
    host: ssh.host,
    port: ssh.port,
    user: ssh.user,
    ...(ssh.hostKey !== undefined ? { hostKey: ssh.hostKey } : {}),
    ...(privateKey !== undefined ? { privateKey: pulumi.secret(privateKey) } : {}),
  };
}
