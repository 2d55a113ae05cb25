/**
 * Shared pieces of the reliability suite (issue 6): a seeded PRNG (every random choice is reproducible
 * from the printed seed), the script runner (harness/runScript.ts: runs a step command as
 * local.Command does, or under a given login shell, and can SIGKILL the whole process group after a delay
 * or when a promise resolves), and file-state comparisons.
 */
import { isDeepStrictEqual } from "node:util";
import type { Entry } from "./hostHome";

/** mulberry32: small, fast, good enough to pick crash points and delays reproducibly. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The suite's seed: `KILO_FLEET_RELIABILITY_SEED` when set (to reproduce a failure), else a fresh one. */
export function suiteSeed(part: string): number {
  const fromEnv = process.env.KILO_FLEET_RELIABILITY_SEED;
  const seed = fromEnv ? Number(fromEnv) >>> 0 : Math.floor(Math.random() * 2 ** 32) >>> 0;
  console.log(
    `[reliability] ${part}: seed=${seed} (reproduce with KILO_FLEET_RELIABILITY_SEED=${seed} npx vitest run test/reliability)`,
  );
  return seed;
}

export { runScript, type ScriptRun } from "./runScript";

/** Leftovers a crash may leave that a re-run must clean up: temp files of an atomic write, the lock. */
export const isLitter = (rel: string) =>
  /\.kilo-fleet-tmp-\d+(\/|$)/.test(rel) || /(^|\/)\.kilo-fleet\.lock(\/|$)/.test(rel);

/** kilo-fleet's own state files (their content may be an intermediate record; they must stay valid JSON). */
export const isStateFile = (rel: string) =>
  /(^|\/)\.local\/state\/kilo-fleet\/(config\.json|shell\.json|dirs\.json)$/.test(rel);

/**
 * After a crash: every path is either as it was (`old`) or as a complete run leaves it (`neu`): same type,
 * mode and bytes; never partial; missing only where one of the two has it missing. State files may hold an
 * intermediate record but must parse. Litter (temp files, the lock) is allowed here and reported.
 */
export function crashProblems(
  now: Map<string, Entry>,
  old: Map<string, Entry>,
  neu: Map<string, Entry>,
): { problems: string[]; litter: string[]; changed: string[] } {
  const problems: string[] = [];
  const litter: string[] = [];
  const changed: string[] = [];
  for (const p of new Set([...old.keys(), ...neu.keys(), ...now.keys()])) {
    const o = old.get(p);
    const n = neu.get(p);
    const c = now.get(p);
    if (isLitter(p)) {
      if (c) litter.push(p);
      continue;
    }
    if (!isDeepStrictEqual(c, o)) changed.push(p);
    if (isStateFile(p) && c?.type === "file") {
      try {
        JSON.parse(c.content ?? "");
      } catch {
        problems.push(`${p}: state file is not valid JSON: ${JSON.stringify(c.content?.slice(0, 80))}`);
      }
      if (o === undefined && n === undefined) problems.push(`${p}: unexpected state file`);
      continue;
    }
    if (isDeepStrictEqual(c, o) || isDeepStrictEqual(c, n)) continue;
    if (c === undefined) problems.push(`${p}: missing (it existed before and after a complete run)`);
    else if (o === undefined && n === undefined) problems.push(`${p}: unexpected ${c.type}`);
    else
      problems.push(
        `${p}: neither the old nor the new ${c.type} (mode ${c.mode.toString(8)}, ${c.content?.length ?? 0} bytes)`,
      );
  }
  return { problems, litter, changed };
}

/** The paths where two snapshots differ, with a short reason each. */
export function snapshotDiff(a: Map<string, Entry>, b: Map<string, Entry>): string[] {
  const out: string[] = [];
  for (const p of new Set([...a.keys(), ...b.keys()])) {
    const x = a.get(p);
    const y = b.get(p);
    if (isDeepStrictEqual(x, y)) continue;
    if (!x) out.push(`${p}: only in the second`);
    else if (!y) out.push(`${p}: only in the first`);
    else
      out.push(
        `${p}: differs (${x.type} ${x.mode.toString(8)} ${x.content?.length ?? 0}B vs ${y.type} ${y.mode.toString(8)} ${y.content?.length ?? 0}B)`,
      );
  }
  return out.sort();
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
