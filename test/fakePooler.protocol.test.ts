/**
 * The stand-in pooler speaks the real Codex Pooler's protocol (icoretech/codex-pooler 0.6.8): readiness,
 * per-key policies and their 401 codes, per-key `/v1/models` with `context_length`, 400 `invalid_model`,
 * the scrubbed 403/429/503 errors, a pooler under a path prefix, `finish_reason`, and the request log's
 * byte counts.
 */
import { afterEach, describe, expect, it } from "vitest";
import {
  DEFAULT_POOL_MODEL,
  effectiveContextLength,
  type FakePooler,
  POOL_FAILURES,
  type PoolFailureCode,
  startFakePooler,
} from "../harness/fakePooler";

const ACTIVE = "test-key-proto-active-1";
const LIMITED = "test-key-proto-limited-2";
const DISABLED = "test-key-proto-disabled-3";
const EXPIRED = "test-key-proto-expired-4";

const POOL_MODELS = [
  { id: "gpt-5.5", contextLength: 258_400 },
  { id: "gpt-5.5-mini", contextLength: 121_600 },
  "gpt-5.5-nocontext",
];

let pooler: FakePooler | undefined;
afterEach(async () => {
  await pooler?.stop();
  pooler = undefined;
});

function policyPooler(extra: Parameters<typeof startFakePooler>[0] = {}) {
  return startFakePooler({
    keys: ACTIVE,
    apiKeys: {
      [LIMITED]: { models: ["gpt-5.5-mini"] },
      [DISABLED]: { status: "disabled" },
      [EXPIRED]: { status: "expired" },
    },
    models: POOL_MODELS,
    ...extra,
  });
}

function chat(p: FakePooler, key: string | null, model = "gpt-5.5", path = "/chat/completions") {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (key !== null) headers.authorization = `Bearer ${key}`;
  return fetch(`${p.url}${path}`, {
    method: "POST",
    headers,
    body: JSON.stringify({ model, stream: true, messages: [{ role: "user", content: "hello" }] }),
  });
}

function models(p: FakePooler, key: string | null) {
  return fetch(`${p.url}/models`, key === null ? {} : { headers: { authorization: `Bearer ${key}` } });
}

describe("readiness and liveness", () => {
  it("/readyz is 200 ready, 503 unavailable after setReady(false), and back; no key needed", async () => {
    pooler = await policyPooler();
    const origin = `http://127.0.0.1:${pooler.port}`;
    const r1 = await fetch(`${origin}/readyz`);
    expect([r1.status, await r1.json()]).toEqual([200, { status: "ready" }]);
    pooler.setReady(false);
    const r2 = await fetch(`${origin}/readyz`);
    expect([r2.status, r2.headers.get("content-type"), await r2.json()]).toEqual([
      503,
      "application/json",
      { status: "unavailable" },
    ]);
    // Liveness, as the real pooler: up is up, whatever readiness says.
    const h = await fetch(`${origin}/healthz`);
    expect([h.status, await h.json()]).toEqual([200, { status: "ok" }]);
    pooler.setReady(true);
    expect((await fetch(`${origin}/readyz`)).status).toBe(200);
    expect(pooler.requests.map((r) => [r.path, r.status, r.reply, r.authorized])).toEqual([
      ["/readyz", 200, "ready", false],
      ["/readyz", 503, "unready", false],
      ["/healthz", 200, "health", false],
      ["/readyz", 200, "ready", false],
    ]);
  });

  it("ready: false at start", async () => {
    pooler = await startFakePooler({ keys: ACTIVE, ready: false });
    expect((await fetch(`http://127.0.0.1:${pooler.port}/readyz`)).status).toBe(503);
  });
});

