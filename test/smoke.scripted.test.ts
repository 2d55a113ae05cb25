/**
 * The smoke check's logic, fast: the host tool's `smoke` subcommand (host/smoke.ts), run as the smoke
 * step's command on a HOME deployed by the tool's own steps, with a scripted stand-in for the kilo binary
 * that prints canned `--format json` events (the shapes measured from kilo 7.7.7; test/smoke.test.ts
 * runs the real thing) and the stand-in pooler for the pool checks. Covers every cause line, the pool
 * checks and `smokeCheck.level`, the exact seed command, the environment and config kilo gets, redaction,
 * quoting of hostile values, the deadline and the cleanup.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseJsonc } from "jsonc-parser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MIN_PREFIX_CHARS } from "../common/redact";
import { parseResult } from "../common/result";
import { shQuote } from "../common/shellQuote";
import { type FakePooler, startFakePooler } from "../harness/fakePooler";
import { buildSettings, deployScripts } from "../harness/hostHome";
import { runScript } from "../harness/runScript";
import { deploySmokeHost } from "../harness/smokeCost";
import { freePort } from "../harness/sshd";
import { SMOKE_PERMISSION, SMOKE_PROMPT, smokeConfigCopy } from "../host/smoke";

const KEY = "test-key-smoke-script-7f3a9c";
const DISABLED_KEY = "test-key-smoke-script-disabled-1b";
const EXPIRED_KEY = "test-key-smoke-script-expired-2c";
const NARROW_KEY = "test-key-smoke-script-narrow-3d";
const HOSTILE_MODEL = `it's $(touch pwned) "q" \`x\` \\ ;|&`;
const roots: string[] = [];
let pooler: FakePooler;

beforeAll(async () => {
  // Only the pool checks reach it: the kilo here is a script.
  pooler = await startFakePooler({
    keys: KEY,
    models: [{ id: "gpt-5.5", contextLength: 258_400 }, { id: "gpt-5.4-mini" }, { id: HOSTILE_MODEL }],
    apiKeys: {
      [DISABLED_KEY]: { status: "disabled" },
      [EXPIRED_KEY]: { status: "expired" },
      [NARROW_KEY]: { models: ["gpt-5.4-mini"] },
    },
  });
});
afterAll(async () => {
  await pooler.stop();
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

/** Fake kilo: `--version` prints 7.7.7; `run` records its argv/env/config/cwd in $REC, then runs $REC/scenario.sh in --dir. */
function fakeKilo(rec: string): string {
  return `#!/bin/sh
REC=${shQuote(rec)}
if [ "$1" = "--version" ]; then echo 7.7.7; exit 0; fi
dir=; prev=
for a in "$@"; do [ "$prev" = "--dir" ] && dir=$a; prev=$a; done
printf '%s\\n' "$@" > "$REC/kilo-args"
env > "$REC/kilo-env"
cat "$XDG_CONFIG_HOME/kilo/kilo.jsonc" > "$REC/kilo-config-seen"
cd "$dir" || exit 9
pwd -P > "$REC/kilo-cwd"
. "$REC/scenario.sh"
`;
}

const ev = (o: unknown) => `printf '%s\\n' ${shQuote(JSON.stringify(o))}\n`;
const text = (t: string) => ev({ type: "text", part: { type: "text", text: t } });
const toolUse = (tool: string, status = "completed", error?: string) =>
  ev({ type: "tool_use", part: { type: "tool", tool, state: { status, input: {}, error } } });
const writeTool = (status = "completed", error?: string) => toolUse("write", status, error);
const apiError = (data: Record<string, unknown>, name = "APIError") => ev({ type: "error", error: { name, data } });
const GOOD = `printf 'kilo ok' > kilo-ok.txt\n${writeTool()}${text("kilo ok")}`;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  home: string;
  rec: string;
}

/** The parts of a deployed kilo.jsonc the tests edit. */
interface DeployedConfig {
  model?: string;
  provider: Record<string, { options: { baseURL?: string; apiKey?: string } }>;
}

