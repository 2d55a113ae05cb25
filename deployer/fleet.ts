/**
 * The whole stack: read the `kilo-fleet:` config, validate all of it, then one `KiloHost` per host.
 * `index.ts` is only `deployFleet(...readStackConfig())`; tests call these functions directly.
 */
import * as pulumi from "@pulumi/pulumi";
import { API_KEYS_KEY, apiKeyErrors, apiKeyHostNames, keyForHost, perHostApiKeys, setApiKeyCommand } from "./apiKeys";
import { hostSpec } from "./hostSpec";
import type { KiloConfig } from "./kiloConfig";
import { KiloHost, type SmokeOutput } from "./kiloHost";
import { type KiloLock, LockError, lockProblems, pinnedVersions, readLockFile, shippedLockPath } from "./kiloLock";
import { CONFIG_NAMESPACE, formatKeyPath, parseSettings, type Settings, type SettingsError } from "./settings";

/** The config keys that hold secrets; they are read with `Config.getSecret`, never as plain config. */
export const SECRET_KEYS = ["codexPoolerApiKey", "sshPrivateKey", "npmToken"] as const;
export type SecretKey = (typeof SECRET_KEYS)[number];

/**
 * The secret settings, as secret Outputs (or any Input). `apiKeys`: each host's own Pool API key by host
 * name (`kilo-fleet:apiKeys`, one secret Output per host), used instead of the fleet key for that host.
 */
export type FleetSecrets = Partial<Record<SecretKey, pulumi.Input<string>>> & {
  apiKeys?: Readonly<Record<string, pulumi.Input<string>>>;
};

/** What the stack exports per host: no secrets. */
export interface HostExports {
  /** "local" or "ssh". */
  kind: "local" | "ssh";
  /** The kilo version the install step reported. */
  kiloVersion: pulumi.Output<string>;
  /** kilo.jsonc on the host. */
  configPath: pulumi.Output<string>;
  /** The env file holding the key on the host (the path, not the key). */
  envFilePath: pulumi.Output<string>;
  /** The smoke check's result, or `{ enabled: false }` when it is disabled. */
  smoke: pulumi.Output<({ enabled: true } & SmokeOutput) | { enabled: true; pass: false } | { enabled: false }>;
  /** The managed kilo.jsonc keys, as plain JSON: a model or base URL change reads as that key's change. */
  kiloConfig: KiloConfig;
}

export interface Fleet {
  /** The validated settings, with the secrets left out. */
  settings: Settings;
  /** One KiloHost per host, by host name, in config order. */
  hosts: Record<string, KiloHost>;
  /** Per-host stack exports, by host name. */
  outputs: Record<string, HostExports>;
}

export type FleetCheck =
  | { ok: true; settings: Settings; warnings: string[]; lock: KiloLock | undefined }
  | { ok: false; errors: SettingsError[]; warnings: string[] };

/**
 * The lock file `pulumi up` checks pinned versions against: `KILO_FLEET_LOCK_FILE` when set, otherwise
 * `stacks/kilo-fleet.lock.json` beside the program (the file `npm run kilo-fleet -- lock` writes).
 */
export function fleetLockPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.KILO_FLEET_LOCK_FILE || shippedLockPath();
}

/** The lock at `lockPath` and the errors of the pinned versions it lacks (as validate reports them). */
function checkLock(settings: Settings, lockPath: string): { lock?: KiloLock; errors: SettingsError[] } {
  let lock: KiloLock | undefined;
  try {
    lock = readLockFile(lockPath);
  } catch (e) {
    if (!(e instanceof LockError)) throw e;
    return { errors: [{ key: "kilo-fleet lock file", message: e.message }] };
  }
  return { lock, errors: lockProblems(lock, pinnedVersions(settings), lockPath) };
}

