/**
 * The pure parts of `npm run bench` (bench/): statistics, the JSON object and table built from a fixed
 * set of samples, the cross-process input comparison, the state-bytes arithmetic, the expected re-runs,
 * the ed25519 key's format and the options. No timings are measured or asserted here: the benchmark is a
 * script that prints figures (CI runs it with --quick so it cannot rot).
 */
import { createPrivateKey, createPublicKey } from "node:crypto";
import { describe, expect, it } from "vitest";
import { FLEET_SIZES, inProcessDiffHosts, parseArgs, QUICK_FLEET_SIZES } from "../bench/args";
import {
  canonicalJson,
  countDiffering,
  digestInputs,
  expectedSteps,
  fleetHosts,
  STATE_HOSTS,
} from "../bench/fleetShape";
import {
  type BenchSamples,
  evaluationScaling,
  floorRatios,
  fmtBytes,
  fmtKB,
  fmtSeconds,
  formatTable,
  rerunVerdict,
  toJson,
} from "../bench/format";
import { ed25519OpenSshKey } from "../bench/sshKey";
import {
  ASSET_SIG,
  ciphertextLength,
  hostStateBytes,
  jsonBytes,
  SECRET_SIG,
  SIG_KEY,
  type StateResource,
  stateOutputs,
  stateValue,
} from "../bench/stateBytes";
import { growth, leastSquares, median, summarize } from "../bench/stats";
import { measureUpgradeRuns, smokeLevel, smokeRuns, toolCommandArg } from "../bench/upgradeRuns";
import { toolCommand } from "../deployer/hostSteps";
import { commandOp, commandScript } from "../harness/commandDiff";
import * as mocks from "../harness/pulumiMocks";

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
    { hosts: 1, resources: 6, seconds: [0.5, 0.4, 0.6], floorSeconds: [0.3, 0.35, 0.4] },
    { hosts: 10, resources: 60, seconds: [0.7, 0.8, 0.75], floorSeconds: [0.6, 0.62, 0.64] },
    { hosts: 100, resources: 600, seconds: [3.1, 3, 3.2], floorSeconds: [2.9, 3, 2.8] },
    { hosts: 1000, resources: 6000, seconds: [28, 27, 30], floorSeconds: [25, 26, 27] },
  ],
  unchanged: { pairs: 8, resourcesCompared: 26_664, differing: 0, inProcessHosts: 100, inProcessDiffering: 0 },
  state: {
    toolBytes: 48_920,
    hosts: {
      local: {
        bytes: 10_654,
        entryBytes: 14_236,
        resources: 6,
        contributors: [
          { what: "alice-laptop-config.create", bytes: 1_500 },
          { what: "alice-laptop-tool.create", bytes: 1_400 },
          { what: "stack output alice-laptop", bytes: 800 },
          { what: "alice-laptop-env.stdin", bytes: 300 },
        ],
      },
      ssh: {
        bytes: 23_841,
        entryBytes: 28_268,
        resources: 7,
        contributors: [{ what: "bob-desktop-config.connection", bytes: 2_000 }],
      },
    },
    stdoutSource: { tool: "run", config: "run", env: "run", install: "result", smoke: "result" },
  },
  changes: {
    scenarios: {
      unchanged: { steps: { local: {}, ssh: {} }, added: [], removed: [] },
      rotation: {
        steps: { local: { env: ["stdin"], smoke: ["triggers"] }, ssh: { env: ["stdin"], smoke: ["triggers"] } },
        added: [],
        removed: [],
      },
      kiloBump: {
        steps: {
          local: { install: ["create"], smoke: ["triggers"] },
          ssh: { install: ["create"], smoke: ["triggers"] },
        },
        added: [],
        removed: [],
      },
      toolUpgrade: {
        steps: {
          local: { tool: ["create", "triggers"], install: ["create"], smoke: ["create"] },
          ssh: {
            tool: ["create", "triggers"],
            "tool-copy": ["remotePath", "source"],
            install: ["create"],
            smoke: ["create"],
          },
        },
        added: [],
        removed: [],
      },
    },
    namingTool: { local: ["tool", "install", "smoke"], ssh: ["tool", "tool-copy", "install", "smoke"] },
  },
  install: {
    registry: "https://registry.example.com/",
    kiloVersion: "7.7.7",
    method: "package",
    cold: [9, 7, 8],
    warm: [0.3, 0.2, 0.25],
    coldByMethod: { package: [9, 7, 8], npm: [14, 13, 15] },
  },
  smoke: { smoke: [10, 9, 11], bare: [8, 8.5, 9], bareSmokeEnv: [8.2, 8.4, 8.8] },
  upgrade: {
    oneWave: { hosts: 1000, wave0: 1000, runs: [{ wave: 0, op: "update", level: "kilo-run", hosts: 1000 }], idle: 0 },
    twoWaves: {
      hosts: 1000,
      wave0: 10,
      runs: [
        { wave: 0, op: "update", level: "kilo-run", hosts: 10 },
        { wave: 1, op: "update", level: "pool", hosts: 990 },
      ],
      idle: 0,
    },
  },
  pool: {
    "kilo-run": { requests: 4, requestBytes: 29_576, responseBytes: 4_034, ms: 12_000 },
    pool: { requests: 2, requestBytes: 0, responseBytes: 140, ms: 750 },
  },
  doctor: [
    { hosts: 50, parallel: 1, totalMs: 12_800, wallPerHostMs: 256, meanHostMs: 250, allOk: true },
    { hosts: 50, parallel: 8, totalMs: 7_100, wallPerHostMs: 142, meanHostMs: 540, allOk: true },
  ],
  disk: {
    hostBytes: 305_549_312,
    hostApparentBytes: 303_844_139,
    platformPackage: ".local/lib/node_modules/@kilocode/cli/node_modules/@kilocode/cli-linux-x64",
    platformBytes: 237_895_680,
    platformApparentBytes: 237_047_451,
  },
  package: {
    tarballBytes: 226_347,
    startMs: { installed: [1300, 1350, 1400], sources: [1200, 1250], sdk: [1000, 900] },
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
      installSecondsColdNpm: 14,
      installSecondsColdPackage: 8,
      smokeSeconds: 10,
      bareKiloRunSeconds: 8.5,
      hostDiskBytes: 305_549_312,
      platformPackageBytes: 237_895_680,
      evalSecondsFloor: { "1": 0.35, "10": 0.62, "100": 2.9, "1000": 26 },
      evalRatioToFloor: {
        "1": Number((0.5 / 0.35).toFixed(3)),
        "10": Number((0.75 / 0.62).toFixed(3)),
        "100": Number((3.1 / 2.9).toFixed(3)),
        "1000": Number((28 / 26).toFixed(3)),
      },
      stateBytesPerHost: { local: 10_654, ssh: 23_841 },
      stateBytesSshJumpHost: null,
      stateBytesPerStack: null,
      stateEntryBytesPerHost: { local: 14_236, ssh: 28_268 },
      toolBytes: 48_920,
      rerunSteps: {
        unchanged: { local: [], ssh: [], asExpected: true },
        rotation: { local: ["env", "smoke"], ssh: ["env", "smoke"], asExpected: true },
        kiloBump: { local: ["install", "smoke"], ssh: ["install", "smoke"], asExpected: true },
        toolUpgrade: {
          local: ["install", "smoke", "tool"],
          ssh: ["install", "smoke", "tool", "tool-copy"],
          asExpected: true,
        },
      },
      smokePoolBytes: { "kilo-run": 29_576, pool: 0 },
      smokePoolRequests: { "kilo-run": 4, pool: 2 },
      toolUpgradePool: {
        hosts: 1000,
        canaries: 10,
        oneWave: { kiloRuns: 1000, poolChecks: 0, requests: 4_000, requestBytes: 29_576_000 },
        twoWaves: { kiloRuns: 10, poolChecks: 990, requests: 2_020, requestBytes: 295_760 },
      },
      doctorSecondsPerHost: { "1": 0.256, "8": 0.142 },
      doctorHosts: 50,
      tarballBytes: 226_347,
      programStartMs: { installed: 1350, sources: 1225, sdk: 950 },
      programStartRatio: { installed: Number((1350 / 950).toFixed(3)), sources: Number((1225 / 950).toFixed(3)) },
    });
    // One JSON object, round-trips.
    expect(JSON.parse(JSON.stringify(json))).toEqual(json);
  });

  it("prints the state of an SSH host behind a jump host against its 20 kB target", () => {
    const state = SAMPLES.state as NonNullable<BenchSamples["state"]>;
    const h = { bytes: 19_500, entryBytes: 25_000, resources: 8, contributors: [] };
    const table = formatTable({ ...SAMPLES, state: { ...state, sshJump: h } });
    expect(table).toMatch(
      /\| State per host, SSH behind a jump host \(inputs \+ outputs\) +\|.*target ≤ 20\.0 kB[^:]*: met/,
    );
    expect(toJson({ ...SAMPLES, state: { ...state, sshJump: h } }).stateBytesSshJumpHost).toBe(19_500);
    const over = formatTable({ ...SAMPLES, state: { ...state, sshJump: { ...h, bytes: 20_700 } } });
    expect(over).toMatch(/SSH behind a jump host .*MISSED by 0\.7 kB/);
  });

  it("prints the outputs stored once per stack, not per host", () => {
    const state = SAMPLES.state as NonNullable<BenchSamples["state"]>;
    expect(formatTable(SAMPLES)).not.toMatch(/State once per stack/);
    const withStack = { ...SAMPLES, state: { ...state, stackBytes: 549 } };
    expect(formatTable(withStack)).toMatch(
      /\| State once per stack \(outputs shared by hosts\) +\|.*549 B.*`kiloConfig`/,
    );
    expect(toJson(withStack).stateBytesPerStack).toBe(549);
  });

  it("prints the pool cost per smoke level and doctor's time per host by bound", () => {
    const table = formatTable(SAMPLES);
    expect(table).toMatch(/\| Smoke check, level kilo-run: sent to the pool +\|.*4 requests, 29,576 B/);
    expect(table).toMatch(/\| Smoke check, level pool: sent to the pool +\|.*2 requests, 0 B/);
    expect(table).toMatch(/\| doctor, 50 local hosts, --parallel 8 +\|.*0\.142 s per host.*every host ok/);
    // A tool-only upgrade of 1000 hosts: today's cost, and in two waves with 10 canaries.
    expect(table).toMatch(
      /\| Tool-only upgrade, 1000 hosts, one wave: sent to the pool +\|.*1000 kilo runs \+ 0 pool checks: 4,000 requests, 29,576,000 B/,
    );
    expect(table).toMatch(
      /\| Tool-only upgrade, 1000 hosts, two waves \(10 canaries\): sent to the pool +\|.*10 kilo runs \+ 990 pool checks: 2,020 requests, 295,760 B/,
    );
  });

  it("the upgrade rows multiply the graph's counts by the measured costs, and give counts alone without them", () => {
    const upgrade = SAMPLES.upgrade as NonNullable<BenchSamples["upgrade"]>;
    // Had wave 1 run kilo (no update at level pool), the same rows would say so, from the counts.
    const leaky = {
      ...upgrade,
      twoWaves: { ...upgrade.twoWaves, runs: upgrade.twoWaves.runs.map((r) => ({ ...r, level: "kilo-run" as const })) },
    };
    expect(toJson({ ...SAMPLES, upgrade: leaky }).toolUpgradePool?.twoWaves).toEqual({
      kiloRuns: 1000,
      poolChecks: 0,
      requests: 4_000,
      requestBytes: 29_576_000,
    });
    const countsOnly = formatTable({ ...SAMPLES, pool: undefined });
    expect(countsOnly).toMatch(
      /\| Tool-only upgrade, 1000 hosts, two waves \(10 canaries\): sent to the pool \| +\| +\| 10 kilo runs \+ 990 pool checks \|.*wave 0: 10 updated in place at kilo-run, wave 1: 990 updated in place at pool; counts only: the pool cost of a check \(part pool\) was not measured/,
    );
    expect(toJson({ ...SAMPLES, pool: undefined }).toolUpgradePool?.oneWave).toEqual({
      kiloRuns: 1000,
      poolChecks: 0,
      requests: null,
      requestBytes: null,
    });
    // A quick run's smaller fleet says so.
    const small = { ...upgrade.oneWave, hosts: 100, wave0: 100, runs: [{ ...upgrade.oneWave.runs[0], hosts: 100 }] };
    expect(formatTable({ ...SAMPLES, upgrade: { ...upgrade, oneWave: small } })).toMatch(
      /\| Tool-only upgrade, 100 hosts, one wave: sent to the pool \|.*; 100 hosts, not 1000: quick run \|/,
    );
    // The pool measured alone: no upgrade rows (the counts come only from the graph).
    const poolOnly = formatTable({ ...SAMPLES, upgrade: undefined });
    expect(poolOnly).toContain("Smoke check, level pool: sent to the pool");
    expect(poolOnly).not.toContain("Tool-only upgrade");
    expect(toJson({ ...SAMPLES, upgrade: undefined }).toolUpgradePool).toBeNull();
  });

  it("prints the tarball's size and program start as ratios to the SDK alone, against issue 19's goals", () => {
    const table = formatTable(SAMPLES);
    expect(table).toMatch(/\| npm tarball +\|.*226,347 B.*target < .*met/);
    expect(table).toMatch(/\| Program start, installed \/ SDK alone +\|.*1\.42×.*target ≤ 1\.50×: met/);
    const slow = {
      ...SAMPLES,
      package: { tarballBytes: 2_000_000, startMs: { installed: [2000], sources: [1], sdk: [1000] } },
    };
    expect(formatTable(slow)).toMatch(/npm tarball.*MISSED/);
    expect(formatTable(slow)).toMatch(/installed \/ SDK alone.*2\.00×.*MISSED/);
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
      "Program: commit abc1234 with uncommitted edits in 2 file(s) of program/deployer/host/common.",
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
    expect(row("SDK floor, 1000 hosts").slice(1, 5)).toEqual(["3", "25.00 s", "26.00 s", "27.00 s"]);
    expect(row("SDK floor, 1 host")[5]).toMatch(/^6 resources: per host a component \+ minimal Commands/);
    expect(row("Smoke check (the smoke step)").slice(1, 5)).toEqual(["3", "9.00 s", "10.00 s", "11.00 s"]);
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
    expect(row("Install step, cold (fresh HOME, real registry)")[5]).toBe(
      "@kilocode/cli@7.7.7 (method package) from https://registry.example.com/",
    );
    expect(row("Smoke check overhead")[3]).toBe("+1.50 s");
    expect(row("Smoke check overhead")[5]).toMatch(/^\+17\.6% /);
    expect(row("Smoke check's own work")[3]).toBe("+1.60 s");
    expect(row("Disk used after install (all it added under HOME)")[3]).toBe(fmtBytes(305_549_312));
    expect(row("Platform package alone")[3]).toBe("226.9 MiB (237,895,680 B)");
  });

  it("prints the install figures of issue 12 against their targets: package vs npm cold, warm / cold, disk / package", () => {
    expect(row("Install step, cold, install.method package").slice(1, 5)).toEqual(["3", "7.00 s", "8.00 s", "9.00 s"]);
    expect(row("Install step, cold, install.method npm").slice(1, 5)).toEqual(["3", "13.00 s", "14.00 s", "15.00 s"]);
    expect(row("Install cold, package / npm")[3]).toBe(`${(8 / 14).toFixed(2)}×`);
    expect(row("Install cold, package / npm")[5]).toBe("ratio of medians; target ≤ 0.60×: met");
    expect(row("Install warm / cold")[3]).toBe(`${(0.25 / 8).toFixed(3)}×`);
    expect(row("Install warm / cold")[5]).toBe("ratio of medians; target ≤ 0.050×: met");
    expect(row("Disk after install / platform package alone")[3]).toBe(`${(305_549_312 / 237_895_680).toFixed(2)}×`);
    expect(row("Disk after install / platform package alone")[5]).toBe("target ≤ 1.05×: MISSED");
    // One method measured alone: its row, no ratio.
    const alone = formatTable({
      runs: 3,
      machine: SAMPLES.machine,
      install: { ...(SAMPLES.install as NonNullable<BenchSamples["install"]>), coldByMethod: { npm: [14, 13, 15] } },
    });
    expect(alone).toContain("Install step, cold, install.method npm");
    expect(alone).not.toContain("Install cold, package / npm");
  });

  it("leaves out the parts not measured", () => {
    const t = formatTable({ runs: 3, machine: SAMPLES.machine, install: SAMPLES.install });
    expect(t).toContain("Install step, cold");
    expect(t).not.toContain("Program evaluation");
    expect(t).not.toContain("Smoke check");
  });
});

