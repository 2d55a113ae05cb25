/**
 * The stand-in pooler's protocol, with plain fetch: SSE framing, tool-call deltas, the scripted smoke
 * conversation, the 401 shape, the failure modes and the request log.
 */
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type FakePooler, startFakePooler } from "../harness/fakePooler";

const KEY = "test-key-fake-pooler-1";
const WD = "/tmp/some dir/work";

/** The request kilo 7.7.7 sends on the smoke check's first turn (trimmed to what matters). */
function smokeRequest(extraMessages: unknown[] = [], tools = kiloTools()) {
  return {
    model: "gpt-5.5",
    reasoning_effort: "medium",
    messages: [
      { role: "system", content: "You are Kilo..." },
      {
        role: "user",
        content: [
          { type: "text", text: '"Use your tools to create kilo-ok.txt containing exactly: kilo ok. ..."' },
          {
            type: "text",
            text: `\n\n<environment_details>\nMessage time: 2026-01-01T00:00:00Z\nWorking directory: ${WD}\nWorkspace root folder: /\n</environment_details>`,
          },
        ],
      },
      ...extraMessages,
    ],
    tools,
    tool_choice: "auto",
    stream: true,
    stream_options: { include_usage: true },
  };
}

function kiloTools(pathArg = "filePath") {
  return [
    { type: "function", function: { name: "bash", parameters: { type: "object", properties: { command: {} } } } },
    {
      type: "function",
      function: { name: "write", parameters: { type: "object", properties: { content: {}, [pathArg]: {} } } },
    },
  ];
}

const TOOL_RESULT = [
  {
    role: "assistant",
    content: null,
    tool_calls: [{ id: "call_1", type: "function", function: { name: "write", arguments: "{}" } }],
  },
  { role: "tool", tool_call_id: "call_1", content: "Wrote file successfully." },
];

interface Chunk {
  id: string;
  object: string;
  model: string;
  choices: {
    index: number;
    delta: {
      role?: string;
      content?: string | null;
      tool_calls?: { index: number; id?: string; type?: string; function: { name?: string; arguments?: string } }[];
    };
    finish_reason: string | null;
  }[];
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

/** Splits an SSE body into its `data:` payloads, checking the framing on the way. */
function sseData(body: string): string[] {
  expect(body.endsWith("\n\n")).toBe(true);
  const frames = body.slice(0, -2).split("\n\n");
  return frames.map((f) => {
    expect(f.startsWith("data: ")).toBe(true);
    expect(f.includes("\n")).toBe(false);
    return f.slice("data: ".length);
  });
}

async function post(pooler: FakePooler, body: unknown, key: string | null = KEY) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (key !== null) headers.authorization = `Bearer ${key}`;
  return fetch(`${pooler.url}/chat/completions`, { method: "POST", headers, body: JSON.stringify(body) });
}

let pooler: FakePooler | undefined;
afterEach(async () => {
  await pooler?.stop();
  pooler = undefined;
});

