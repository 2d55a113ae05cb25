/**
 * Crash injection, deterministic (issue 6): the host tool SIGKILLs itself after its Nth filesystem step
 * (`KILO_FLEET_TEST_CRASH_AT`, see host/fsUtil.ts `crashPoint`), for every N of every scenario
 * (config and env writes, first deploy, redeploy with rotation, destroy), so every mkdir/open/write/
 * rename/unlink/chmod boundary is hit. After each crash every file is the old or the new one (never
 * partial, never missing if it existed); the key is only in the env files; a re-run converges to exactly
 * what an uninterrupted run leaves, with no temp file or lock left behind.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { filesContaining, snapshot } from "../../harness/hostHome";
import { buildLab, KEY_A, KEY_B, type Lab } from "./crashScenarios";
import { crashProblems, runScript, snapshotDiff } from "./support";

let lab: Lab;
beforeAll(() => {
  lab = buildLab();
});
afterAll(() => lab?.cleanup());

/** Where the key may be: the env files (and, between a crash and the re-run, an atomic write's temp file). */
const keyPlaces = /^\.config\/kilo\/(\.)?codex-pooler\.env(\.fish)?(\.kilo-fleet-tmp-\d+)?$/;

describe("crash injection at every filesystem step of the host tool", () => {
  it("each crash leaves old-or-new files, and a re-run converges exactly", { timeout: 150_000 }, async () => {
    const started = Date.now();
    let trials = 0;
    let midWrite = 0;
    let litterSeen = 0;
    const findings: string[] = [];
    for (const s of lab.scenarios) {
      let points = 0;
      for (let n = 1; n < 500; n++) {
        lab.restore(s.oldDir);
        const crashed = await runScript(
          s.script,
          { ...lab.env, KILO_FLEET_TEST_CRASH_AT: String(n) },
          { stdin: s.stdin },
        );
        if (crashed.code === 0) break; // n is past the last step: the script ran to the end
        points++;
        trials++;
        const where = `${s.name}, crash at step ${n}`;
        // The shell reports its child's death ("Killed"); the tool itself printed nothing.
        expect(crashed.stderr, where).toMatch(/^(Killed\n)?$/);
        const now = snapshot(lab.home);
        const { problems, litter, changed } = crashProblems(now, s.old, s.neu);
        if (changed.length > 0 && snapshotDiff(now, s.neu).length > 0) midWrite++;
        litterSeen += litter.length;
        for (const p of problems) findings.push(`${where}: ${p}`);
        for (const f of [...filesContaining(lab.home, KEY_A), ...filesContaining(lab.home, KEY_B)]) {
          if (!keyPlaces.test(f)) findings.push(`${where}: the key is in ${f}`);
        }
        // The re-run converges to exactly what an uninterrupted run leaves.
        const again = await runScript(s.script, lab.env, { stdin: s.stdin });
        if (again.code !== 0) findings.push(`${where}: the re-run failed: ${again.stderr.trim()}`);
        for (const d of snapshotDiff(snapshot(lab.home), s.neu)) findings.push(`${where}: after the re-run, ${d}`);
      }
      expect(points, `${s.name}: crash points`).toBeGreaterThan(3);
    }
    console.log(
      `[reliability] crash injection (hook): ${trials} trials over ${lab.scenarios.length} scenarios, ${midWrite} left a state between old and new, ${litterSeen} temp/lock leftovers seen after a crash (all removed by the re-run), ${findings.length} findings, ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    expect(findings).toEqual([]);
    expect(trials).toBeGreaterThanOrEqual(50);
  });
});
