/**
 * Crash injection, deterministic (issue 6): the host tool SIGKILLs itself after its Nth filesystem step
 * (`KILO_FLEET_TEST_CRASH_AT`, see host/fsUtil.ts `crashPoint`), for every N of every scenario
 * (the config and env steps' create and delete: first deploy, redeploy with rotation, destroy), so every
 * mkdir/open/write/rename/unlink/chmod/lock boundary is hit. The step command is `/bin/sh <tool> <sub>
 * '<json>'`, whose sh header execs node with the same environment, so the variable reaches the tool: each
 * crash must be a SIGKILL before the step printed its result, and the first N past the last crash point
 * must run to the end and print the scenario's own result line. After each crash every file is the old
 * or the new one (never partial, never missing if it existed); the key is only in the env files; a re-run
 * converges to exactly what an uninterrupted run leaves, with no temp file or lock left behind.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseResult, RESULT_PREFIX } from "../../common/result";
import { buildLab, KEY_A, KEY_B, type Lab } from "../../harness/crashScenarios";
import { filesContaining, snapshot } from "../../harness/hostHome";
import { crashProblems, runScript, snapshotDiff } from "../../harness/reliability";

let lab: Lab;
beforeAll(() => {
  lab = buildLab();
});
afterAll(() => lab?.cleanup());

/** Where the key may be: the env files (and, between a crash and the re-run, an atomic write's temp file). */
const keyPlaces = /^\.config\/kilo\/(\.)?codex-pooler\.env(\.fish)?(\.kilo-fleet-tmp-\d+)?$/;

describe("crash injection at every filesystem step of the host tool", () => {
  it("each crash leaves old-or-new files, and a re-run converges exactly", { timeout: 300_000 }, async () => {
    const started = Date.now();
    let trials = 0;
    let midWrite = 0;
    let litterSeen = 0;
    const pointsPer: string[] = [];
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
        if (crashed.code === 0) {
          // n is past the last crash point: the command ran to the end, and it was this scenario's step.
          expect(parseResult(crashed.stdout, s.step), `${s.name}: result of the complete run`).toBeDefined();
          break;
        }
        points++;
        trials++;
        const where = `${s.name}, crash at step ${n}`;
        // The tool killed itself (SIGKILL: the process itself, or sh reporting its child's 128+9), and
        // did so mid-step: no result line yet. A shell that reports the death says "Killed"; the tool
        // itself printed nothing.
        expect(
          crashed.signal === "SIGKILL" || crashed.code === 137,
          `${where}: ${crashed.code} ${crashed.stderr}`,
        ).toBe(true);
        expect(crashed.stdout, where).not.toContain(RESULT_PREFIX);
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
        else if (!parseResult(again.stdout, s.step)) findings.push(`${where}: the re-run printed no ${s.step} result`);
        for (const d of snapshotDiff(snapshot(lab.home), s.neu)) findings.push(`${where}: after the re-run, ${d}`);
      }
      expect(points, `${s.name}: crash points`).toBeGreaterThan(3);
      pointsPer.push(`${s.name} ${points}`);
    }
    console.log(
      `[reliability] crash injection (hook): ${trials} trials over ${lab.scenarios.length} scenarios (crash points: ${pointsPer.join(", ")}), ${midWrite} left a state between old and new, ${litterSeen} temp/lock leftovers seen after a crash (all removed by the re-run), ${findings.length} findings, ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    expect(findings).toEqual([]);
    expect(trials).toBeGreaterThanOrEqual(50);
  });
});