describe("fake pooler", () => {
  it("listens on loopback and reports its /v1 base URL", async () => {
    pooler = await startFakePooler({ keys: KEY });
    expect(pooler.url).toBe(`http://127.0.0.1:${pooler.port}/v1`);
    expect(pooler.port).toBeGreaterThan(0);
  });

  it("streams the smoke conversation's first turn as a write tool call in SSE chunks", async () => {
    pooler = await startFakePooler({ keys: KEY });
    const res = await post(pooler, smokeRequest());
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const data = sseData(await res.text());
    expect(data.at(-1)).toBe("[DONE]");
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as Chunk);
    for (const c of chunks) {
      expect(c.object).toBe("chat.completion.chunk");
      expect(c.id).toBe(chunks[0].id);
      expect(c.model).toBe("gpt-5.5");
    }
    const choices = chunks.filter((c) => c.choices.length > 0).map((c) => c.choices[0]);
    expect(choices[0].delta.role).toBe("assistant");
    const calls = choices.flatMap((c) => c.delta.tool_calls ?? []);
    // The first delta names the call; the arguments follow in several pieces.
    expect(calls[0]).toMatchObject({ index: 0, type: "function", function: { name: "write", arguments: "" } });
    expect(calls[0].id).toMatch(/^call_/);
    expect(calls.length).toBeGreaterThan(3);
    for (const c of calls.slice(1)) {
      expect(c.id).toBeUndefined();
      expect(c.function.name).toBeUndefined();
    }
    const args = JSON.parse(calls.map((c) => c.function.arguments).join(""));
    expect(args).toEqual({ filePath: `${WD}/kilo-ok.txt`, content: "kilo ok" });
    // Like the real Codex Pooler: "stop", even after a tool call (kilo 7.7.7 still runs the tool and goes on).
    expect(choices.map((c) => c.finish_reason).filter((f) => f !== null)).toEqual(["stop"]);
    expect(choices.at(-1)?.finish_reason).toBe("stop");
    // Usage comes last, in a chunk without choices (stream_options.include_usage).
    const last = chunks.at(-1);
    expect(last?.choices).toEqual([]);
    expect(last?.usage?.total_tokens).toBe((last?.usage?.prompt_tokens ?? 0) + (last?.usage?.completion_tokens ?? 0));

    expect(pooler.requests).toHaveLength(1);
    expect(pooler.requests[0]).toMatchObject({
      method: "POST",
      path: "/v1/chat/completions",
      key: KEY,
      authorized: true,
      status: 200,
      reply: "tool_call",
      workingDirectory: WD,
      toolCall: { name: "write", arguments: { filePath: `${WD}/kilo-ok.txt`, content: "kilo ok" } },
    });
    expect(pooler.requests[0].body?.tools?.map((t) => t.function.name)).toEqual(["bash", "write"]);
  });

  it("answers the second turn (after the tool result) with the text 'kilo ok'", async () => {
    pooler = await startFakePooler({ keys: KEY });
    const res = await post(pooler, smokeRequest(TOOL_RESULT));
    const chunks = sseData(await res.text())
      .slice(0, -1)
      .map((d) => JSON.parse(d) as Chunk);
    const choices = chunks.filter((c) => c.choices.length > 0).map((c) => c.choices[0]);
    expect(choices.flatMap((c) => c.delta.tool_calls ?? [])).toEqual([]);
    expect(choices.map((c) => c.delta.content ?? "").join("")).toBe("kilo ok");
    expect(choices.filter((c) => c.delta.content).length).toBeGreaterThan(1);
    expect(choices.at(-1)?.finish_reason).toBe("stop");
    expect(pooler.requests[0]).toMatchObject({ reply: "text", text: "kilo ok" });
  });

  it("reads the write tool's argument names from the request's tools", async () => {
    pooler = await startFakePooler({ keys: KEY });
    await (await post(pooler, smokeRequest([], kiloTools("path")))).text();
    expect(pooler.requests[0].toolCall?.arguments).toEqual({ path: `${WD}/kilo-ok.txt`, content: "kilo ok" });
  });

  it("replies with text, never a tool call, when there is no write tool or it is another conversation", async () => {
    pooler = await startFakePooler({ keys: KEY });
    await (await post(pooler, smokeRequest([], []))).text();
    await (
      await post(pooler, { model: "gpt-5.5", stream: true, messages: [{ role: "user", content: "hello" }] })
    ).text();
    expect(pooler.requests.map((r) => r.reply)).toEqual(["text", "text"]);
    expect(pooler.requests[0].text).toBe("kilo ok");
    expect(pooler.requests[1].text).toMatch(/stand-in pooler/);
  });

  it("answers stream: false with one chat.completion object", async () => {
    pooler = await startFakePooler({ keys: KEY });
    const res = await post(pooler, { ...smokeRequest(), stream: false });
    expect(res.headers.get("content-type")).toBe("application/json");
    const body = (await res.json()) as {
      object: string;
      choices: { message: { tool_calls: { function: { arguments: string } }[] }; finish_reason: string }[];
    };
    expect(body.object).toBe("chat.completion");
    expect(body.choices[0].finish_reason).toBe("stop");
    expect(JSON.parse(body.choices[0].message.tool_calls[0].function.arguments)).toEqual({
      filePath: `${WD}/kilo-ok.txt`,
      content: "kilo ok",
    });
  });

  it("refuses an unknown or missing key with 401 api_key_missing, as the real pooler (no echo of the key)", async () => {
    pooler = await startFakePooler({ keys: KEY });
    const wrong = await post(pooler, smokeRequest(), "test-key-wrong-42");
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get("content-type")).toBe("application/json");
    const wrongText = await wrong.text();
    expect(JSON.parse(wrongText)).toEqual({
      error: { message: "api key is required", type: "invalid_request_error", param: null, code: "api_key_missing" },
    });
    expect(wrongText).not.toContain("test-key-wrong-42");
    const missing = await post(pooler, smokeRequest(), null);
    expect(missing.status).toBe(401);
    expect(await missing.json()).toMatchObject({ error: { code: "api_key_missing", message: "api key is required" } });
    const models = await fetch(`${pooler.url}/models`);
    expect(models.status).toBe(401);
    expect(pooler.requests.map((r) => [r.reply, r.authorized, r.key, r.code])).toEqual([
      ["unauthorized", false, "test-key-wrong-42", "api_key_missing"],
      ["unauthorized", false, undefined, "api_key_missing"],
      ["unauthorized", false, undefined, "api_key_missing"],
    ]);
  });

  it("echoKey: an unknown key's 401 echoes the key, like a careless gateway", async () => {
    pooler = await startFakePooler({ keys: KEY, echoKey: true });
    const wrong = await post(pooler, smokeRequest(), "test-key-wrong-43");
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({
      error: { code: "api_key_missing", message: expect.stringContaining("test-key-wrong-43") },
    });
  });

  it("setKeys rotates the accepted key", async () => {
    pooler = await startFakePooler({ keys: KEY });
    pooler.setKeys("test-key-rotated-2");
    expect((await post(pooler, smokeRequest(), KEY)).status).toBe(401);
    const res = await post(pooler, smokeRequest(), "test-key-rotated-2");
    expect(res.status).toBe(200);
    await res.text();
    pooler.setKeys([KEY, "test-key-rotated-2"]);
    const again = await post(pooler, smokeRequest(), KEY);
    expect(again.status).toBe(200);
    await again.text();
  });

  it("lists models on GET /v1/models and rejects models it does not serve", async () => {
    pooler = await startFakePooler({ keys: KEY, models: ["gpt-5.5", "gpt-5.5-mini"] });
    const res = await fetch(`${pooler.url}/models`, { headers: { authorization: `Bearer ${KEY}` } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      object: "list",
      data: [
        { id: "gpt-5.5", object: "model" },
        { id: "gpt-5.5-mini", object: "model" },
      ],
    });
    const bad = await post(pooler, { ...smokeRequest(), model: "gpt-9" });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({
      error: {
        code: "invalid_model",
        message: "model is not available for this pool",
        param: "model",
        type: "invalid_request_error",
      },
    });
  });

  it("answers 404 in OpenAI's shape for other URLs (the base URL itself included)", async () => {
    pooler = await startFakePooler({ keys: KEY });
    const res = await fetch(pooler.url);
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { type: "invalid_request_error", code: "unknown_url" } });
    expect(pooler.requests[0]).toMatchObject({ method: "GET", path: "/v1", reply: "not_found" });
  });

  it("mode 401 refuses even the right key, OpenAI-style, echoing the presented key", async () => {
    pooler = await startFakePooler({ keys: KEY, mode: "401" });
    const res = await post(pooler, smokeRequest());
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({
      error: {
        code: "invalid_api_key",
        message: expect.stringContaining(KEY),
        param: null,
        type: "invalid_request_error",
      },
    });
    pooler.setMode("ok");
    const ok = await post(pooler, smokeRequest());
    expect(ok.status).toBe(200);
    await ok.text();
  });

  it("mode 500 answers a server error", async () => {
    pooler = await startFakePooler({ keys: KEY, mode: "500" });
    const res = await post(pooler, smokeRequest());
    expect(res.status).toBe(500);
    expect(await res.json()).toMatchObject({ error: { type: "server_error" } });
    expect(pooler.requests[0].reply).toBe("server_error");
  });

  it("mode slow answers only after the delay, and logs a client that gave up", async () => {
    pooler = await startFakePooler({ keys: KEY, mode: "slow", slowMs: 400 });
    const t0 = Date.now();
    const res = await post(pooler, smokeRequest());
    await res.text();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(390);
    expect(pooler.requests[0].reply).toBe("tool_call");

    pooler.setMode("slow", { slowMs: 60_000 });
    await expect(
      fetch(`${pooler.url}/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${KEY}` },
        body: JSON.stringify(smokeRequest()),
        signal: AbortSignal.timeout(200),
      }),
    ).rejects.toThrow();
    await expect.poll(() => pooler?.requests[1]?.reply, { timeout: 2000 }).toBe("aborted");
  });

  it("mode close drops the connection mid-stream: no finish_reason, no [DONE]", async () => {
    pooler = await startFakePooler({ keys: KEY, mode: "close" });
    const res = await post(pooler, smokeRequest());
    expect(res.status).toBe(200);
    let text = "";
    const reader = res.body?.getReader();
    const decoder = new TextDecoder();
    await expect(
      (async () => {
        for (;;) {
          const { done, value } = (await reader?.read()) ?? { done: true, value: undefined };
          if (done) return;
          text += decoder.decode(value);
        }
      })(),
    ).rejects.toThrow();
    expect(text).toMatch(/^data: /);
    expect(text).not.toContain("[DONE]");
    expect(text).not.toContain('finish_reason":"tool_calls');
    expect(pooler.requests[0].reply).toBe("closed");
  });

  it("mode no-tool replies 'kilo ok' on the first turn without calling the tool", async () => {
    pooler = await startFakePooler({ keys: KEY, mode: "no-tool" });
    await (await post(pooler, smokeRequest())).text();
    expect(pooler.requests[0]).toMatchObject({ reply: "text", text: "kilo ok" });
    expect(pooler.requests[0].toolCall).toBeUndefined();
  });

  it("rejects a body that is not a chat request with 400", async () => {
    pooler = await startFakePooler({ keys: KEY });
    const res = await fetch(`${pooler.url}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}` },
      body: "not json",
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { type: "invalid_request_error" } });
  });

  it("stop() closes the server even with a slow request pending", async () => {
    const p = await startFakePooler({ keys: KEY, mode: "slow", slowMs: 60_000 });
    const pending = post(p, smokeRequest()).catch((e: Error) => e);
    await new Promise((r) => setTimeout(r, 100));
    await p.stop();
    expect(await pending).toBeInstanceOf(Error);
    await expect(fetch(p.url)).rejects.toThrow();
  });
});

