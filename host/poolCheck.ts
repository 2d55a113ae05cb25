/**
 * The pool check: before kilo spends a token, ask the Codex Pooler whether it is ready (`/readyz`) and what
 * this API key may use (`/v1/models`), and turn every way that can go wrong into a stable `code` and one
 * line a platform engineer can act on; server text is never shown. Runs inside the host tool (node >= 18
 * or Bun) and in the CLI: the global `fetch`, or through an egress proxy a CONNECT tunnel (proxyRequest.ts), and
 * kilo's context arithmetic (common/contextWindow.ts, pure).
 * The protocol: docs/design.md, "The pool check".
 */
import { type CompactionSettings, limitsForWindow, tokensNeeded } from "../common/contextWindow";
import { proxyFor } from "../common/proxy";
import { ProxyFailure, proxiedGet } from "./proxyRequest";

/** A model the key may use, as `/v1/models` reports it. */
export interface PoolModel {
  id: string;
  /** `context_length`: the effective context window (already 95 % of the raw one). */
  contextLength?: number;
  /** `display_name`, when the pool reports it. */
  displayName?: string;
  /** `input_modalities`, when the pool reports them (e.g. `["text", "image"]`). */
  inputModalities?: string[];
  /** `supports_tools`, when reported. */
  supportsTools?: boolean;
  /** `supports_reasoning`, when reported. */
  supportsReasoning?: boolean;
}

/** What a pool error's `code` means, or how a request failed before the pool could say. */
export type PoolErrorCode =
  | "api_key_missing"
  | "api_key_disabled"
  | "api_key_expired"
  | "model_not_allowed"
  | "invalid_model"
  | "quota_exhausted"
  | "no_eligible_backend"
  | "rate_limited"
  | "http_error";

export type PoolCheckCode =
  | PoolErrorCode
  | "bad_url"
  | "unreachable"
  | "timeout"
  | "not_ready"
  | "redirect"
  | "bad_response"
  | "proxy";

export type PoolCheckResult =
  | {
      ok: true;
      /** `ready`: `/readyz` said so; `unknown`: there is no `/readyz` at that prefix (not a Codex Pooler?). */
      readiness: "ready" | "unknown";
      /** The models this key may use. */
      models: PoolModel[];
    }
  | {
      ok: false;
      code: PoolCheckCode;
      /** One line, no server text, no key: what is wrong and what to do. */
      reason: string;
      /** The HTTP status, when the pool answered. */
      status?: number;
      /** For `model_not_allowed`: the configured models this key may not use … */
      notAllowed?: string[];
      /** … and the ones it may. */
      models?: PoolModel[];
    };

export interface PoolCheckOptions {
  /** The pooler's `/v1` base URL (`kilo-fleet:poolerBaseUrl`). */
  baseUrl: string;
  apiKey: string;
  /** Model ids that must be usable with this key (the ids of `kilo-fleet:models`); none: no model check. */
  models?: readonly string[];
  /** The budget for both requests together, in ms (default 10 000). */
  timeoutMs?: number;
  /** The setting named in reasons about the key (default `kilo-fleet:codexPoolerApiKey (or kilo-fleet:apiKeys.<host>)`). */
  keySetting?: string;
  /**
   * The proxy variables (HTTPS_PROXY, NO_PROXY, … in either case) the requests honour, as kilo does: a
   * proxied request goes through a CONNECT tunnel (proxyRequest.ts). Absent: direct, with `fetch`.
   */
  proxyEnv?: Readonly<Record<string, string | undefined>>;
  /** What a proxy failure names (default: the variable the proxy came from). */
  proxySetting?: string;
}

const DEFAULT_KEY_SETTING = "kilo-fleet:codexPoolerApiKey (or kilo-fleet:apiKeys.<host>)";

/** The codes the real pooler uses for rate limits (upstream 429s and stream errors). */
const RATE_LIMIT_CODES = new Set(["upstream_rate_limited", "rate_limit_exceeded", "rate_limited"]);

/** A server-sent code is printed only when it looks like one: a short lowercase token. */
function safeToken(v: unknown): string | undefined {
  return typeof v === "string" && /^[a-z0-9][a-z0-9_.-]{0,63}$/.test(v) ? v : undefined;
}

/** The `error.code` of an error body (a parsed object or its JSON text). */
export function poolErrorCode(body: unknown): string | undefined {
  let b = body;
  if (typeof b === "string") {
    try {
      b = JSON.parse(b);
    } catch {
      return undefined;
    }
  }
  if (!b || typeof b !== "object") return undefined;
  const err = (b as { error?: unknown }).error;
  if (err && typeof err === "object") return safeToken((err as { code?: unknown }).code);
  return undefined;
}

