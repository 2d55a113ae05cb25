/**
 * Turns the raw samples of one `npm run bench` run into what it prints: a Markdown table (for the
 * README's "Benchmarks" section) or, with `--json`, one JSON object. Pure: samples in, text out.
 */
import { type Growth, growth, type LinearFit, leastSquares, type Summary, summarize } from "./stats";

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  os: string;
  /** The 1-minute load average when the run started and when it ended (other work skews times). */
  loadAverage?: [number, number];
}

/** Everything one run measured. Times in seconds, sizes in bytes. A part left out was not measured. */
export interface BenchSamples {
  runs: number;
  machine: MachineInfo;
  /** The program measured: its commit and how many of its files had uncommitted edits. */
  program?: { commit: string; uncommittedFiles: number };
  /** Program evaluation under Pulumi mocks, per fleet size. */
  evaluation?: { hosts: number; resources: number; seconds: number[] }[];
  unchanged?: {
    /** Pairs of evaluations (same config, separate processes) compared resource by resource. */
    pairs: number;
    /** Resources compared over all pairs. */
    resourcesCompared: number;
    /** Resources whose inputs differ (or that exist in only one of the two), over all pairs. */
    differing: number;
    /** The same, for two evaluations in one process, by the tests' `diffEvaluations`. */
    inProcessHosts: number;
    inProcessDiffering: number;
  };
  install?: { registry: string; kiloVersion: string; cold: number[]; warm: number[] };
  smoke?: {
    smoke: number[];
    /** The seed command by hand (env file sourced, kilo's defaults). */
    bare: number[];
    /** The seed command with the environment the smoke script gives kilo (isolates the check's own work). */
    bareSmokeEnv?: number[];
  };
  disk?: {
    /** Disk used (allocated blocks, hard links once, like du) by everything the install added under HOME. */
    hostBytes: number;
    /** The same, apparent size. */
    hostApparentBytes: number;
    /** The platform package's directory, relative to HOME. */
    platformPackage: string;
    platformBytes: number;
    platformApparentBytes: number;
  };
}

/** The `--json` object: seconds are medians. A part not measured is null. */
export interface BenchJson {
  evalSeconds: Record<string, number> | null;
  unchangedResourceDiffs: number | null;
  installSecondsCold: number | null;
  installSecondsWarm: number | null;
  smokeSeconds: number | null;
  bareKiloRunSeconds: number | null;
  hostDiskBytes: number | null;
  platformPackageBytes: number | null;
}

const round = (x: number, digits = 4) => Number(x.toFixed(digits));

export function toJson(s: BenchSamples): BenchJson {
  const med = (xs: number[] | undefined) => (xs === undefined ? null : round(summarize(xs).median));
  return {
    evalSeconds: s.evaluation
      ? Object.fromEntries(s.evaluation.map((e) => [String(e.hosts), round(summarize(e.seconds).median)]))
      : null,
    unchangedResourceDiffs: s.unchanged ? s.unchanged.differing + s.unchanged.inProcessDiffering : null,
    installSecondsCold: med(s.install?.cold),
    installSecondsWarm: med(s.install?.warm),
    smokeSeconds: med(s.smoke?.smoke),
    bareKiloRunSeconds: med(s.smoke?.bare),
    hostDiskBytes: s.disk ? s.disk.hostBytes : null,
    platformPackageBytes: s.disk ? s.disk.platformBytes : null,
  };
}

/** The fit and growth of the evaluation times (medians), or undefined with fewer than two sizes. */
export function evaluationScaling(s: BenchSamples): { fit: LinearFit; growth: Growth } | undefined {
  const e = s.evaluation;
  if (!e || new Set(e.map((x) => x.hosts)).size < 2) return undefined;
  const medians = new Map(e.map((x) => [x.hosts, summarize(x.seconds).median]));
  return {
    fit: leastSquares([...medians].map(([x, y]) => ({ x, y }))),
    growth: growth(medians),
  };
}

/** Seconds with a precision that suits their size: 0.0123 s, 1.23 s, 123.4 s. */
export function fmtSeconds(x: number): string {
  if (x === 0) return "0 s";
  const a = Math.abs(x);
  const digits = a >= 100 ? 1 : a >= 10 ? 2 : a >= 1 ? 2 : a >= 0.1 ? 3 : 4;
  return `${x.toFixed(digits)} s`;
}

/** Bytes as MiB with the exact count: `226.9 MiB (237 899 776 B)`. */
export function fmtBytes(b: number): string {
  return `${(b / 2 ** 20).toFixed(1)} MiB (${b.toLocaleString("en-US")} B)`;
}

const fmtRatio = (x: number) => `${x.toFixed(x >= 10 ? 0 : 2)}×`;

type Row = [string, string, string, string, string, string];

function timeRow(label: string, xs: number[], note: string): Row {
  const m: Summary = summarize(xs);
  return [label, String(m.n), fmtSeconds(m.min), fmtSeconds(m.median), fmtSeconds(m.max), note];
}

const figure = (label: string, value: string, note = ""): Row => [label, "", "", value, "", note];

