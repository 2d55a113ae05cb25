/**
 * The whole stack: read the `kilo-fleet:` config, validate all of it, then one `KiloHost` per host.
 * `index.ts` is only `deployFleet(...readStackConfig())`; tests call these functions directly.
 */
import * as pulumi from "@pulumi/pulumi";
import { API_KEYS_KEY, apiKeyHostNames, keyForHost, perHostApiKeys } from "./apiKeys";
import { type HostSpec, warningText } from "./hostSpec";
import type { KiloConfig } from "./kiloConfig";
import { KiloHost, type SmokeOutput } from "./kiloHost";
import { fleetLockPath } from "./kiloLock";
import { type Resolved, resolveHosts } from "./resolveHosts";
import { CONFIG_NAMESPACE, SECRET_KEYS, type SettingsError } from "./settings";

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
  /** The host's rollout wave (`hosts[i].wave`, 0 by default). */
  wave: number;
  /** The kilo version the install step reported. */
  kiloVersion: pulumi.Output<string>;
  /** kilo.jsonc on the host. */
  configPath: pulumi.Output<string>;
  /** The env file holding the key on the host (the path, not the key). */
  envFilePath: pulumi.Output<string>;
  /** The smoke check's result, or `{ enabled: false }` when it is disabled. */
  smoke: pulumi.Output<({ enabled: true } & SmokeOutput) | { enabled: true; pass: false } | { enabled: false }>;
  /** The host's managed kilo.jsonc keys, only where they differ from the fleet's `kiloConfig`. */
  kiloConfig?: KiloConfig;
}

export interface Fleet {
  /** Each host's resolved spec, in config order. */
  specs: HostSpec[];
  /** One KiloHost per host, by host name, in config order. */
  hosts: Record<string, KiloHost>;
  /** Per-host stack exports, by host name. */
  outputs: Record<string, HostExports>;
  /** The managed kilo.jsonc keys most hosts share, as plain JSON: a model or base URL change reads as that key's change. */
  kiloConfig: KiloConfig;
}

/**
 * Resolves the stack config for `pulumi up`, everything at once: the settings, plus what only the program
 * can know — the API key is present, and every SSH host has a way to authenticate (the `sshPrivateKey`
 * secret, or an SSH agent in `env.SSH_AUTH_SOCK`), and every pinned kilo version is in the lock file at
 * `lockPath` (as `validate` checks). Secrets in `rawConfig` are ignored: `secrets` is what counts, so no
 * plaintext secret ever enters the specs.
 */
export function checkFleetConfig(
  rawConfig: Record<string, unknown>,
  secrets: FleetSecrets,
  env: NodeJS.ProcessEnv = process.env,
  lockPath: string = fleetLockPath(env),
): Resolved {
  const raw: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rawConfig)) {
    const secret = [...SECRET_KEYS, API_KEYS_KEY].some((s) => k === `${CONFIG_NAMESPACE}:${s}`);
    if (!secret) raw[k] = v;
  }
  return resolveHosts(
    { stack: raw },
    {
      lockFile: { path: lockPath },
      secrets: {
        fleetKey: secrets.codexPoolerApiKey !== undefined,
        apiKeyHosts: Object.keys(secrets.apiKeys ?? {}),
        missingKey: "error",
        sshAuth: secrets.sshPrivateKey !== undefined || Boolean(env.SSH_AUTH_SOCK),
      },
    },
  );
}

/** A host's rollout wave (0 unless `hosts[i].wave` says otherwise). */
export const waveOf = (spec: HostSpec): number => spec.wave ?? 0;

/** The error that stops the program: every problem, one per line, and nothing deployed. */
export function configError(errors: readonly SettingsError[]): pulumi.RunError {
  const lines = errors.map((e) => `  ${e.key}: ${e.message}`);
  return new pulumi.RunError(
    `kilo-fleet: the stack configuration has ${errors.length} error${errors.length === 1 ? "" : "s"}; nothing was deployed:\n${lines.join("\n")}`,
  );
}

/**
 * Resolves the config (throwing one `pulumi.RunError` listing every error before any resource is
 * created), then creates one `KiloHost` per host from that host's resolved spec, and logs the warnings
 * `validate` prints, each once (a host's own on its KiloHost).
 */
