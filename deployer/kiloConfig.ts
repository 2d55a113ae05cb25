/**
 * Renders the kilo.jsonc kilo-fleet manages: a pure function of the settings and the host, in the
 * shape of the Codex Pooler docs' example (docs/codex-pooler.md, point 3), with stable key order.
 */
import { KILO_CONFIG_SCHEMA_URL, managedKeyPaths, mergeKiloConfig } from "../common/kiloConfigMerge";

export { KILO_CONFIG_SCHEMA_URL, managedKeyPaths };

import type { Settings } from "./settings";

/** The settings kilo.jsonc is rendered from (a stack's `Settings` and a `HostSpec` both have them). */
export type KiloConfigSettings = Pick<
  Settings,
  | "apiKeyEnvVar"
  | "poolerBaseUrl"
  | "models"
  | "providerId"
  | "compactionThresholdPercent"
  | "permission"
  | "kiloSettings"
>;

// The kilo SDK is an ES module; this CommonJS project only borrows its types.
type Config = import("@kilocode/sdk/v2", { with: { "resolution-mode": "import" }}).Config;
type ProviderConfig = import("@kilocode/sdk/v2", { with: { "resolution-mode": "import" }}).ProviderConfig;

/** The config object kilo-fleet writes, checked against the kilo SDK's own `Config` type. */
export type KiloConfig = Config & Record<string, unknown>;

/** The kilo.jsonc content kilo-fleet manages for one host. */
export function renderKiloConfig(
  settings: KiloConfigSettings,
  host: { model: string; kiloVersion: string },
): KiloConfig {
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

/** The full kilo.jsonc text of a fresh file: header comment, then the config. */
export function renderKiloConfigText(config: KiloConfig): string {
  return mergeKiloConfig(undefined, config, managedKeyPaths(config));
}
