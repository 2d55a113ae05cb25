/**
 * The whole host, end to end (issue 5), on a temporary HOME: KiloHost's own step commands in order
 * (tool, install, config, env, smoke) run the way local.Command runs them (`/bin/sh -c <command>`,
 * the key on the env step's stdin), against the stand-in pooler with the real kilo 7.7.7:
 * - everything passes;
 * - rotate the key (the stand-in now accepts only the new one), re-run env and smoke: passes, with the new key;
 * - the old key back in place: the smoke check's pool checks fail with the pool's reason (api_key_missing).
 * No step prints the key; only the env files hold it.
 *
 * The same flow runs twice, concurrently, each with its own stand-in: locally, and over the loopback sshd
 * (harness/sshd.ts) as remote.Command runs it (the command line as the ssh command, parsed by the
 * user's login shell bash, the key on stdin), with the tool file copied over SFTP as CopyToRemote does.
 *
 * kilo is already in HOME's npm prefix (linked, or for the ssh user copied, from the test cache), so the
 * install step finds the pinned version and does not run npm: the npm path is the host-scripts tests'.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, type ExpectStatic, it } from "vitest";
import { parseResult } from "../common/result";
import { hostStepCommands } from "../deployer/hostSteps";
import { hostToolArtifact } from "../deployer/hostTool";
import { resolveHosts } from "../deployer/resolveHosts";
import { type FakePooler, startFakePooler } from "../harness/fakePooler";
import { ensureKilo } from "../harness/kilo";
import { runScript } from "../harness/runScript";
import { startSshd } from "../harness/sshd";

const OLD_KEY = "test-key-e2e-old-0b9d4f1e";
const NEW_KEY = "test-key-e2e-new-6a2c8e73";
const HOST = "e2e-host";
interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Where a flow runs: its HOME, how it runs a script (stdin = the env step's key), how it cleans up. */
interface Target {
  kind: "local" | "ssh";
  home: string;
  /** What the tool step leaves for CopyToRemote (SSH): the file copy. */
  afterToolStep(): void;
  run(script: string, stdin?: string): Promise<Run>;
  /** Scratch directories of this target's user left in its temp dir. */
  leftovers(): string[];
}

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** kilo in `home`'s npm prefix, as an earlier `npm install -g --prefix ~/.local` leaves it. */
function placeKilo(home: string, copy: boolean): void {
  const kilo = ensureKilo();
  const pkg = join(kilo.prefix, "lib", "node_modules", "@kilocode", "cli");
  mkdirSync(join(home, ".local", "lib", "node_modules", "@kilocode"), { recursive: true });
  mkdirSync(join(home, ".local", "bin"), { recursive: true });
  const dest = join(home, ".local", "lib", "node_modules", "@kilocode", "cli");
  // The ssh user cannot read the root-owned cache: it gets a copy.
  if (copy) execFileSync("cp", ["-a", pkg, dest]);
  else symlinkSync(pkg, dest);
  symlinkSync("../lib/node_modules/@kilocode/cli/bin/kilo", join(home, ".local", "bin", "kilo"));
}

function localTarget(): Target {
  const root = mkdtempSync(join(tmpdir(), "kilo-fleet-e2e-"));
  cleanups.push(() => rmSync(root, { recursive: true, force: true }));
  const home = join(root, "home");
  const tmp = join(root, "tmp");
  mkdirSync(tmp);
  placeKilo(home, false);
  return {
    kind: "local",
    home,
    afterToolStep: () => {},
    leftovers: () => [
      ...readdirSync(tmp),
      ...(existsSync(join(home, ".cache/kilo-fleet")) ? ["~/.cache/kilo-fleet"] : []),
    ],
    // As local.Command runs it: `/bin/sh -c`, stdin piped, a clean environment.
    run: (script, stdin = "") =>
      runScript(
        script,
        { HOME: home, TMPDIR: tmp, PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C.UTF-8" },
        { stdin, cwd: root },
      ),
  };
}

async function sshTarget(): Promise<Target> {
  const server = await startSshd({ shell: "/bin/bash" });
  cleanups.push(() => server.stop());
  placeKilo(server.home, true);
  execFileSync("chown", ["-R", `${server.uid}:${server.gid}`, join(server.home, ".local")]);
  const tool = hostToolArtifact();
  return {
    kind: "ssh",
    home: server.home,
    afterToolStep: () => server.copyToRemote(tool.file, tool.pathInHome),
    // sshd gives the session no TMPDIR: the tool uses /tmp; count what this user left there.
    leftovers: () => [
      ...readdirSync("/tmp").filter((n) => {
        try {
          return n.startsWith("kilo-fleet.") && statSync(join("/tmp", n)).uid === server.uid;
        } catch {
          return false;
        }
      }),
      ...(existsSync(join(server.home, ".cache/kilo-fleet")) ? ["~/.cache/kilo-fleet"] : []),
    ],
    run: (script, stdin = "") => server.run(script, stdin, { timeoutMs: 180_000 }),
  };
}

/** Every file under `dir` holding `text`, relative to `dir`. */
function filesContaining(dir: string, text: string, base = dir): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesContaining(p, text, base));
    else if (e.isFile() && readFileSync(p).includes(text)) out.push(p.slice(base.length + 1));
  }
  return out;
}

