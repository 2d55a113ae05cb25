/**
 * The smoke check with the real kilo 7.7.7 against the stand-in pooler (issue 5): it passes; a wrong
 * key, the pooler down, an unknown model, a timeout and a run that never calls the tool each fail with
 * their one-line reason within the timeout + 5 s; the key is in nothing printed and nowhere under the
 * temporary HOME except the env file; the scratch directory is gone afterwards.
 *
 * Each kilo run costs ~10-20 s of CPU, so the cases run concurrently (vitest's maxConcurrency).
 */
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseSmokeOutput, smokeScript } from "../deployer/hostScripts/smoke";
import { renderKiloConfig, renderKiloConfigText } from "../deployer/kiloConfig";
import { parseSettings, resolveHost, type Settings } from "../deployer/settings";
import { shQuote } from "../common/shellQuote";
import { type FakePooler, startFakePooler } from "../harness/fakePooler";
import { ensureKilo, type KiloInstall } from "../harness/kilo";
import { runScript } from "./support/runScript";

const KEY = "test-key-smoke-real-kilo-5d21e0";
const WRONG_KEY = "test-key-smoke-wrong-8c4b7a";
const SLACK_MS = 5_000;

let kilo: KiloInstall;
let ok: FakePooler;
let slow: FakePooler;
let noTool: FakePooler;
const roots: string[] = [];

beforeAll(async () => {
  kilo = ensureKilo();
  [ok, slow, noTool] = await Promise.all([
    // echoKey: the wrong key's 401 echoes it (the real pooler does not), so the test can prove it goes nowhere.
    startFakePooler({ keys: KEY, echoKey: true }),
    startFakePooler({ keys: KEY, mode: "slow", slowMs: 120_000 }),
    startFakePooler({ keys: KEY, mode: "no-tool" }),
  ]);
});
afterAll(async () => {
  await Promise.all([ok?.stop(), slow?.stop(), noTool?.stop()]);
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function settingsFor(baseUrl: string, extra: Record<string, unknown> = {}): Settings {
  const raw: Record<string, unknown> = {
    "kilo-fleet:poolerBaseUrl": baseUrl,
    "kilo-fleet:hosts": JSON.stringify([{ name: "alice-laptop", local: true }]),
    "kilo-fleet:smokeCheck": JSON.stringify({ timeoutSeconds: 120 }),
  };
  for (const [k, v] of Object.entries(extra)) raw[`kilo-fleet:${k}`] = v;
  const r = parseSettings(raw);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.settings;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  home: string;
  tmp: string;
  envFile: string;
}

/**
 * A host as the deploy leaves it, on a temporary HOME: kilo at ~/.local/bin/kilo, kilo.jsonc rendered from
 * `configSettings`, the env file with `key`. Then runs the smoke script of `smokeSettings` under dash.
 */
async function runSmoke(opts: { configSettings: Settings; smokeSettings?: Settings; key: string }): Promise<Run> {
  const root = mkdtempSync(join(tmpdir(), "kilo-fleet-smoke-"));
  roots.push(root);
  const home = join(root, "home");
  const tmp = join(root, "tmp");
  const configDir = join(home, ".config", "kilo");
  mkdirSync(configDir, { recursive: true });
  mkdirSync(join(home, ".local", "bin"), { recursive: true });
  mkdirSync(tmp);
  symlinkSync(kilo.bin, join(home, ".local", "bin", "kilo"));
  const cs = opts.configSettings;
  writeFileSync(
    join(configDir, "kilo.jsonc"),
    renderKiloConfigText(renderKiloConfig(cs, resolveHost(cs, cs.hosts[0]))),
  );
  const envFile = join(configDir, "codex-pooler.env");
  writeFileSync(envFile, `export CODEX_POOLER_API_KEY=${shQuote(opts.key)}\nexport KILO_DISABLE_AUTOUPDATE=1\n`);
  chmodSync(envFile, 0o600);
  const ss = opts.smokeSettings ?? cs;
  const script = smokeScript(ss, resolveHost(ss, ss.hosts[0])).create;
  const env = { HOME: home, PATH: process.env.PATH ?? "/usr/bin:/bin", TMPDIR: tmp };
  const { code, stdout, stderr, ms } = await runScript(script, env, { cwd: root });
  return { code, stdout, stderr, ms, home, tmp, envFile };
}

/** Every file under `dir` (recursively), except `skip`. */
function filesUnder(dir: string, skip: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p, skip));
    else if (e.isFile() && p !== skip) out.push(p);
  }
  return out;
}

/** No trace of the run: the key in no file under HOME but the env file, the scratch directory gone. */
function expectNoTraces(r: Run, keys: string[]) {
  const files = filesUnder(r.home, r.envFile);
  expect(files.map((f) => f.slice(r.home.length))).toContain("/.config/kilo/kilo.jsonc");
  for (const f of files) {
    const content = readFileSync(f);
    for (const k of keys) expect(content.includes(k), `${k} found in ${f}`).toBe(false);
  }
  for (const k of keys) {
    expect(r.stdout).not.toContain(k);
    expect(r.stderr).not.toContain(k);
  }
  expect(readdirSync(r.tmp)).toEqual([]);
  // Nothing kilo started is still running.
  expect(processesMentioning(r.tmp)).toEqual([]);
}

