/**
 * `kilo-fleet models` end to end: the CLI as a subprocess (the way `npm run kilo-fleet -- models …` runs
 * it) against the stand-in pooler. The printed block, pasted under `config:`, is a valid stack; every
 * pool failure is one line and exit 1; usage errors exit 2; the key is in no output.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { kiloModelsFromPool } from "../cli/poolModels";
import { loadProject, readStackConfig } from "../cli/stackFile";
import { tokensNeeded, usableInput } from "../common/contextWindow";
import { parseSettings } from "../deployer/settings";
import { type FakePooler, type FakePoolerOptions, startFakePooler } from "../harness/fakePooler";
import { contextLimitWarnings } from "../host/poolCheck";

const ROOT = join(__dirname, "..");
const TSX = join(ROOT, "node_modules", ".bin", "tsx");
const KEY = "test-key-cli-models-9a8b7c6d";
const OTHER_KEY = "test-key-cli-models-other-31";
const LIMITED = "test-key-cli-models-limited-4";
const DISABLED = "test-key-cli-models-disabled-5";
const NOTHING = "test-key-cli-models-nothing-6";
const KEYS = [KEY, OTHER_KEY, LIMITED, DISABLED, NOTHING];
const USAGE_LINE = "kilo-fleet models --base-url URL [--key-env VAR] [--json] [--timeout SECONDS]";

const scratch = mkdtempSync(join(tmpdir(), "kilo-fleet-cli-models-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

let pooler: FakePooler | undefined;
afterEach(async () => {
  await pooler?.stop();
  pooler = undefined;
});

function start(extra: Partial<FakePoolerOptions> = {}) {
  return startFakePooler({
    keys: [KEY, OTHER_KEY],
    apiKeys: {
      [LIMITED]: { models: ["gpt-5.5-mini"] },
      [DISABLED]: { status: "disabled" },
      [NOTHING]: { models: [] },
    },
    models: [
      { id: "gpt-5.5", contextLength: 258_400 },
      { id: "gpt-5.5-mini", contextLength: 60_800 },
      "gpt-5.5-nocontext",
    ],
    echoKey: true,
    ...extra,
  });
}

/** Runs the CLI asynchronously (the stand-in lives in this process), with only the given key variables. */
function cli(args: string[], env: Record<string, string> = { CODEX_POOLER_API_KEY: KEY }) {
  const base = { ...process.env };
  for (const k of Object.keys(base)) if (/API_KEY/.test(k)) delete base[k];
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(TSX, [join(ROOT, "cli", "kilo-fleet.ts"), ...args], {
      cwd: ROOT,
      env: { ...base, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => {
      for (const k of KEYS) {
        expect(stdout, "a key in stdout").not.toContain(k);
        expect(stderr, "a key in stderr").not.toContain(k);
      }
      resolve({ code, stdout, stderr });
    });
  });
}