function steps(pooler: FakePooler, kind: "local" | "ssh") {
  const r = resolveHosts({
    stack: {
      "kilo-fleet:poolerBaseUrl": pooler.url,
      "kilo-fleet:kiloVersion": "7.7.7",
      "kilo-fleet:hosts": JSON.stringify([{ name: HOST, local: true }]),
      "kilo-fleet:smokeCheck": JSON.stringify({ timeoutSeconds: 120 }),
    },
  });
  if (r.errors.length > 0) throw new Error(JSON.stringify(r.errors));
  const s = hostStepCommands(HOST, r.specs[0], hostToolArtifact(), kind);
  if (!s.smoke) throw new Error("no smoke step");
  return { ...s, smoke: s.smoke };
}

async function deployRotateRefuse(target: Target, expect: ExpectStatic): Promise<void> {
  const pooler = await startFakePooler({ keys: OLD_KEY });
  cleanups.push(() => pooler.stop());
  const s = steps(pooler, target.kind);
  const { home } = target;
  const expectClean = (r: Run) => {
    for (const k of [OLD_KEY, NEW_KEY]) {
      expect(r.stdout).not.toContain(k);
      expect(r.stderr).not.toContain(k);
    }
  };
  const chats = () => pooler.requests.filter((q) => q.path === "/v1/chat/completions").map((q) => [q.key, q.reply]);

  // 1. The deploy, step by step.
  const out: Record<string, Run> = {};
  for (const step of ["tool", "install", "config", "env", "smoke"] as const) {
    const r = await target.run(s[step].create, step === "env" ? `${OLD_KEY}\n` : "");
    expectClean(r);
    expect(r.stderr, `${step} stderr`).toBe("");
    expect(r.code, `${step} exit`).toBe(0);
    out[step] = r;
    if (step === "tool") target.afterToolStep();
  }
  // The tool step prints nothing: its trigger names the tool.
  expect(out.tool.stdout).toBe("");
  expect(parseResult(out.install.stdout, "install")).toMatchObject({
    kiloVersion: "7.7.7",
    bin: `${home}/.local/bin/kilo`,
  });
  expect(parseResult(out.config.stdout, "config")).toMatchObject({ status: "created" });
  expect(parseResult(out.env.stdout, "env")).toMatchObject({ envFilePath: "~/.config/kilo/codex-pooler.env" });
  expect(parseResult(out.smoke.stdout, "smoke")).toMatchObject({ pass: true, kiloVersion: "7.7.7" });
  expect(chats()).toEqual([
    [OLD_KEY, "tool_call"],
    [OLD_KEY, "text"],
  ]);

  // 2. Rotation: the pooler accepts only the new key; the env step gets it; the smoke check passes again.
  pooler.setKeys(NEW_KEY);
  pooler.requests.length = 0;
  const env2 = await target.run(s.env.create, `${NEW_KEY}\n`);
  expectClean(env2);
  expect(env2.code).toBe(0);
  const smoke2 = await target.run(s.smoke.create);
  expectClean(smoke2);
  expect(smoke2.stderr).toBe("");
  expect(parseResult(smoke2.stdout, "smoke")).toMatchObject({ pass: true, kiloVersion: "7.7.7" });
  expect(chats()).toEqual([
    [NEW_KEY, "tool_call"],
    [NEW_KEY, "text"],
  ]);

  // 3. The old key back in place: the pool checks fail with the pool's own reason, in one line, before
  // kilo runs (no chat completion, no tokens).
  pooler.requests.length = 0;
  const env3 = await target.run(s.env.create, `${OLD_KEY}\n`);
  expect(env3.code).toBe(0);
  const smoke3 = await target.run(s.smoke.create);
  expectClean(smoke3);
  expect(smoke3.code).toBe(1);
  expect(smoke3.stdout).toBe("");
  expect(smoke3.stderr).toBe(
    `smoke check failed on ${HOST}: the pool does not know this API key (api_key_missing) — set kilo-fleet:codexPoolerApiKey (or kilo-fleet:apiKeys.${HOST}) to a valid Pool API key\n`,
  );
  expect(chats()).toEqual([]);
  expect(pooler.requests.filter((q) => q.key !== undefined).map((q) => [q.path, q.key, q.status, q.code])).toEqual([
    ["/v1/models", OLD_KEY, 401, "api_key_missing"],
  ]);

  // Only the env files hold a key; the scratch directories are gone.
  for (const k of [OLD_KEY, NEW_KEY]) {
    for (const f of filesContaining(home, k)) expect(f).toMatch(/^\.config\/kilo\/codex-pooler\.env(\.fish)?$/);
  }
  expect(filesContaining(home, OLD_KEY)).toContain(".config/kilo/codex-pooler.env");
  expect(target.leftovers()).toEqual([]);
}

describe.concurrent("a host end to end: install, config, env, smoke; rotation; the old key refused", () => {
  it("locally (local.Command)", async ({ expect }) => {
    await deployRotateRefuse(localTarget(), expect);
  });

  it("over the loopback sshd (remote.Command, login shell bash)", async ({ expect }) => {
    await deployRotateRefuse(await sshTarget(), expect);
  });
});