describe("the new figures in the table", () => {
  const table = formatTable(SAMPLES);
  const row = (t: string, label: string) => {
    const line = t.split("\n").find((l) => l.startsWith(`| ${label} |`));
    if (!line) throw new Error(`no row ${label} in\n${t}`);
    return line
      .slice(2, -2)
      .split(" | ")
      .map((c) => c.trim());
  };

  it("the floor ratio at the largest fleet, its verdict, and the smaller fleets' ratios", () => {
    const r = row(table, "Program / SDK floor, 1000 hosts");
    expect(r[3]).toBe(`${(28 / 26).toFixed(2)}×`);
    expect(r[5]).toBe(
      `target ≤ 1.10×: met; ratio of medians; 100 hosts ${(3.1 / 2.9).toFixed(2)}×, 10 hosts ${(0.75 / 0.62).toFixed(2)}×, 1 host ${(0.5 / 0.35).toFixed(2)}×`,
    );
    const slow = {
      ...SAMPLES,
      evaluation: [{ hosts: 1000, resources: 6000, seconds: [33, 32, 34], floorSeconds: [25, 26, 27] }],
    };
    expect(row(formatTable(slow), "Program / SDK floor, 1000 hosts")[5]).toMatch(/^target ≤ 1\.10×: MISSED;/);
    expect(floorRatios(slow)).toEqual([{ hosts: 1000, ratio: 33 / 26 }]);
    // Without a floor (--only unchanged), no floor rows.
    const noFloor = formatTable({ ...SAMPLES, evaluation: [{ hosts: 1, resources: 6, seconds: [1] }] });
    expect(noFloor).not.toContain("SDK floor");
    expect(toJson({ ...SAMPLES, evaluation: [{ hosts: 1, resources: 6, seconds: [1] }] }).evalSecondsFloor).toBeNull();
  });

  it("state bytes against their targets, with what dominates them, and the tool's size", () => {
    const local = row(table, "State per host, local (inputs + outputs)");
    expect(local[3]).toBe("10.7 kB (10,654 B)");
    expect(local[5]).toMatch(/^target ≤ 12\.0 kB \(12,000 B\): met; 6 resources; whole checkpoint entries 14\.2 kB/);
    expect(local[5]).toContain(
      "largest: alice-laptop-config.create 1.5 kB, alice-laptop-tool.create 1.4 kB, stack output alice-laptop 0.8 kB",
    );
    expect(local[5]).not.toContain("env.stdin");
    const ssh = row(table, "State per host, SSH (inputs + outputs)");
    expect(ssh[5]).toMatch(/^target ≤ 16\.0 kB \(16,000 B\): MISSED by 7\.8 kB \(7,841 B\); 7 resources, ed25519 key/);
    const tool = row(table, "Host tool (shipped once per host, not in the state)");
    expect(tool[3]).toBe(fmtKB(48_920));
    expect(tool[5]).toContain("tool/config/env stdout from the real steps on a temp HOME");
    expect(tool[5]).toContain("install/smoke stdout: the result line only");
  });

  it("the steps each change re-runs, with the differing inputs and a verdict", () => {
    expect(row(table, "Steps re-run: unchanged stack")[3]).toBe("none");
    expect(row(table, "Steps re-run: key rotation")[3]).toBe("env, smoke");
    expect(row(table, "Steps re-run: key rotation")[5]).toBe(
      "as expected; differing inputs: local env [stdin], smoke [triggers]; SSH env [stdin], smoke [triggers]",
    );
    expect(row(table, "Steps re-run: kilo bump")[3]).toBe("install, smoke");
    expect(row(table, "Steps re-run: kilo-fleet upgrade (new tool)")[3]).toBe(
      "local: install, smoke, tool; SSH: install, smoke, tool, tool-copy",
    );
  });

  it("a change that re-runs more than it should, or adds a resource, is not as expected", () => {
    const c = SAMPLES.changes as NonNullable<BenchSamples["changes"]>;
    expect(rerunVerdict(c, "rotation").asExpected).toBe(true);
    const leaky = {
      ...c,
      scenarios: {
        ...c.scenarios,
        rotation: {
          ...c.scenarios.rotation,
          steps: { ...c.scenarios.rotation.steps, local: { env: ["stdin"], smoke: ["triggers"], config: ["create"] } },
        },
        kiloBump: { ...c.scenarios.kiloBump, added: ["alice-laptop-extra"] },
      },
    };
    expect(rerunVerdict(leaky, "rotation")).toMatchObject({
      asExpected: false,
      steps: { local: ["config", "env", "smoke"] },
    });
    expect(rerunVerdict(leaky, "kiloBump").asExpected).toBe(false);
    const t = formatTable({ ...SAMPLES, changes: leaky });
    expect(row(t, "Steps re-run: key rotation")[3]).toBe("local: config, env, smoke; SSH: env, smoke");
    expect(row(t, "Steps re-run: key rotation")[5]).toMatch(
      /^NOT as expected \(expected local: env, smoke; SSH: env, smoke\)/,
    );
    expect(row(t, "Steps re-run: kilo bump")[5]).toContain("added/removed +alice-laptop-extra");
    expect(toJson({ ...SAMPLES, changes: leaky }).rerunSteps?.rotation.asExpected).toBe(false);
    // An upgrade that misses a step naming the tool is not as expected either.
    const stale = {
      ...c,
      scenarios: {
        ...c.scenarios,
        toolUpgrade: {
          ...c.scenarios.toolUpgrade,
          steps: { ...c.scenarios.toolUpgrade.steps, local: { tool: ["triggers"] } },
        },
      },
    };
    expect(rerunVerdict(stale, "toolUpgrade").asExpected).toBe(false);
  });

  it("expected steps: none, env + smoke, install + smoke, the tool and what names it", () => {
    expect(expectedSteps("unchanged", ["tool"])).toEqual([]);
    expect(expectedSteps("rotation", [])).toEqual(["env", "smoke"]);
    expect(expectedSteps("kiloBump", [])).toEqual(["install", "smoke"]);
    expect(expectedSteps("toolUpgrade", ["smoke", "tool-copy", "tool"])).toEqual(["smoke", "tool", "tool-copy"]);
    expect(expectedSteps("toolUpgrade", [])).toEqual(["tool"]);
  });

  it("a quick run says so", () => {
    expect(formatTable({ ...SAMPLES, quick: true })).toContain("Quick mode (--quick)");
    expect(table).not.toContain("Quick mode");
  });
});