interface Case {
  scenario?: string;
  /** `kilo-fleet:` settings besides poolerBaseUrl. */
  extra?: Record<string, unknown>;
  hostExtra?: Record<string, unknown>;
  key?: string;
  /** Replaces the env file the env step wrote; null removes it. */
  envFile?: string | null;
  kilo?: boolean;
  /** Remove the deployed kilo.jsonc before the check. */
  noConfig?: boolean;
  /** Edit the deployed kilo.jsonc (parsed as JSON) before the check, as a person on the host might. */
  editConfig?: (config: DeployedConfig) => void;
  env?: Record<string, string | undefined>;
}

async function runSmoke(c: Case = {}): Promise<Run> {
  const host = await deploySmokeHost({
    key: c.key ?? KEY,
    extra: { poolerBaseUrl: pooler.url, ...c.extra },
    hostExtra: c.hostExtra ?? {},
    env: { PATH: process.env.PATH, ...c.env },
  });
  roots.push(host.root);
  const rec = join(host.root, "rec");
  mkdirSync(rec);
  // The deployed kilo is the fake (the test cache's real one is linked in: replace the link).
  const bin = join(host.home, ".local", "bin", "kilo");
  rmSync(bin);
  if (c.kilo !== false) {
    writeFileSync(bin, fakeKilo(rec));
    chmodSync(bin, 0o755);
  }
  const envFile = join(host.home, ".config", "kilo", "codex-pooler.env");
  if (c.envFile === null) rmSync(envFile);
  else if (c.envFile !== undefined) writeFileSync(envFile, c.envFile, { mode: 0o600 });
  const configFile = join(host.home, ".config", "kilo", "kilo.jsonc");
  if (c.noConfig) rmSync(configFile);
  if (c.editConfig) {
    const config = parseJsonc(readFileSync(configFile, "utf8")) as DeployedConfig;
    c.editConfig(config);
    writeFileSync(configFile, JSON.stringify(config));
  }
  writeFileSync(join(rec, "scenario.sh"), c.scenario ?? GOOD);
  const { code, stdout, stderr, ms } = await runScript(host.smoke, host.env, { cwd: host.root });
  return { code, stdout, stderr, ms, home: host.home, rec };
}

/** Nothing of the check is left: no scratch directory, not even the cache directories it made. */
function expectNoScratch(r: Run) {
  expect(existsSync(join(r.home, ".cache"))).toBe(false);
}

/** Asserts a failure: exit 1, nothing on stdout, exactly one short stderr line, the key nowhere; the cause. */
function failureLine(r: Run, key = KEY): string {
  expect(r.code).toBe(1);
  expect(r.stdout).toBe("");
  const lines = r.stderr.split("\n");
  expect(lines).toHaveLength(2);
  expect(lines[1]).toBe("");
  expect(r.stderr).not.toContain(key.slice(0, MIN_PREFIX_CHARS + 2));
  expect(lines[0].length).toBeLessThanOrEqual(700);
  expect(lines[0]).toMatch(/^smoke check failed on test-host: /);
  expectNoScratch(r);
  return lines[0].slice("smoke check failed on test-host: ".length);
}

const ran = (r: Run) => existsSync(join(r.rec, "kilo-args"));
const KEY_SETTING = "kilo-fleet:codexPoolerApiKey (or kilo-fleet:apiKeys.test-host)";

