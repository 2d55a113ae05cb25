/**
 * A stand-in Codex Pooler for tests and for trying the dev stack on one machine (`npm run pooler:dev`).
 * It is NOT a pooler: it serves no model. It speaks the parts of the chat-completions API and of the real
 * Codex Pooler's protocol that kilo-fleet relies on, and scripts exactly one conversation, the smoke
 * check's (docs/codex-pooler.md, point 10). The conversation, the wire format, the protocol and the
 * failure modes: docs/testing.md, "The stand-in pooler".
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export type FakePoolerMode = "ok" | "401" | "500" | "slow" | "close" | "no-tool";

export const FAKE_POOLER_MODES: readonly FakePoolerMode[] = ["ok", "401", "500", "slow", "close", "no-tool"];

/** A model of the pool: an id, and the effective context window `/v1/models` reports, when known. */
export interface FakePoolModel {
  id: string;
  /** `context_length` in `/v1/models` (already the effective 95 %); omitted when undefined. */
  contextLength?: number;
}

/** The `context_length` the real pooler reports for a raw window: 95 % of it (272000 → 258400). */
export function effectiveContextLength(rawWindow: number): number {
  return Math.floor((rawWindow * 95) / 100);
}

/** The model the stand-in lists when no `models` are given (it then accepts any model id in chat). */
export const DEFAULT_POOL_MODEL: FakePoolModel = { id: "gpt-5.5", contextLength: effectiveContextLength(272_000) };

export type FakeKeyStatus = "active" | "disabled" | "expired";

/** One Pool API key's policy. */
export interface FakeKeyPolicy {
  /** Default `active`. `disabled` stands for paused or revoked. */
  status?: FakeKeyStatus;
  /** The model ids this key may use (default: every model of the pool). */
  models?: readonly string[];
}

/** The scrubbed errors the real pooler sends when it cannot serve a request, by code. */
export const POOL_FAILURES = {
  quota_exhausted: 503,
  no_eligible_backend: 503,
  upstream_rate_limited: 429,
  rate_limit_exceeded: 429,
} as const;
export type PoolFailureCode = keyof typeof POOL_FAILURES;

export interface PoolFailure {
  code: PoolFailureCode;
  /** `chat` (default): chat completions only, as the real pooler; `all`: `/v1/models` too. */
  on?: "chat" | "all";
}

export interface FakePoolerOptions {
  /** Port on 127.0.0.1; 0 or unset picks a free one. */
  port?: number;
  /** Active API key(s) that may use every model of the pool. */
  keys?: string | readonly string[];
  /** API keys with their own policy (status, allowed models); checked before `keys`. */
  apiKeys?: Readonly<Record<string, FakeKeyPolicy>>;
  mode?: FakePoolerMode;
  /** The delay of `slow` mode, in ms (default 60 000). */
  slowMs?: number;
  /**
   * The pool's models: ids, or `{id, contextLength}`. Chat completions for another model get 400
   * `invalid_model`. Default: any model is accepted, and `/v1/models` lists `gpt-5.5` (258400).
   */
  models?: readonly (string | FakePoolModel)[];
  /** Whether `/readyz` says ready (default true). */
  ready?: boolean;
  /** A pool failure every (chat) request gets, until `setFailure(undefined)`. */
  failure?: PoolFailure;
  /** Mount the pooler under this path, e.g. `/pool` → `http://127.0.0.1:<port>/pool/v1`. */
  pathPrefix?: string;
  /** The finish_reason after a streamed tool call: `stop` (default, as the real pooler) or `tool_calls`. */
  toolCallFinishReason?: "stop" | "tool_calls";
  /** Echo an unknown key in its 401 message (a careless gateway), for secret-leak tests. */
  echoKey?: boolean;
  /** Called for every request once it is answered (the dev CLI logs with it). */
  onRequest?: (entry: LoggedRequest) => void;
}

/** What the server did with one request. */
export type PoolerReply =
  | "tool_call"
  | "text"
  | "models"
  | "unauthorized"
  | "server_error"
  | "closed"
  | "not_found"
  | "bad_request"
  | "aborted"
  | "invalid_model"
  | "model_not_allowed"
  | "pool_failure"
  | "ready"
  | "unready"
  | "health";

