/**
 * The smoke script's logic, fast: the real script under dash, with a scripted stand-in for the kilo
 * binary that prints canned `--format json` events (the shapes measured from kilo 7.7.7, see
 * test/smoke.test.ts for the real thing). Covers every cause line, the exact seed command and
 * environment kilo gets, redaction, quoting of hostile values, the deadline and the cleanup.
 */
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseSmokeOutput, SMOKE_PROMPT, smokeScript } from "../deployer/hostScripts/smoke";
import { parseSettings, resolveHost, type Settings } from "../deployer/settings";
import { shQuote } from "../common/shellQuote";
import { type FakePooler, startFakePooler } from "../harness/fakePooler";
import { runScript } from "./support/runScript";

const KEY = "test-key-smoke-script-7f3a9c";
const roots: string[] = [];
let pooler: FakePooler;

beforeAll(async () => {
  // Only the pre-check's GET of the base URL reaches it: the kilo here is a script.
  pooler = await startFakePooler({ keys: KEY });
});
afterAll(async () => {
  await pooler.stop();
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function settingsFor(extra: Record<string, unknown> = {}): Settings {
  const raw: Record<string, unknown> = { "kilo-fleet:poolerBaseUrl": pooler.url };
  for (const [k, v] of Object.entries(extra)) raw[`kilo-fleet:${k}`] = v;
  const r = parseSettings(raw);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.settings;
}

/** Fake kilo: `--version` prints 7.7.7; `run` records its argv/env/cwd, then runs `$HOME/scenario.sh` in --dir. */
const FAKE_KILO = `#!/bin/sh
if [ "$1" = "--version" ]; then echo 7.7.7; exit 0; fi
dir=; prev=
for a in "$@"; do [ "$prev" = "--dir" ] && dir=$a; prev=$a; done
printf '%s\\n' "$@" > "$HOME/kilo-args"
env > "$HOME/kilo-env"
cat "$XDG_CONFIG_HOME/kilo/kilo.jsonc" > "$HOME/kilo-config-seen"
cd "$dir" || exit 9
pwd -P > "$HOME/kilo-cwd"
. "$HOME/scenario.sh"
`;

const ev = (o: unknown) => `printf '%s\\n' ${shQuote(JSON.stringify(o))}\n`;
const text = (t: string) => ev({ type: "text", part: { type: "text", text: t } });
const writeTool = (status = "completed", error?: string) =>
  ev({
    type: "tool_use",
    part: { type: "tool", tool: "write", state: { status, input: { filePath: "x", content: "kilo ok" }, error } },
  });
const apiError = (data: Record<string, unknown>, name = "APIError") => ev({ type: "error", error: { name, data } });
const GOOD = `printf 'kilo ok' > kilo-ok.txt\n${writeTool()}${text("kilo ok")}`;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  home: string;
  tmp: string;
}

interface Case {
  scenario?: string;
  settings?: Settings;
  envFile?: string | null;
  kilo?: boolean;
  /** The deployed kilo.jsonc; null for none. */
  kiloConfig?: string | null;
}

const USER_KILO_CONFIG = '// the deployed config\n{ "model": "codex-pooler/gpt-5.5" }\n';

async function runSmoke(c: Case = {}): Promise<Run> {
  const root = mkdtempSync(join(tmpdir(), "kilo-fleet-smoke-script-"));
  roots.push(root);
  const home = join(root, "home");
  const tmp = join(root, "tmp");
  mkdirSync(join(home, ".config", "kilo"), { recursive: true });
  mkdirSync(join(home, ".local", "bin"), { recursive: true });
  mkdirSync(tmp);
  if (c.kilo !== false) {
    writeFileSync(join(home, ".local", "bin", "kilo"), FAKE_KILO);
    chmodSync(join(home, ".local", "bin", "kilo"), 0o755);
  }
  const envFile =
    c.envFile === undefined
      ? `export CODEX_POOLER_API_KEY=${shQuote(KEY)}\nexport KILO_DISABLE_AUTOUPDATE=1\n`
      : c.envFile;
  if (envFile !== null) writeFileSync(join(home, ".config", "kilo", "codex-pooler.env"), envFile, { mode: 0o600 });
  const kiloConfig = c.kiloConfig === undefined ? USER_KILO_CONFIG : c.kiloConfig;
  if (kiloConfig !== null) writeFileSync(join(home, ".config", "kilo", "kilo.jsonc"), kiloConfig);
  writeFileSync(join(home, "scenario.sh"), c.scenario ?? GOOD);
  const settings = c.settings ?? settingsFor();
  const script = smokeScript(settings, resolveHost(settings, settings.hosts[0])).create;
  const env = { HOME: home, PATH: process.env.PATH ?? "/usr/bin:/bin", TMPDIR: tmp };
  const { code, stdout, stderr, ms } = await runScript(script, env, { cwd: root });
  return { code, stdout, stderr, ms, home, tmp };
}

/** Asserts a failure: exit 1, nothing on stdout, exactly one stderr line, the key nowhere; returns the line. */
function failureLine(r: Run): string {
  expect(r.code).toBe(1);
  expect(r.stdout).toBe("");
  const lines = r.stderr.split("\n");
  expect(lines).toHaveLength(2);
  expect(lines[1]).toBe("");
  expect(r.stderr).not.toContain(KEY);
  expect(lines[0]).toMatch(/^smoke check failed on local: /);
  return lines[0].slice("smoke check failed on local: ".length);
}

describe.concurrent("smoke script (stand-in kilo)", () => {
  it("passes, runs exactly the seed command with the check's environment, and leaves nothing behind", async () => {
    const r = await runSmoke();
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^kilo-fleet: smoke ok kilo=7\.7\.7 seconds=\d+\.\d\n$/);
    expect(parseSmokeOutput(r.stdout)).toMatchObject({ passed: true, kiloVersion: "7.7.7" });
    const cwd = readFileSync(join(r.home, "kilo-cwd"), "utf8").trim();
    expect(cwd.startsWith(r.tmp)).toBe(true);
    const args = readFileSync(join(r.home, "kilo-args"), "utf8").split("\n").slice(0, -1);
    expect(args).toEqual([
      "run",
      "--model",
      "codex-pooler/gpt-5.5",
      "--pure",
      "--auto",
      "--format",
      "json",
      "--dir",
      expect.stringMatching(/kilo-fleet\.[^/]+\/work$/),
      SMOKE_PROMPT,
    ]);
    const env = readFileSync(join(r.home, "kilo-env"), "utf8").split("\n");
    for (const v of ["KILO_DISABLE_MODELS_FETCH=1", "KILO_TELEMETRY_LEVEL=off", "KILO_SESSION_RETRY_LIMIT=1"]) {
      expect(env).toContain(v);
    }
    expect(env).toContain(`CODEX_POOLER_API_KEY=${KEY}`);
    expect(env).toContainEqual(expect.stringMatching(/^XDG_DATA_HOME=.*kilo-fleet\.[^/]+\/data$/));
    expect(env).toContainEqual(expect.stringMatching(/^XDG_STATE_HOME=.*kilo-fleet\.[^/]+\/state$/));
    expect(env).toContainEqual(expect.stringMatching(/^TMPDIR=.*kilo-fleet\.[^/]+\/tmp$/));
    expect(env).toContainEqual(expect.stringMatching(/^XDG_CACHE_HOME=.*kilo-fleet\.[^/]+\/cache$/));
    expect(env).toContainEqual(expect.stringMatching(/^XDG_CONFIG_HOME=.*kilo-fleet\.[^/]+\/config$/));
    expect(readFileSync(join(r.home, "kilo-config-seen"), "utf8")).toBe(USER_KILO_CONFIG);
    expect(readdirSync(r.tmp)).toEqual([]);
  });

  it("kilo reads a copy of the deployed config: its first-run rewrite never reaches the user's kilo.jsonc", async () => {
    const r = await runSmoke({
      scenario: `printf '{"permission":{"bash":"allow"}}' > "$XDG_CONFIG_HOME/kilo/kilo.jsonc"
touch "$XDG_CONFIG_HOME/kilo/.bash-permission-migrated"
${GOOD}`,
    });
    expect(r.code).toBe(0);
    expect(readFileSync(join(r.home, ".config", "kilo", "kilo.jsonc"), "utf8")).toBe(USER_KILO_CONFIG);
    expect(readdirSync(join(r.home, ".config", "kilo")).sort()).toEqual(["codex-pooler.env", "kilo.jsonc"]);
  });

  it("a missing kilo.jsonc: names the config step", async () => {
    const r = await runSmoke({ kiloConfig: null });
    expect(failureLine(r)).toMatch(/kilo\.jsonc is missing \(the config step writes it\)$/);
  });

  it("accepts one trailing newline in kilo-ok.txt and surrounding whitespace in the reply", async () => {
    const r = await runSmoke({ scenario: `printf 'kilo ok\\n' > kilo-ok.txt\n${writeTool()}${text("\nkilo ok\n")}` });
    expect(r.code).toBe(0);
    expect(parseSmokeOutput(r.stdout)?.kiloVersion).toBe("7.7.7");
  });

  it("401: names the cause and never prints the key the server echoed", async () => {
    const echoed = `Incorrect API key provided: ${KEY}.`;
    const r = await runSmoke({
      scenario: `${apiError({ message: echoed, statusCode: 401, responseBody: echoed })}echo "Error: ${echoed}" >&2\nexit 1\n`,
    });
    expect(failureLine(r)).toBe("the pooler refused the API key (HTTP 401) — rotate codexPoolerApiKey");
    expect(readdirSync(r.tmp)).toEqual([]);
  });

  it("500 and other HTTP errors: the status and the server's message, redacted", async () => {
    const r = await runSmoke({
      scenario: `${apiError({ message: `boom for ${KEY}`, statusCode: 500 })}exit 1\n`,
    });
    expect(failureLine(r)).toBe('the pooler answered HTTP 500: "boom for [redacted]"');
  });

  it("kilo cannot connect: the pooler is unreachable, with the base URL", async () => {
    const msg = "Cannot connect to API: Unable to connect. Is the computer able to access the url?";
    const r = await runSmoke({ scenario: `${apiError({ message: msg, isRetryable: true })}exit 1\n` });
    expect(failureLine(r)).toBe(
      `the pooler at ${pooler.url} is unreachable or dropped the connection (kilo: "${msg}")`,
    );
  });

  it("a stream the pooler dropped (kilo: 'Connection reset by server')", async () => {
    const r = await runSmoke({
      scenario: `${apiError({ message: "Connection reset by server", isRetryable: true })}exit 1\n`,
    });
    expect(failureLine(r)).toBe(
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

  it("exit 0 proves nothing: no tool call is a failure", async () => {
    const r = await runSmoke({ scenario: `${text("kilo ok")}exit 0\n` });
    expect(failureLine(r)).toBe("kilo never called its write tool, so kilo-ok.txt was not created");
  });

  it("a failed write tool, a missing file, a wrong file, a wrong or missing reply", async () => {
    const [failed, missing, wrong, reply, noReply] = await Promise.all([
      runSmoke({ scenario: `${writeTool("error", "permission denied")}${text("kilo ok")}` }),
      runSmoke({ scenario: `${writeTool()}${text("kilo ok")}` }),
      runSmoke({ scenario: `printf 'kilo ok!\\n\\n' > kilo-ok.txt\n${writeTool()}${text("kilo ok")}` }),
      runSmoke({ scenario: `printf 'kilo ok' > kilo-ok.txt\n${writeTool()}${text("Done! kilo ok")}` }),
      runSmoke({ scenario: `printf 'kilo ok' > kilo-ok.txt\n${writeTool()}` }),
    ]);
    expect(failureLine(failed)).toBe('kilo\'s write tool failed: "permission denied"');
    expect(failureLine(missing)).toBe("kilo-ok.txt is missing after kilo's write tool ran");
    expect(failureLine(wrong)).toBe('kilo-ok.txt holds "kilo ok!\\n\\n" instead of "kilo ok"');
    expect(failureLine(reply)).toBe('kilo\'s final reply was "Done! kilo ok", not "kilo ok"');
    expect(failureLine(noReply)).toBe('kilo gave no final reply (expected "kilo ok")');
  });

  it("a non-zero exit without events: the status and kilo's last stderr line, redacted", async () => {
    const r = await runSmoke({
      scenario: `echo "starting" >&2\necho "\\033[91mError:\\033[0m bad thing ${KEY}" >&2\nexit 3\n`,
    });
    expect(failureLine(r)).toBe('kilo exited with status 3: "Error: bad thing [redacted]"');
  });

  it("an empty, unset or unexported key is refused before kilo runs (kilo would send no Authorization)", async () => {
    const [empty, unset, unexported] = await Promise.all([
      runSmoke({ envFile: "export CODEX_POOLER_API_KEY=''\nexport KILO_DISABLE_AUTOUPDATE=1\n" }),
      runSmoke({ envFile: "export KILO_DISABLE_AUTOUPDATE=1\n" }),
      runSmoke({ envFile: `CODEX_POOLER_API_KEY=${shQuote(KEY)}\n` }),
    ]);
    for (const r of [empty, unset, unexported]) {
      expect(failureLine(r)).toMatch(
        /^CODEX_POOLER_API_KEY is empty or not exported after sourcing .*\/\.config\/kilo\/codex-pooler\.env: kilo would send no API key — set kilo-fleet:codexPoolerApiKey and deploy again$/,
      );
      expect(existsSync(join(r.home, "kilo-args"))).toBe(false);
      expect(readdirSync(r.tmp)).toEqual([]);
    }
  });

  it("uses the configured key variable", async () => {
    const settings = settingsFor({ apiKeyEnvVar: "MY_POOL_KEY" });
    const ok = await runSmoke({ settings, envFile: `export MY_POOL_KEY=${shQuote(KEY)}\n` });
    expect(ok.code).toBe(0);
    const missing = await runSmoke({ settings });
    expect(failureLine(missing)).toMatch(/^MY_POOL_KEY is empty or not exported/);
  });

  it("says so when the env file or kilo is missing", async () => {
    const [noEnv, noKilo] = await Promise.all([runSmoke({ envFile: null }), runSmoke({ kilo: false })]);
    expect(failureLine(noEnv)).toMatch(
      /^the env file .*\/\.config\/kilo\/codex-pooler\.env is missing \(the env step writes it\)$/,
    );
    expect(failureLine(noKilo)).toMatch(/^kilo is not installed at .*\/\.local\/bin\/kilo$/);
  });

  it("an unreachable pooler is reported before kilo runs, with the base URL", async () => {
    const port = await freePort();
    const settings = settingsFor({ poolerBaseUrl: `http://127.0.0.1:${port}/v1` });
    const r = await runSmoke({ settings });
    expect(failureLine(r)).toBe(`the pooler is unreachable at http://127.0.0.1:${port}/v1 (ECONNREFUSED)`);
    expect(existsSync(join(r.home, "kilo-args"))).toBe(false);
  });

  it("hostile model ids reach kilo as the same bytes", async () => {
    const model = `it's $(touch pwned) "q" \`x\` \\ ;|&`;
    const settings = settingsFor({
      model,
      models: JSON.stringify({ [model]: { limit: { context: 1000, output: 100 } } }),
    });
    const r = await runSmoke({ settings });
    expect(r.code).toBe(0);
    const args = readFileSync(join(r.home, "kilo-args"), "utf8").split("\n");
    expect(args[2]).toBe(`codex-pooler/${model}`);
    expect(existsSync(join(r.home, "pwned"))).toBe(false);
    expect(readdirSync(r.home)).not.toContain("pwned");
  });

  it("stops kilo and everything it started at the deadline, within timeout + 5 s", async ({ expect }) => {
    const settings = settingsFor({ smokeCheck: JSON.stringify({ timeoutSeconds: 10 }) });
    const r = await runSmoke({
      settings,
      scenario: `sleep 300 &\necho $! > "$HOME/bg-pid"\n${writeTool()}sleep 300\n`,
    });
    expect(failureLine(r)).toBe("timed out after 10 s (kilo-fleet:smokeCheck.timeoutSeconds)");
    expect(r.ms).toBeGreaterThanOrEqual(10_000);
    expect(r.ms).toBeLessThan(15_000);
    const bg = Number(readFileSync(join(r.home, "bg-pid"), "utf8"));
    await expect.poll(() => alive(bg), { timeout: 3000 }).toBe(false);
    expect(readdirSync(r.tmp)).toEqual([]);
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

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}
