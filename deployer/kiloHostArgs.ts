/**
 * KiloHost's arguments, in the shapes Pulumi's component schema inference accepts (named interfaces, string
 * enums, `Input`s, no unions but `T | undefined`): the TypeScript API and the plugin's schema alike. The field
 * comments are generated from the settings table (deployer/settingsDocs.ts) by `npm run docs`.
 */
import type * as pulumi from "@pulumi/pulumi";
import type { KiloLock } from "./kiloLock";

/** Any JSON value: the component schema's `Any` (its inference takes no `unknown`); the settings schema checks it. */
// biome-ignore lint/suspicious/noExplicitAny: the one place `any` stands for a free-form JSON value
export type JsonValue = any;

/** How much the smoke check does. */
export const SmokeCheckLevel = {
  /** The pool checks (no tokens), then the seed's tool-using `kilo run` against the pool. */
  KiloRun: "kilo-run",
  /** The pool checks only: `/readyz` and `/v1/models` with the key. */
  Pool: "pool",
} as const;
/** How much the smoke check does: `"kilo-run"` or `"pool"`. */
export type SmokeCheckLevel = (typeof SmokeCheckLevel)[keyof typeof SmokeCheckLevel];

/** How kilo gets onto the host. */
export const InstallMethod = {
  /** kilo's platform package, downloaded by sh and checked against the lock: no node on the host. */
  Package: "package",
  /** `npm install -g --prefix ~/.local`: node >= 18 and npm on the host. */
  Npm: "npm",
} as const;
/** How kilo gets onto the host: `"package"` or `"npm"`. */
export type InstallMethod = (typeof InstallMethod)[keyof typeof InstallMethod];

/** How the policy step gets root. */
export const Become = {
  /** `sudo -n` (passwordless sudo) runs the policy step. */
  Sudo: "sudo",
  /** The policy step runs as the user, who must be root. */
  None: "none",
} as const;
/** How the policy step gets root: `"sudo"` or `"none"`. */
export type Become = (typeof Become)[keyof typeof Become];

/** What the env file adds with a policy. */
export interface PolicyEnv {
  /** The env file sets `KILO_TELEMETRY_LEVEL=off`. Default: true. */
  telemetryOff?: boolean;
  /** The env file sets `KILO_DISABLE_SHARE=1`. Default: true. */
  shareOff?: boolean;
}

/** How kilo gets onto the host. */
export interface Install {
  /**
   * `package`: kilo's platform package, downloaded by sh and checked against `kiloLock` (no node on the host); `npm`:
   * `npm install -g` (node >= 18 and npm on the host). Default: "package".
   */
  method?: InstallMethod;
}

/** A model's token limits, as kilo reads them. */
export interface KiloModelLimit {
  /** The whole window: input plus output (at most the pool's `context_length`). Required. */
  context: number;
  /** Input tokens before kilo compacts (less its reserve); at most `context`. Default: not set. */
  input?: number;
  /** Output tokens a reply may take; at most `context`. Required. */
  output: number;
}

/**
 * What a model takes in and gives out: each of "text", "audio", "image", "video", "pdf". (Strings: the
 * component schema has no enum inside a list.)
 */
export interface KiloModelModalities {
  /** What the model takes in. Default: not set. */
  input?: string[];
  /** What the model gives out. Default: not set. */
  output?: string[];
}

/** A model the pool serves, as a kilo model entry. */
export interface KiloModel {
  /** The name kilo shows for the model. Default: not set. */
  name?: string;
  /** The model calls tools (kilo's agent needs it). Default: not set. */
  tool_call?: boolean;
  /** The model reasons before it answers. Default: not set. */
  reasoning?: boolean;
  /** The model takes a temperature. Default: not set. */
  temperature?: boolean;
  /** The model takes attachments (files, images). Default: not set. */
  attachment?: boolean;
  /** What the model takes in and gives out. Default: not set. */
  modalities?: KiloModelModalities;
  /** The model's token limits: kilo compacts a session before its input reaches them. Required. */
  limit: KiloModelLimit;
}

