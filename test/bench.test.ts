/**
 * The pure parts of `npm run bench` (bench/): statistics, the JSON object and table built from a fixed
 * set of samples, the cross-process input comparison and the options. No timings are measured or
 * asserted here: the benchmark is a script that prints figures.
 */
import { describe, expect, it } from "vitest";
import { FLEET_SIZES, parseArgs } from "../bench/args";
import { canonicalJson, countDiffering, digestInputs, fleetHosts } from "../bench/fleetShape";
import { type BenchSamples, evaluationScaling, fmtBytes, fmtSeconds, formatTable, toJson } from "../bench/format";
import { growth, leastSquares, median, summarize } from "../bench/stats";

describe("statistics", () => {
  it("median of odd and even counts, order-independent, input untouched", () => {
    const xs = [5, 1, 3];
    expect(median(xs)).toBe(3);
    expect(xs).toEqual([5, 1, 3]);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
    expect(() => median([])).toThrow();
  });

  it("summarize gives n/min/median/max and refuses empty or non-finite samples", () => {
    expect(summarize([0.3, 0.1, 0.2])).toEqual({ n: 3, min: 0.1, median: 0.2, max: 0.3 });
    expect(() => summarize([])).toThrow();
    expect(() => summarize([1, Number.NaN, 2])).toThrow();
    expect(() => summarize([1, Number.POSITIVE_INFINITY])).toThrow();
  });

  it("least squares recovers an exact line, with r² 1", () => {
    const fit = leastSquares([1, 10, 100, 1000].map((x) => ({ x, y: 0.027 * x + 0.4 })));
    expect(fit.slope).toBeCloseTo(0.027, 12);
    expect(fit.intercept).toBeCloseTo(0.4, 10);
    expect(fit.r2).toBeCloseTo(1, 12);
  });

  it("least squares of noisy points: the textbook result", () => {
    // y = 1 + 2x with residuals +1, -1, -1, +1 at x = 0..3: slope 2, intercept 1, r² = 20/24.
    const fit = leastSquares([
      { x: 0, y: 2 },
      { x: 1, y: 2 },
      { x: 2, y: 4 },
      { x: 3, y: 8 },
    ]);
    expect(fit.slope).toBeCloseTo(2, 12);
    expect(fit.intercept).toBeCloseTo(1, 12);
    expect(fit.r2).toBeCloseTo(20 / 24, 12);
    expect(() => leastSquares([{ x: 1, y: 1 }])).toThrow();
    expect(() =>
      leastSquares([
        { x: 2, y: 1 },
        { x: 2, y: 3 },
      ]),
    ).toThrow();
  });

  it("growth: linear, with a fixed cost, is linear; quadratic is not", () => {
    const linear = new Map([1, 10, 100, 1000].map((h) => [h, 0.4 + 0.027 * h]));
    const g = growth(linear);
    expect(g.from).toBe(100);
    expect(g.to).toBe(1000);
    expect(g.perHostRatio).toBeCloseTo((0.4 + 27) / 1000 / ((0.4 + 2.7) / 100), 12);
    expect(g.marginalRatio).toBeCloseTo(1, 12);
    expect(g.linear).toBe(true);

    const quadratic = growth(new Map([1, 10, 100, 1000].map((h) => [h, 0.001 * h * h])));
    expect(quadratic.perHostRatio).toBeCloseTo(10, 12);
    expect(quadratic.linear).toBe(false);
    expect(() => growth(new Map([[1, 1]]))).toThrow();
  });
});