export interface LoggedRequest {
  method: string;
  /** The request path, e.g. `/v1/chat/completions` (with the path prefix, if any). */
  path: string;
  /** The bearer token presented, if any (kept for assertions: which key did kilo send?). */
  key?: string;
  /** Whether the key was accepted. */
  authorized: boolean;
  status: number;
  reply: PoolerReply;
  /** The `error.code` of an error reply. */
  code?: string;
  /** Bytes of the request body received. */
  requestBytes: number;
  /** Bytes of the response body sent (so far, for a dropped stream). */
  responseBytes: number;
  /** The parsed JSON body of a POST, if it was JSON. */
  body?: ChatRequest;
  /** The working directory found in the prompt, for chat completions. */
  workingDirectory?: string;
  /** The tool call streamed back, for `tool_call` replies. */
  toolCall?: { name: string; arguments: Record<string, string> };
  /** The text streamed back, for `text` replies. */
  text?: string;
  /** ms since the server started. */
  at: number;
}

export interface ChatMessage {
  role: string;
  content?: unknown;
  tool_calls?: unknown[];
  tool_call_id?: string;
}

export interface ChatTool {
  type: string;
  function: { name: string; description?: string; parameters?: { properties?: Record<string, unknown> } };
}

export interface ChatRequest {
  model?: string;
  messages?: ChatMessage[];
  tools?: ChatTool[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  [k: string]: unknown;
}

export interface FakePooler {
  /** The `/v1` base URL, e.g. `http://127.0.0.1:4000/v1` (what `poolerBaseUrl` is set to). */
  url: string;
  port: number;
  /** Replaces the active keys that may use every model (a key rotation). */
  setKeys(keys: string | readonly string[]): void;
  /** Sets (or, with undefined, removes) one key's policy. */
  setKeyPolicy(key: string, policy: FakeKeyPolicy | undefined): void;
  setMode(mode: FakePoolerMode, opts?: { slowMs?: number }): void;
  /** What `/readyz` says. */
  setReady(ready: boolean): void;
  /** A pool failure for the requests that follow; undefined clears it. */
  setFailure(failure: PoolFailure | undefined): void;
  /** Every request so far, in arrival order (a live array; tests may clear it with `length = 0`). */
  requests: LoggedRequest[];
  stop(): Promise<void>;
}

/** The smoke conversation's file and reply (must match host/smoke.ts). */
export const SMOKE_FILE = "kilo-ok.txt";
export const SMOKE_REPLY = "kilo ok";
const STAND_IN_REPLY =
  "This is the kilo-fleet stand-in pooler: it serves no model and only scripts the smoke check's conversation.";

/** OpenAI's error body shape. */
export function openAiError(message: string, type: string, code: string | null, param: string | null = null) {
  return { error: { message, type, param, code } };
}

/** The real pooler's scrubbed error body (403/429/5xx): fixed message and type, only `code` differs. */
export function scrubbedError(code: string) {
  return { error: { message: "upstream request failed", type: "server_error", code } };
}

/** The text of a message's content (a string, or an array of `{type: "text", text}` parts). */
function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content
      .map((p) => (p && typeof p === "object" && typeof (p as { text?: unknown }).text === "string" ? p.text : ""))
      .join("\n");
  }
  return "";
}

/** The `Working directory: <path>` kilo states in its prompt (the last one, any message). */
export function findWorkingDirectory(messages: readonly ChatMessage[]): string | undefined {
  let found: string | undefined;
  for (const m of messages) {
    for (const match of contentText(m.content).matchAll(/^Working directory: (.+)$/gm)) found = match[1].trim();
  }
  return found;
}