/** How to reach an SSH host. Each field may be an Output of another resource (e.g. an instance's `publicIp`). */
export interface SshHost {
  /** Host name or address to connect to; may not start with `-`. Required; no default. */
  host: pulumi.Input<string>;
  /** The remote user whose HOME gets kilo; may not start with `-`. Required; no default. */
  user: pulumi.Input<string>;
  /** SSH port. Default: 22. */
  port?: pulumi.Input<number>;
  /**
   * The server's public host key, one `ssh-ed25519 AAAA...` line (from `ssh-keyscan`, or `npm run kilo-fleet --
   * hostkeys`). Pins the server's identity: the provider refuses any other key before a command runs. Required unless
   * `insecureIgnoreHostKey` is true; no default.
   */
  hostKey?: pulumi.Input<string>;
  /**
   * Accept whatever host key the server offers (anyone who can answer for `host` then receives the API key); a warning
   * is logged. Only allowed without `hostKey`. Default: false (a `hostKey` is required).
   */
  insecureIgnoreHostKey?: boolean;
  /** Seconds one SSH dial may take before it counts as failed (1-600). Default: 10. */
  connectTimeoutSeconds?: number;
  /** Dials before the host's step fails, e.g. for an offline laptop (1-20). Default: 3. */
  connectAttempts?: number;
  /**
   * A jump host (bastion) every SSH connection to the host goes through (`{host, user, port?, hostKey}`, hostKey
   * required); it authenticates with `sshJumpPrivateKey`, else `sshPrivateKey`, else the agent. Default: not set.
   */
  proxy?: SshJumpHost;
}

/** A jump host (bastion), pinned like the host itself. */
export interface SshJumpHost {
  /** The jump host's name or address. Default: not set. */
  host: string;
  /** The user on the jump host. Default: not set. */
  user: string;
  /** The jump host's SSH port. Default: not set. */
  port?: number;
  /** The jump host's public key line, pinned (required). Default: not set. */
  hostKey: string;
}

/** An egress proxy. */
export interface EgressProxy {
  /** The proxy for https URLs, `http://host:port`. Default: not set. */
  https: string;
  /** The proxy for plain http URLs. Default: not set. */
  http?: string;
  /** Hosts reached directly, comma-separated (as NO_PROXY). Default: not set. */
  noProxy?: string;
}

/** The smoke check's settings. */
export interface SmokeCheck {
  /** Run the post-deploy smoke check (its `level` says how much it does). Default: true. */
  enabled?: boolean;
  /** How long the smoke check may take, in seconds (10-3600). Default: 180. */
  timeoutSeconds?: number;
  /**
   * `kilo-run`: the pool checks (key, URL, models; no tokens), then the seed's tool-using `kilo run` (~30 KB to the
   * pool). `pool`: the pool checks only — for all but a few canary hosts of a large fleet. Default: "kilo-run".
   */
  level?: SmokeCheckLevel;
}

/**
 * The arguments of a `KiloHost`. Only `poolerBaseUrl` and `apiKey` are required. They are validated by the
 * same field schemas as a stack's `kilo-fleet:` settings (deployer/settings.ts), which hold every default:
 * the same rules, the same messages, keyed by the argument (`ssh.port: must be 1-65535`).
 *
 * Settings are plain values because they are rendered into the steps' commands when the component is
 * constructed; the secrets and the SSH connection may be `Input`s.
 */