export function deployFleet(
  rawConfig: Record<string, unknown>,
  secrets: FleetSecrets,
  opts?: pulumi.ComponentResourceOptions,
  lockPath: string = fleetLockPath(),
): Fleet {
  const resolved = checkFleetConfig(rawConfig, secrets, process.env, lockPath);
  if (resolved.errors.length > 0) throw configError(resolved.errors);
  const { specs, lock } = resolved;

  const hosts: Record<string, KiloHost> = {};
  const outputs: Record<string, HostExports> = {};
  // Waves: each wave's hosts wait (their first step's dependsOn) for the last step of every host of the
  // wave before it — the smoke check, or the env step where it is off — so a failure there stops the later
  // waves. One wave: no dependency is added, the graph is today's.
  const waves = [...new Set(specs.map(waveOf))].sort((a, b) => a - b);
  const gates = new Map<number, pulumi.Resource[]>(waves.map((w) => [w, []]));
  const created = new Map<string, KiloHost>();
  for (const spec of [...specs].sort((a, b) => waveOf(a) - waveOf(b))) {
    const w = waves.indexOf(waveOf(spec));
    const after = w > 0 ? (gates.get(waves[w - 1]) ?? []) : [];
    const kiloHost = new KiloHost(
      spec.name,
      {
        poolerBaseUrl: spec.poolerBaseUrl,
        ...(lock !== undefined ? { kiloLock: lock } : {}),
        // This host's own key (kilo-fleet:apiKeys), else the fleet key: checkFleetConfig made sure of one.
        apiKey: keyForHost(spec.name, secrets) as pulumi.Input<string>,
        ...(secrets.npmToken !== undefined ? { npmToken: secrets.npmToken } : {}),
        ...(secrets.proxyCredentials !== undefined ? { proxyCredentials: secrets.proxyCredentials } : {}),
        ...(spec.ssh !== undefined && secrets.sshPrivateKey !== undefined
          ? { sshPrivateKey: secrets.sshPrivateKey }
          : {}),
        ...(spec.ssh?.proxy !== undefined && secrets.sshJumpPrivateKey !== undefined
          ? { sshJumpPrivateKey: secrets.sshJumpPrivateKey }
          : {}),
      },
      after.length > 0 ? { ...opts, dependsOn: after } : opts,
      spec,
    );
    created.set(spec.name, kiloHost);
    gates.get(waveOf(spec))?.push(kiloHost.steps.smoke ?? kiloHost.steps.policy ?? kiloHost.steps.env);
  }
  for (const spec of specs) {
    const kiloHost = created.get(spec.name) as KiloHost;
    hosts[spec.name] = kiloHost;
    outputs[spec.name] = {
      kind: spec.ssh ? "ssh" : "local",
      wave: waveOf(spec),
      kiloVersion: kiloHost.kiloVersion,
      configPath: kiloHost.configPath,
      envFilePath: kiloHost.envFilePath,
      smoke: spec.smokeCheck.enabled
        ? kiloHost.smoke.apply((r) =>
            r ? { enabled: true as const, ...r } : { enabled: true as const, pass: false as const },
          )
        : pulumi.output({ enabled: false as const }),
    };
  }
  // Stored once, not once per host: a host whose config differs carries its own.
  const texts = specs.map((s) => JSON.stringify(hosts[s.name].kiloConfig));
  const common = mostCommon(texts);
  specs.forEach((s, i) => {
    if (texts[i] !== common) outputs[s.name].kiloConfig = hosts[s.name].kiloConfig;
  });
  const kiloConfig = hosts[specs[texts.indexOf(common)].name].kiloConfig;
  for (const w of resolved.warnings) void pulumi.log.warn(warningText(w), w.host ? hosts[w.host] : undefined);
  return { specs, hosts, outputs, kiloConfig };
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

/** The value most of `values` are (the earliest of those tied); `values` is not empty. */
function mostCommon(values: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  let best = values[0];
  for (const [v, n] of counts) if (n > (counts.get(best) ?? 0)) best = v;
  return best;
}