/** A fixed set of samples, as one run of three would produce them. */
const SAMPLES: BenchSamples = {
  runs: 3,
  machine: {
    cpus: 2,
    cpuModel: "Test CPU",
    memoryGiB: 8,
    node: "v20.0.0",
    os: "Linux 6.0",
    loadAverage: [0.5, 1.25],
  },
  program: { commit: "abc1234", uncommittedFiles: 0 },
  evaluation: [
    { hosts: 1, resources: 6, seconds: [0.5, 0.4, 0.6] },
    { hosts: 10, resources: 60, seconds: [0.7, 0.8, 0.75] },
    { hosts: 100, resources: 600, seconds: [3.1, 3, 3.2] },
    { hosts: 1000, resources: 6000, seconds: [28, 27, 30] },
  ],
  unchanged: { pairs: 8, resourcesCompared: 26_664, differing: 0, inProcessHosts: 100, inProcessDiffering: 0 },
  install: { registry: "https://registry.example.com/", kiloVersion: "7.7.7", cold: [9, 7, 8], warm: [0.3, 0.2, 0.25] },
  smoke: { smoke: [10, 9, 11], bare: [8, 8.5, 9], bareSmokeEnv: [8.2, 8.4, 8.8] },
  disk: {
    hostBytes: 305_549_312,
    hostApparentBytes: 303_844_139,
    platformPackage: ".local/lib/node_modules/@kilocode/cli/node_modules/@kilocode/cli-linux-x64",
    platformBytes: 237_895_680,
    platformApparentBytes: 237_047_451,
  },
};

describe("the --json object", () => {
  it("has exactly the documented fields, seconds as medians", () => {
    const json = toJson(SAMPLES);
    expect(json).toEqual({
      evalSeconds: { "1": 0.5, "10": 0.75, "100": 3.1, "1000": 28 },
      unchangedResourceDiffs: 0,
      installSecondsCold: 8,
      installSecondsWarm: 0.25,
      smokeSeconds: 10,
      bareKiloRunSeconds: 8.5,
      hostDiskBytes: 305_549_312,
      platformPackageBytes: 237_895_680,
    });
    // One JSON object, round-trips.
    expect(JSON.parse(JSON.stringify(json))).toEqual(json);
  });

  it("counts in-process and cross-process differences together", () => {
    const u = { ...(SAMPLES.unchanged as NonNullable<BenchSamples["unchanged"]>), differing: 2, inProcessDiffering: 1 };
    expect(toJson({ ...SAMPLES, unchanged: u }).unchangedResourceDiffs).toBe(3);
  });

  it("a part not measured is null, never missing", () => {
    const json = toJson({ runs: 3, machine: SAMPLES.machine });
    expect(Object.keys(json).sort()).toEqual(Object.keys(toJson(SAMPLES)).sort());
    expect(Object.values(json).every((v) => v === null)).toBe(true);
  });
});