export interface KiloHostArgs {
  /**
   * The pooler's OpenAI-compatible `/v1` *base* URL, e.g. `https://pooler.example.com/v1` (kilo appends
   * `/chat/completions` itself). Required; no default.
   */
  poolerBaseUrl: string;
  /**
   * The Pool API key. Pass a secret (`config.requireSecret(...)`): it reaches the host only as the env command's stdin
   * and is written to the 0600 env file, never to kilo.jsonc. Required; no default.
   */
  apiKey: pulumi.Input<string>;
  /** Reach the host over SSH. Default: not set, meaning the machine running Pulumi (a local host). */
  ssh?: SshHost;
  /**
   * The SSH private key (PEM/OpenSSH text) for `ssh`. Pass a secret. Default: not set, meaning the SSH agent at
   * `SSH_AUTH_SOCK` of the process running Pulumi; with neither, construction fails.
   */
  sshPrivateKey?: pulumi.Input<string>;
  /**
   * The kilo provider id (`provider.<id>` in kilo.jsonc, `<id>/<model>` on the command line). Default: "codex-pooler".
   */
  providerId?: string;
  /**
   * The environment variable holding the key; kilo.jsonc says `{env:<name>}`. Names that change how shells, loaders or
   * runtimes behave (`PATH`, `LD_*`, `NODE_*`, …) and kilo's own (`KILO_*`, `XDG_*`) are refused. Default:
   * "CODEX_POOLER_API_KEY".
   */
  apiKeyEnvVar?: string;
  /** The exact `@kilocode/cli` version to install, or "latest" (unpinned: warned about). Default: "7.7.7". */
  kiloVersion?: string;
  /** The default model id; must be a key of `models`. Default: "gpt-5.5". */
  model?: string;
  /** The models the pool serves, as kilo model entries. Default: the Codex Pooler docs' `gpt-5.5` entry. */
  models?: Record<string, KiloModel>;
  /** `compaction.threshold_percent` (1-100), or 0 (or null) to leave compaction out. Default: 75. */
  compactionThresholdPercent?: number;
  /** kilo's `permission` object, e.g. `{ bash: "allow" }`. Default: not set (kilo's own defaults). */
  permission?: Record<string, JsonValue>;
  /** Extra kilo.jsonc keys (not the ones kilo-fleet manages), e.g. `{ share: "disabled" }`. Default: {}. */
  kiloSettings?: Record<string, JsonValue>;
  /** The post-deploy smoke check. Default: {"enabled":true,"timeoutSeconds":180,"level":"kilo-run"}. */
  smokeCheck?: SmokeCheck;
  /**
   * How kilo gets onto the host: `{ method: "package" }` downloads kilo's platform package with curl or wget and checks
   * its sha512 against `kiloLock` (plain sh: no node needed on the host); `{ method: "npm" }` runs `npm install -g
   * --prefix ~/.local` (node >= 18 and npm on the host). Default: {"method":"package"}.
   */
  install?: Install;
  /**
   * The kilo lock (`readLockFile("stacks/kilo-fleet.lock.json")`, written by `npm run kilo-fleet -- lock`): each
   * platform package's sha512 for each pinned version. With install.method package, a pinned `kiloVersion` missing from
   * it fails construction naming that command (`latest` installs unlocked). Default: the lock kilo-fleet ships
   * (`stacks/kilo-fleet.lock.json` in its own directory), which locks the default `kiloVersion`.
   */
  kiloLock?: KiloLock;
  /**
   * Registry URL to install kilo from (either method). Default: not set (package: https://registry.npmjs.org; npm:
   * npm's configured registry).
   */
  npmRegistry?: string;
  /** Shells whose startup files get the env block. Default: not set (those whose rc file exists, plus sh). */
  shells?: string[];
  /**
   * The npm registry's auth token (for `npmRegistry`). Pass a secret: it reaches the host only as the install command's
   * stdin, written to a temporary 0600 npmrc for that install and removed after. Default: not set.
   */
  npmToken?: pulumi.Input<string>;
  /**
   * PEM text of CA certificates the host must trust (a TLS-inspecting proxy, a private pooler or registry): npm's
   * install gets them with `--cafile` (plus node's roots), the package download when the host's own CAs refuse the
   * registry's certificate, kilo through `NODE_EXTRA_CA_CERTS`. Default: not set.
   */
  caCertificates?: string;
  /**
   * Any text. Changing it re-runs every step of this host in place (`update`; nothing is deleted first), e.g. a date
   * after `kilo-fleet doctor` found drift. Default: not set.
   */
  reconcile?: string;
  /**
   * The organisation's policy: kilo.jsonc keys written to kilo's managed config (`/etc/kilo/kilo.jsonc`, macOS
   * `/Library/Application Support/kilo/kilo.jsonc`), root-owned, which win over each user's and project's config
   * (docs/policy.md). `provider` and `enabled_providers` default to the pool. Default: not set.
   */
  policy?: Record<string, JsonValue>;
  /**
   * How the policy step gets root: `"sudo"` runs that one step through `sudo -n` (passwordless sudo; a host whose SSH
   * user is root needs none); `"none"` runs it as the user. Default: "none".
   */
  become?: Become;
  /**
   * With a policy, what the user's env file adds, since kilo reads these only from the user's side: telemetry off
   * (`KILO_TELEMETRY_LEVEL=off`) and sharing off (`KILO_DISABLE_SHARE=1`). Default:
   * {"telemetryOff":true,"shareOff":true}.
   */
  policyEnv?: PolicyEnv;
  /**
   * An egress proxy: the kilo download (curl or wget), npm, the smoke check's pool checks (a CONNECT tunnel) and kilo
   * (the env file's `HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`) go through it. Default: not set.
   */
  proxy?: EgressProxy;
  /**
   * The egress proxy's `user:password`. Pass a secret: it reaches the host only as a line of the install's and the env
   * step's stdin, and lands in the 0600 env file (kilo needs it there). Default: not set.
   */
  proxyCredentials?: pulumi.Input<string>;
  /** The jump host's SSH private key, when it is not `sshPrivateKey`. Default: not set. */
  sshJumpPrivateKey?: pulumi.Input<string>;
}
