/**
 * Crash injection, from outside (issue 6): `kill -9` of a whole step command (`/bin/sh <tool> <sub>
 * '<json>'` run as local.Command does; its process group: the shells, the header's node version check and
 * the tool's node) at a random, seeded moment, for the config and env steps' create and delete of every
 * scenario (first deploy, redeploy with rotation, destroy). Half the kills come at a delay anywhere within
 * the command's measured run time; the other half while the tool does its file work, which is a few ms
 * at the end of a run mostly spent starting shells and node: a delay within that work's measured length
 * after the tool is seen taking the HOME's lock (its first file step: a watch on HOME). After each kill
 * every file is the old or the new one, never partial, never missing if it existed; the key is only in
 * the env files and nowhere in TMPDIR; a re-run converges to exactly what an uninterrupted run leaves.
 */
import { watch } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseResult } from "../../common/result";
import { buildLab, KEY_A, KEY_B, type Lab } from "../../harness/crashScenarios";
import { filesContaining, snapshot } from "../../harness/hostHome";
import { crashProblems, median, prng, runScript, snapshotDiff, suiteSeed } from "../../harness/reliability";

const TRIALS = 60;

let lab: Lab;
beforeAll(() => {
  lab = buildLab();
});
afterAll(() => lab?.cleanup());

/**
 * Watches HOME for the tool's lock (host/lock.ts: a temp directory renamed to `.kilo-fleet.lock`, and
 * renamed away again on release): `seen` resolves when it first appears; `events` are the ms (since the
 * watch began) of every change to it, so the last minus the first is how long the tool held it.
 */
function watchLock(home: string): { seen: Promise<void>; events: number[]; close: () => void } {
  const t0 = process.hrtime.bigint();
  const events: number[] = [];
  let close = () => {};
  const seen = new Promise<void>((resolve) => {
    const w = watch(home, (_event, name) => {
      if (!name?.includes(".kilo-fleet.lock")) return;
      events.push(Number(process.hrtime.bigint() - t0) / 1e6);
      resolve();
    });
    close = () => w.close();
  });
  return { seen, events, close: () => close() };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const keyPlaces = /^\.config\/kilo\/(\.)?codex-pooler\.env(\.fish)?(\.kilo-fleet-tmp-\d+)?$/;

describe("kill -9 of the config and env steps at random moments", () => {
  it(`${TRIALS} kills leave old-or-new files, and a re-run converges exactly`, { timeout: 240_000 }, async () => {
    const seed = suiteSeed("crash injection (kill -9)");
    const rand = prng(seed);
    const started = Date.now();
    // The windows, measured here per scenario (medians of 3 uninterrupted runs, each printing the
    // scenario's own result: the command really is that step): the whole run, and its file work (while
    // the tool holds the lock).
    const window = new Map<string, { run: number; work: number }>();
    for (const s of lab.scenarios) {
      const times: number[] = [];
      const works: number[] = [];
      for (let i = 0; i < 3; i++) {
        lab.restore(s.oldDir);
        const lock = watchLock(lab.home);
        const r = await runScript(s.script, lab.env, { stdin: s.stdin });
        await sleep(20); // the last watch events
        lock.close();
        expect(r.code, r.stderr).toBe(0);
        expect(parseResult(r.stdout, s.step), `${s.name}: result`).toBeDefined();
        expect(lock.events.length, `${s.name}: the tool's lock was never seen`).toBeGreaterThan(1);
        times.push(r.ms);
        works.push((lock.events.at(-1) ?? 0) - (lock.events[0] ?? 0));
      }
      window.set(s.name, { run: median(times), work: Math.max(1, median(works)) });
    }
    let killed = 0;
    let untouched = 0;
    let between = 0;
    let complete = 0;
    const findings: string[] = [];
    for (let t = 0; t < TRIALS; t++) {
      const s = lab.scenarios[t % lab.scenarios.length];
      // Half the kills anywhere in the run, half within the file work once the lock is seen (a little past
      // its measured length: the watch's own delay).
      const w = window.get(s.name) ?? { run: 100, work: 10 };
      const anywhere = t % 2 === 0;
      const delay = anywhere ? Math.floor(rand() * w.run * 1.1) : rand() * w.work * 1.1;
      lab.restore(s.oldDir);
      const lock = watchLock(lab.home);
      const r = await runScript(
        s.script,
        lab.env,
        anywhere
          ? { stdin: s.stdin, killAfterMs: delay }
          : { stdin: s.stdin, killWhen: lock.seen.then(() => sleep(delay)) },
      );
      lock.close();
      const where = `${s.name}, kill ${anywhere ? "after" : "at lock +"} ${delay.toFixed(1)} ms`;
      if (r.killed) killed++;
      else if (r.code !== 0) findings.push(`${where}: the step failed without being killed: ${r.stderr.trim()}`);
      const now = snapshot(lab.home);
      const { problems, changed } = crashProblems(now, s.old, s.neu);
      if (changed.length === 0) untouched++;
      else if (snapshotDiff(now, s.neu).length === 0) complete++;
      else between++;
      for (const p of problems) findings.push(`${where}: ${p}`);
      for (const f of [...filesContaining(lab.home, KEY_A), ...filesContaining(lab.home, KEY_B)]) {
        if (!keyPlaces.test(f)) findings.push(`${where}: the key is in ${f}`);
      }
      // What a killed step leaves in TMPDIR never holds the key.
      for (const f of [...filesContaining(lab.tmp, KEY_A), ...filesContaining(lab.tmp, KEY_B)])
        findings.push(`${where}: the key is in TMPDIR/${f}`);
      const again = await runScript(s.script, lab.env, { stdin: s.stdin });
      if (again.code !== 0) findings.push(`${where}: the re-run failed: ${again.stderr.trim()}`);
      else if (!parseResult(again.stdout, s.step)) findings.push(`${where}: the re-run printed no ${s.step} result`);
      for (const d of snapshotDiff(snapshot(lab.home), s.neu)) findings.push(`${where}: after the re-run, ${d}`);
    }
    console.log(
      `[reliability] crash injection (kill -9): ${TRIALS} trials (${killed} killed mid-run; ${untouched} before any change, ${between} between old and new, ${complete} after the last change), windows (file work/run) ${[...window.values()].map((w) => `${w.work.toFixed(0)}/${w.run.toFixed(0)}`).join(", ")} ms, ${findings.length} findings, ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    expect(findings).toEqual([]);
    expect(killed).toBeGreaterThan(TRIALS / 2);
  });
});