describe("API keys", () => {
  it.each([
    ["unknown", "test-key-proto-unknown-9", "api_key_missing", "api key is required"],
    ["missing", null, "api_key_missing", "api key is required"],
    ["disabled", DISABLED, "api_key_disabled", "api key is disabled"],
    ["expired", EXPIRED, "api_key_expired", "api key is expired"],
  ])("a %s key: 401 %s on /v1/models and on chat completions", async (_what, key, code, message) => {
    pooler = await policyPooler();
    for (const res of [await models(pooler, key), await chat(pooler, key)]) {
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({ error: { code, message, param: null, type: "invalid_request_error" } });
    }
    expect(pooler.requests.map((r) => [r.status, r.reply, r.code, r.authorized])).toEqual([
      [401, "unauthorized", code, false],
      [401, "unauthorized", code, false],
    ]);
  });

  it("/v1/models lists what this key may use, with context_length when known", async () => {
    pooler = await policyPooler();
    const all = await models(pooler, ACTIVE);
    expect(all.status).toBe(200);
    expect(await all.json()).toEqual({
      object: "list",
      data: [
        { id: "gpt-5.5", object: "model", created: 0, owned_by: "codex-pooler", context_length: 258_400 },
        { id: "gpt-5.5-mini", object: "model", created: 0, owned_by: "codex-pooler", context_length: 121_600 },
        { id: "gpt-5.5-nocontext", object: "model", created: 0, owned_by: "codex-pooler" },
      ],
    });
    const limited = (await (await models(pooler, LIMITED)).json()) as { data: { id: string }[] };
    expect(limited.data.map((m) => m.id)).toEqual(["gpt-5.5-mini"]);
    expect(pooler.requests.map((r) => [r.reply, r.authorized])).toEqual([
      ["models", true],
      ["models", true],
    ]);
  });

  it("context_length is 95 % of the raw window; the default pool lists gpt-5.5 at 258400", async () => {
    expect(effectiveContextLength(272_000)).toBe(258_400);
    expect(effectiveContextLength(872_000)).toBe(828_400);
    pooler = await startFakePooler({ keys: ACTIVE });
    expect(await (await models(pooler, ACTIVE)).json()).toMatchObject({
      data: [{ id: "gpt-5.5", context_length: 258_400 }],
    });
    expect(DEFAULT_POOL_MODEL).toEqual({ id: "gpt-5.5", contextLength: 258_400 });
  });

  it("setKeyPolicy changes and removes a key's policy at run time", async () => {
    pooler = await policyPooler();
    pooler.setKeyPolicy(ACTIVE, { status: "disabled" });
    expect(await (await models(pooler, ACTIVE)).json()).toMatchObject({ error: { code: "api_key_disabled" } });
    pooler.setKeyPolicy(ACTIVE, undefined); // back to the plain active key of `keys`
    expect((await models(pooler, ACTIVE)).status).toBe(200);
    pooler.setKeyPolicy(DISABLED, undefined); // unknown now
    expect(await (await models(pooler, DISABLED)).json()).toMatchObject({ error: { code: "api_key_missing" } });
  });
});

describe("models in chat completions", () => {
  it("a model the pool lacks: 400 invalid_model, param model", async () => {
    pooler = await policyPooler();
    const res = await chat(pooler, ACTIVE, "gpt-9");
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      error: {
        code: "invalid_model",
        message: "model is not available for this pool",
        param: "model",
        type: "invalid_request_error",
      },
    });
    expect(pooler.requests[0]).toMatchObject({ reply: "invalid_model", code: "invalid_model", authorized: true });
  });

  it("a pool model this key may not use: 403 model_not_allowed, scrubbed", async () => {
    pooler = await policyPooler();
    const res = await chat(pooler, LIMITED, "gpt-5.5");
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({
      error: { code: "model_not_allowed", message: "upstream request failed", type: "server_error" },
    });
    const ok = await chat(pooler, LIMITED, "gpt-5.5-mini");
    expect(ok.status).toBe(200);
    await ok.text();
    expect(pooler.requests.map((r) => [r.status, r.reply])).toEqual([
      [403, "model_not_allowed"],
      [200, "text"],
    ]);
  });
});