/**
 * Validates the stack config, everything at once: the settings schema, plus what only the program can
 * know — the API key is present, and every SSH host has a way to authenticate (the `sshPrivateKey`
 * secret, or an SSH agent in `env.SSH_AUTH_SOCK`), and every pinned kilo version is in the lock file at
 * `lockPath` (as `validate` checks; `latest` is unlocked, and each such host warns). Secrets in `rawConfig`
 * are ignored: `secrets` is what counts, so no plaintext secret ever enters `Settings`.
 */
export function checkFleetConfig(
  rawConfig: Record<string, unknown>,
  secrets: FleetSecrets,
  env: NodeJS.ProcessEnv = process.env,
  lockPath: string = fleetLockPath(env),
): FleetCheck {
  const raw: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rawConfig)) {
    const secret = [...SECRET_KEYS, API_KEYS_KEY].some((s) => k === `${CONFIG_NAMESPACE}:${s}`);
    if (!secret) raw[k] = v;
  }
  const parsed = parseSettings(raw);
  const errors: SettingsError[] = parsed.ok ? [] : [...parsed.errors];
  // Per-host keys: entries naming no host, and hosts left with no key (neither their own nor the fleet's).
  const rawHosts = parseHostsForCheck(raw);
  const names = (Array.isArray(rawHosts) ? rawHosts : [{ name: "local" }]).flatMap((h: unknown) =>
    h !== null && typeof h === "object" && typeof (h as { name?: unknown }).name === "string"
      ? [(h as { name: string }).name]
      : [],
  );
  const perHost = Object.keys(secrets.apiKeys ?? {});
  const keys = apiKeyErrors(names, secrets.apiKeys ?? {}, secrets.codexPoolerApiKey !== undefined);
  errors.push(...keys.entries);
  if (perHost.length === 0 && secrets.codexPoolerApiKey === undefined) {
    errors.push({
      key: formatKeyPath(["codexPoolerApiKey"]),
      message: `is required (the Pool API key): pulumi config set --secret codexPoolerApiKey <key>, or one key per host: ${setApiKeyCommand("<host>")}`,
    });
  } else errors.push(...keys.missing);
  if (secrets.sshPrivateKey === undefined && !env.SSH_AUTH_SOCK) {
    const rawHosts = parseHostsForCheck(raw);
    (Array.isArray(rawHosts) ? rawHosts : []).forEach((h, i) => {
      if (h !== null && typeof h === "object" && "ssh" in h && (h as { ssh?: unknown }).ssh !== undefined) {
        errors.push({
          key: formatKeyPath(["hosts", i, "ssh"]),
          message:
            "no way to authenticate: set the sshPrivateKey secret (pulumi config set --secret sshPrivateKey < key-file) or run Pulumi with an SSH agent (SSH_AUTH_SOCK)",
        });
      }
    });
  }
  const locked = parsed.ok ? checkLock(parsed.settings, lockPath) : { errors: [] };
  errors.push(...locked.errors);
  if (!parsed.ok || errors.length > 0) return { ok: false, errors, warnings: parsed.warnings };
  return { ok: true, settings: parsed.settings, warnings: parsed.warnings, lock: locked.lock };
}

/** The raw `hosts` value (JSON text from the runtime, or structured), for the SSH-auth check. */
function parseHostsForCheck(raw: Record<string, unknown>): unknown {
  const v = raw[`${CONFIG_NAMESPACE}:hosts`];
  if (typeof v !== "string") return v;
  try {
    return JSON.parse(v);
  } catch {
    return undefined;
  }
}

/** The error that stops the program: every problem, one per line, and nothing deployed. */
export function configError(errors: readonly SettingsError[]): pulumi.RunError {
  const lines = errors.map((e) => `  ${e.key}: ${e.message}`);
  return new pulumi.RunError(
    `kilo-fleet: the stack configuration has ${errors.length} error${errors.length === 1 ? "" : "s"}; nothing was deployed:\n${lines.join("\n")}`,
  );
}

/**
 * Validates the config (throwing one `pulumi.RunError` listing every error before any resource is
 * created), then creates one `KiloHost` per host from that host's resolved spec. Warnings about a host
 * (an unpinned version, an unpinned host key, plain http) are logged by its KiloHost, on that resource.
 */