describe("the table", () => {
  const table = formatTable(SAMPLES);
  const row = (label: string) => {
    const line = table.split("\n").find((l) => l.startsWith(`| ${label} |`));
    if (!line) throw new Error(`no row ${label} in\n${table}`);
    return line
      .slice(2, -2)
      .split(" | ")
      .map((c) => c.trim());
  };

  it("starts with the machine and runs, then a Markdown table", () => {
    expect(table).toMatch(/^Machine: 2 × Test CPU, 8 GiB RAM, Node v20\.0\.0, Linux 6\.0\. Runs per time: 3/);
    expect(table).toContain("Load average (1 min) 0.50 at the start, 1.25 at the end.\nProgram: commit abc1234.\n");
    expect(formatTable({ ...SAMPLES, program: { commit: "abc1234", uncommittedFiles: 2 } })).toContain(
      "Program: commit abc1234 with uncommitted edits in 2 file(s) of index.ts/deployer/host/common.",
    );
    expect(table).toContain("| Measure | n | min | median | max | Notes |\n| --- | ---: | ---: | ---: | ---: | --- |");
  });

  it("prints min/median/max for every time", () => {
    expect(row("Program evaluation, 1 host")).toEqual([
      "Program evaluation, 1 host",
      "3",
      "0.400 s",
      "0.500 s",
      "0.600 s",
      "6 resources; 0.500 s per host",
    ]);
    expect(row("Program evaluation, 1000 hosts").slice(1, 5)).toEqual(["3", "27.00 s", "28.00 s", "30.00 s"]);
    expect(row("Install step, warm (already at the pin)").slice(1, 5)).toEqual(["3", "0.200 s", "0.250 s", "0.300 s"]);
    expect(row("Smoke check (smokeScript)").slice(1, 5)).toEqual(["3", "9.00 s", "10.00 s", "11.00 s"]);
  });

  it("prints the slope, the growth verdict, the ratio, the overheads, the zero diff and the sizes", () => {
    const scaling = evaluationScaling(SAMPLES);
    expect(scaling?.fit.slope).toBeCloseTo(
      leastSquares(
        [
          [1, 0.5],
          [10, 0.75],
          [100, 3.1],
          [1000, 28],
        ].map(([x, y]) => ({ x, y })),
      ).slope,
      12,
    );
    expect(row("Evaluation slope (least squares)")[3]).toBe(`${fmtSeconds(scaling?.fit.slope ?? 0)} per host`);
    expect(row("Per-host cost, 1000 vs 100 hosts")[3]).toBe(`${(28 / 1000 / (3.1 / 100)).toFixed(2)}×`);
    expect(row("Per-host cost, 1000 vs 100 hosts")[5]).toMatch(/^linear/);
    expect(row("Unchanged stack re-evaluated: resources with differing inputs")[3]).toBe("0");
    expect(row("Install cold / warm")[3]).toBe("32×");
    expect(row("Smoke check overhead")[3]).toBe("+1.50 s");
    expect(row("Smoke check overhead")[5]).toMatch(/^\+17\.6% /);
    expect(row("Smoke check's own work")[3]).toBe("+1.60 s");
    expect(row("Disk used after install (all it added under HOME)")[3]).toBe(fmtBytes(305_549_312));
    expect(row("Platform package alone")[3]).toBe("226.9 MiB (237,895,680 B)");
  });

  it("leaves out the parts not measured", () => {
    const t = formatTable({ runs: 3, machine: SAMPLES.machine, install: SAMPLES.install });
    expect(t).toContain("Install step, cold");
    expect(t).not.toContain("Program evaluation");
    expect(t).not.toContain("Smoke check");
  });
});

describe("comparing evaluations across processes", () => {
  it("canonical JSON ignores key order and undefined, keeps array order", () => {
    expect(canonicalJson({ b: 1, a: { d: [2, 1], c: "x" }, u: undefined })).toBe('{"a":{"c":"x","d":[2,1]},"b":1}');
    expect(digestInputs({ a: 1, b: 2 })).toBe(digestInputs({ b: 2, a: 1 }));
    expect(digestInputs({ a: [1, 2] })).not.toBe(digestInputs({ a: [2, 1] }));
  });

  it("counts changed, added and removed resources", () => {
    const a = { u1: "x", u2: "y", u3: "z" };
    expect(countDiffering(a, { ...a })).toBe(0);
    expect(countDiffering(a, { u1: "x", u2: "CHANGED", u4: "new" })).toBe(3);
  });

  it("fleets are half SSH, half local, with unique names", () => {
    const hosts = fleetHosts(1000);
    expect(new Set(hosts.map((h) => h.name)).size).toBe(1000);
    expect(hosts.filter((h) => h.ssh).length).toBe(500);
    expect(FLEET_SIZES).toEqual([1, 10, 100, 1000]);
  });
});

describe("options", () => {
  it("defaults to the table, three runs, every part", () => {
    const o = parseArgs([]);
    expect(o.json).toBe(false);
    expect(o.runs).toBe(3);
    expect([...o.only].sort()).toEqual(["disk", "eval", "install", "smoke", "unchanged"]);
  });

  it("reads --json, --runs N, --runs=N and --only", () => {
    expect(parseArgs(["--json", "--runs", "5"])).toMatchObject({ json: true, runs: 5 });
    expect(parseArgs(["--runs=4"]).runs).toBe(4);
    expect([...parseArgs(["--only", "eval,disk"]).only]).toEqual(["eval", "disk"]);
  });

  it("refuses bad values and unknown arguments", () => {
    for (const bad of [["--runs", "0"], ["--runs", "x"], ["--runs"], ["--only", "eval,nope"], ["--fast"]]) {
      expect(() => parseArgs(bad), bad.join(" ")).toThrow();
    }
  });
});