describe("a tool-only upgrade, counted from the graph", () => {
  const smoke = (level: "kilo-run" | "pool", id = "0123456789ab") =>
    toolCommand(id, "smoke", { host: "h", timeoutSeconds: 180, level });

  it("@pulumi/command's rules: same inputs run nothing, a trigger replaces (create), anything else updates (update ?? create)", () => {
    const a = { create: "c", update: "u", triggers: ["kilo=1"] };
    expect(commandOp(a, { ...a })).toBe("none");
    expect(commandOp(a, { ...a, triggers: ["kilo=2"] })).toBe("replace");
    expect(commandOp(a, { ...a, create: "c2", triggers: ["kilo=2"] })).toBe("replace");
    expect(commandOp(a, { ...a, create: "c2" })).toBe("update");
    expect(commandOp({ create: "c" }, { create: "c", triggers: ["x"] })).toBe("replace");
    expect(commandScript("update", a)).toBe("u");
    expect(commandScript("update", { create: "c" })).toBe("c");
    expect(commandScript("delete", { create: "c" })).toBeUndefined();
  });

  it("reads the level from the smoke command's argument (decodeStepArg), and refuses another command", () => {
    expect(smokeLevel(smoke("kilo-run"))).toBe("kilo-run");
    expect(smokeLevel(smoke("pool"))).toBe("pool");
    expect(toolCommandArg(smoke("pool"), "smoke")).toEqual({ host: "h", timeoutSeconds: 180, level: "pool" });
    expect(() => smokeLevel(toolCommand("0123456789ab", "config-apply", { managed: {} }))).toThrow(
      /not a smoke command/,
    );
    expect(() => smokeLevel("/bin/sh -c 'true'")).toThrow(/not a smoke command/);
  });

  it("a new tool on a later wave's kilo-run host runs its update (pool); a trigger change its create (kilo-run)", () => {
    const inputs = (id: string, update: boolean, key = "key=1") => ({
      create: smoke("kilo-run", id),
      ...(update ? { update: smoke("pool", id) } : {}),
      triggers: ["kilo=7.7.7 package", key],
    });
    const hosts = ["canary", "late", "same"];
    const old = new Map(hosts.map((h) => [h, inputs("aaaaaaaaaaaa", h !== "canary")]));
    const wave = (h: string) => (h === "canary" ? 0 : 1);
    const upgraded = new Map(
      hosts.map((h) => [h, inputs(h === "same" ? "aaaaaaaaaaaa" : "bbbbbbbbbbbb", h !== "canary")]),
    );
    expect(smokeRuns(old, upgraded, wave)).toEqual({
      runs: [
        { wave: 0, op: "update", level: "kilo-run", hosts: 1 },
        { wave: 1, op: "update", level: "pool", hosts: 1 },
      ],
      idle: 1,
    });
    const rotated = new Map(hosts.map((h) => [h, inputs("aaaaaaaaaaaa", h !== "canary", "key=2")]));
    expect(smokeRuns(old, rotated, wave)).toEqual({
      runs: [
        { wave: 0, op: "create", level: "kilo-run", hosts: 1 },
        { wave: 1, op: "create", level: "kilo-run", hosts: 2 },
      ],
      idle: 0,
    });
  });

  it("the program: one wave runs kilo everywhere; two waves run it on the canaries alone, pool checks on the rest", {
    timeout: 120_000,
  }, async () => {
    expect(await measureUpgradeRuns(mocks, 12, 12)).toEqual({
      hosts: 12,
      wave0: 12,
      runs: [{ wave: 0, op: "update", level: "kilo-run", hosts: 12 }],
      idle: 0,
    });
    expect(await measureUpgradeRuns(mocks, 12, 2)).toEqual({
      hosts: 12,
      wave0: 2,
      runs: [
        { wave: 0, op: "update", level: "kilo-run", hosts: 2 },
        { wave: 1, op: "update", level: "pool", hosts: 10 },
      ],
      idle: 0,
    });
  });
});

