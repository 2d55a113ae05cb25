/** `npm run bench` command-line options. */

export const FLEET_SIZES = [1, 10, 100, 1000];
/** `--quick`: the fleet sizes of a quick run (CI). */
export const QUICK_FLEET_SIZES = [1, 10, 100];
/** The largest fleet size whose first evaluation is repeated in the same process for the in-process diff. */
export const IN_PROCESS_DIFF_HOSTS = 100;
export const PARTS = [
  "eval",
  "unchanged",
  "state",
  "changes",
  "install",
  "smoke",
  "disk",
  "pool",
  "doctor",
  "package",
] as const;
export type Part = (typeof PARTS)[number];
/** What `--quick` measures: everything without the registry install and the real kilo. */
export const QUICK_PARTS: readonly Part[] = ["eval", "unchanged", "state", "changes", "doctor", "package"];

export interface Options {
  json: boolean;
  runs: number;
  only: Set<Part>;
  /** Fleet sizes of the evaluation figures, ascending. */
  sizes: number[];
  quick: boolean;
}

const USAGE = `options: --json, --quick, --runs N, --sizes 1,10,100, --only ${PARTS.join(",")}`;

export function parseArgs(argv: readonly string[]): Options {
  let json = false;
  let quick = false;
  let runs: number | undefined;
  let only: Set<Part> | undefined;
  let sizes: number[] | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = a.includes("=") ? a.slice(a.indexOf("=") + 1) : argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--json") json = true;
    else if (a === "--quick") quick = true;
    else if (a === "--runs" || a.startsWith("--runs=")) {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1) throw new Error("--runs needs a whole number ≥ 1");
      runs = n;
    } else if (a === "--only" || a.startsWith("--only=")) {
      const parts = value().split(",");
      const bad = parts.filter((p) => !(PARTS as readonly string[]).includes(p));
      if (bad.length > 0) throw new Error(`--only: unknown part(s) ${bad.join(", ")}; parts: ${PARTS.join(", ")}`);
      only = new Set(parts as Part[]);
    } else if (a === "--sizes" || a.startsWith("--sizes=")) {
      const xs = value().split(",").map(Number);
      if (xs.some((n) => !Number.isInteger(n) || n < 1))
        throw new Error("--sizes needs host counts ≥ 1, e.g. 1,10,100");
      sizes = [...new Set(xs)].sort((x, y) => x - y);
    } else throw new Error(`unknown argument ${a} (${USAGE})`);
  }
  return {
    json,
    quick,
    runs: runs ?? (quick ? 1 : 3),
    only: only ?? new Set(quick ? QUICK_PARTS : PARTS),
    sizes: sizes ?? (quick ? QUICK_FLEET_SIZES : FLEET_SIZES),
  };
}

/** The fleet size evaluated twice in one process: the largest of `sizes` up to IN_PROCESS_DIFF_HOSTS. */
export function inProcessDiffHosts(sizes: readonly number[]): number {
  const fitting = sizes.filter((s) => s <= IN_PROCESS_DIFF_HOSTS);
  return fitting.length > 0 ? Math.max(...fitting) : Math.min(...sizes);
}
