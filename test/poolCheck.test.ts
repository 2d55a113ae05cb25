/**
 * host/poolCheck.ts against the stand-in pooler (and a few raw HTTP servers for what the stand-in is
 * not): every failure code with its one-line reason, a pooler under a path prefix, no tokens spent,
 * the key in no reason; poolErrorReason maps by code only; contextLimitWarnings.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { type FakePooler, type FakePoolerOptions, startFakePooler } from "../harness/fakePooler";
import {
  checkPool,
  contextLimitWarnings,
  type PoolCheckResult,
  poolEndpoints,
  poolErrorReason,
} from "../host/poolCheck";

const KEY = "test-key-poolcheck-active-7f3a";
const LIMITED = "test-key-poolcheck-limited-21";
const DISABLED = "test-key-poolcheck-disabled-3";
const EXPIRED = "test-key-poolcheck-expired-44";
const UNKNOWN = "test-key-poolcheck-unknown-55";
const ALL_KEYS = [KEY, LIMITED, DISABLED, EXPIRED, UNKNOWN];

const MODELS = [
  { id: "gpt-5.5", contextLength: 258_400 },
  { id: "gpt-5.5-mini", contextLength: 121_600 },
];

let pooler: FakePooler | undefined;
const servers: Server[] = [];
afterEach(async () => {
  await pooler?.stop();
  pooler = undefined;
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

function start(extra: Partial<FakePoolerOptions> = {}) {
  return startFakePooler({
    keys: KEY,
    apiKeys: {
      [LIMITED]: { models: ["gpt-5.5-mini"] },
      [DISABLED]: { status: "disabled" },
      [EXPIRED]: { status: "expired" },
    },
    models: MODELS,
    ...extra,
  });
}

/** A raw HTTP server on loopback, for answers the stand-in does not give. */
async function rawServer(
  handler: (
    path: string,
    auth: string | undefined,
  ) => { status: number; body?: string; headers?: Record<string, string> } | "hang",
) {
  const seen: { path: string; auth?: string }[] = [];
  const server = createServer((req, res) => {
    const path = req.url ?? "/";
    seen.push({ path, auth: req.headers.authorization });
    const a = handler(path, req.headers.authorization);
    if (a === "hang") return;
    res.writeHead(a.status, { "content-type": "application/json", ...a.headers });
    res.end(a.body ?? "");
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

/** The failure's fields; fails when the check passed. Never a key in the reason. */
function failure(r: PoolCheckResult) {
  if (r.ok) throw new Error(`expected a failure, got ${JSON.stringify(r)}`);
  for (const k of ALL_KEYS) expect(r.reason).not.toContain(k);
  expect(r.reason).not.toContain("\n");
  return r;
}

const chats = (p: FakePooler) => p.requests.filter((q) => q.path.endsWith("/chat/completions"));

describe("checkPool against the stand-in", () => {
  it("ok: ready, and the key's models with their context_length; two requests, no tokens", async () => {
    pooler = await start();
    const r = await checkPool({ baseUrl: pooler.url, apiKey: KEY, models: ["gpt-5.5"] });
    expect(r).toEqual({
      ok: true,
      readiness: "ready",
      models: [
        { id: "gpt-5.5", contextLength: 258_400 },
        { id: "gpt-5.5-mini", contextLength: 121_600 },
      ],
    });
    expect(pooler.requests.map((q) => [q.method, q.path, q.key])).toEqual([
      ["GET", "/readyz", undefined],
      ["GET", "/v1/models", KEY],
    ]);
    expect(chats(pooler)).toEqual([]);
  });

  it("a pooler under a path prefix: /pool/readyz and /pool/v1/models", async () => {
    pooler = await start({ pathPrefix: "/pool" });
    const r = await checkPool({ baseUrl: pooler.url, apiKey: KEY });
    expect(r.ok).toBe(true);
    expect(pooler.requests.map((q) => [q.path, q.status])).toEqual([
      ["/pool/readyz", 200],
      ["/pool/v1/models", 200],
    ]);
  });

  it.each([
    [
      "unknown",
      UNKNOWN,
      "api_key_missing",
      "the pool does not know this API key (api_key_missing) — set kilo-fleet:codexPoolerApiKey (or kilo-fleet:apiKeys.<host>) to a valid Pool API key",
    ],
    [
      "disabled",
      DISABLED,
      "api_key_disabled",
      "the pool has disabled this API key (api_key_disabled: paused or revoked) — re-enable it in the pool, or set kilo-fleet:codexPoolerApiKey (or kilo-fleet:apiKeys.<host>) to an active Pool API key",
    ],
    [
      "expired",
      EXPIRED,
      "api_key_expired",
      "this API key has expired (api_key_expired) — issue a new Pool API key and set kilo-fleet:codexPoolerApiKey (or kilo-fleet:apiKeys.<host>) to it",
    ],
  ])("a %s key: %s, says which", async (_what, key, code, reason) => {
    pooler = await start({ echoKey: true });
    const r = failure(await checkPool({ baseUrl: pooler.url, apiKey: key, models: ["gpt-5.5"] }));
    expect(r).toEqual({ ok: false, code, status: 401, reason });
  });

  it("keySetting names the setting to fix", async () => {
    pooler = await start();
    const r = failure(await checkPool({ baseUrl: pooler.url, apiKey: UNKNOWN, keySetting: "$CODEX_POOLER_API_KEY" }));
    expect(r.reason).toBe(
      "the pool does not know this API key (api_key_missing) — set $CODEX_POOLER_API_KEY to a valid Pool API key",
    );
  });

  it("a configured model this key may not use: named, with what it may use", async () => {
    pooler = await start();
    const r = failure(
      await checkPool({ baseUrl: pooler.url, apiKey: LIMITED, models: ["gpt-5.5", "gpt-5.5-mini", "gpt-9"] }),
    );
    expect(r).toMatchObject({
      code: "model_not_allowed",
      notAllowed: ["gpt-5.5", "gpt-9"],
      models: [{ id: "gpt-5.5-mini", contextLength: 121_600 }],
    });
    expect(r.reason).toBe(
      "this API key may not use gpt-5.5, gpt-9 (model_not_allowed: the pool lacks them or the key's policy excludes them) — it may use: gpt-5.5-mini; fix kilo-fleet:models, or the key's models in the pool",
    );
    const one = failure(await checkPool({ baseUrl: pooler.url, apiKey: KEY, models: ["gpt-9"] }));
    expect(one.reason).toMatch(/^this API key may not use gpt-9 \(model_not_allowed: the pool lacks it or/);
    expect(one.reason).toContain("it may use: gpt-5.5, gpt-5.5-mini;");
    expect(chats(pooler)).toEqual([]);
  });

  it("a key that may use no model says so", async () => {
    pooler = await start({ apiKeys: { [LIMITED]: { models: [] } } });
    const r = failure(await checkPool({ baseUrl: pooler.url, apiKey: LIMITED, models: ["gpt-5.5"] }));
    expect(r.reason).toContain("it may use: none;");
  });

  it.each([
    [
      "quota_exhausted",
      "quota_exhausted",
      503,
      /^the pool's upstream quota is exhausted until its reset time \(quota_exhausted\)/,
    ],
    [
      "no_eligible_backend",
      "no_eligible_backend",
      503,
      /^the pool has no healthy upstream account for this model right now \(no_eligible_backend\)/,
    ],
    [
      "upstream_rate_limited",
      "rate_limited",
      429,
      /^the pool is rate limiting requests \(upstream_rate_limited\) — retry later/,
    ],
    [
      "rate_limit_exceeded",
      "rate_limited",
      429,
      /^the pool is rate limiting requests \(rate_limit_exceeded\) — retry later/,
    ],
  ] as const)("a scrubbed %s: code %s, told apart by code only", async (poolCode, code, status, reason) => {
    pooler = await start({ failure: { code: poolCode, on: "all" } });
    const r = failure(await checkPool({ baseUrl: pooler.url, apiKey: KEY }));
    expect(r).toMatchObject({ code, status });
    expect(r.reason).toMatch(reason);
    expect(r.reason).not.toContain("upstream request failed");
  });

  it("not ready: /readyz 503, and the key is not even sent", async () => {
    pooler = await start({ ready: false });
    const r = failure(await checkPool({ baseUrl: pooler.url, apiKey: KEY }));
    expect(r).toMatchObject({ code: "not_ready", status: 503 });
    expect(r.reason).toBe(
      `the pooler at ${pooler.url} is not ready (/readyz: HTTP 503, unavailable) — it is starting, draining or cannot reach its database; retry when it is ready`,
    );
    expect(pooler.requests.map((q) => q.path)).toEqual(["/readyz"]);
  });

  it("unreachable: the connection is refused, with the base URL and the error code", async () => {
    pooler = await start();
    const url = pooler.url;
    await pooler.stop();
    pooler = undefined;
    const r = failure(await checkPool({ baseUrl: url, apiKey: KEY }));
    expect(r).toEqual({ ok: false, code: "unreachable", reason: `the pooler is unreachable at ${url} (ECONNREFUSED)` });
  });

  it("a legacy gateway's 401 with its own code (the stand-in's mode 401): http_error, the key not repeated", async () => {
    pooler = await start({ mode: "401" });
    const r = failure(await checkPool({ baseUrl: pooler.url, apiKey: KEY }));
    expect(r).toMatchObject({ code: "http_error", status: 401 });
    expect(r.reason).toBe(
      "the pool refused the request (HTTP 401, invalid_api_key) — check kilo-fleet:codexPoolerApiKey (or kilo-fleet:apiKeys.<host>) and the key's policy in the pool",
    );
  });
});

describe("checkPool against other servers", () => {
  it("timeout: a server that never answers, within the budget", async () => {
    const s = await rawServer(() => "hang");
    const t0 = Date.now();
    const r = failure(await checkPool({ baseUrl: `${s.url}/v1`, apiKey: KEY, timeoutMs: 300 }));
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(r).toEqual({ ok: false, code: "timeout", reason: `the pooler at ${s.url}/v1 did not answer within 300 ms` });
  });

  it("no /readyz (another gateway, or a proxy that routes /v1 only): readiness unknown, the check goes on", async () => {
    const s = await rawServer((path) =>
      path === "/v1/models"
        ? { status: 200, body: JSON.stringify({ object: "list", data: [{ id: "m1", context_length: 1000 }] }) }
        : { status: 404, body: "{}" },
    );
    const r = await checkPool({ baseUrl: `${s.url}/v1/`, apiKey: KEY, models: ["m1"] });
    expect(r).toEqual({ ok: true, readiness: "unknown", models: [{ id: "m1", contextLength: 1000 }] });
  });

  it("a redirect is not followed: the key never reaches the other server", async () => {
    const elsewhere = await rawServer(() => ({ status: 200, body: '{"data":[]}' }));
    const s = await rawServer((path) =>
      path === "/readyz"
        ? { status: 200, body: '{"status":"ready"}' }
        : { status: 302, headers: { location: `${elsewhere.url}/v1/models` } },
    );
    const r = failure(await checkPool({ baseUrl: `${s.url}/v1`, apiKey: KEY }));
    expect(r).toMatchObject({ code: "redirect", status: 302 });
    expect(elsewhere.seen).toEqual([]);
  });

  it("bad_response: a 200 that is not a model list", async () => {
    const s = await rawServer((path) =>
      path === "/readyz" ? { status: 200, body: '{"status":"ready"}' } : { status: 200, body: "<html>hi</html>" },
    );
    const r = failure(await checkPool({ baseUrl: `${s.url}/v1`, apiKey: KEY }));
    expect(r.code).toBe("bad_response");
  });

  it("http_error: a 500 with a body full of server text (and the key): none of it printed", async () => {
    const s = await rawServer((path, auth) =>
      path === "/readyz"
        ? { status: 200, body: '{"status":"ready"}' }
        : {
            status: 500,
            body: JSON.stringify({ error: { code: "Internal Error!", message: `boom ${auth}` } }),
          },
    );
    const r = failure(await checkPool({ baseUrl: `${s.url}/v1`, apiKey: KEY }));
    expect(r).toEqual({ ok: false, code: "http_error", status: 500, reason: "the pool answered HTTP 500" });
  });

  it("not_ready on a 5xx /readyz too", async () => {
    const s = await rawServer(() => ({ status: 502, body: "bad gateway" }));
    const r = failure(await checkPool({ baseUrl: `${s.url}/v1`, apiKey: KEY }));
    expect(r).toMatchObject({ code: "not_ready", status: 502 });
    expect(s.seen.map((q) => q.path)).toEqual(["/readyz"]);
  });

  it("bad_url and a missing key fail before any request", async () => {
    for (const [url, reason] of [
      ["http://127.0.0.1:1/v2", "the pooler base URL must end in /v1 (got http://127.0.0.1:1/v2)"],
      ["http://user:pw@127.0.0.1:1/v1", "the pooler base URL must not carry credentials, a query or a fragment"],
      ["ftp://127.0.0.1/v1", "the pooler base URL must be http or https, not ftp"],
      ["not a url", "the pooler base URL is not a URL (kilo-fleet:poolerBaseUrl)"],
    ]) {
      expect(await checkPool({ baseUrl: url, apiKey: KEY })).toEqual({ ok: false, code: "bad_url", reason });
    }
    const s = await rawServer(() => ({ status: 200, body: "{}" }));
    expect(await checkPool({ baseUrl: `${s.url}/v1`, apiKey: "" })).toMatchObject({
      ok: false,
      code: "api_key_missing",
    });
    expect(s.seen).toEqual([]);
  });
});

describe("poolEndpoints", () => {
  it("puts /readyz beside /v1, under any path prefix", () => {
    expect(poolEndpoints("https://p.example.com/v1")).toEqual({
      ok: true,
      base: "https://p.example.com/v1",
      readyz: "https://p.example.com/readyz",
      models: "https://p.example.com/v1/models",
    });
    expect(poolEndpoints("https://p.example.com:8443/teams/a/pool/v1/")).toMatchObject({
      readyz: "https://p.example.com:8443/teams/a/pool/readyz",
      models: "https://p.example.com:8443/teams/a/pool/v1/models",
    });
  });
});

describe("poolErrorReason", () => {
  const scrubbed = (code: string) => ({ error: { message: "upstream request failed", type: "server_error", code } });

  it("maps by code: the same scrubbed message gives a different reason per code", () => {
    const codes = ["model_not_allowed", "quota_exhausted", "no_eligible_backend", "upstream_rate_limited"];
    const reasons = codes.map((c) => poolErrorReason(c === "model_not_allowed" ? 403 : 503, scrubbed(c)));
    expect(reasons.map((r) => r.code)).toEqual([
      "model_not_allowed",
      "quota_exhausted",
      "no_eligible_backend",
      "rate_limited",
    ]);
    expect(new Set(reasons.map((r) => r.reason)).size).toBe(4);
    for (const r of reasons) expect(r.reason).not.toContain("upstream request failed");
  });

  it("never by the message: a message that says one thing with another code follows the code", () => {
    const body = { error: { message: "api key is disabled", code: "quota_exhausted" } };
    expect(poolErrorReason(503, body).code).toBe("quota_exhausted");
    expect(poolErrorReason(401, { error: { message: "api key is expired" } }).code).toBe("http_error");
  });

  it("reads a JSON string body; falls back on the status; prints only code-like codes", () => {
    expect(poolErrorReason(401, JSON.stringify({ error: { code: "api_key_expired" } })).code).toBe("api_key_expired");
    expect(poolErrorReason(429, "Too Many Requests")).toEqual({
      code: "rate_limited",
      reason: "the pool is rate limiting requests (HTTP 429) — retry later, or raise the key's or the pool's limits",
    });
    expect(poolErrorReason(400, { error: { code: "invalid_model" } }).reason).toMatch(/^the pool does not serve/);
    expect(poolErrorReason(502, { error: { code: `sk-secret ${KEY}` } }).reason).toBe("the pool answered HTTP 502");
    expect(poolErrorReason(500, "<html>")).toEqual({ code: "http_error", reason: "the pool answered HTTP 500" });
  });
});

describe("contextLimitWarnings (kilo 7.7.7's arithmetic: issue 17, item 10)", () => {
  const pool = [{ id: "gpt-5.5", contextLength: 258_400 }, { id: "gpt-5.5-mini" }];
  type Limit = { context?: number; input?: number; output?: number };
  const w = (limit: Limit, compaction?: { reserved?: number; thresholdPercent?: number | null }) =>
    contextLimitWarnings({ "gpt-5.5": { limit } }, pool, compaction);

  it("the seed's limits on a 258400 pool: a turn reaches 228000 − 20000 + 64000 = 272000; the fitting values are named", () => {
    expect(
      contextLimitWarnings(
        {
          "gpt-5.5": { limit: { context: 272_000, input: 228_000, output: 64_000 } },
          "gpt-5.5-mini": { limit: { context: 999_999, output: 1 } },
          "not-in-pool": { limit: { context: 999_999 } },
        },
        pool,
      ),
    ).toEqual([
      {
        model: "gpt-5.5",
        setting: "kilo-fleet:models.gpt-5.5.limit",
        poolContextLength: 258_400,
        tokensNeeded: 272_000,
        fits: { context: 258_400, input: 214_400, output: 64_000 },
        message:
          "kilo-fleet:models.gpt-5.5.limit reaches 272000 tokens, over the pool's context_length 258400; fits: limit.context 258400, limit.input 214400",
      },
    ]);
    // threshold_percent 75 compacts at min(208000, 272000 × 0.75 = 204000): 204000 + 64000 still overflows.
    expect(w({ context: 272_000, input: 228_000, output: 64_000 }, { thresholdPercent: 75 })[0]?.tokensNeeded).toBe(
      268_000,
    );
  });

  it("limit.input = context_length (what `models` printed) overflows without a threshold, fits with 75 %", () => {
    const naive = { context: 258_400, input: 258_400, output: 64_000 };
    // 258400 − 20000 + 64000.
    expect(w(naive).map((x) => x.tokensNeeded)).toEqual([302_400]);
    expect(w(naive, { thresholdPercent: null }).map((x) => x.tokensNeeded)).toEqual([302_400]);
    // min(238400, 258400 × 0.75 = 193800) + 64000 = 257800.
    expect(w(naive, { thresholdPercent: 75 })).toEqual([]);
    // min(238400, 258400 × 0.8 = 206720) + 64000 = 270720.
    expect(w(naive, { thresholdPercent: 80 }).map((x) => x.tokensNeeded)).toEqual([270_720]);
  });

  it("lowering limit.context alone (the old advice) keeps the hole: without limit.input kilo uses context − 32000", () => {
    // 258400 − min(64000, 32000) + 64000.
    expect(w({ context: 258_400, output: 64_000 }).map((x) => x.tokensNeeded)).toEqual([290_400]);
  });

  it("the values it names fit, with and without a threshold, and with compaction.reserved", () => {
    for (const compaction of [{}, { thresholdPercent: 80 }, { thresholdPercent: 100 }, { reserved: 50_000 }]) {
      const [warning] = w({ context: 258_400, input: 258_400, output: 64_000 }, compaction);
      expect(warning?.fits).toBeDefined();
      expect(w(warning?.fits ?? {}, compaction)).toEqual([]);
    }
    // compaction.reserved replaces the 20000: 258400 − 64000 + 50000.
    expect(w({ context: 258_400, input: 258_400, output: 64_000 }, { reserved: 50_000 })[0]?.fits).toEqual({
      context: 258_400,
      input: 244_400,
      output: 64_000,
    });
    // Exactly the window: no warning (194400 + 64000 = 258400).
    expect(w({ context: 258_400, input: 214_400, output: 64_000 })).toEqual([]);
  });

  it("a model without limit.output: its limit.context or limit.input over the window", () => {
    expect(w({ context: 200_000, input: 260_000 }).map((x) => x.message)).toEqual([
      "kilo-fleet:models.gpt-5.5.limit.input 260000 exceeds the pool's context_length 258400: set it to at most 258400",
    ]);
    expect(w({ context: 300_000, input: 260_000 }).map((x) => x.message)).toEqual([
      "kilo-fleet:models.gpt-5.5.limit.context 300000 and kilo-fleet:models.gpt-5.5.limit.input 260000 exceed the pool's context_length 258400: set them to at most 258400",
    ]);
    expect(w({ context: 258_400 })).toEqual([]);
  });
});
