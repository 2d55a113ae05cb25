/**
 * The `policy` setting: the kilo.jsonc keys an organisation enforces through kilo's managed config
 * (`/etc/kilo/kilo.jsonc`, host/policy.ts), and how a host's policy is rendered from it. Why and how:
 * docs/policy.md.
 */
import { z } from "zod";
import { KILO_CONFIG_TOP_LEVEL_KEYS } from "../common/kiloConfigKeys";

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

/** Keys a policy may not set: `$schema` is always kilo's; kilo reads `autoupdate` only from the user's config. */
const REFUSED: Record<string, string> = {
  $schema: "is always kilo's schema URL (kilo-fleet writes it)",
  autoupdate:
    "is read by kilo only from the user's own config, never the managed one: pin kiloVersion instead (the env file then sets KILO_DISABLE_AUTOUPDATE=1)",
};

/** An `apiKey` under `provider` that is not a `{env:VAR}` reference: a literal key would be world-readable. */
function literalApiKeys(v: unknown, at: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(v)) return v.flatMap((x, i) => literalApiKeys(x, [...at, i]));
  if (!isPlainObject(v)) return [];
  return Object.entries(v).flatMap(([k, x]) =>
    k === "apiKey" && !(typeof x === "string" && /^\{env:[A-Za-z_][A-Za-z0-9_]*\}$/.test(x))
      ? [[...at, k]]
      : literalApiKeys(x, [...at, k]),
  );
}

/**
 * A policy: kilo.jsonc keys (kilo 7.7.7's top-level keys only), with the named ones' shapes checked.
 * `model` and `small_model` are a key of `models` (rendered `<providerId>/<id>`) or a full `provider/model`.
 * `provider` and `enabled_providers` default to the pool (its baseURL and `{env:<apiKeyEnvVar>}`).
 */
export const policySchema = z
  .record(z.string(), z.unknown(), {
    error: 'must be an object of kilo.jsonc keys, e.g. {"model": "gpt-5.5", "share": "disabled"}',
  })
  .superRefine((o, ctx) => {
    for (const [k, v] of Object.entries(o)) {
      if (k in REFUSED) {
        ctx.addIssue({ code: "custom", path: [k], message: REFUSED[k] });
      } else if (!KILO_CONFIG_TOP_LEVEL_KEYS.includes(k)) {
        ctx.addIssue({
          code: "custom",
          path: [k],
          message:
            "is not a kilo.jsonc key kilo 7.7.7 knows (kilo drops unknown keys silently: it would not be enforced)",
        });
      } else if (k === "permission" && !isPlainObject(v)) {
        ctx.addIssue({
          code: "custom",
          path: [k],
          message:
            'must be an object such as {"bash": "deny", "edit": "ask"}; a bare string is every tool at once (write {"*": "…"} if that is meant)',
        });
      } else if (k === "share" && !["manual", "auto", "disabled"].includes(v as string)) {
        ctx.addIssue({ code: "custom", path: [k], message: 'must be "manual", "auto" or "disabled"' });
      } else if (
        (k === "model" || k === "small_model") &&
        (typeof v !== "string" || v === "" || /[\u0000-\u001f]/.test(v))
      ) {
        ctx.addIssue({ code: "custom", path: [k], message: "must be a model id (a key of models, or provider/model)" });
      } else if (
        k === "enabled_providers" &&
        !(Array.isArray(v) && v.every((x) => typeof x === "string" && x !== ""))
      ) {
        ctx.addIssue({ code: "custom", path: [k], message: "must be a list of provider ids" });
      } else if (k === "provider") {
        if (!isPlainObject(v)) {
          ctx.addIssue({
            code: "custom",
            path: [k],
            message: "must be an object of provider id → kilo provider entry",
          });
        } else {
          for (const p of literalApiKeys(v, [k])) {
            ctx.addIssue({
              code: "custom",
              path: p,
              message:
                "must be an {env:VAR} reference: the managed file is readable by every user, and plain in the state",
            });
          }
        }
      }
    }
  });

/** A host's `policy`: its own keys over the fleet's (key by key), or `false` for none on that host. */
export const hostPolicySchema = z.union([z.literal(false), policySchema], {
  error: "must be an object of kilo.jsonc keys (over the fleet's policy), or false for no policy on this host",
});

/** `become`: how the policy step gets root. */
export const becomeSchema = z.enum(["sudo", "none"], { error: 'must be "sudo" or "none"' });

/** The fleet's and the host's policy as one (undefined: no policy for this host). */
export function mergedPolicy(
  fleet: Record<string, unknown> | undefined,
  host: Record<string, unknown> | false | undefined,
): Record<string, unknown> | undefined {
  if (host === false) return undefined;
  if (fleet === undefined && host === undefined) return undefined;
  return { ...(fleet ?? {}), ...(host ?? {}) };
}

/** The policy as the managed file holds it (without `$schema`), in a fixed key order. */
export function renderPolicy(
  policy: Record<string, unknown>,
  pool: { providerId: string; poolerBaseUrl: string; apiKeyEnvVar: string },
): Record<string, unknown> {
  const model = (m: unknown) => (typeof m === "string" && !m.includes("/") ? `${pool.providerId}/${m}` : m);
  const out: Record<string, unknown> = {
    provider: structuredClone(policy.provider) ?? {
      [pool.providerId]: { options: { baseURL: pool.poolerBaseUrl, apiKey: `{env:${pool.apiKeyEnvVar}}` } },
    },
    enabled_providers: structuredClone(policy.enabled_providers) ?? [pool.providerId],
  };
  for (const k of Object.keys(policy).sort()) {
    if (k === "provider" || k === "enabled_providers") continue;
    out[k] = k === "model" || k === "small_model" ? model(policy[k]) : structuredClone(policy[k]);
  }
  return out;
}