export function deployFleet(
  rawConfig: Record<string, unknown>,
  secrets: FleetSecrets,
  opts?: pulumi.ComponentResourceOptions,
  lockPath: string = fleetLockPath(),
): Fleet {
  const check = checkFleetConfig(rawConfig, secrets, process.env, lockPath);
  if (!check.ok) throw configError(check.errors);
  const { settings, lock } = check;

  const hosts: Record<string, KiloHost> = {};
  const outputs: Record<string, HostExports> = {};
  for (const h of settings.hosts) {
    const spec = hostSpec(settings, h);
    const kiloHost = new KiloHost(
      h.name,
      {
        ...spec,
        ...(lock !== undefined ? { kiloLock: lock } : {}),
        // This host's own key (kilo-fleet:apiKeys), else the fleet key: checkFleetConfig made sure of one.
        apiKey: keyForHost(h.name, secrets) as pulumi.Input<string>,
        ...(secrets.npmToken !== undefined ? { npmToken: secrets.npmToken } : {}),
        ...(spec.ssh !== undefined && secrets.sshPrivateKey !== undefined
          ? { sshPrivateKey: secrets.sshPrivateKey }
          : {}),
      },
      opts,
    );
    hosts[h.name] = kiloHost;
    outputs[h.name] = {
      kind: spec.ssh ? "ssh" : "local",
      kiloVersion: kiloHost.kiloVersion,
      configPath: kiloHost.configPath,
      envFilePath: kiloHost.envFilePath,
      smoke: settings.smokeCheck.enabled
        ? kiloHost.smoke.apply((r) =>
            r ? { enabled: true as const, ...r } : { enabled: true as const, pass: false as const },
          )
        : pulumi.output({ enabled: false as const }),
      kiloConfig: kiloHost.kiloConfig,
    };
  }
  return { settings, hosts, outputs };
}

/**
 * Reads the stack's config through the Pulumi runtime: every `kilo-fleet:` key as plain config, and the
 * secrets through `Config.getSecret` (secret Outputs). A secret key stored in plain text in the stack
 * file is warned about.
 */
export function readStackConfig(): { rawConfig: Record<string, unknown>; secrets: FleetSecrets } {
  const all = pulumi.runtime.allConfig();
  const config = new pulumi.Config(CONFIG_NAMESPACE);
  const rawConfig: Record<string, unknown> = {};
  const secrets: FleetSecrets = {};
  // kilo-fleet:apiKeys: the names are structure (in the runtime's config text, values encrypted there);
  // each host gets its own secret Output, so one host's key is an input of that host's steps only.
  const apiKeysText = all[`${CONFIG_NAMESPACE}:${API_KEYS_KEY}`];
  if (apiKeysText !== undefined) {
    secrets.apiKeys = perHostApiKeys(apiKeyHostNames(apiKeysText), config.requireSecretObject(API_KEYS_KEY), pulumi);
  }
  // Not in the typings (marked internal) but exported by the runtime: which keys the engine holds as secrets.
  const isConfigSecret = (pulumi.runtime as unknown as { isConfigSecret?: (k: string) => boolean }).isConfigSecret;
  for (const [k, v] of Object.entries(all)) {
    if (k === `${CONFIG_NAMESPACE}:${API_KEYS_KEY}`) continue;
    const secretKey = SECRET_KEYS.find((s) => k === `${CONFIG_NAMESPACE}:${s}`);
    if (secretKey === undefined) {
      rawConfig[k] = v;
      continue;
    }
    secrets[secretKey] = config.getSecret(secretKey);
    if (isConfigSecret && !isConfigSecret(k)) {
      void pulumi.log.warn(
        `${k}: stored in plain text in the stack file; store it encrypted: pulumi config set --secret ${secretKey} <value>`,
      );
    }
  }
  return { rawConfig, secrets };
}
