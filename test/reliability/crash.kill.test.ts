/**
 * Crash injection, from outside (issue 6): `kill -9` of the whole script (its process group: sh, node)
 * after a random, seeded delay within the script's measured run time, for the config and env writes of
 * every scenario (first deploy, redeploy with rotation, destroy). After each kill every file is the old or
 * the new one, never partial, never missing if it existed; the key is only in the env files and nowhere
 * in TMPDIR; a re-run converges to exactly what an uninterrupted run leaves.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { filesContaining, snapshot } from "../../harness/hostHome";
import { buildLab, KEY_A, KEY_B, type Lab } from "./crashScenarios";
import { crashProblems, median, prng, runScript, snapshotDiff, suiteSeed } from "./support";

const TRIALS = 60;

let lab: Lab;
beforeAll(() => {
  lab = buildLab();
});
afterAll(() => lab?.cleanup());

const keyPlaces = /^\.config\/kilo\/(\.)?codex-pooler\.env(\.fish)?(\.kilo-fleet-tmp-\d+)?$/;

describe("kill -9 of the config and env scripts at random moments", () => {
  it(`${TRIALS} kills leave old-or-new files, and a re-run converges exactly`, { timeout: 150_000 }, async () => {
    const seed = suiteSeed("crash injection (kill -9)");
    const rand = prng(seed);
    const started = Date.now();
    // The window: each scenario's typical run time, measured here (3 uninterrupted runs).
    const window = new Map<string, number>();
    for (const s of lab.scenarios) {
      const times: number[] = [];
      for (let i = 0; i < 3; i++) {
        lab.restore(s.oldDir);
        const r = await runScript(s.script, lab.env, { stdin: s.stdin });
        expect(r.code, r.stderr).toBe(0);
        times.push(r.ms);
      }
      window.set(s.name, median(times));
    }
    let killed = 0;
    let untouched = 0;
    let between = 0;
    let complete = 0;
    const findings: string[] = [];
    for (let t = 0; t < TRIALS; t++) {
      const s = lab.scenarios[t % lab.scenarios.length];
      // Half the kills anywhere in the run, half in its last third, where node does the file work (the
      // shell's start and the tool's start take most of the time).
      const w = window.get(s.name) ?? 100;
      const delay = Math.floor(t % 2 === 0 ? rand() * w * 1.1 : w * (0.65 + rand() * 0.45));
      lab.restore(s.oldDir);
      const r = await runScript(s.script, lab.env, { stdin: s.stdin, killAfterMs: delay });
      const where = `${s.name}, kill after ${delay} ms`;
      if (r.killed) killed++;
      else if (r.code !== 0) findings.push(`${where}: the script failed without being killed: ${r.stderr.trim()}`);
      const now = snapshot(lab.home);
      const { problems, changed } = crashProblems(now, s.old, s.neu);
      if (changed.length === 0) untouched++;
      else if (snapshotDiff(now, s.neu).length === 0) complete++;
      else between++;
      for (const p of problems) findings.push(`${where}: ${p}`);
      for (const f of [...filesContaining(lab.home, KEY_A), ...filesContaining(lab.home, KEY_B)]) {
        if (!keyPlaces.test(f)) findings.push(`${where}: the key is in ${f}`);
      }
      // What a killed script leaves in TMPDIR (its scratch dir: the tool) never holds the key.
      for (const f of [...filesContaining(lab.tmp, KEY_A), ...filesContaining(lab.tmp, KEY_B)])
        findings.push(`${where}: the key is in TMPDIR/${f}`);
      const again = await runScript(s.script, lab.env, { stdin: s.stdin });
      if (again.code !== 0) findings.push(`${where}: the re-run failed: ${again.stderr.trim()}`);
      for (const d of snapshotDiff(snapshot(lab.home), s.neu)) findings.push(`${where}: after the re-run, ${d}`);
    }
    console.log(
      `[reliability] crash injection (kill -9): ${TRIALS} trials (${killed} killed mid-run; ${untouched} before any change, ${between} between old and new, ${complete} after the last change), windows ${[...window.values()].map((ms) => ms.toFixed(0)).join("/")} ms, ${findings.length} findings, ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    expect(findings).toEqual([]);
    expect(killed).toBeGreaterThan(TRIALS / 2);
  });
});
