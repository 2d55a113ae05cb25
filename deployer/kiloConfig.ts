/**
 * Renders the kilo.jsonc kilo-fleet manages: a pure function of the settings and the host, in the
 * shape of the Codex Pooler docs' example (docs/codex-pooler.md, point 3), with stable key order.
 */
import { KILO_CONFIG_SCHEMA_URL, managedKeyPaths, mergeKiloConfig } from "../common/kiloConfigMerge";

export { KILO_CONFIG_SCHEMA_URL, managedKeyPaths };

import type { HostSpec } from "./hostSpec";

/** The parts of a host's spec kilo.jsonc is rendered from. */
export type KiloConfigSettings = Pick<
  HostSpec,
  | "apiKeyEnvVar"
  | "poolerBaseUrl"
  | "models"
  | "providerId"
  | "compactionThresholdPercent"
  | "permission"
  | "kiloSettings"
  | "model"
  | "kiloVersion"
>;

// The kilo SDK is an ES module; this CommonJS project only borrows its types.
type Config = import("@kilocode/sdk/v2", { with: { "resolution-mode": "import" }}).Config;
type ProviderConfig = import("@kilocode/sdk/v2", { with: { "resolution-mode": "import" }}).ProviderConfig;

/** The config object kilo-fleet writes, checked against the kilo SDK's own `Config` type. */
export type KiloConfig = Config & Record<string, unknown>;

/** The kilo.jsonc content kilo-fleet manages for one host. */
export function renderKiloConfig(spec: KiloConfigSettings): KiloConfig {
  const providerConfig: ProviderConfig = {
    options: {
      apiKey: `{env:${spec.apiKeyEnvVar}}`,
      baseURL: spec.poolerBaseUrl,
    },
    models: structuredClone(spec.models) as ProviderConfig["models"],
  };
  const config: KiloConfig = {
    $schema: KILO_CONFIG_SCHEMA_URL,
    model: `${spec.providerId}/${spec.model}`,
    enabled_providers: [spec.providerId],
    provider: { [spec.providerId]: providerConfig },
  };
  if (spec.compactionThresholdPercent !== null) {
    config.compaction = { threshold_percent: spec.compactionThresholdPercent };
  }
  // A pinned fleet must not let kilo upgrade itself away from the pin.
  if (spec.kiloVersion !== "latest") config.autoupdate = false;
  if (spec.permission !== undefined) config.permission = structuredClone(spec.permission) as Config["permission"];
  for (const key of Object.keys(spec.kiloSettings).sort()) {
    config[key] = structuredClone(spec.kiloSettings[key]);
  }
  return config;
}

/** The full kilo.jsonc text of a fresh file: header comment, then the config. */
export function renderKiloConfigText(config: KiloConfig): string {
  return mergeKiloConfig(undefined, config, managedKeyPaths(config));
}