describe("state bytes", () => {
  const secret = (value: unknown) => ({ [SIG_KEY]: SECRET_SIG, value });

  it("the ciphertext length is the passphrase provider's v1:<nonce>:<AES-GCM> format's", async () => {
    const { createCipheriv, randomBytes } = await import("node:crypto");
    for (const n of [0, 1, 2, 3, 17, 411, 1000]) {
      const nonce = randomBytes(12);
      const c = createCipheriv("aes-256-gcm", randomBytes(32), nonce);
      const body = Buffer.concat([c.update(randomBytes(n)), c.final(), c.getAuthTag()]);
      expect(ciphertextLength(n), `n=${n}`).toBe(`v1:${nonce.toString("base64")}:${body.toString("base64")}`.length);
    }
  });

  it("a secret is stored as an envelope the size of its ciphertext, never its value; an asset gets a hash", () => {
    const key = "test-key-pool-never-in-state";
    const v = stateValue({ stdin: secret(key), nested: [secret({ a: 1 })], plain: "x" }) as Record<string, unknown>;
    expect(JSON.stringify(v)).not.toContain(key);
    const env = v.stdin as Record<string, string>;
    expect(env[SIG_KEY]).toBe(SECRET_SIG);
    expect(env.ciphertext.length).toBe(ciphertextLength(JSON.stringify(key).length));
    expect(((v.nested as unknown[])[0] as Record<string, string>).ciphertext.length).toBe(
      ciphertextLength('{"a":1}'.length),
    );
    expect(v.plain).toBe("x");
    expect(stateValue({ [SIG_KEY]: ASSET_SIG, path: "/b/tool.cjs" })).toEqual({
      [SIG_KEY]: ASSET_SIG,
      path: "/b/tool.cjs",
      hash: "0".repeat(64),
    });
    // Multi-byte characters count as UTF-8 bytes.
    expect(jsonBytes("é")).toBe(4);
    expect(jsonBytes(undefined)).toBe(0);
  });

  const urn = (type: string, name: string) => `urn:pulumi:test::kilo-fleet::${type}::${name}`;
  const comp = (name: string): StateResource => ({
    urn: urn("kilo-fleet:index:KiloHost", name),
    type: "kilo-fleet:index:KiloHost",
    name,
    custom: false,
    parent: urn("pulumi:pulumi:Stack", "kilo-fleet-test"),
    dependencies: [],
    deleteBeforeReplace: false,
    additionalSecretOutputs: [],
    inputs: {},
    outputs: { kiloVersion: "7.7.7" },
  });
  const cmd = (host: string, step: string, inputs: Record<string, unknown>, sensitive = false): StateResource => ({
    urn: urn("kilo-fleet:index:KiloHost$command:local:Command", `${host}-${step}`),
    type: "command:local:Command",
    name: `${host}-${step}`,
    custom: true,
    parent: urn("kilo-fleet:index:KiloHost", host),
    dependencies: [],
    deleteBeforeReplace: true,
    additionalSecretOutputs: sensitive ? ["stdout", "stderr"] : [],
    inputs,
  });

  it("a Command's outputs echo its inputs and add stdout/stderr (secret when it says so); a copy echoes; a component has its own", () => {
    const c = cmd("h", "config", { create: "run config" });
    expect(stateOutputs(c, { stdout: "ok", stderr: "" })).toEqual({ create: "run config", stdout: "ok", stderr: "" });
    const e = cmd("h", "env", { create: "run env", stdin: secret("k") }, true);
    const out = stateOutputs(e, { stdout: "env ok", stderr: "" }) as Record<string, Record<string, string>>;
    expect(out.stdout.ciphertext.length).toBe(ciphertextLength(JSON.stringify("env ok").length));
    expect(out.stdin.ciphertext.length).toBe(ciphertextLength(3));
    const copy = { ...cmd("h", "tool-copy", { remotePath: "p" }), type: "command:remote:CopyToRemote" };
    expect(stateOutputs(copy, undefined)).toEqual({ remotePath: "p" });
    expect(stateOutputs(comp("h"), undefined)).toEqual({ kiloVersion: "7.7.7" });
  });

  it("a host's bytes: its component and children (inputs + outputs) plus its stack output, nothing of another host", () => {
    const big = "x".repeat(2000);
    const resources = [
      comp("h"),
      cmd("h", "config", { create: big }),
      cmd("h", "env", { create: "env", stdin: secret("k") }, true),
      comp("other"),
      cmd("other", "config", { create: "y".repeat(5000) }),
    ];
    const outs: Record<string, { stdout: string; stderr: string }> = {
      "h-config": { stdout: "config done", stderr: "" },
      "h-env": { stdout: "env done", stderr: "warn" },
    };
    const outputOf = (r: StateResource) => outs[r.name];
    const stackOut = { kind: "local" };
    const r = hostStateBytes(resources, "h", "kilo-fleet:index:KiloHost", outputOf, stackOut);
    const expected =
      jsonBytes(stateOutputs(resources[0], undefined)) +
      jsonBytes(resources[1].inputs) +
      jsonBytes(stateOutputs(resources[1], outs["h-config"])) +
      jsonBytes(stateValue(resources[2].inputs)) +
      jsonBytes(stateOutputs(resources[2], outs["h-env"])) +
      jsonBytes({ h: stackOut }) -
      2;
    expect(r.bytes).toBe(expected);
    expect(r.resources.map((x) => x.name)).toEqual(["h", "h-config", "h-env"]);
    expect(r.entryBytes).toBeGreaterThan(r.bytes);
    expect(r.contributors[0]).toEqual({ what: "h-config.create", bytes: 2 * jsonBytes({ create: big }) - 4 });
    expect(r.contributors.some((c) => c.what.startsWith("other"))).toBe(false);
    expect(r.contributors.find((c) => c.what === "stack output h")?.bytes).toBe(jsonBytes({ h: stackOut }) - 2);
    expect(() => hostStateBytes(resources, "nope", "kilo-fleet:index:KiloHost", outputOf)).toThrow();
  });
});