/**
 * Maps a pool error to a stable code and an actionable line, by `error.code` (never by the message,
 * which the pool scrubs to "upstream request failed"), falling back on the HTTP status.
 */
export function poolErrorReason(
  status: number,
  body: unknown,
  opts: { keySetting?: string } = {},
): { code: PoolErrorCode; reason: string } {
  const keySetting = opts.keySetting ?? DEFAULT_KEY_SETTING;
  const code = poolErrorCode(body);
  switch (code) {
    case "api_key_missing":
      return {
        code,
        reason: `the pool does not know this API key (api_key_missing) — set ${keySetting} to a valid Pool API key`,
      };
    case "api_key_disabled":
      return {
        code,
        reason: `the pool has disabled this API key (api_key_disabled: paused or revoked) — re-enable it in the pool, or set ${keySetting} to an active Pool API key`,
      };
    case "api_key_expired":
      return {
        code,
        reason: `this API key has expired (api_key_expired) — issue a new Pool API key and set ${keySetting} to it`,
      };
    case "model_not_allowed":
      return {
        code,
        reason:
          "this API key may not use the requested model (model_not_allowed) — allow the model for this key in the pool, or use one of the models its /v1/models lists",
      };
    case "invalid_model":
      return {
        code,
        reason:
          "the pool does not serve the requested model (invalid_model) — use a model id its /v1/models lists, in kilo-fleet:models and kilo-fleet:model",
      };
    case "quota_exhausted":
      return {
        code,
        reason:
          "the pool's upstream quota is exhausted until its reset time (quota_exhausted) — retry after the reset, or add upstream capacity to the pool",
      };
    case "no_eligible_backend":
      return {
        code,
        reason:
          "the pool has no healthy upstream account for this model right now (no_eligible_backend) — check the pool's upstreams, then retry",
      };
  }
  if ((code !== undefined && RATE_LIMIT_CODES.has(code)) || status === 429) {
    return {
      code: "rate_limited",
      reason: `the pool is rate limiting requests (${code ?? "HTTP 429"}) — retry later, or raise the key's or the pool's limits`,
    };
  }
  const what = code ? `HTTP ${status}, ${code}` : `HTTP ${status}`;
  if (status === 401 || status === 403) {
    return {
      code: "http_error",
      reason: `the pool refused the request (${what}) — check ${keySetting} and the key's policy in the pool`,
    };
  }
  return { code: "http_error", reason: `the pool answered ${what}` };
}

/** The base URL as printed: origin and path, never credentials, query or fragment. */
function shown(u: URL): string {
  return `${u.origin}${u.pathname.replace(/\/+$/, "")}`;
}

/** `<prefix>/readyz` and `<prefix>/v1/models` for a `/v1` base URL, or why the URL cannot be used. */
export function poolEndpoints(
  baseUrl: string,
): { ok: true; base: string; readyz: string; models: string } | { ok: false; reason: string } {
  let u: URL;
  try {
    u = new URL(baseUrl);
  } catch {
    return { ok: false, reason: "the pooler base URL is not a URL (kilo-fleet:poolerBaseUrl)" };
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    return { ok: false, reason: `the pooler base URL must be http or https, not ${u.protocol.replace(/:$/, "")}` };
  }
  if (u.username || u.password || u.search || u.hash) {
    return { ok: false, reason: "the pooler base URL must not carry credentials, a query or a fragment" };
  }
  const path = u.pathname.replace(/\/+$/, "");
  if (!path.endsWith("/v1")) {
    return { ok: false, reason: `the pooler base URL must end in /v1 (got ${shown(u)})` };
  }
  const prefix = `${u.origin}${path.slice(0, -"/v1".length)}`;
  return { ok: true, base: shown(u), readyz: `${prefix}/readyz`, models: `${prefix}/v1/models` };
}