function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (cmd.includes(text) && !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"))) found.push(pid);
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/** One stderr line `smoke check failed on alice-laptop: <cause>`, exit 1, nothing on stdout; the cause. */
function failureCause(r: Run, timeoutSeconds: number): string {
  expect(r.code).toBe(1);
  expect(r.stdout).toBe("");
  expect(r.stderr.endsWith("\n")).toBe(true);
  expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
  expect(r.ms).toBeLessThan(timeoutSeconds * 1000 + SLACK_MS);
  expect(r.stderr).toMatch(/^smoke check failed on alice-laptop: /);
  return r.stderr.trimEnd().slice("smoke check failed on alice-laptop: ".length);
}

function requestsFrom(pooler: FakePooler, tmp: string) {
  return pooler.requests.filter((q) => q.workingDirectory?.startsWith(tmp));
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

describe.concurrent("smoke check with the real kilo 7.7.7", () => {
  it("passes against a working pooler: the write tool, then 'kilo ok'", async () => {
    const settings = settingsFor(ok.url);
    const r = await runSmoke({ configSettings: settings, key: KEY });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const result = parseSmokeOutput(r.stdout);
    expect(result).toMatchObject({ passed: true, kiloVersion: kilo.version });
    expect(result?.seconds).toBeGreaterThan(0);
    expect(result?.seconds).toBeLessThan(120);
    const reqs = requestsFrom(ok, r.tmp);
    expect(reqs.map((q) => [q.method, q.path, q.key, q.reply])).toEqual([
      ["POST", "/v1/chat/completions", KEY, "tool_call"],
      ["POST", "/v1/chat/completions", KEY, "text"],
    ]);
    // What kilo asked for: a streamed chat completion of the configured model, with its write tool.
    expect(reqs[0].body).toMatchObject({ model: "gpt-5.5", stream: true, stream_options: { include_usage: true } });
    expect(reqs[0].toolCall?.arguments).toEqual({
      filePath: `${reqs[0].workingDirectory}/kilo-ok.txt`,
      content: "kilo ok",
    });
    expect(reqs[0].workingDirectory).toMatch(/\/kilo-fleet\.[^/]+\/work$/);
    expect(reqs[1].body?.messages?.some((m) => m.role === "tool")).toBe(true);
    expectNoTraces(r, [KEY]);
  });

  it("a wrong key: the pooler refused it (HTTP 401), and the key it echoed is printed and stored nowhere", async () => {
    const settings = settingsFor(ok.url);
    const r = await runSmoke({ configSettings: settings, key: WRONG_KEY });
    expect(failureCause(r, 120)).toBe("the pooler refused the API key (HTTP 401) — rotate codexPoolerApiKey");
    const refused = ok.requests.filter((q) => q.key === WRONG_KEY);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((q) => q.status === 401 && q.reply === "unauthorized")).toBe(true);
    expectNoTraces(r, [WRONG_KEY, KEY]);
  });

  it("the pooler down: unreachable, with the base URL, without starting kilo", async () => {
    const port = await freePort();
    const settings = settingsFor(`http://127.0.0.1:${port}/v1`);
    const r = await runSmoke({ configSettings: settings, key: KEY });
    expect(failureCause(r, 120)).toBe(`the pooler is unreachable at http://127.0.0.1:${port}/v1 (ECONNREFUSED)`);
    expect(r.ms).toBeLessThan(SLACK_MS);
    expectNoTraces(r, [KEY]);
  });

  it("an unknown model (config and check disagree): kilo's 'Model not found', named", async () => {
    const configSettings = settingsFor(ok.url);
    const smokeSettings = settingsFor(ok.url, {
      model: "gpt-9",
      models: JSON.stringify({
        "gpt-5.5": { limit: { context: 1000, output: 100 } },
        "gpt-9": { limit: { context: 1000, output: 100 } },
      }),
    });
    const r = await runSmoke({ configSettings, smokeSettings, key: KEY });
    expect(failureCause(r, 120)).toMatch(
      /^unknown model codex-pooler\/gpt-9: kilo says "Model not found: codex-pooler\/gpt-9\.[^"]*" — define it in kilo-fleet:models$/,
    );
    expectNoTraces(r, [KEY]);
  });

  it("a pooler that never answers: timed out after the configured seconds, kilo's process group killed", async () => {
    const timeoutSeconds = 10;
    const settings = settingsFor(slow.url, { smokeCheck: JSON.stringify({ timeoutSeconds }) });
    const r = await runSmoke({ configSettings: settings, key: KEY });
    expect(failureCause(r, timeoutSeconds)).toBe("timed out after 10 s (kilo-fleet:smokeCheck.timeoutSeconds)");
    expect(r.ms).toBeGreaterThanOrEqual(timeoutSeconds * 1000);
    // Whatever reached the pooler was cut off by the kill, never answered.
    expect(requestsFrom(slow, r.tmp).every((q) => q.reply === "aborted")).toBe(true);
    expectNoTraces(r, [KEY]);
  });

  it("kilo exits 0 but never calls the tool: a failure", async () => {
    const settings = settingsFor(noTool.url);
    const r = await runSmoke({ configSettings: settings, key: KEY });
    expect(failureCause(r, 120)).toBe("kilo never called its write tool, so kilo-ok.txt was not created");
    expect(noTool.requests.filter((q) => q.key === KEY).map((q) => q.reply)).toContain("text");
    expectNoTraces(r, [KEY]);
  });
});