/** Pastes the printed block under `config:` of a stack file and reads it as `pulumi up` would. */
function pasted(url: string, block: string) {
  const path = join(scratch, `Pulumi.m${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, `config:\n  kilo-fleet:poolerBaseUrl: ${url}\n${block}`);
  const stack = readStackConfig(path, loadProject(ROOT));
  expect(stack.errors).toEqual([]);
  return { path, result: parseSettings(stack.raw) };
}

describe("kilo-fleet models", () => {
  it("prints the kilo-fleet:models block for this key; pasted under config: it is a valid stack", async () => {
    pooler = await start();
    const r = await cli(["models", "--base-url", pooler.url]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(
      "kilo-fleet models: warning: model gpt-5.5-nocontext: the pool reports no context_length; limits assume a 272000-token profile (258400) — check them\n",
    );
    expect(r.stdout).toMatch(
      /^# The 3 models this API key may use at http:\/\/127\.0\.0\.1:\d+\/v1 \(its \/v1\/models\)\.\n/,
    );
    expect(r.stdout).toContain("\n  kilo-fleet:model: gpt-5.5\n  kilo-fleet:models:\n    gpt-5.5:\n");
    const { path, result } = pasted(pooler.url, r.stdout);
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    expect(result.settings.model).toBe("gpt-5.5");
    expect(result.settings.models).toEqual({
      "gpt-5.5": {
        name: "gpt-5.5 via Codex Pooler",
        tool_call: true,
        reasoning: true,
        temperature: false,
        attachment: true,
        modalities: { input: ["text", "image"], output: ["text"] },
        limit: { context: 258_400, input: 214_400, output: 64_000 },
      },
      "gpt-5.5-mini": expect.objectContaining({ limit: { context: 60_800, input: 60_800, output: 15_200 } }),
      "gpt-5.5-nocontext": expect.objectContaining({ limit: { context: 258_400, input: 214_400, output: 64_000 } }),
    });
    // kilo's own arithmetic: usable input plus output is exactly the pool's window, so it never overflows,
    // with compaction off or at the default threshold.
    for (const [id, window] of [
      ["gpt-5.5", 258_400],
      ["gpt-5.5-mini", 60_800],
      ["gpt-5.5-nocontext", 258_400],
    ] as const) {
      const limit = result.settings.models[id].limit;
      expect(tokensNeeded(limit), id).toBe(window);
      expect(tokensNeeded(limit, { thresholdPercent: 75 }), id).toBeLessThanOrEqual(window);
      expect(usableInput(limit), id).toBeGreaterThan(0);
    }
    // The pool has nothing to warn about in what it printed.
    expect(
      contextLimitWarnings(result.settings.models, [
        { id: "gpt-5.5", contextLength: 258_400 },
        { id: "gpt-5.5-mini", contextLength: 60_800 },
      ]),
    ).toEqual([]);
    // And the offline validator agrees.
    const v = await cli(["validate", "--file", path], {});
    expect(v.code).toBe(0);
    expect(v.stdout).toContain("valid (1 host)");
    // Only /readyz and /v1/models were asked: no tokens spent.
    expect(pooler.requests.map((q) => [q.method, q.path])).toEqual([
      ["GET", "/readyz"],
      ["GET", "/v1/models"],
    ]);
  });

  it("lists only what this key may use; the default model is the first when gpt-5.5 is not among them", async () => {
    pooler = await start();
    const r = await cli(["models", "--base-url", pooler.url], { CODEX_POOLER_API_KEY: LIMITED });
    expect(r.code).toBe(0);
    const { result } = pasted(pooler.url, r.stdout);
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    expect(result.settings.model).toBe("gpt-5.5-mini");
    expect(Object.keys(result.settings.models)).toEqual(["gpt-5.5-mini"]);
  });

  it("--json prints the same settings as JSON; --key-env reads another variable", async () => {
    pooler = await start({ apiKeys: { [OTHER_KEY]: { models: ["gpt-5.5"] } } });
    const r = await cli(["models", `--base-url=${pooler.url}`, "--json", "--key-env", "MY_POOL_KEY"], {
      MY_POOL_KEY: OTHER_KEY,
    });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      "kilo-fleet:model": "gpt-5.5",
      "kilo-fleet:models": {
        "gpt-5.5": {
          name: "gpt-5.5 via Codex Pooler",
          tool_call: true,
          reasoning: true,
          temperature: false,
          attachment: true,
          modalities: { input: ["text", "image"], output: ["text"] },
          limit: { context: 258_400, input: 214_400, output: 64_000 },
        },
      },
    });
    expect(pooler.requests.find((q) => q.path === "/v1/models")?.key).toBe(OTHER_KEY);
  });

  it("works with a pooler under a path prefix", async () => {
    pooler = await start({ pathPrefix: "/pool" });
    const r = await cli(["models", "--base-url", pooler.url, "--json"]);
    expect(r.code).toBe(0);
    expect(pooler.requests.map((q) => q.path)).toEqual(["/pool/readyz", "/pool/v1/models"]);
  });

  it.each([
    [
      "an unknown key",
      { env: { CODEX_POOLER_API_KEY: "test-key-cli-models-unknown-7" } },
      "the pool does not know this API key (api_key_missing) — set $CODEX_POOLER_API_KEY to a valid Pool API key",
    ],
    [
      "a disabled key",
      { env: { CODEX_POOLER_API_KEY: DISABLED } },
      "the pool has disabled this API key (api_key_disabled: paused or revoked) — re-enable it in the pool, or set $CODEX_POOLER_API_KEY to an active Pool API key",
    ],
    [
      "a key with no model",
      { env: { CODEX_POOLER_API_KEY: NOTHING } },
      /^the pool at .* lists no model for this API key/,
    ],
    [
      "an unready pool",
      { pool: { ready: false } },
      /^the pooler at .* is not ready \(\/readyz: HTTP 503, unavailable\)/,
    ],
    [
      "a rate-limited pool",
      { pool: { failure: { code: "upstream_rate_limited", on: "all" } } },
      /^the pool is rate limiting requests \(upstream_rate_limited\)/,
    ],
  ] as const)("%s: one line on stderr, exit 1, nothing on stdout", async (_what, setup, reason) => {
    pooler = await start("pool" in setup ? setup.pool : {});
    const r = await cli(["models", "--base-url", pooler.url], "env" in setup ? { ...setup.env } : undefined);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr.split("\n")).toHaveLength(2);
    const line = r.stderr.replace(/^kilo-fleet models: /, "").trimEnd();
    if (typeof reason === "string") expect(line).toBe(reason);
    else expect(line).toMatch(reason);
  });

  it("an unreachable pool: exit 1", async () => {
    pooler = await start();
    const url = pooler.url;
    await pooler.stop();
    pooler = undefined;
    const r = await cli(["models", "--base-url", url]);
    expect(r).toEqual({
      code: 1,
      stdout: "",
      stderr: `kilo-fleet models: the pooler is unreachable at ${url} (ECONNREFUSED)\n`,
    });
  });
});

describe("kilo-fleet models: usage errors exit 2, and a key is never taken from the command line", () => {
  it.each([
    [
      ["models", "--base-url", "http://127.0.0.1:1/v1", "--key", KEY],
      /^kilo-fleet: --key is refused: a key on the command line lands in shell history/,
    ],
    [["models", "--base-url", "http://127.0.0.1:1/v1", `--key=${KEY}`], /^kilo-fleet: --key is refused/],
    [["models", "--base-url", "http://127.0.0.1:1/v1", `--api-key=${KEY}`], /^kilo-fleet: --api-key is refused/],
    [["models", "--base-url", "http://127.0.0.1:1/v1", `--token=${KEY}`], /^kilo-fleet: unknown argument "--token"\n/],
    [["models"], /^kilo-fleet: models needs --base-url/],
    [
      ["models", "--base-url", "http://127.0.0.1:1/v1/chat/completions"],
      /^kilo-fleet: --base-url must be the pooler's \/v1 base/,
    ],
    [
      ["models", "--base-url", "http://127.0.0.1:1/v1", "--key-env", "1BAD"],
      /^kilo-fleet: --key-env "1BAD" is not a variable name/,
    ],
    [
      ["models", "--base-url", "http://127.0.0.1:1/v1", "--timeout", "0"],
      /^kilo-fleet: --timeout must be whole seconds/,
    ],
  ])("%j", async (args, message) => {
    const r = await cli(args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toContain(USAGE_LINE);
  });

  it("the key variable unset or empty: exit 2, naming the variable", async () => {
    const r = await cli(["models", "--base-url", "http://127.0.0.1:1/v1", "--key-env", "NO_SUCH_POOL_KEY"], {});
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^kilo-fleet: \$NO_SUCH_POOL_KEY is not set: export the Pool API key in it/);
    const empty = await cli(["models", "--base-url", "http://127.0.0.1:1/v1"], { CODEX_POOLER_API_KEY: "" });
    expect(empty.code).toBe(2);
  });

  it("--help shows the models usage", async () => {
    const r = await cli(["--help"], {});
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(USAGE_LINE);
  });
});

describe("kiloModelsFromPool", () => {
  it("uses what the pool reports: display name (cleaned), modalities, tools and reasoning support", () => {
    const block = kiloModelsFromPool([
      {
        id: "m-text",
        contextLength: 1000,
        displayName: "Text\u0007 Only\n Model",
        inputModalities: ["text", "smell"],
        supportsTools: false,
        supportsReasoning: false,
      },
    ]);
    expect(block).toEqual({
      model: "m-text",
      warnings: [],
      models: {
        "m-text": {
          name: "Text Only Model via Codex Pooler",
          tool_call: false,
          reasoning: false,
          temperature: false,
          attachment: false,
          modalities: { input: ["text"], output: ["text"] },
          limit: { context: 1000, input: 1000, output: 250 },
        },
      },
    });
  });
});