/** Why a fetch threw: a timeout, a TLS problem or a connection error, by code only. */
function fetchFailure(e: unknown, base: string, timeoutMs: number): { code: PoolCheckCode; reason: string } {
  if (e instanceof ProxyFailure) return { code: "proxy", reason: e.message };
  const err = e as { name?: string; code?: unknown; cause?: { code?: unknown; name?: string } };
  if (err?.name === "TimeoutError" || err?.name === "AbortError" || err?.cause?.name === "TimeoutError") {
    return {
      code: "timeout",
      reason: `the pooler at ${base} did not answer within ${timeoutMs % 1000 === 0 ? `${timeoutMs / 1000} s` : `${timeoutMs} ms`}`,
    };
  }
  // node: `TypeError: fetch failed` with `cause.code` (ECONNREFUSED, ENOTFOUND, CERT_HAS_EXPIRED…); Bun: `code`.
  const raw = err?.cause?.code ?? err?.code;
  const upper = typeof raw === "string" && /^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(raw) ? raw : undefined;
  if (upper && /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY/i.test(upper)) {
    return {
      code: "unreachable",
      reason: `TLS: the pooler at ${base} failed the certificate check (${upper}) — fix its certificate, or trust its CA with kilo-fleet:caCertificates`,
    };
  }
  return { code: "unreachable", reason: `the pooler is unreachable at ${base}${upper ? ` (${upper})` : ""}` };
}

function parseModels(body: unknown): PoolModel[] | undefined {
  const data = body && typeof body === "object" ? (body as { data?: unknown }).data : undefined;
  if (!Array.isArray(data)) return undefined;
  const out: PoolModel[] = [];
  for (const m of data) {
    if (!m || typeof m !== "object") return undefined;
    const r = m as Record<string, unknown>;
    if (typeof r.id !== "string" || r.id === "") return undefined;
    const model: PoolModel = { id: r.id };
    if (typeof r.context_length === "number" && Number.isInteger(r.context_length) && r.context_length > 0) {
      model.contextLength = r.context_length;
    }
    if (typeof r.display_name === "string") model.displayName = r.display_name;
    if (Array.isArray(r.input_modalities) && r.input_modalities.every((x) => typeof x === "string")) {
      model.inputModalities = r.input_modalities as string[];
    }
    if (typeof r.supports_tools === "boolean") model.supportsTools = r.supports_tools;
    if (typeof r.supports_reasoning === "boolean") model.supportsReasoning = r.supports_reasoning;
    out.push(model);
  }
  return out;
}

function listIds(models: readonly PoolModel[]): string {
  return models.length === 0 ? "none" : models.map((m) => m.id).join(", ");
}

/**
 * Asks `/readyz`, then `/v1/models` with the key: no tokens spent. Redirects are not followed (a
 * redirect would carry the key elsewhere); they fail with code `redirect`.
 */
export async function checkPool(options: PoolCheckOptions): Promise<PoolCheckResult> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const keySetting = options.keySetting ?? DEFAULT_KEY_SETTING;
  const endpoints = poolEndpoints(options.baseUrl);
  if (!endpoints.ok) return { ok: false, code: "bad_url", reason: endpoints.reason };
  const { base } = endpoints;
  if (!options.apiKey) {
    return { ok: false, code: "api_key_missing", reason: `no API key is set — set ${keySetting} to a Pool API key` };
  }
  const deadline = Date.now() + timeoutMs;
  const request = async (url: string, headers: Record<string, string>) => {
    let via: ReturnType<typeof proxyFor>;
    try {
      via = options.proxyEnv ? proxyFor(new URL(url), options.proxyEnv) : undefined;
    } catch (e) {
      throw new ProxyFailure((e as Error).message);
    }
    if (via) {
      const setting = options.proxySetting ?? via.from;
      return proxiedGet(new URL(url), { accept: "application/json", ...headers }, via.proxy, deadline, setting);
    }
    const signal = AbortSignal.timeout(Math.max(1, deadline - Date.now()));
    const res = await fetch(url, { headers: { accept: "application/json", ...headers }, redirect: "manual", signal });
    const text = await res.text();
    return { status: res.status, text };
  };
  const json = (text: string): unknown => {
    try {
      return JSON.parse(text);
    } catch {
      return undefined;
    }
  };

  // 1. Readiness. No /readyz at all (404/405, another gateway, a proxy that routes only /v1) is not fatal.
  let readiness: "ready" | "unknown" = "unknown";
  try {
    const r = await request(endpoints.readyz, {});
    const status = (json(r.text) as { status?: unknown } | undefined)?.status;
    if (r.status === 200 && status === "ready") readiness = "ready";
    else if (r.status === 503 || status === "unavailable") {
      return {
        ok: false,
        code: "not_ready",
        status: r.status,
        reason: `the pooler at ${base} is not ready (/readyz: HTTP ${r.status}${status === "unavailable" ? ", unavailable" : ""}) — it is starting, draining or cannot reach its database; retry when it is ready`,
      };
    } else if (r.status >= 500) {
      return {
        ok: false,
        code: "not_ready",
        status: r.status,
        reason: `the pooler at ${base} is not ready (/readyz: HTTP ${r.status})`,
      };
    }
  } catch (e) {
    const f = fetchFailure(e, base, timeoutMs);
    return { ok: false, ...f };
  }

  // 2. The key's models.
  let r: { status: number; text: string };
  try {
    r = await request(endpoints.models, { authorization: `Bearer ${options.apiKey}` });
  } catch (e) {
    return { ok: false, ...fetchFailure(e, base, timeoutMs) };
  }
  if (r.status >= 300 && r.status < 400) {
    return {
      ok: false,
      code: "redirect",
      status: r.status,
      reason: `the pooler at ${base} redirects /v1/models (HTTP ${r.status}); not followed, so the key goes nowhere else — set kilo-fleet:poolerBaseUrl to the final URL`,
    };
  }
  const body = json(r.text);
  if (r.status !== 200) {
    const mapped = poolErrorReason(r.status, body ?? r.text, { keySetting });
    return { ok: false, code: mapped.code, status: r.status, reason: mapped.reason };
  }
  const models = parseModels(body);
  if (!models) {
    return {
      ok: false,
      code: "bad_response",
      status: r.status,
      reason: `the pooler at ${base} answered /v1/models with something that is not a model list — is kilo-fleet:poolerBaseUrl a Codex Pooler's /v1 base?`,
    };
  }
  const wanted = [...new Set(options.models ?? [])];
  const notAllowed = wanted.filter((id) => !models.some((m) => m.id === id));
  if (notAllowed.length > 0) {
    const them = notAllowed.length === 1 ? "it" : "them";
    return {
      ok: false,
      code: "model_not_allowed",
      status: r.status,
      notAllowed,
      models,
      reason: `this API key may not use ${notAllowed.join(", ")} (model_not_allowed: the pool lacks ${them} or the key's policy excludes ${them}) — it may use: ${listIds(models)}; fix kilo-fleet:models, or the key's models in the pool`,
    };
  }
  return { ok: true, readiness, models };
}