describe("the SSH key and hosts of the state figure", () => {
  it("is an OpenSSH ed25519 private key: framing, structure, and the public key matches the seed", () => {
    const pem = ed25519OpenSshKey("dev@workstation");
    const lines = pem.trimEnd().split("\n");
    expect(lines[0]).toBe("-----BEGIN OPENSSH PRIVATE KEY-----");
    expect(lines[lines.length - 1]).toBe("-----END OPENSSH PRIVATE KEY-----");
    expect(lines.slice(1, -1).every((l) => l.length <= 70)).toBe(true);
    // ssh-keygen -t ed25519 -C dev@workstation writes 411 bytes: the format has no variable part but the comment.
    expect(pem.length).toBe(411);
    const buf = Buffer.from(lines.slice(1, -1).join(""), "base64");
    let at = 0;
    const magic = buf.subarray(0, 15).toString("latin1");
    at = 15;
    const u32 = () => {
      const n = buf.readUInt32BE(at);
      at += 4;
      return n;
    };
    const str = () => {
      const n = u32();
      const b = buf.subarray(at, at + n);
      at += n;
      return b;
    };
    expect(magic).toBe("openssh-key-v1\0");
    expect(str().toString()).toBe("none");
    expect(str().toString()).toBe("none");
    expect(str().length).toBe(0);
    expect(u32()).toBe(1);
    const publicBlob = str();
    const priv = str();
    expect(at).toBe(buf.length);
    const read = (b: Buffer, off: number) => {
      const n = b.readUInt32BE(off);
      return { v: b.subarray(off + 4, off + 4 + n), next: off + 4 + n };
    };
    const t = read(publicBlob, 0);
    expect(t.v.toString()).toBe("ssh-ed25519");
    const pub = read(publicBlob, t.next).v;
    expect(pub.length).toBe(32);
    expect(priv.readUInt32BE(0)).toBe(priv.readUInt32BE(4));
    const t2 = read(priv, 8);
    expect(t2.v.toString()).toBe("ssh-ed25519");
    const pub2 = read(priv, t2.next);
    expect(pub2.v.equals(pub)).toBe(true);
    const secret = read(priv, pub2.next);
    expect(secret.v.length).toBe(64);
    expect(secret.v.subarray(32).equals(pub)).toBe(true);
    const comment = read(priv, secret.next);
    expect(comment.v.toString()).toBe("dev@workstation");
    const padding = priv.subarray(comment.next);
    expect(priv.length % 8).toBe(0);
    expect([...padding]).toEqual(padding.length === 0 ? [] : Array.from({ length: padding.length }, (_, i) => i + 1));
    // The seed's public key is the one in the blobs.
    const der = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), secret.v.subarray(0, 32)]);
    const seedKey = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
    const derived = createPublicKey(seedKey).export({ format: "jwk" }) as {
      x: string;
    };
    expect(Buffer.from(derived.x, "base64url").equals(pub)).toBe(true);
    // A new key every call.
    expect(ed25519OpenSshKey()).not.toBe(ed25519OpenSshKey());
  });

  it("one local host and one SSH host whose pinned host key is an ssh-ed25519 line", () => {
    expect(STATE_HOSTS.filter((h) => h.local).length).toBe(1);
    const ssh = STATE_HOSTS.find((h) => h.ssh)?.ssh;
    const [type, b64] = (ssh?.hostKey ?? "").split(" ");
    expect(type).toBe("ssh-ed25519");
    const blob = Buffer.from(b64, "base64");
    expect(blob.subarray(4, 4 + blob.readUInt32BE(0)).toString()).toBe("ssh-ed25519");
    expect(blob.length).toBe(4 + 11 + 4 + 32);
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
  it("defaults to the table, three runs, every part, every fleet size", () => {
    const o = parseArgs([]);
    expect(o.json).toBe(false);
    expect(o.quick).toBe(false);
    expect(o.runs).toBe(3);
    expect(o.sizes).toEqual(FLEET_SIZES);
    expect([...o.only].sort()).toEqual([
      "changes",
      "disk",
      "doctor",
      "eval",
      "install",
      "package",
      "pool",
      "smoke",
      "state",
      "unchanged",
    ]);
  });

  it("--quick: one run, small fleets, no install/smoke/disk; --runs and --only still apply", () => {
    const q = parseArgs(["--quick", "--json"]);
    expect(q).toMatchObject({ quick: true, json: true, runs: 1, sizes: QUICK_FLEET_SIZES });
    expect([...q.only].sort()).toEqual(["changes", "doctor", "eval", "package", "state", "unchanged"]);
    expect(Math.max(...QUICK_FLEET_SIZES)).toBeLessThan(Math.max(...FLEET_SIZES));
    expect(parseArgs(["--quick", "--runs", "2"]).runs).toBe(2);
    expect([...parseArgs(["--only=state", "--quick"]).only]).toEqual(["state"]);
  });

  it("--sizes picks the fleet sizes (sorted, deduplicated)", () => {
    expect(parseArgs(["--sizes", "100,1,10,10"]).sizes).toEqual([1, 10, 100]);
    expect(parseArgs(["--quick", "--sizes=5"]).sizes).toEqual([5]);
    for (const bad of [["--sizes", "0"], ["--sizes", "1,x"], ["--sizes"]]) expect(() => parseArgs(bad)).toThrow();
  });

  it("the in-process diff runs on the largest fleet up to 100 hosts", () => {
    expect(inProcessDiffHosts(FLEET_SIZES)).toBe(100);
    expect(inProcessDiffHosts([1, 10])).toBe(10);
    expect(inProcessDiffHosts([500, 1000])).toBe(500);
  });

  it("reads --json, --runs N, --runs=N and --only", () => {
    expect(parseArgs(["--json", "--runs", "5"])).toMatchObject({ json: true, runs: 5 });
    expect(parseArgs(["--runs=4"]).runs).toBe(4);
    expect([...parseArgs(["--only", "eval,disk"]).only]).toEqual(["eval", "disk"]);
  });

  it("refuses bad values and unknown arguments", () => {
    for (const bad of [
      ["--runs", "0"],
      ["--runs", "x"],
      ["--runs"],
      ["--only", "eval,nope"],
      ["--fast"],
      ["--quick=1"],
    ]) {
      expect(() => parseArgs(bad), bad.join(" ")).toThrow();
    }
  });
});
