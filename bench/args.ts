/** `npm run bench` command-line options. */

export const FLEET_SIZES = [1, 10, 100, 1000];
/** The fleet size whose first evaluation is repeated in the same process for the in-process diff. */
export const IN_PROCESS_DIFF_HOSTS = 100;
export const PARTS = ["eval", "unchanged", "install", "smoke", "disk"] as const;
export type Part = (typeof PARTS)[number];

export interface Options {
  json: boolean;
  runs: number;
  only: Set<Part>;
}

export function parseArgs(argv: readonly string[]): Options {
  const o: Options = { json: false, runs: 3, only: new Set(PARTS) };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = a.includes("=") ? a.slice(a.indexOf("=") + 1) : argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--json") o.json = true;
    else if (a === "--runs" || a.startsWith("--runs=")) {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1) throw new Error("--runs needs a whole number ≥ 1");
      o.runs = n;
    } else if (a === "--only" || a.startsWith("--only=")) {
      const parts = value().split(",");
      const bad = parts.filter((p) => !(PARTS as readonly string[]).includes(p));
      if (bad.length > 0) throw new Error(`--only: unknown part(s) ${bad.join(", ")}; parts: ${PARTS.join(", ")}`);
      o.only = new Set(parts as Part[]);
    } else throw new Error(`unknown argument ${a} (options: --json, --runs N, --only ${PARTS.join(",")})`);
  }
  return o;
}
