/**
 * Renders the kilo.jsonc kilo-fleet manages: a pure function of the settings and the host, in the
 * shape of the Codex Pooler docs' example (shared/codex-pooler-kilo.md, point 3), with stable key order.
 */
import { type KeyPath, mergeKiloConfig } from "../common/kiloConfigMerge";
import type { ResolvedHost, Settings } from "./settings";

// The kilo SDK is an ES module; this CommonJS project only borrows its types.
type Config = import("@kilocode/sdk/v2", { with: { "resolution-mode": "import" }}).Config;
type ProviderConfig = import("@kilocode/sdk/v2", { with: { "resolution-mode": "import" }}).ProviderConfig;

export const KILO_CONFIG_SCHEMA_URL = "https://app.kilo.ai/config.json";

/** The config object kilo-fleet writes, checked against the kilo SDK's own `Config` type. */
export type KiloConfig = Config & Record<string, unknown>;

/** The kilo.jsonc content kilo-fleet manages for one host. */
export function renderKiloConfig(settings: Settings, host: ResolvedHost): KiloConfig {
  const providerConfig: ProviderConfig = {
    options: {
      apiKey: `{env:${settings.apiKeyEnvVar}}`,
      baseURL: settings.poolerBaseUrl,
    },
    models: structuredClone(settings.models) as ProviderConfig["models"],
  };
  const config: KiloConfig = {
    $schema: KILO_CONFIG_SCHEMA_URL,
    model: `${settings.providerId}/${host.model}`,
    enabled_providers: [settings.providerId],
    provider: { [settings.providerId]: providerConfig },
  };
  if (settings.compactionThresholdPercent !== null) {
    config.compaction = { threshold_percent: settings.compactionThresholdPercent };
  }
  // A pinned fleet must not let kilo upgrade itself away from the pin.
  if (host.kiloVersion !== "latest") config.autoupdate = false;
  if (settings.permission !== undefined)
    config.permission = structuredClone(settings.permission) as Config["permission"];
  for (const key of Object.keys(settings.kiloSettings).sort()) {
    config[key] = structuredClone(settings.kiloSettings[key]);
  }
  return config;
}

/**
 * The key paths kilo-fleet owns in a rendered config. Under `provider` it owns only its own provider
 * entry, so other providers a user keeps in the file are left alone.
 */
export function managedKeyPaths(config: KiloConfig): KeyPath[] {
  const paths: KeyPath[] = [];
  for (const key of Object.keys(config)) {
    if (key === "provider") {
      for (const id of Object.keys(config.provider ?? {})) paths.push(["provider", id]);
    } else paths.push([key]);
  }
  return paths;
}

/** The full kilo.jsonc text of a fresh file: header comment, then the config. */
export function renderKiloConfigText(config: KiloConfig): string {
  return mergeKiloConfig(undefined, config, managedKeyPaths(config));
}
