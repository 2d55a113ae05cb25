/**
 * What the smoke check checks, read from the kilo.jsonc the config step deployed (pure: its text in, the
 * target out): the default `model` (`<provider>/<model id>`), that provider's `baseURL`, the variable its
 * `apiKey` names (`{env:VAR}`), and its models' limits. The check then tests what kilo itself will use,
 * and its step's argument stays its own settings (level, timeout); a config change re-runs it through its
 * `config=sha256:…` trigger.
 */
import { parse as parseJsonc } from "jsonc-parser";
import type { CompactionSettings } from "../common/contextWindow";
import { isJsonObject } from "../common/kiloConfigMerge";
import type { ModelLimitSettings } from "./poolCheck";

export interface SmokeTarget {
  /** `<provider>/<model id>`, for `kilo run --model`. */
  model: string;
  /** The provider's `options.baseURL`: the pooler's /v1 base. */
  baseUrl: string;
  /** The variable `options.apiKey` reads (`{env:VAR}`): what the env file must export. */
  keyVar: string;
  /** The provider's models (what the key must be allowed to use), with their limits. */
  models: Record<string, ModelLimitSettings>;
  /** kilo.jsonc's `compaction` (`reserved`, `threshold_percent`), when it has one: kilo's arithmetic uses it. */
  compaction?: CompactionSettings;
}

/** The target, or an Error naming the file and what is missing (the config step writes all of it). */
export function smokeTarget(text: string, file: string): SmokeTarget {
  const fail = (what: string) => new Error(`${file} ${what} (the config step writes it: deploy again)`);
  const config = parseJsonc(text, [], { allowTrailingComma: true }) as unknown;
  if (!isJsonObject(config)) throw fail("is not a JSON object");
  const model = config.model;
  const slash = typeof model === "string" ? model.indexOf("/") : -1;
  if (typeof model !== "string" || slash <= 0 || slash === model.length - 1) {
    throw fail(`has no "model" of the form "<provider>/<model>"`);
  }
  const providerId = model.slice(0, slash);
  const provider = isJsonObject(config.provider) ? config.provider[providerId] : undefined;
  if (!isJsonObject(provider)) throw fail(`defines no provider "${providerId}" (its "model" names it)`);
  const options = isJsonObject(provider.options) ? provider.options : {};
  const where = `provider.${providerId}.options`;
  if (typeof options.baseURL !== "string" || options.baseURL === "") throw fail(`has no ${where}.baseURL`);
  const keyVar = /^\{env:([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(String(options.apiKey ?? ""))?.[1];
  if (keyVar === undefined) throw fail(`has no ${where}.apiKey of the form "{env:VAR}"`);
  const models: Record<string, ModelLimitSettings> = {};
  for (const [id, m] of Object.entries(isJsonObject(provider.models) ? provider.models : {})) {
    const limit = isJsonObject(m) && isJsonObject(m.limit) ? m.limit : {};
    const num = (k: string) => (typeof limit[k] === "number" ? { [k]: limit[k] as number } : {});
    models[id] = { limit: { ...num("context"), ...num("input"), ...num("output") } };
  }
  const c = config.compaction;
  const compaction: CompactionSettings | undefined = isJsonObject(c)
    ? {
        ...(typeof c.reserved === "number" ? { reserved: c.reserved } : {}),
        ...(typeof c.threshold_percent === "number" ? { thresholdPercent: c.threshold_percent } : {}),
      }
    : undefined;
  return { model, baseUrl: options.baseURL, keyVar, models, ...(compaction ? { compaction } : {}) };
}