/** A `kilo-fleet:models` entry, as far as limits go. */
export interface ModelLimitSettings {
  limit?: { context?: number; input?: number; output?: number };
}

export interface ContextLimitWarning {
  model: string;
  /** The setting to change, e.g. `kilo-fleet:models.gpt-5.5.limit`. */
  setting: string;
  poolContextLength: number;
  /** What one turn may reach by kilo's arithmetic (usable input + output); absent without `limit.output`. */
  tokensNeeded?: number;
  /** Limits that fit the pool's window the way the seed's fit theirs (common/contextWindow.ts). */
  fits?: { context: number; input: number; output: number };
  message: string;
}

/**
 * One warning per configured model whose limits let a turn overflow the pool's `context_length` by kilo
 * 7.7.7's own arithmetic (common/contextWindow.ts: usable input, after `compaction`, plus `limit.output`),
 * naming limits that fit. A model without `limit.output`: its `limit.context`/`limit.input` over the window.
 */
export function contextLimitWarnings(
  models: Readonly<Record<string, ModelLimitSettings>>,
  poolModels: readonly PoolModel[],
  compaction: CompactionSettings = {},
): ContextLimitWarning[] {
  const out: ContextLimitWarning[] = [];
  for (const [id, m] of Object.entries(models)) {
    const pool = poolModels.find((p) => p.id === id)?.contextLength;
    if (pool === undefined) continue;
    const setting = `kilo-fleet:models.${id}.limit`;
    const { context, input, output } = m.limit ?? {};
    if (typeof context === "number" && typeof output === "number") {
      const limit = { context, output, ...(typeof input === "number" ? { input } : {}) };
      const needed = tokensNeeded(limit, compaction);
      if (needed <= pool) continue;
      const fits = limitsForWindow(pool, output, compaction);
      // Short (it is kept in the smoke step's result and the stack output): the setting names the model.
      out.push({
        model: id,
        setting,
        poolContextLength: pool,
        tokensNeeded: needed,
        fits,
        message: `${setting} reaches ${needed} tokens, over the pool's context_length ${pool}; fits: limit.context ${fits.context}, limit.input ${fits.input}`,
      });
      continue;
    }
    const over = (["context", "input"] as const).filter((k) => {
      const v = m.limit?.[k];
      return typeof v === "number" && v > pool;
    });
    if (over.length === 0) continue;
    const what = over.map((k) => `${setting}.${k} ${m.limit?.[k]}`).join(" and ");
    const one = over.length === 1;
    out.push({
      model: id,
      setting: `${setting}.${over[0]}`,
      poolContextLength: pool,
      message: `${what} exceed${one ? "s" : ""} the pool's context_length ${pool}: set ${one ? "it" : "them"} to at most ${pool}`,
    });
  }
  return out;
}