function markdownTable(header: Row, rows: Row[]): string {
  const esc = (c: string) => c.replaceAll("|", "\\|");
  const line = (r: readonly string[]) => `| ${r.map(esc).join(" | ")} |`;
  return [line(header), line(header.map((_, i) => (i >= 1 && i <= 4 ? "---:" : "---"))), ...rows.map(line)].join("\n");
}

/** The Markdown table and the lines above it (machine, runs). */
export function formatTable(s: BenchSamples): string {
  const rows: Row[] = [];
  if (s.evaluation) {
    for (const e of s.evaluation) {
      const m = summarize(e.seconds);
      rows.push(
        timeRow(
          `Program evaluation, ${e.hosts} host${e.hosts === 1 ? "" : "s"}`,
          e.seconds,
          `${e.resources} resources; ${fmtSeconds(m.median / e.hosts)} per host`,
        ),
      );
    }
    const scaling = evaluationScaling(s);
    if (scaling) {
      const { fit, growth: g } = scaling;
      rows.push(
        figure(
          "Evaluation slope (least squares)",
          `${fmtSeconds(fit.slope)} per host`,
          `fixed cost ${fmtSeconds(fit.intercept)}; r² ${fit.r2.toFixed(4)}`,
        ),
        figure(
          `Per-host cost, ${g.to} vs ${g.from} hosts`,
          fmtRatio(g.perHostRatio),
          `${g.linear ? "linear" : "NOT linear"} (limit ${fmtRatio(1.25)})${
            g.marginalRatio === undefined ? "" : `; marginal cost per added host ${fmtRatio(g.marginalRatio)}`
          }`,
        ),
      );
    }
  }
  if (s.unchanged) {
    const u = s.unchanged;
    rows.push(
      figure(
        "Unchanged stack re-evaluated: resources with differing inputs",
        String(u.differing + u.inProcessDiffering),
        `${u.differing} of ${u.resourcesCompared.toLocaleString("en-US")} over ${u.pairs} pairs of fresh processes; ${u.inProcessDiffering} in one process (${u.inProcessHosts} hosts, diffEvaluations)`,
      ),
    );
  }
  if (s.install) {
    const i = s.install;
    const cold = summarize(i.cold).median;
    const warm = summarize(i.warm).median;
    rows.push(
      timeRow(
        "Install step, cold (fresh HOME, real registry)",
        i.cold,
        `@kilocode/cli@${i.kiloVersion} from ${i.registry}`,
      ),
      timeRow("Install step, warm (already at the pin)", i.warm, "npm not run"),
      figure("Install cold / warm", fmtRatio(cold / warm), "ratio of medians"),
    );
  }
  if (s.smoke) {
    const smoke = summarize(s.smoke.smoke).median;
    const overhead = (label: string, bare: number, note: string): Row => {
      const over = smoke - bare;
      const sign = over >= 0 ? "+" : "";
      return figure(label, `${sign}${fmtSeconds(over)}`, `${sign}${((over / bare) * 100).toFixed(1)}% ${note}`);
    };
    rows.push(
      timeRow("Smoke check (smokeScript)", s.smoke.smoke, "stand-in pooler; interleaved with the bare runs"),
      timeRow(
        "Bare seed command (`kilo run ...` by hand)",
        s.smoke.bare,
        "env file sourced; same kilo, config and key",
      ),
      overhead("Smoke check overhead", summarize(s.smoke.bare).median, "of the bare run (medians)"),
    );
    if (s.smoke.bareSmokeEnv) {
      rows.push(
        timeRow(
          "Bare seed command, smoke check's kilo env",
          s.smoke.bareSmokeEnv,
          "no models fetch/telemetry, fresh data dir, as the check runs kilo",
        ),
        overhead(
          "Smoke check's own work",
          summarize(s.smoke.bareSmokeEnv).median,
          "(pre-checks, pooler probe, version, event parsing)",
        ),
      );
    }
  }
  if (s.disk) {
    const d = s.disk;
    rows.push(
      figure(
        "Disk used after install (all it added under HOME)",
        fmtBytes(d.hostBytes),
        `apparent ${fmtBytes(d.hostApparentBytes)}`,
      ),
      figure(
        "Platform package alone",
        fmtBytes(d.platformBytes),
        `~/${d.platformPackage}; ${((d.platformBytes / d.hostBytes) * 100).toFixed(1)}% of the install`,
      ),
    );
  }
  const m = s.machine;
  const load = m.loadAverage
    ? ` Load average (1 min) ${m.loadAverage[0].toFixed(2)} at the start, ${m.loadAverage[1].toFixed(2)} at the end.`
    : "";
  const head = `Machine: ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB RAM, Node ${m.node}, ${m.os}. Runs per time: ${s.runs} (min/median/max).${load}`;
  const p = s.program;
  const version = p
    ? `\nProgram: commit ${p.commit}${p.uncommittedFiles > 0 ? ` with uncommitted edits in ${p.uncommittedFiles} file(s) of index.ts/deployer/host/common` : ""}.`
    : "";
  return `${head}${version}\n\n${markdownTable(["Measure", "n", "min", "median", "max", "Notes"], rows)}\n`;
}