describe("pool failures come scrubbed: only code tells them apart", () => {
  const cases = Object.entries(POOL_FAILURES) as [PoolFailureCode, number][];
  it("has quota, no backend and both rate-limit codes", () => {
    expect(cases).toEqual([
      ["quota_exhausted", 503],
      ["no_eligible_backend", 503],
      ["upstream_rate_limited", 429],
      ["rate_limit_exceeded", 429],
    ]);
  });

  it.each(cases)("%s: HTTP %i on chat completions; /v1/models unaffected unless on: all", async (code, status) => {
    pooler = await policyPooler({ failure: { code } });
    const res = await chat(pooler, ACTIVE);
    expect(res.status).toBe(status);
    expect(await res.json()).toEqual({ error: { code, message: "upstream request failed", type: "server_error" } });
    expect((await models(pooler, ACTIVE)).status).toBe(200);
    pooler.setFailure({ code, on: "all" });
    const m = await models(pooler, ACTIVE);
    expect(m.status).toBe(status);
    expect(await m.json()).toEqual({ error: { code, message: "upstream request failed", type: "server_error" } });
    // Authentication still comes first.
    expect(await (await models(pooler, EXPIRED)).json()).toMatchObject({ error: { code: "api_key_expired" } });
    pooler.setFailure(undefined);
    const ok = await chat(pooler, ACTIVE);
    expect(ok.status).toBe(200);
    await ok.text();
    expect(pooler.requests.map((r) => [r.status, r.reply, r.code])).toEqual([
      [status, "pool_failure", code],
      [200, "models", undefined],
      [status, "pool_failure", code],
      [401, "unauthorized", "api_key_expired"],
      [200, "text", undefined],
    ]);
  });
});

describe("a pooler under a path prefix", () => {
  it("serves /pool/v1 and /pool/readyz, nothing at the root", async () => {
    pooler = await startFakePooler({ keys: ACTIVE, pathPrefix: "/pool/" });
    const origin = `http://127.0.0.1:${pooler.port}`;
    expect(pooler.url).toBe(`${origin}/pool/v1`);
    expect((await fetch(`${origin}/pool/readyz`)).status).toBe(200);
    expect((await models(pooler, ACTIVE)).status).toBe(200);
    expect((await fetch(`${origin}/readyz`)).status).toBe(404);
    expect((await fetch(`${origin}/v1/models`, { headers: { authorization: `Bearer ${ACTIVE}` } })).status).toBe(404);
    expect(pooler.requests.map((r) => [r.path, r.status])).toEqual([
      ["/pool/readyz", 200],
      ["/pool/v1/models", 200],
      ["/readyz", 404],
      ["/v1/models", 404],
    ]);
  });
});

describe("finish_reason after a tool call", () => {
  const body = {
    model: "gpt-5.5",
    stream: false,
    messages: [{ role: "user", content: "create kilo-ok.txt\nWorking directory: /w" }],
    tools: [
      { type: "function", function: { name: "write", parameters: { properties: { filePath: {}, content: {} } } } },
    ],
  };
  it.each([
    [undefined, "stop"],
    ["tool_calls", "tool_calls"],
  ] as const)("toolCallFinishReason %s: %s", async (option, expected) => {
    pooler = await startFakePooler({ keys: ACTIVE, toolCallFinishReason: option });
    const res = await fetch(`${pooler.url}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${ACTIVE}` },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as { choices: { finish_reason: string; message: { tool_calls?: unknown[] } }[] };
    expect(json.choices[0].message.tool_calls).toHaveLength(1);
    expect(json.choices[0].finish_reason).toBe(expected);
    const streamed = await fetch(`${pooler.url}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${ACTIVE}` },
      body: JSON.stringify({ ...body, stream: true }),
    });
    const finishes = [...(await streamed.text()).matchAll(/"finish_reason":"([a-z_]+)"/g)].map((m) => m[1]);
    expect(finishes).toEqual([expected]);
    expect(pooler.requests.map((r) => r.reply)).toEqual(["tool_call", "tool_call"]);
  });
});

describe("the request log counts bytes", () => {
  it("requestBytes is the body received, responseBytes the body sent (streams included)", async () => {
    pooler = await startFakePooler({ keys: ACTIVE });
    const payload = JSON.stringify({ model: "gpt-5.5", stream: true, messages: [{ role: "user", content: "héllo" }] });
    const res = await fetch(`${pooler.url}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${ACTIVE}` },
      body: payload,
    });
    const text = await res.text();
    const m = await models(pooler, ACTIVE);
    const mText = await m.text();
    expect(pooler.requests.map((r) => [r.requestBytes, r.responseBytes])).toEqual([
      [Buffer.byteLength(payload), Buffer.byteLength(text)],
      [0, Buffer.byteLength(mText)],
    ]);
  });
});