describe.concurrent("smoke check (stand-in kilo)", () => {
  it("passes, runs exactly the seed command with an allowlisted environment and the check's permission, leaves nothing", async () => {
    const secrets = {
      PULUMI_ACCESS_TOKEN: "pul-test-token-not-for-kilo",
      AWS_SECRET_ACCESS_KEY: "aws-test-secret-not-for-kilo",
      SSH_AUTH_SOCK: "/tmp/test-agent.sock",
      KILO_CONFIG_CONTENT: '{"permission":{"bash":"allow"}}',
      LC_ALL: "C.UTF-8",
      HTTPS_PROXY: undefined,
      https_proxy: undefined,
      HTTP_PROXY: undefined,
      http_proxy: undefined,
      ALL_PROXY: undefined,
      all_proxy: undefined,
    };
    const r = await runSmoke({ env: secrets });
    expect(r.code).toBe(0);
    const result = parseResult(r.stdout, "smoke");
    expect(result).toMatchObject({ step: "smoke", pass: true, level: "kilo-run", kiloVersion: "7.7.7" });
    // The seed's gpt-5.5 says limit.context 272000; this pool reports 258400: a warning, in the result only
    // (KiloHost logs it): the step prints nothing else, on stdout or stderr.
    expect(result?.warnings).toEqual([
      "kilo-fleet:models.gpt-5.5.limit reaches 268000 tokens, over the pool's context_length 258400; fits: limit.context 258400, limit.input 214400",
    ]);
    expect(r.stderr).toBe("");
    expect(r.stdout.trim().split("\n")).toHaveLength(1);
    const cwd = readFileSync(join(r.rec, "kilo-cwd"), "utf8").trim();
    expect(cwd).toMatch(new RegExp(`^${r.home}/\\.cache/kilo-fleet/smoke-[^/]+/work$`));
    const args = readFileSync(join(r.rec, "kilo-args"), "utf8").split("\n").slice(0, -1);
    expect(args).toEqual([
      "run",
      "--model",
      "codex-pooler/gpt-5.5",
      "--pure",
      "--auto",
      "--format",
      "json",
      "--dir",
      cwd,
      SMOKE_PROMPT,
    ]);
    const env = new Map(
      readFileSync(join(r.rec, "kilo-env"), "utf8")
        .split("\n")
        .filter((l) => l.includes("="))
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
    const scratch = cwd.slice(0, -"/work".length);
    expect(Object.fromEntries(env)).toMatchObject({
      CODEX_POOLER_API_KEY: KEY,
      KILO_DISABLE_AUTOUPDATE: "1",
      KILO_DISABLE_PROJECT_CONFIG: "1",
      KILO_DISABLE_CLAUDE_CODE: "1",
      KILO_DISABLE_MODELS_FETCH: "1",
      KILO_TELEMETRY_LEVEL: "off",
      KILO_SESSION_RETRY_LIMIT: "1",
      KILO_PERMISSION: JSON.stringify(SMOKE_PERMISSION),
      HOME: `${scratch}/home`,
      XDG_CONFIG_HOME: `${scratch}/config`,
      XDG_CACHE_HOME: `${scratch}/cache`,
      XDG_DATA_HOME: `${scratch}/data`,
      XDG_STATE_HOME: `${scratch}/state`,
      TMPDIR: `${scratch}/tmp`,
      LC_ALL: "C.UTF-8",
      PATH: process.env.PATH,
    });
    // Nothing else of the deploy's environment: only the allowlist and the check's own.
    const allowed =
      /^(PATH|HOME|USER|LOGNAME|LANG|LANGUAGE|TZ|LC_\w+|(HTTPS?|NO|ALL)_PROXY|(https?|no|all)_proxy|NODE_EXTRA_CA_CERTS|SSL_CERT_(FILE|DIR)|XDG_(CONFIG|CACHE|DATA|STATE)_HOME|TMPDIR|KILO_[A-Z_]+|CODEX_POOLER_API_KEY|PWD|SHLVL|_|OLDPWD)$/;
    expect([...env.keys()].filter((k) => !allowed.test(k))).toEqual([]);
    for (const k of ["PULUMI_ACCESS_TOKEN", "AWS_SECRET_ACCESS_KEY", "SSH_AUTH_SOCK", "KILO_CONFIG_CONTENT"]) {
      expect(env.has(k)).toBe(false);
    }
    // kilo reads the deployed config with the check's permission and no MCP servers.
    const deployed = readFileSync(join(r.home, ".config", "kilo", "kilo.jsonc"), "utf8");
    const seen = JSON.parse(readFileSync(join(r.rec, "kilo-config-seen"), "utf8"));
    expect(readFileSync(join(r.rec, "kilo-config-seen"), "utf8")).toBe(smokeConfigCopy(deployed));
    expect(seen.permission).toEqual(SMOKE_PERMISSION);
    expect(seen.provider["codex-pooler"].options.baseURL).toBe(pooler.url);
    expect(seen.model).toBe("codex-pooler/gpt-5.5");
    expectNoScratch(r);
  });

  it("the config copy: permission replaced by the check's, mcp dropped, the rest kept", () => {
    const copy = JSON.parse(
      smokeConfigCopy(`// mine
{ "permission": { "*": "allow", "bash": "allow" }, "mcp": { "x": { "type": "local", "command": ["x"] } }, "share": "disabled", }
`),
    );
    expect(copy).toEqual({ share: "disabled", permission: SMOKE_PERMISSION });
    // Everything is denied but the file-writing tools, and kilo's "*" comes first so the named rules win.
    expect(Object.keys(SMOKE_PERMISSION)[0]).toBe("*");
    expect(Object.entries(SMOKE_PERMISSION).filter(([, v]) => v !== "deny")).toEqual([["edit", "allow"]]);
  });

  it("kilo reads a copy of the deployed config: its first-run rewrite never reaches the user's kilo.jsonc", async () => {
    const r = await runSmoke({
      scenario: `printf '{"permission":{"bash":"allow"}}' > "$XDG_CONFIG_HOME/kilo/kilo.jsonc"
touch "$XDG_CONFIG_HOME/kilo/.bash-permission-migrated"
${GOOD}`,
    });
    expect(r.code).toBe(0);
    const dir = join(r.home, ".config", "kilo");
    expect(readFileSync(join(dir, "kilo.jsonc"), "utf8")).not.toContain('"bash"');
    expect(readdirSync(dir).sort()).toEqual(["codex-pooler.env", "kilo.jsonc"]);
  });

  it("a missing kilo.jsonc: names the config step", async () => {
    const r = await runSmoke({ noConfig: true });
    expect(failureLine(r)).toMatch(/kilo\.jsonc is missing \(the config step writes it\)$/);
  });

  it("checks what the deployed kilo.jsonc says: its model, its provider's base URL and key variable", async () => {
    const unreachable = "http://127.0.0.1:9/v1";
    const [model, baseUrl, keyVar] = await Promise.all([
      runSmoke({ editConfig: (c) => (c.model = "codex-pooler/gpt-5.4-mini") }),
      runSmoke({ editConfig: (c) => (c.provider["codex-pooler"].options.baseURL = unreachable) }),
      runSmoke({ editConfig: (c) => (c.provider["codex-pooler"].options.apiKey = "{env:OTHER_POOL_KEY}") }),
    ]);
    expect(model.code, model.stderr).toBe(0);
    expect(readFileSync(join(model.rec, "kilo-args"), "utf8").split("\n")[2]).toBe("codex-pooler/gpt-5.4-mini");
    expect(failureLine(baseUrl)).toMatch(/127\.0\.0\.1:9/);
    expect(ran(baseUrl)).toBe(false);
    expect(failureLine(keyVar)).toMatch(/^OTHER_POOL_KEY is empty or not exported after sourcing /);
  });

  it("a kilo.jsonc without what it checks: names the file and the key, and never runs kilo", async () => {
    const cases = await Promise.all([
      runSmoke({ editConfig: (c) => delete c.model }),
      runSmoke({ editConfig: (c) => (c.model = "elsewhere/gpt-5.5") }),
      runSmoke({ editConfig: (c) => delete c.provider["codex-pooler"].options.baseURL }),
      runSmoke({ editConfig: (c) => (c.provider["codex-pooler"].options.apiKey = "sk-literal-key-in-config") }),
    ]);
    const lines = cases.map((r) => failureLine(r));
    expect(lines[0]).toMatch(
      /kilo\.jsonc has no "model" of the form "<provider>\/<model>" \(the config step writes it: deploy again\)$/,
    );
    expect(lines[1]).toMatch(/kilo\.jsonc defines no provider "elsewhere" \(its "model" names it\)/);
    expect(lines[2]).toMatch(/kilo\.jsonc has no provider\.codex-pooler\.options\.baseURL /);
    expect(lines[3]).toMatch(/kilo\.jsonc has no provider\.codex-pooler\.options\.apiKey of the form "\{env:VAR\}" /);
    // The literal value is not echoed.
    expect(lines[3]).not.toContain("sk-literal");
    for (const r of cases) expect(ran(r)).toBe(false);
  });

  it("accepts one trailing newline in kilo-ok.txt and surrounding whitespace in the reply", async () => {
    const r = await runSmoke({ scenario: `printf 'kilo ok\\n' > kilo-ok.txt\n${writeTool()}${text("\nkilo ok\n")}` });
    expect(r.code).toBe(0);
    expect(parseResult(r.stdout, "smoke")?.kiloVersion).toBe("7.7.7");
  });

  it("errors kilo reports map by the pool's code, never by its scrubbed message", async () => {
    const scrubbed = (status: number, code: string) =>
      apiError({
        message: "upstream request failed",
        statusCode: status,
        responseBody: JSON.stringify({ error: { message: "upstream request failed", type: "server_error", code } }),
      });
    const [quota, notAllowed, backend, limited, missing] = await Promise.all([
      runSmoke({ scenario: `${scrubbed(503, "quota_exhausted")}exit 1\n` }),
      runSmoke({ scenario: `${scrubbed(403, "model_not_allowed")}exit 1\n` }),
      runSmoke({ scenario: `${scrubbed(503, "no_eligible_backend")}exit 1\n` }),
      runSmoke({ scenario: `${scrubbed(429, "upstream_rate_limited")}exit 1\n` }),
      runSmoke({
        scenario: `${apiError({
          message: "api key is required",
          statusCode: 401,
          responseBody: JSON.stringify({ error: { message: "api key is required", code: "api_key_missing" } }),
        })}exit 1\n`,
      }),
    ]);
    expect(failureLine(quota)).toBe(
      "kilo's request failed: the pool's upstream quota is exhausted until its reset time (quota_exhausted) — retry after the reset, or add upstream capacity to the pool",
    );
    expect(failureLine(notAllowed)).toMatch(
      /^kilo's request failed: this API key may not use the requested model \(model_not_allowed\)/,
    );
    expect(failureLine(backend)).toMatch(
      /^kilo's request failed: the pool has no healthy upstream account .*\(no_eligible_backend\)/,
    );
    expect(failureLine(limited)).toMatch(
      /^kilo's request failed: the pool is rate limiting requests \(upstream_rate_limited\)/,
    );
    expect(failureLine(missing)).toBe(
      `kilo's request failed: the pool does not know this API key (api_key_missing) — set ${KEY_SETTING} to a valid Pool API key`,
    );
  });

  it("server text is sanitized: the key in every encoding, escapes and control characters gone, one short line", async () => {
    const b64 = Buffer.from(`user:${KEY}`).toString("base64");
    const echoed = `boom ${KEY} ${encodeURIComponent(KEY)} ${b64} ${JSON.stringify(KEY).slice(1, 11)}\u001b[31m red\u0007 ${"x".repeat(2000)}`;
    const [http500, stderrOnly, badFile] = await Promise.all([
      runSmoke({ scenario: `${apiError({ message: echoed, statusCode: 500 })}exit 1\n` }),
      runSmoke({
        scenario: `echo "starting" >&2\nprintf '%s\\n' ${shQuote(`\u001b[91mError:\u001b[0m bad ${KEY}`)} >&2\nexit 3\n`,
      }),
      runSmoke({ scenario: `printf '%s' ${shQuote(`${KEY}!`)} > kilo-ok.txt\n${writeTool()}${text("kilo ok")}` }),
    ]);
    const line = failureLine(http500);
    expect(line).toMatch(
      /^kilo's request failed: the pool answered HTTP 500: "boom \[REDACTED\] \[REDACTED\] \[REDACTED\] \[REDACTED\] red x+…"$/,
    );
    expect(line.length).toBeLessThan(300);
    expect(line).not.toContain(b64.slice(4, 16));
    expect(failureLine(stderrOnly)).toBe('kilo exited with status 3: "Error: bad [REDACTED]"');
    expect(failureLine(badFile)).toBe('kilo-ok.txt holds "[REDACTED]!" instead of "kilo ok"');
  });

  it("kilo cannot connect, or the stream dropped: names the base URL", async () => {
    const msg = "Cannot connect to API: Unable to connect. Is the computer able to access the url?";
    const [connect, reset] = await Promise.all([
      runSmoke({ scenario: `${apiError({ message: msg, isRetryable: true })}exit 1\n` }),
      runSmoke({ scenario: `${apiError({ message: "Connection reset by server", isRetryable: true })}exit 1\n` }),
    ]);
    expect(failureLine(connect)).toBe(
      `the pooler at ${pooler.url} is unreachable or dropped the connection (kilo: "${msg}")`,
    );
    expect(failureLine(reset)).toBe(
      `the pooler at ${pooler.url} is unreachable or dropped the connection (kilo: "Connection reset by server")`,
    );
  });

  it("the prompt is the seed's, word for word", () => {
    expect(SMOKE_PROMPT).toBe(
      "Use your tools to create kilo-ok.txt containing exactly: kilo ok. After the file exists, reply with exactly: kilo ok",
    );
  });

  it("unknown model: kilo's own message, past its generic 'Unexpected server error'", async () => {
    const r = await runSmoke({
      scenario: `${apiError({ message: "Unexpected server error. Check server logs for details." }, "UnknownError")}${apiError({ message: "Model not found: codex-pooler/gpt-5.5." }, "UnknownError")}exit 1\n`,
    });
    expect(failureLine(r)).toBe(
      'unknown model codex-pooler/gpt-5.5: kilo says "Model not found: codex-pooler/gpt-5.5." — define it in kilo-fleet:models',
    );
  });

  it("a tool other than write: refused and named, and a bash that ran anyway is called out", async () => {
    const [refused, ranAnyway] = await Promise.all([
      runSmoke({
        scenario: `${toolUse("bash", "error", "The user has specified a rule which prevents you from using this specific tool call.")}${GOOD}`,
      }),
      runSmoke({ scenario: `${toolUse("bash")}${GOOD}` }),
    ]);
    expect(failureLine(refused)).toBe(
      `the model called "bash", which the smoke check refuses (it allows only the write tool, in its scratch directory) — is the pooler at ${pooler.url} the one you deployed?`,
    );
    expect(failureLine(ranAnyway)).toBe(
      'the model called "bash" and kilo ran it although the smoke check allows only the write tool — check kilo\'s permission handling and the pooler',
    );
  });

  it("exit 0 proves nothing: no tool call, a failed write, a missing or wrong file, a wrong or missing reply", async () => {
    const [noTool, failed, missing, wrong, reply, noReply] = await Promise.all([
      runSmoke({ scenario: `${text("kilo ok")}exit 0\n` }),
      runSmoke({ scenario: `${writeTool("error", "permission denied")}${text("kilo ok")}` }),
      runSmoke({ scenario: `${writeTool()}${text("kilo ok")}` }),
      runSmoke({ scenario: `printf 'kilo ok!\\n\\n' > kilo-ok.txt\n${writeTool()}${text("kilo ok")}` }),
      runSmoke({ scenario: `printf 'kilo ok' > kilo-ok.txt\n${writeTool()}${text("Done! kilo ok")}` }),
      runSmoke({ scenario: `printf 'kilo ok' > kilo-ok.txt\n${writeTool()}` }),
    ]);
    expect(failureLine(noTool)).toBe("kilo never called its write tool, so kilo-ok.txt was not created");
    expect(failureLine(failed)).toBe('kilo\'s write tool failed: "permission denied"');
    expect(failureLine(missing)).toBe("kilo-ok.txt is missing after kilo's write tool ran");
    expect(failureLine(wrong)).toBe('kilo-ok.txt holds "kilo ok!\\n\\n" instead of "kilo ok"');
    expect(failureLine(reply)).toBe('kilo\'s final reply was "Done! kilo ok", not "kilo ok"');
    expect(failureLine(noReply)).toBe('kilo gave no final reply (expected "kilo ok")');
  });

  it("an empty, unset or unexported key is refused before anything reaches the pool or kilo runs", async () => {
    const before = pooler.requests.length;
    const [empty, unset, unexported] = await Promise.all([
      runSmoke({ envFile: "export CODEX_POOLER_API_KEY=''\nexport KILO_DISABLE_AUTOUPDATE=1\n" }),
      runSmoke({ envFile: "export KILO_DISABLE_AUTOUPDATE=1\n" }),
      runSmoke({ envFile: `CODEX_POOLER_API_KEY=${shQuote(KEY)}\n` }),
    ]);
    for (const r of [empty, unset, unexported]) {
      expect(failureLine(r)).toMatch(
        /^CODEX_POOLER_API_KEY is empty or not exported after sourcing .*\/\.config\/kilo\/codex-pooler\.env: kilo would send no API key — set kilo-fleet:codexPoolerApiKey \(or kilo-fleet:apiKeys\.test-host\) and deploy again$/,
      );
      expect(ran(r)).toBe(false);
    }
    expect(pooler.requests.slice(before).filter((q) => q.key === undefined && q.path === "/v1/models")).toEqual([]);
  });

  it("uses the configured key variable", async () => {
    const good = await runSmoke({ extra: { apiKeyEnvVar: "MY_POOL_KEY" } });
    expect(good.code).toBe(0);
    const missing = await runSmoke({
      extra: { apiKeyEnvVar: "MY_POOL_KEY" },
      envFile: `export CODEX_POOLER_API_KEY=${shQuote(KEY)}\n`,
    });
    expect(failureLine(missing)).toMatch(/^MY_POOL_KEY is empty or not exported/);
  });

  it("says so when the env file or kilo is missing", async () => {
    const [noEnv, noKilo] = await Promise.all([runSmoke({ envFile: null }), runSmoke({ kilo: false })]);
    expect(failureLine(noEnv)).toMatch(
      /^the env file .*\/\.config\/kilo\/codex-pooler\.env is missing \(the env step writes it\)$/,
    );
    expect(failureLine(noKilo)).toMatch(/^kilo is not installed at .*\/\.local\/bin\/kilo$/);
  });

  it("the pool checks fail fast with the pool's reason, before kilo runs", async () => {
    const port = await freePort();
    const [down, unknown, disabled, expired, narrow] = await Promise.all([
      runSmoke({ extra: { poolerBaseUrl: `http://127.0.0.1:${port}/v1` } }),
      runSmoke({ key: "test-key-smoke-script-unknown-4e" }),
      runSmoke({ key: DISABLED_KEY }),
      runSmoke({ key: EXPIRED_KEY }),
      runSmoke({ key: NARROW_KEY }),
    ]);
    expect(failureLine(down)).toBe(`the pooler is unreachable at http://127.0.0.1:${port}/v1 (ECONNREFUSED)`);
    expect(failureLine(unknown, "test-key-smoke-script-unknown-4e")).toBe(
      `the pool does not know this API key (api_key_missing) — set ${KEY_SETTING} to a valid Pool API key`,
    );
    expect(failureLine(disabled, DISABLED_KEY)).toMatch(
      /^the pool has disabled this API key \(api_key_disabled: paused or revoked\)/,
    );
    expect(failureLine(expired, EXPIRED_KEY)).toMatch(
      /^this API key has expired \(api_key_expired\) — issue a new Pool API key and set kilo-fleet:codexPoolerApiKey \(or kilo-fleet:apiKeys\.test-host\)/,
    );
    expect(failureLine(narrow, NARROW_KEY)).toBe(
      "this API key may not use gpt-5.5 (model_not_allowed: the pool lacks it or the key's policy excludes it) — it may use: gpt-5.4-mini; fix kilo-fleet:models, or the key's models in the pool",
    );
    for (const r of [down, unknown, disabled, expired, narrow]) expect(ran(r)).toBe(false);
  });

  it("hostile model ids reach kilo as the same bytes", async () => {
    const r = await runSmoke({
      extra: { model: HOSTILE_MODEL, models: { [HOSTILE_MODEL]: { limit: { context: 1000, output: 100 } } } },
    });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const args = readFileSync(join(r.rec, "kilo-args"), "utf8").split("\n");
    expect(args[2]).toBe(`codex-pooler/${HOSTILE_MODEL}`);
    expect(existsSync(join(r.home, "pwned"))).toBe(false);
    expect(existsSync(join(r.rec, "..", "pwned"))).toBe(false);
  });

  it('smokeCheck.level "pool": the pool checks only, kilo never runs; fleet-wide or per host', async () => {
    const [fleet, perHost, canary] = await Promise.all([
      runSmoke({ extra: { smokeCheck: { level: "pool" } } }),
      runSmoke({ hostExtra: { smokeCheck: { level: "pool" } } }),
      runSmoke({ extra: { smokeCheck: { level: "pool" } }, hostExtra: { smokeCheck: { level: "kilo-run" } } }),
    ]);
    for (const r of [fleet, perHost]) {
      expect(r.code).toBe(0);
      expect(parseResult(r.stdout, "smoke")).toMatchObject({ level: "pool", kiloVersion: "7.7.7" });
      // The step logs nothing (it handles the key): its stdout is the result line alone.
      expect(r.stdout.trim().split("\n")).toHaveLength(1);
      expect(ran(r)).toBe(false);
      expectNoScratch(r);
    }
    expect(canary.code).toBe(0);
    expect(parseResult(canary.stdout, "smoke")?.level).toBe("kilo-run");
    expect(ran(canary)).toBe(true);
    // The step's argument is its own settings only: what it checks comes from the deployed kilo.jsonc.
    const smoke = deployScripts(buildSettings({ smokeCheck: { level: "pool" } }), "ssh").smoke?.create ?? "";
    expect(smoke).toMatch(/ smoke '\{`host`:`test-host`,`timeoutSeconds`:180,`level`:`pool`\}'$/);
  });

  it("behind a proxy that refuses: both levels fail in one line naming the proxy, and kilo never runs", async () => {
    const url = `http://127.0.0.1:${await freePort()}/`;
    const proxy = { HTTPS_PROXY: url, HTTP_PROXY: url };
    const [run, pool] = await Promise.all([
      runSmoke({ env: { ...proxy } }),
      runSmoke({ env: { ...proxy }, extra: { smokeCheck: { level: "pool" } } }),
    ]);
    for (const r of [run, pool]) {
      expect(failureLine(r)).toMatch(
        /^the egress proxy http:\/\/127\.0\.0\.1:\d+ \(HTTP_PROXY\) refused or dropped the connection \(ECONNREFUSED\)$/,
      );
      expect(ran(r)).toBe(false);
    }
  });

  it("stops kilo and everything it started at the deadline, within timeout + 5 s", async ({ expect }) => {
    const r = await runSmoke({
      extra: { smokeCheck: { timeoutSeconds: 10 } },
      scenario: `sleep 300 &\necho $! > "$REC/bg-pid"\n${writeTool()}sleep 300\n`,
    });
    expect(failureLine(r)).toBe("timed out after 10 s (kilo-fleet:smokeCheck.timeoutSeconds)");
    expect(r.ms).toBeGreaterThanOrEqual(10_000);
    expect(r.ms).toBeLessThan(15_000);
    const bg = Number(readFileSync(join(r.rec, "bg-pid"), "utf8"));
    await expect.poll(() => alive(bg), { timeout: 3000 }).toBe(false);
  });
});

/** Whether a process runs (a zombie nobody reaped does not count). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}
