/**
 * A stand-in Codex Pooler for tests and for trying the dev stack on one machine (`npm run pooler:dev`).
 * It is NOT a pooler: it serves no model. It speaks the subset of the OpenAI chat-completions API that
 * kilo 7.7.7 uses, checks `Authorization: Bearer <key>`, and scripts exactly one conversation, the smoke
 * check's (shared/codex-pooler-kilo.md, point 10):
 *
 *   turn 1 (no tool result yet): stream a call of kilo's `write` tool, `{filePath: "<wd>/kilo-ok.txt",
 *          content: "kilo ok"}`, where <wd> is the `Working directory: <path>` kilo puts in its prompt
 *          (kilo 7.7.7: in the user message's `<environment_details>`), and the argument names are read
 *          from the request's `tools` array (kilo 7.7.7: `filePath`, `content`);
 *   turn 2 (after the tool result): stream the text `kilo ok`.
 *
 * Any other conversation gets one short text reply saying what this server is.
 *
 * Wire format (what kilo's ai-sdk client parses): `text/event-stream`, one `data: <json>\n\n` per
 * `chat.completion.chunk`, a role delta first, `delta.tool_calls` with the call's id and name first and
 * then its `arguments` in pieces, a chunk with `finish_reason` (`tool_calls` or `stop`), a usage chunk
 * (`choices: []`, since kilo asks for `stream_options.include_usage`), then `data: [DONE]`.
 *
 * Failure modes (`setMode`): `401` refuses every key; `500` answers with a server error; `slow` waits
 * `slowMs` before answering; `close` drops the connection mid-stream; `no-tool` replies `kilo ok` without
 * ever calling the tool (the "exit 0 proves nothing" case). A refused key's 401 message echoes the
 * presented key, like careless gateways do, so tests can prove kilo-fleet never prints it.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export type FakePoolerMode = "ok" | "401" | "500" | "slow" | "close" | "no-tool";

export const FAKE_POOLER_MODES: readonly FakePoolerMode[] = ["ok", "401", "500", "slow", "close", "no-tool"];

export interface FakePoolerOptions {
  /** Port on 127.0.0.1; 0 or unset picks a free one. */
  port?: number;
  /** The accepted API key(s). */
  keys: string | readonly string[];
  mode?: FakePoolerMode;
  /** The delay of `slow` mode, in ms (default 60 000). */
  slowMs?: number;
  /** Model ids `/v1/models` lists and chat completions accept (default: any model, listing `gpt-5.5`). */
  models?: readonly string[];
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
  | "aborted";

export interface LoggedRequest {
  method: string;
  /** The request path, e.g. `/v1/chat/completions`. */
  path: string;
  /** The bearer token presented, if any (kept for assertions: which key did kilo send?). */
  key?: string;
  /** Whether the key was accepted. */
  authorized: boolean;
  status: number;
  reply: PoolerReply;
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
  /** Replaces the accepted keys (a key rotation). */
  setKeys(keys: string | readonly string[]): void;
  setMode(mode: FakePoolerMode, opts?: { slowMs?: number }): void;
  /** Every request so far, in arrival order (a live array; tests may clear it with `length = 0`). */
  requests: LoggedRequest[];
  stop(): Promise<void>;
}

/** The smoke conversation's file and reply (must match deployer/hostScripts/smoke.ts). */
export const SMOKE_FILE = "kilo-ok.txt";
export const SMOKE_REPLY = "kilo ok";
const STAND_IN_REPLY =
  "This is the kilo-fleet stand-in pooler: it serves no model and only scripts the smoke check's conversation.";

/** OpenAI's error body shape. */
export function openAiError(message: string, type: string, code: string | null, param: string | null = null) {
  return { error: { message, type, param, code } };
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

export async function startFakePooler(options: FakePoolerOptions): Promise<FakePooler> {
  let keys = new Set(typeof options.keys === "string" ? [options.keys] : options.keys);
  let mode: FakePoolerMode = options.mode ?? "ok";
  let slowMs = options.slowMs ?? 60_000;
  const models = options.models;
  const requests: LoggedRequest[] = [];
  const started = Date.now();
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let completionCount = 0;

  const handle = (req: IncomingMessage, res: ServerResponse, raw: string) => {
    const path = (req.url ?? "/").split("?")[0];
    const auth = req.headers.authorization;
    const key = auth?.startsWith("Bearer ") ? auth.slice("Bearer ".length) : undefined;
    const authorized = mode !== "401" && key !== undefined && keys.has(key);
    const entry: LoggedRequest = { method: req.method ?? "", path, authorized, status: 0, reply: "not_found", at: 0 };
    if (key !== undefined) entry.key = key;
    const done = (status: number, reply: PoolerReply) => {
      entry.status = status;
      entry.reply = reply;
      entry.at = Date.now() - started;
      requests.push(entry);
      options.onRequest?.(entry);
    };
    const json = (status: number, body: unknown, reply: PoolerReply) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
      done(status, reply);
    };

    const isChat = req.method === "POST" && path === "/v1/chat/completions";
    const isModels = req.method === "GET" && path === "/v1/models";
    if (!isChat && !isModels) {
      json(
        404,
        openAiError(
          `Unknown request URL: ${req.method} ${path}. This stand-in serves POST /v1/chat/completions and GET /v1/models.`,
          "invalid_request_error",
          "unknown_url",
        ),
        "not_found",
      );
      return;
    }
    if (!authorized) {
      const message =
        key === undefined
          ? "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
          : `Incorrect API key provided: ${key}. You can find your API key at your Codex Pooler.`;
      json(401, openAiError(message, "invalid_request_error", "invalid_api_key"), "unauthorized");
      return;
    }
    if (isModels) {
      const ids = models ?? ["gpt-5.5"];
      json(
        200,
        { object: "list", data: ids.map((id) => ({ id, object: "model", created: 0, owned_by: "codex-pooler" })) },
        "models",
      );
      return;
    }

    let body: ChatRequest;
    try {
      body = JSON.parse(raw) as ChatRequest;
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
    if (models && !models.includes(String(body.model))) {
      json(
        404,
        openAiError(
          `The model \`${String(body.model)}\` does not exist or you do not have access to it.`,
          "invalid_request_error",
          "model_not_found",
        ),
        "not_found",
      );
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
            choices: [{ index: 0, message, finish_reason: toolCall ? "tool_calls" : "stop" }],
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
        out.push(delta({}, "tool_calls"));
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
        res.write(out.slice(0, Math.max(1, Math.floor(out.length / 2))).join(""), () => {
          const timer = setTimeout(() => {
            timers.delete(timer);
            res.socket?.destroy();
          }, 50);
          timers.add(timer);
        });
        done(200, "closed");
        return;
      }
      for (const part of out) res.write(part);
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
    req.on("end", () => handle(req, res, Buffer.concat(chunks).toString("utf8")));
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
    url: `http://127.0.0.1:${port}/v1`,
    port,
    requests,
    setKeys(k) {
      keys = new Set(typeof k === "string" ? [k] : k);
    },
    setMode(m, opts) {
      mode = m;
      if (opts?.slowMs !== undefined) slowMs = opts.slowMs;
    },
    stop() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
