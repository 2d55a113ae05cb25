/**
 * Per-host API keys: `kilo-fleet:apiKeys`, a secret object from host name to that host's Pool API key
 * (`pulumi config set --secret --path 'apiKeys.alice-laptop' <key>`). A host without an entry uses the
 * fleet key, `codexPoolerApiKey`, which is needed only when some host has no entry of its own.
 *
 * Everything here works on the object's structure (which host names have an entry), never on a value:
 * the checks run offline on a stack file whose values stay encrypted, and at `pulumi up` on names only.
 */
import type * as pulumi from "@pulumi/pulumi";
import { CONFIG_NAMESPACE, didYouMean, formatKeyPath, type SettingsError } from "./settings";

/** The config key, without namespace. */
export const API_KEYS_KEY = "apiKeys";
/** The fleet-wide key, without namespace. */
export const FLEET_KEY = "codexPoolerApiKey";

/**
 * The key path of one host's entry as `pulumi config set --path` spells it: `apiKeys.alice-laptop`
 * (host names are `[a-z0-9-]+`; anything else falls back to the bracket form).
 */
export function apiKeyPath(hostName: string): string {
  return /^[A-Za-z0-9_-]+$/.test(hostName)
    ? `${API_KEYS_KEY}.${hostName}`
    : formatKeyPath([API_KEYS_KEY, hostName]).slice(CONFIG_NAMESPACE.length + 1);
}

/** The command that sets one host's key (the key itself left for the person to type). */
export function setApiKeyCommand(hostName: string): string {
  return `pulumi config set --secret --path '${apiKeyPath(hostName)}' <key>`;
}

/**
 * The host names that have an entry in `apiKeys`, in order. `value` is the setting in any of its forms:
 * JSON text (how the Pulumi runtime hands it over), the decoded object, or `Settings.apiKeys`. Only the
 * names are read. Anything that is not an object gives no names (the schema reports its shape).
 */
export function apiKeyHostNames(value: unknown): string[] {
  let v = value;
  if (typeof v === "string") {
    try {
      v = JSON.parse(v);
    } catch {
      return [];
    }
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) return [];
  return Object.keys(v);
}

/** `kilo-fleet:apiKeys.<name>: names no host in kilo-fleet:hosts …`, one per entry naming no host. */
export function apiKeyEntryErrors(apiKeyHosts: readonly string[], hostNames: readonly string[]): SettingsError[] {
  return apiKeyHosts
    .filter((name) => !hostNames.includes(name))
    .map((name) => {
      const hint = didYouMean(name, hostNames);
      return {
        key: `${CONFIG_NAMESPACE}:${apiKeyPath(name)}`,
        message: `names no host in ${CONFIG_NAMESPACE}:hosts${hint ? ` (did you mean ${hint}?)` : ""}; hosts: ${hostNames.join(", ")}. Remove it (pulumi config rm --path '${apiKeyPath(name)}') or rename it to the host it is for`,
      };
    });
}

/**
 * One error per host that would get no key: no entry of its own and no fleet key. Empty when the fleet
 * key is present.
 */
export function missingApiKeyErrors(
  hostNames: readonly string[],
  apiKeyHosts: readonly string[],
  fleetKeyPresent: boolean,
): SettingsError[] {
  if (fleetKeyPresent) return [];
  return hostNames
    .filter((name) => !apiKeyHosts.includes(name))
    .map((name) => ({
      key: `${CONFIG_NAMESPACE}:${apiKeyPath(name)}`,
      message: `host "${name}" has no API key: give it its own (${setApiKeyCommand(name)}) or set a fleet key for every host without one (pulumi config set --secret ${FLEET_KEY} <key>)`,
    }));
}

/** Both checks for a fleet: entries naming no host, then hosts left without a key. */
export function apiKeyErrors(
  hostNames: readonly string[],
  apiKeys: unknown,
  fleetKeyPresent: boolean,
): { entries: SettingsError[]; missing: SettingsError[] } {
  const names = apiKeyHostNames(apiKeys);
  return {
    entries: apiKeyEntryErrors(names, hostNames),
    missing: missingApiKeyErrors(hostNames, names, fleetKeyPresent),
  };
}

/** The secrets `keyForHost` chooses from. */
export interface ApiKeySecrets {
  /** The fleet key. */
  codexPoolerApiKey?: pulumi.Input<string>;
  /** Each host's own key, by host name (see `perHostApiKeys`). */
  apiKeys?: Readonly<Record<string, pulumi.Input<string>>>;
}

/** The key `hostName` deploys with: its own entry, else the fleet key; undefined when it has neither. */
export function keyForHost(hostName: string, secrets: ApiKeySecrets): pulumi.Input<string> | undefined {
  if (secrets.apiKeys !== undefined && Object.hasOwn(secrets.apiKeys, hostName)) return secrets.apiKeys[hostName];
  return secrets.codexPoolerApiKey;
}

/**
 * Splits the secret `apiKeys` object into one secret Output per host, so each host's env step depends on
 * its own key only (changing alice's key changes nothing of bob's inputs). `names` is the structure
 * (`apiKeyHostNames` of the runtime's config text); `whole` is `config.requireSecretObject("apiKeys")`.
 * `project` is the Output factory (`pulumi`), passed in so this module has no runtime Pulumi import.
 */
export function perHostApiKeys(
  names: readonly string[],
  whole: pulumi.Output<unknown>,
  project: Pick<typeof pulumi, "secret">,
): Record<string, pulumi.Output<string>> {
  const out: Record<string, pulumi.Output<string>> = {};
  for (const name of names) {
    out[name] = project.secret(
      whole.apply((o) => {
        const v = o !== null && typeof o === "object" ? (o as Record<string, unknown>)[name] : undefined;
        if (typeof v !== "string" || v === "")
          throw new Error(`${CONFIG_NAMESPACE}:${apiKeyPath(name)}: must be a non-empty string`);
        return v;
      }),
    );
  }
  return out;
}