/** The write tool's path and content argument names, read from its JSON schema. */
export function writeToolArgs(tools: readonly ChatTool[] | undefined): { path: string; content: string } | undefined {
  const tool = tools?.find((t) => t.function?.name === "write");
  if (!tool) return undefined;
  const props = Object.keys(tool.function.parameters?.properties ?? {});
  const path = ["filePath", "file_path", "path"].find((p) => props.includes(p));
  const content = ["content", "contents", "text"].find((p) => props.includes(p));
  return path && content ? { path, content } : undefined;
}

/** Splits a string into pieces of at most `n` characters (streamed arguments). */
function pieces(s: string, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < s.length; i += n) out.push(s.slice(i, i + n));
  return out;
}

function normalizeKeys(k: string | readonly string[] | undefined): Set<string> {
  return new Set(k === undefined ? [] : typeof k === "string" ? [k] : k);
}

function normalizePrefix(prefix: string | undefined): string {
  if (!prefix || prefix === "/") return "";
  const p = prefix.startsWith("/") ? prefix : `/${prefix}`;
  return p.replace(/\/+$/, "");
}

export async function startFakePooler(options: FakePoolerOptions): Promise<FakePooler> {
  let keys = normalizeKeys(options.keys);
  const policies = new Map<string, FakeKeyPolicy>(Object.entries(options.apiKeys ?? {}));
  let mode: FakePoolerMode = options.mode ?? "ok";
  let slowMs = options.slowMs ?? 60_000;
  let ready = options.ready ?? true;
  let failure = options.failure;
  const prefix = normalizePrefix(options.pathPrefix);
  const toolCallFinish = options.toolCallFinishReason ?? "stop";
  /** undefined: an open pool (any model id is accepted; `/v1/models` lists the default model). */
  const poolModels = options.models?.map((m) => (typeof m === "string" ? { id: m } : { ...m }));
  const requests: LoggedRequest[] = [];
  const started = Date.now();
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let completionCount = 0;

  /** The key's policy, or undefined for a key the pool does not know. */
  const policyOf = (key: string): FakeKeyPolicy | undefined =>
    policies.get(key) ?? (keys.has(key) ? { status: "active" } : undefined);
  const inPool = (model: string) => poolModels === undefined || poolModels.some((m) => m.id === model);
  const allowed = (policy: FakeKeyPolicy, model: string) =>
    policy.models === undefined || policy.models.includes(model);
  /** The models `/v1/models` lists for a key. */
  const modelsFor = (policy: FakeKeyPolicy): FakePoolModel[] => {
    if (poolModels) return poolModels.filter((m) => allowed(policy, m.id));
    if (policy.models) return policy.models.map((id) => (id === DEFAULT_POOL_MODEL.id ? DEFAULT_POOL_MODEL : { id }));
    return [DEFAULT_POOL_MODEL];
  };

  const handle = (req: IncomingMessage, res: ServerResponse, raw: Buffer) => {
    const path = (req.url ?? "/").split("?")[0];
    const auth = req.headers.authorization;
    const key = auth?.startsWith("Bearer ") ? auth.slice("Bearer ".length) : undefined;
    const entry: LoggedRequest = {
      method: req.method ?? "",
      path,
      authorized: false,
      status: 0,
      reply: "not_found",
      requestBytes: raw.length,
      responseBytes: 0,
      at: 0,
    };
    if (key !== undefined) entry.key = key;
    const write = (chunk: string, cb?: () => void) => {
      entry.responseBytes += Buffer.byteLength(chunk);
      return cb ? res.write(chunk, cb) : res.write(chunk);
    };
    const done = (status: number, reply: PoolerReply) => {
      entry.status = status;
      entry.reply = reply;
      entry.at = Date.now() - started;
      requests.push(entry);
      options.onRequest?.(entry);
    };
    const json = (status: number, body: unknown, reply: PoolerReply) => {
      const text = JSON.stringify(body);
      const code = (body as { error?: { code?: unknown } }).error?.code;
      if (typeof code === "string") entry.code = code;
      res.writeHead(status, { "content-type": "application/json" });
      entry.responseBytes += Buffer.byteLength(text);
      res.end(text);
      done(status, reply);
    };

    const local = path === prefix || path.startsWith(`${prefix}/`) ? path.slice(prefix.length) : undefined;
    if (req.method === "GET" && local === "/readyz") {
      json(ready ? 200 : 503, { status: ready ? "ready" : "unavailable" }, ready ? "ready" : "unready");
      return;
    }
    if (req.method === "GET" && local === "/healthz") {
      json(200, { status: "ok" }, "health");
      return;
    }
    const isChat = req.method === "POST" && local === "/v1/chat/completions";
    const isModels = req.method === "GET" && local === "/v1/models";
    if (!isChat && !isModels) {
      json(
        404,
        openAiError(
          `Unknown request URL: ${req.method} ${path}. This stand-in serves POST ${prefix}/v1/chat/completions, GET ${prefix}/v1/models, GET ${prefix}/readyz and GET ${prefix}/healthz.`,
          "invalid_request_error",
          "unknown_url",
        ),
        "not_found",
      );
      return;
    }

    if (mode === "401") {
      const message =
        key === undefined
          ? "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
          : `Incorrect API key provided: ${key}. You can find your API key at your Codex Pooler.`;
      json(401, openAiError(message, "invalid_request_error", "invalid_api_key"), "unauthorized");
      return;
    }
    const policy = key === undefined ? undefined : policyOf(key);
    if (!policy) {
      const message = options.echoKey && key !== undefined ? `api key is required (got ${key})` : "api key is required";
      json(401, openAiError(message, "invalid_request_error", "api_key_missing"), "unauthorized");
      return;
    }
    if (policy.status === "disabled") {
      json(401, openAiError("api key is disabled", "invalid_request_error", "api_key_disabled"), "unauthorized");
      return;
    }
    if (policy.status === "expired") {
      json(401, openAiError("api key is expired", "invalid_request_error", "api_key_expired"), "unauthorized");
      return;
    }
    entry.authorized = true;

    if (isModels) {
      if (failure?.on === "all") {
        json(POOL_FAILURES[failure.code], scrubbedError(failure.code), "pool_failure");
        return;
      }
      json(
        200,
        {
          object: "list",
          data: modelsFor(policy).map((m) => ({
            id: m.id,
            object: "model",
            created: 0,
            owned_by: "codex-pooler",
            ...(m.contextLength !== undefined ? { context_length: m.contextLength } : {}),
          })),
        },
        "models",
      );
      return;
    }

    let body: ChatRequest;
    try {
      body = JSON.parse(raw.toString("utf8")) as ChatRequest;
      if (!body || typeof body !== "object" || !Array.isArray(body.messages)) throw new Error("no messages");
    } catch {
      json(
        400,
        openAiError(
          "The request body must be a JSON chat completion request with messages.",
          "invalid_request_error",
          null,
        ),
        "bad_request",
      );
      return;
    }
    entry.body = body;
    const requested = String(body.model);
    if (!inPool(requested)) {
      json(
        400,
        openAiError("model is not available for this pool", "invalid_request_error", "invalid_model", "model"),
        "invalid_model",
      );
      return;
    }
    if (!allowed(policy, requested)) {
      json(403, scrubbedError("model_not_allowed"), "model_not_allowed");
      return;
    }
    if (failure) {
      json(POOL_FAILURES[failure.code], scrubbedError(failure.code), "pool_failure");
      return;
    }
    if (mode === "500") {
      json(
        500,
        openAiError("The server had an error while processing your request.", "server_error", null),
        "server_error",
      );
      return;
    }

    // The scripted conversation.
    const messages = body.messages ?? [];
    const wd = findWorkingDirectory(messages);
    if (wd !== undefined) entry.workingDirectory = wd;
    const lastUser = messages.map((m) => m.role).lastIndexOf("user");
    const toolAnswered = messages.slice(lastUser + 1).some((m) => m.role === "tool");
    const isSmoke = contentText(messages[lastUser]?.content).includes(SMOKE_FILE);
    const args = writeToolArgs(body.tools);
    let toolCall: LoggedRequest["toolCall"];
    let text: string | undefined;
    if (isSmoke && !toolAnswered && mode !== "no-tool" && args && wd !== undefined) {
      toolCall = { name: "write", arguments: { [args.path]: `${wd}/${SMOKE_FILE}`, [args.content]: SMOKE_REPLY } };
    } else {
      text = isSmoke ? SMOKE_REPLY : STAND_IN_REPLY;
    }

    const n = ++completionCount;
    const id = `chatcmpl-standin-${n}`;
    const model = String(body.model ?? "gpt-5.5");
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
      `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created: Math.floor(Date.now() / 1000), model, choices, ...extra })}\n\n`;
    const delta = (d: Record<string, unknown>, finish: string | null = null) =>
      chunk([{ index: 0, delta: d, finish_reason: finish }]);
    const usage = {
      prompt_tokens: Math.ceil(raw.length / 4),
      completion_tokens: 8,
      total_tokens: Math.ceil(raw.length / 4) + 8,
    };

    const answer = () => {
      if (res.destroyed) return;
      if (body.stream === false) {
        const message = toolCall
          ? {
              role: "assistant",
              content: null,
              tool_calls: [
                {
                  id: `call_standin_${n}`,
                  type: "function",
                  function: { name: toolCall.name, arguments: JSON.stringify(toolCall.arguments) },
                },
              ],
            }
          : { role: "assistant", content: text };
        entry.toolCall = toolCall;
        if (text !== undefined) entry.text = text;
        json(
          200,
          {
            id,
            object: "chat.completion",
            created: Math.floor(Date.now() / 1000),
            model,
            choices: [{ index: 0, message, finish_reason: toolCall ? toolCallFinish : "stop" }],
            usage,
          },
          toolCall ? "tool_call" : "text",
        );
        return;
      }
      res.writeHead(200, {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        connection: "keep-alive",
      });
      const out: string[] = [];
      if (toolCall) {
        const argText = JSON.stringify(toolCall.arguments);
        out.push(
          delta({
            role: "assistant",
            content: null,
            tool_calls: [
              { index: 0, id: `call_standin_${n}`, type: "function", function: { name: toolCall.name, arguments: "" } },
            ],
          }),
        );
        for (const p of pieces(argText, 12))
          out.push(delta({ tool_calls: [{ index: 0, function: { arguments: p } }] }));
        out.push(delta({}, toolCallFinish));
      } else {
        const words = (text ?? "").split(/(?<= )/);
        out.push(delta({ role: "assistant", content: "" }));
        for (const w of words) out.push(delta({ content: w }));
        out.push(delta({}, "stop"));
      }
      if (body.stream_options?.include_usage !== false) out.push(chunk([], { usage }));
      out.push("data: [DONE]\n\n");
      if (mode === "close") {
        // Half the stream, then the connection drops: no finish_reason, no [DONE].
        write(out.slice(0, Math.max(1, Math.floor(out.length / 2))).join(""), () => {
          const timer = setTimeout(() => {
            timers.delete(timer);
            res.socket?.destroy();
          }, 50);
          timers.add(timer);
        });
        done(200, "closed");
        return;
      }
      for (const part of out) write(part);
      res.end();
      entry.toolCall = toolCall;
      if (text !== undefined) entry.text = text;
      done(200, toolCall ? "tool_call" : "text");
    };

    if (mode === "slow") {
      const timer = setTimeout(() => {
        timers.delete(timer);
        answer();
      }, slowMs);
      timers.add(timer);
      res.on("close", () => {
        if (!res.writableEnded && timers.delete(timer)) {
          clearTimeout(timer);
          done(0, "aborted");
        }
      });
    } else answer();
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => handle(req, res, Buffer.concat(chunks)));
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}${prefix}/v1`,
    port,
    requests,
    setKeys(k) {
      keys = normalizeKeys(k);
    },
    setKeyPolicy(key, policy) {
      if (policy) policies.set(key, policy);
      else policies.delete(key);
    },
    setMode(m, opts) {
      mode = m;
      if (opts?.slowMs !== undefined) slowMs = opts.slowMs;
    },
    setReady(r) {
      ready = r;
    },
    setFailure(f) {
      failure = f;
    },
    stop() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
