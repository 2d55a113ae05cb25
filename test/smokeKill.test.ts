/**
 * A killed smoke check (issue 17, item 3), with the real kilo 7.7.7 and a stand-in pooler that holds the
 * conversation: where /bin/sh is bash (Fedora, RHEL, macOS), `sh -c '<step command>'` execs down to the
 * tool's node, the step's direct child, which a cancelled or timed-out deploy SIGKILLs. Within a few seconds
 * no process holds the key, and the scratch directory is gone. A later run sweeps the scratch directories
 * of earlier runs whose tool is gone.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakePooler, startFakePooler } from "../harness/fakePooler";
import { ensureKilo } from "../harness/kilo";
import { processesWith } from "../harness/processes";
import { runScript } from "../harness/runScript";
import { deploySmokeHost } from "../harness/smokeCost";

const KEY = `test-key-smoke-kill-${Math.random().toString(36).slice(2, 10)}`;

let slow: FakePooler;
let ok: FakePooler;
const roots: string[] = [];

beforeAll(async () => {
  ensureKilo();
  [slow, ok] = await Promise.all([
    startFakePooler({ keys: KEY, mode: "slow", slowMs: 120_000 }),
    startFakePooler({ keys: KEY }),
  ]);
});
afterAll(async () => {
  // Whatever a failed assertion left running with the key: this test's own processes only.
  for (const pid of processesWith(KEY)) killQuietly(pid);
  await Promise.all([slow, ok].map((p) => p?.stop()));
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // gone
  }
}

const commOf = (pid: number) => readFileSync(`/proc/${pid}/comm`, "utf8").trim();

async function deploy(baseUrl: string) {
  const host = await deploySmokeHost({
    key: KEY,
    extra: { poolerBaseUrl: baseUrl, smokeCheck: { timeoutSeconds: 120 } },
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
  });
  roots.push(host.root);
  return host;
}

describe("kilo never outlives the smoke step (issue 17, item 3)", () => {
  it("bash as /bin/sh, SIGKILL to the step's direct child (node) mid-conversation: no process holds the key within seconds", async ({
    expect,
  }) => {
    const host = await deploy(slow.url);
    // As local.Command runs it where /bin/sh is bash: `bash -c '<command>'`, whose `/bin/sh` is bash too.
    expect(host.smoke.startsWith("/bin/sh ")).toBe(true);
    const command = `bash ${host.smoke.slice("/bin/sh ".length)}`;
    let child: ChildProcess | undefined;
    try {
      child = spawn("bash", ["-c", command], { env: host.env, cwd: host.root, stdio: ["ignore", "ignore", "ignore"] });
      const pid = child.pid ?? 0;
      const exited = new Promise((r) => child?.on("exit", r));
      const cache = join(host.home, ".cache", "kilo-fleet");
      const kiloPids = () => processesWith(`XDG_CONFIG_HOME=${cache}/`);
      // kilo runs, its request held by the stand-in; the step's direct child is node (bash exec'd down to it).
      await expect.poll(() => kiloPids().length, { timeout: 60_000, interval: 200 }).toBeGreaterThanOrEqual(1);
      await new Promise((r) => setTimeout(r, 3000));
      expect(commOf(pid)).toBe("node");
      expect(processesWith(KEY).length).toBeGreaterThan(0);
      process.kill(pid, "SIGKILL");
      await exited;
      await expect.poll(() => processesWith(KEY), { timeout: 5_000, interval: 100 }).toEqual([]);
      await expect
        .poll(() => (existsSync(cache) ? readdirSync(cache) : []), { timeout: 5_000, interval: 100 })
        .toEqual([]);
    } finally {
      if (child?.pid !== undefined) killQuietly(child.pid);
    }
  });

  it("each run sweeps the scratch directories of earlier runs whose tool is gone", async () => {
    const host = await deploy(ok.url);
    const cache = join(host.home, ".cache", "kilo-fleet");
    // An earlier run's directory, its tool gone (a pid that exited), holding kilo's database and logs.
    const gone = spawnSync("/bin/true").pid;
    const stale = join(cache, `smoke-${gone}-Ab3dE9`);
    mkdirSync(join(stale, "data", "kilo"), { recursive: true, mode: 0o700 });
    writeFileSync(join(stale, "data", "kilo", "kilo.db"), "a database");
    // A directory of a run still going (this process stands in for its tool) is left alone.
    const live = join(cache, `smoke-${process.pid}-Zz9yX8`);
    mkdirSync(live, { mode: 0o700 });
    // An earlier version's (no pid in its name): swept once a day old, left while it may still be in use.
    for (const [name, ageS] of [
      ["smoke-Leg4cy", 2 * 86400],
      ["smoke-Fr3shh", 0],
    ] as const) {
      mkdirSync(join(cache, name, "data"), { recursive: true, mode: 0o700 });
      const t = Date.now() / 1000 - ageS;
      utimesSync(join(cache, name), t, t);
    }
    const r = await runScript(host.smoke, host.env, { cwd: host.root });
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(cache).sort()).toEqual(["smoke-Fr3shh", `smoke-${process.pid}-Zz9yX8`].sort());
  });
});