describe("npm run pooler:dev (tools/pooler-dev.ts)", () => {
  const tsx = join(__dirname, "..", "node_modules", ".bin", "tsx");
  const script = join(__dirname, "..", "tools", "pooler-dev.ts");

  it("serves the stand-in with the key from POOLER_DEV_API_KEY, logs requests, never prints the key", async () => {
    const child = spawn(tsx, [script], {
      env: { PATH: process.env.PATH, POOLER_DEV_API_KEY: KEY, POOLER_DEV_PORT: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    try {
      await expect.poll(() => out, { timeout: 15_000 }).toMatch(/at http:\/\/127\.0\.0\.1:\d+\/v1/);
      expect(out).toMatch(/^kilo-fleet stand-in pooler \(NOT a real pooler\) at .*, mode ok, accepting 1 key\(s\)\n/);
      const url = /at (http:\/\/127\.0\.0\.1:\d+\/v1)/.exec(out)?.[1];
      const ok = await fetch(`${url}/models`, { headers: { authorization: `Bearer ${KEY}` } });
      expect(ok.status).toBe(200);
      const wrong = await fetch(`${url}/chat/completions`, {
        method: "POST",
        headers: { authorization: "Bearer test-key-wrong-dev" },
        body: JSON.stringify(smokeRequest()),
      });
      expect(wrong.status).toBe(401);
      await expect.poll(() => out.split("\n").length, { timeout: 5000 }).toBeGreaterThanOrEqual(4);
      expect(out).toMatch(/GET \/v1\/models -> 200 models\n/);
      expect(out).toMatch(/POST \/v1\/chat\/completions -> 401 unauthorized\n/);
      expect(out).not.toContain(KEY);
      expect(out).not.toContain("test-key-wrong-dev");
    } finally {
      child.kill("SIGTERM");
    }
    const code = await new Promise((r) => child.on("close", r));
    expect(code).toBe(0);
  });

  it("refuses to start without a key, or with an unknown mode", () => {
    const noKey = spawnSync(tsx, [script], { env: { PATH: process.env.PATH }, encoding: "utf8" });
    expect(noKey.status).toBe(2);
    expect(noKey.stderr).toBe(
      "pooler:dev: set POOLER_DEV_API_KEY (or CODEX_POOLER_API_KEY) to the key the stand-in should accept\n",
    );
    const badMode = spawnSync(tsx, [script], {
      env: { PATH: process.env.PATH, CODEX_POOLER_API_KEY: KEY, POOLER_DEV_MODE: "weird" },
      encoding: "utf8",
    });
    expect(badMode.status).toBe(2);
    expect(badMode.stderr).toMatch(/^pooler:dev: POOLER_DEV_MODE must be one of ok, 401, 500, slow, close, no-tool\n$/);
  });
});
