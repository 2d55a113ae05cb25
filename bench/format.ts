/**
 * Turns the raw samples of one `npm run bench` run into what it prints: a Markdown table (the one in
 * bench/README.md) or, with `--json`, one JSON object. Pure: samples in, text out.
 */
import { expectedSteps, type HostKind, SCENARIOS, type ScenarioName } from "./fleetShape";
import type { PackageSamples } from "./packageStart";
import type { Contributor } from "./stateBytes";
import { type Growth, growth, type LinearFit, leastSquares, type Summary, summarize } from "./stats";
import { levelCounts, type UpgradeRuns } from "./upgradeRuns";

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
  /** A `--quick` run (CI): one run, small fleets, no registry install. */
  quick?: boolean;
  machine: MachineInfo;
  /** The program measured: its commit and how many of its files had uncommitted edits. */
  program?: { commit: string; uncommittedFiles: number };
  /**
   * Program evaluation under Pulumi mocks, per fleet size, and the SDK's floor for the same fleet (the
   * same count of resources, minimal Commands, same mocks), interleaved with it.
   */
  evaluation?: { hosts: number; resources: number; seconds: number[]; floorSeconds?: number[] }[];
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
  /** State bytes per host (bench/stateBytes.ts) and the tool's size. */
  state?: {
    toolBytes: number;
    hosts: Record<HostKind, { bytes: number; entryBytes: number; resources: number; contributors: Contributor[] }>;
    /** The SSH host behind a jump host (ssh.proxy, pinned, the same key): issue 21's figure. */
    sshJump?: { bytes: number; entryBytes: number; resources: number; contributors: Contributor[] };
    /** Each step's stdout: printed by the real step on a temp HOME (`run`), or its result line only (`result`). */
    stdoutSource: Record<string, "run" | "result">;
    /** The stack outputs stored once, whatever the number of hosts (the kilo.jsonc keys hosts share). */
    stackBytes?: number;
  };
  /** Which steps' inputs differ from a base evaluation after each change, per kind of host. */
  changes?: {
    scenarios: Record<
      ScenarioName,
      { steps: Record<HostKind, Record<string, string[]>>; added: string[]; removed: string[] }
    >;
    /** The steps whose inputs name the tool file. */
    namingTool: Record<HostKind, string[]>;
  };
  /**
   * `method`: how the install step installed kilo (its result's `method`). `coldByMethod`: cold installs by
   * each install.method, side by side in the same runs (the default's cold runs counted under it).
   */
  install?: {
    registry: string;
    kiloVersion: string;
    method?: string;
    cold: number[];
    warm: number[];
    coldByMethod?: Partial<Record<"package" | "npm", number[]>>;
  };
  smoke?: {
    smoke: number[];
    /** The seed command by hand (env file sourced, kilo's defaults). */
    bare: number[];
    /** The seed command with the environment the smoke script gives kilo (isolates the check's own work). */
    bareSmokeEnv?: number[];
  };
  /**
   * A tool-only release (a later host tool, nothing else) on UPGRADE_FLEET's fleet, in one wave and with its
   * canaries alone in wave 0: what each host's smoke step runs, from the program's graph (bench/upgradeRuns.ts).
   */
  upgrade?: { oneWave: UpgradeRuns; twoWaves: UpgradeRuns };
  /** What one smoke check sends the pool, at each `smokeCheck.level` (harness/smokeCost.ts), and its time. */
  pool?: Record<"kilo-run" | "pool", { requests: number; requestBytes: number; responseBytes: number; ms: number }>;
  /** `kilo-fleet doctor` on freshly deployed local HOMEs, by its parallel bound (harness/doctorCost.ts). */
  doctor?: {
    hosts: number;
    parallel: number;
    totalMs: number;
    wallPerHostMs: number;
    meanHostMs: number;
    allOk: boolean;
  }[];
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
  /** The npm tarball, and program start as Pulumi loads it (bench/packageStart.ts), in milliseconds. */
  package?: PackageSamples;
}

/** The `--json` object: seconds are medians. A part not measured is null. */
export interface BenchJson {
  evalSeconds: Record<string, number> | null;
  unchangedResourceDiffs: number | null;
  installSecondsCold: number | null;
  installSecondsWarm: number | null;
  /** Cold installs by each install.method, measured side by side (issue 12: package ≤ 0.6× npm). */
  installSecondsColdNpm: number | null;
  installSecondsColdPackage: number | null;
  smokeSeconds: number | null;
  bareKiloRunSeconds: number | null;
  hostDiskBytes: number | null;
  platformPackageBytes: number | null;
  /** The SDK's floor (same resources, minimal Commands, same mocks), medians by host count. */
  evalSecondsFloor: Record<string, number> | null;
  /** Program / floor, ratio of medians, by host count. */
  evalRatioToFloor: Record<string, number> | null;
  /** Inputs plus outputs in the state, per host. */
  stateBytesPerHost: Record<HostKind, number> | null;
  /** State bytes of an SSH host behind a jump host (issue 21; target 20 kB). */
  stateBytesSshJumpHost: number | null;
  /** Stack outputs stored once per stack, not per host (the kilo.jsonc keys hosts share). */
  stateBytesPerStack: number | null;
  /** The same, whole checkpoint entries (URNs, provider, dependencies, timestamps too). */
  stateEntryBytesPerHost: Record<HostKind, number> | null;
  /** The host tool's size (shipped once per host, not in the state). */
  toolBytes: number | null;
  /** The steps each change re-runs, per kind of host, and whether exactly the expected ones. */
  rerunSteps: Record<ScenarioName, Record<HostKind, string[]> & { asExpected: boolean }> | null;
  /** Bytes one smoke check sends the pool (request bodies), by smokeCheck.level (issue 10). */
  smokePoolBytes: Record<"kilo-run" | "pool", number> | null;
  /** Requests one smoke check sends the pool, by smokeCheck.level. */
  smokePoolRequests: Record<"kilo-run" | "pool", number> | null;
  /**
   * A tool-only release on `hosts` hosts in one wave and in two (`canaries` in wave 0), issue 21: the smoke
   * checks it runs at each level, counted from the program's graph, and what they send the pool (the counts ×
   * smokePool*; null when the pool cost was not measured).
   */
  toolUpgradePool: { hosts: number; canaries: number; oneWave: UpgradeCost; twoWaves: UpgradeCost } | null;
  /** doctor's wall seconds per host, by its parallel bound (issue 13), and the fleet size measured. */
  doctorSecondsPerHost: Record<string, number> | null;
  doctorHosts: number | null;
  /** The npm tarball's bytes (issue 19: under 1 MB). */
  tarballBytes: number | null;
  /** Milliseconds to the first registered resource, by where KiloHost comes from, and the SDK alone. */
  programStartMs: Record<"installed" | "sources" | "sdk", number> | null;
  /** programStartMs over the SDK alone's (issue 19: installed ≤ 1.5×). */
  programStartRatio: Record<"installed" | "sources", number> | null;
}

/**
 * The targets: issue 9's state bytes per host and the evaluation's ratio to the SDK's floor; issue 12's
 * install figures (cold package / cold npm, warm / cold, disk after install / the platform package alone).
 */
export const TARGETS = {
  stateBytes: { local: 12_000, ssh: 16_000 } as Record<HostKind, number>,
  /** Issue 21: an SSH host with a jump host. */
  stateBytesSshJump: 20_000,
  floorRatio: 1.1,
  packageToNpmCold: 0.6,
  warmToCold: 0.05,
  diskToPlatform: 1.05,
  tarballBytes: 1_000_000,
  startRatio: 1.5,
};

const HOST_KINDS: readonly HostKind[] = ["local", "ssh"];

/** The fleet of the upgrade-cost rows: the issue's 1000 hosts (100 with --quick), 10 of them canaries in wave 0. */
export const UPGRADE_FLEET = { hosts: 1000, quickHosts: 100, canaries: 10 } as const;

/** What a tool-only release's smoke checks cost the pool: counts from the graph × the measured cost of one check. */
export interface UpgradeCost {
  /** Smoke checks at level kilo-run (each runs kilo: the seed conversation). */
  kiloRuns: number;
  /** Smoke checks at level pool. */
  poolChecks: number;
  /** Requests and request bytes sent to the pool; null without the pool measurement. */
  requests: number | null;
  requestBytes: number | null;
}

/** The cost of one release's smoke runs, with `pool` (the per-check measurement) when there is one. */
export function upgradeCost(u: UpgradeRuns, pool: BenchSamples["pool"]): UpgradeCost {
  const n = levelCounts(u);
  return {
    kiloRuns: n["kilo-run"],
    poolChecks: n.pool,
    requests: pool ? n["kilo-run"] * pool["kilo-run"].requests + n.pool * pool.pool.requests : null,
    requestBytes: pool ? n["kilo-run"] * pool["kilo-run"].requestBytes + n.pool * pool.pool.requestBytes : null,
  };
}

/** The steps a scenario changed on each kind of host, sorted, and whether they are exactly the expected ones. */
export function rerunVerdict(
  c: NonNullable<BenchSamples["changes"]>,
  scenario: ScenarioName,
): { steps: Record<HostKind, string[]>; expected: Record<HostKind, string[]>; asExpected: boolean } {
  const sc = c.scenarios[scenario];
  const steps = { local: Object.keys(sc.steps.local).sort(), ssh: Object.keys(sc.steps.ssh).sort() };
  const expected = {
    local: expectedSteps(scenario, c.namingTool.local),
    ssh: expectedSteps(scenario, c.namingTool.ssh),
  };
  const same = (a: string[], b: string[]) => a.length === b.length && a.every((x, i) => x === b[i]);
  const asExpected =
    sc.added.length === 0 &&
    sc.removed.length === 0 &&
    HOST_KINDS.every((k) => same(steps[k], [...expected[k]].sort()));
  return { steps, expected, asExpected };
}

/** Program / floor, ratio of medians, per fleet size that has a floor. */
export function floorRatios(s: BenchSamples): { hosts: number; ratio: number }[] {
  return (s.evaluation ?? [])
    .filter((e) => e.floorSeconds && e.floorSeconds.length > 0)
    .map((e) => ({
      hosts: e.hosts,
      ratio: summarize(e.seconds).median / summarize(e.floorSeconds as number[]).median,
    }));
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
    installSecondsColdNpm: med(s.install?.coldByMethod?.npm),
    installSecondsColdPackage: med(s.install?.coldByMethod?.package),
    smokeSeconds: med(s.smoke?.smoke),
    bareKiloRunSeconds: med(s.smoke?.bare),
    hostDiskBytes: s.disk ? s.disk.hostBytes : null,
    platformPackageBytes: s.disk ? s.disk.platformBytes : null,
    evalSecondsFloor: s.evaluation?.some((e) => e.floorSeconds)
      ? Object.fromEntries(
          s.evaluation
            .filter((e) => e.floorSeconds)
            .map((e) => [String(e.hosts), round(summarize(e.floorSeconds as number[]).median)]),
        )
      : null,
    evalRatioToFloor: s.evaluation?.some((e) => e.floorSeconds)
      ? Object.fromEntries(floorRatios(s).map((r) => [String(r.hosts), round(r.ratio, 3)]))
      : null,
    stateBytesPerHost: s.state ? { local: s.state.hosts.local.bytes, ssh: s.state.hosts.ssh.bytes } : null,
    stateEntryBytesPerHost: s.state
      ? { local: s.state.hosts.local.entryBytes, ssh: s.state.hosts.ssh.entryBytes }
      : null,
    toolBytes: s.state ? s.state.toolBytes : null,
    stateBytesSshJumpHost: s.state?.sshJump ? s.state.sshJump.bytes : null,
    stateBytesPerStack: s.state?.stackBytes ?? null,
    rerunSteps: s.changes
      ? (Object.fromEntries(
          SCENARIOS.map((sc) => {
            const v = rerunVerdict(s.changes as NonNullable<BenchSamples["changes"]>, sc);
            return [sc, { ...v.steps, asExpected: v.asExpected }];
          }),
        ) as BenchJson["rerunSteps"])
      : null,
    smokePoolBytes: s.pool ? { "kilo-run": s.pool["kilo-run"].requestBytes, pool: s.pool.pool.requestBytes } : null,
    smokePoolRequests: s.pool ? { "kilo-run": s.pool["kilo-run"].requests, pool: s.pool.pool.requests } : null,
    toolUpgradePool: s.upgrade
      ? {
          hosts: s.upgrade.oneWave.hosts,
          canaries: s.upgrade.twoWaves.wave0,
          oneWave: upgradeCost(s.upgrade.oneWave, s.pool),
          twoWaves: upgradeCost(s.upgrade.twoWaves, s.pool),
        }
      : null,
    doctorSecondsPerHost: s.doctor
      ? Object.fromEntries(s.doctor.map((d) => [String(d.parallel), round(d.wallPerHostMs / 1000, 4)]))
      : null,
    doctorHosts: s.doctor?.[0]?.hosts ?? null,
    tarballBytes: s.package?.tarballBytes ?? null,
    programStartMs: s.package
      ? {
          installed: round(summarize(s.package.startMs.installed).median),
          sources: round(summarize(s.package.startMs.sources).median),
          sdk: round(summarize(s.package.startMs.sdk).median),
        }
      : null,
    programStartRatio: s.package
      ? { installed: round(startRatio(s.package, "installed"), 3), sources: round(startRatio(s.package, "sources"), 3) }
      : null,
  };
}

/** Median start from `source` over the SDK alone's median. */
export function startRatio(p: PackageSamples, source: "installed" | "sources"): number {
  return summarize(p.startMs[source]).median / summarize(p.startMs.sdk).median;
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

/** Bytes as kB (1000 B) with the exact count: `9.8 kB (9,812 B)`. */
export function fmtKB(b: number): string {
  return `${(b / 1000).toFixed(1)} kB (${b.toLocaleString("en-US")} B)`;
}

const fmtRatio = (x: number) => `${x.toFixed(x >= 10 ? 0 : x >= 0.1 ? 2 : 3)}×`;

/** `target ≤ 0.60×: met` (or `MISSED`), as the other targets read. */
const goal = (x: number, target: number) => `target ≤ ${fmtRatio(target)}: ${x <= target ? "met" : "MISSED"}`;

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
    for (const e of s.evaluation) {
      if (!e.floorSeconds) continue;
      rows.push(
        timeRow(
          `SDK floor, ${e.hosts} host${e.hosts === 1 ? "" : "s"}`,
          e.floorSeconds,
          `${e.resources} resources: per host a component + minimal Commands, same mocks; interleaved with the program`,
        ),
      );
    }
    const ratios = floorRatios(s);
    if (ratios.length > 0) {
      const last = ratios[ratios.length - 1];
      const others = ratios
        .slice(0, -1)
        .reverse()
        .map((r) => `${r.hosts} host${r.hosts === 1 ? "" : "s"} ${fmtRatio(r.ratio)}`)
        .join(", ");
      const verdict = last.ratio <= TARGETS.floorRatio ? "met" : "MISSED";
      rows.push(
        figure(
          `Program / SDK floor, ${last.hosts} hosts`,
          fmtRatio(last.ratio),
          `target ≤ ${fmtRatio(TARGETS.floorRatio)}: ${verdict}; ratio of medians${others ? `; ${others}` : ""}`,
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
  if (s.changes) {
    const c = s.changes;
    const labels: Record<ScenarioName, string> = {
      unchanged: "Steps re-run: unchanged stack",
      rotation: "Steps re-run: key rotation",
      kiloBump: "Steps re-run: kilo bump",
      toolUpgrade: "Steps re-run: kilo-fleet upgrade (new tool)",
    };
    for (const sc of SCENARIOS) {
      const v = rerunVerdict(c, sc);
      const detail = (k: HostKind) =>
        v.steps[k].length === 0
          ? "none"
          : v.steps[k].map((step) => `${step} [${c.scenarios[sc].steps[k][step].join(", ")}]`).join(", ");
      const list = (xs: string[]) => (xs.length === 0 ? "none" : xs.join(", "));
      const value =
        list(v.steps.local) === list(v.steps.ssh)
          ? list(v.steps.local)
          : `local: ${list(v.steps.local)}; SSH: ${list(v.steps.ssh)}`;
      const extra = [...c.scenarios[sc].added.map((n) => `+${n}`), ...c.scenarios[sc].removed.map((n) => `-${n}`)];
      rows.push(
        figure(
          labels[sc],
          value,
          `${v.asExpected ? "as expected" : `NOT as expected (expected local: ${list(v.expected.local)}; SSH: ${list(v.expected.ssh)})`}; differing inputs: local ${detail("local")}; SSH ${detail("ssh")}${extra.length > 0 ? `; added/removed ${extra.join(", ")}` : ""}`,
        ),
      );
    }
  }
  if (s.state) {
    const st = s.state;
    const sources = Object.entries(st.stdoutSource);
    const ran = sources.filter(([, v]) => v === "run").map(([k]) => k);
    const resultOnly = sources.filter(([, v]) => v === "result").map(([k]) => k);
    const stdoutNote = [
      ran.length > 0 ? `${ran.join("/")} stdout from the real steps on a temp HOME (as /home/dev)` : "",
      resultOnly.length > 0 ? `${resultOnly.join("/")} stdout: the result line only` : "",
    ]
      .filter((x) => x !== "")
      .join("; ");
    for (const kind of HOST_KINDS) {
      const h = st.hosts[kind];
      const target = TARGETS.stateBytes[kind];
      const verdict = h.bytes <= target ? "met" : `MISSED by ${fmtKB(h.bytes - target)}`;
      const largest = h.contributors
        .slice(0, 3)
        .map((x) => `${x.what} ${(x.bytes / 1000).toFixed(1)} kB`)
        .join(", ");
      rows.push(
        figure(
          kind === "local" ? "State per host, local (inputs + outputs)" : "State per host, SSH (inputs + outputs)",
          fmtKB(h.bytes),
          `target ≤ ${fmtKB(target)}: ${verdict}; ${h.resources} resources${kind === "ssh" ? ", ed25519 key, pinned host key" : ""}; whole checkpoint entries ${fmtKB(h.entryBytes)}; largest: ${largest}`,
        ),
      );
    }
    if (st.sshJump) {
      const h = st.sshJump;
      const target = TARGETS.stateBytesSshJump;
      rows.push(
        figure(
          "State per host, SSH behind a jump host (inputs + outputs)",
          fmtKB(h.bytes),
          `target ≤ ${fmtKB(target)}: ${h.bytes <= target ? "met" : `MISSED by ${fmtKB(h.bytes - target)}`}; ${h.resources} resources; ssh.proxy pinned, the jump host with sshPrivateKey (a second copy in every connection); +${fmtKB(h.bytes - st.hosts.ssh.bytes)} over the SSH host`,
        ),
      );
    }
    if (st.stackBytes !== undefined) {
      rows.push(
        figure(
          "State once per stack (outputs shared by hosts)",
          fmtKB(st.stackBytes),
          "the kilo.jsonc keys most hosts share (`kiloConfig`); a host whose keys differ carries its own in its entry",
        ),
      );
    }
    rows.push(
      figure(
        "Host tool (shipped once per host, not in the state)",
        fmtKB(st.toolBytes),
        `hostToolArtifact().text; the state keeps its path and hash. Secrets counted as passphrase-provider ciphertext; ${stdoutNote}`,
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
        `@kilocode/cli@${i.kiloVersion}${i.method ? ` (method ${i.method})` : ""} from ${i.registry}`,
      ),
      timeRow("Install step, warm (already at the pin)", i.warm, "nothing downloaded"),
      figure("Install cold / warm", fmtRatio(cold / warm), "ratio of medians"),
      figure(
        "Install warm / cold",
        fmtRatio(warm / cold),
        `ratio of medians; ${goal(warm / cold, TARGETS.warmToCold)}`,
      ),
    );
    const byMethod = i.coldByMethod;
    for (const m of ["package", "npm"] as const) {
      const xs = byMethod?.[m];
      if (xs && xs.length > 0) {
        rows.push(
          timeRow(`Install step, cold, install.method ${m}`, xs, "fresh HOME each; interleaved with the other method"),
        );
      }
    }
    if (byMethod?.package?.length && byMethod.npm?.length) {
      const r = summarize(byMethod.package).median / summarize(byMethod.npm).median;
      rows.push(
        figure("Install cold, package / npm", fmtRatio(r), `ratio of medians; ${goal(r, TARGETS.packageToNpmCold)}`),
      );
    }
  }
  if (s.smoke) {
    const smoke = summarize(s.smoke.smoke).median;
    const overhead = (label: string, bare: number, note: string): Row => {
      const over = smoke - bare;
      const sign = over >= 0 ? "+" : "";
      return figure(label, `${sign}${fmtSeconds(over)}`, `${sign}${((over / bare) * 100).toFixed(1)}% ${note}`);
    };
    rows.push(
      timeRow("Smoke check (the smoke step)", s.smoke.smoke, "stand-in pooler; interleaved with the bare runs"),
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
  if (s.pool) {
    for (const level of ["kilo-run", "pool"] as const) {
      const p = s.pool[level];
      rows.push(
        figure(
          `Smoke check, level ${level}: sent to the pool`,
          `${p.requests} requests, ${p.requestBytes.toLocaleString("en-US")} B`,
          `${p.responseBytes.toLocaleString("en-US")} B back; ${fmtSeconds(p.ms / 1000)} (stand-in pooler)`,
        ),
      );
    }
  }
  if (s.upgrade) {
    // A release that only replaces the host tool (issue 21): what each smoke step runs, counted from the graph,
    // times what one check at that level was measured to send the pool (the two rows above).
    const label = (u: UpgradeRuns) =>
      `Tool-only upgrade, ${u.hosts} hosts, ${u.wave0 >= u.hosts ? "one wave" : `two waves (${u.wave0} canaries)`}: sent to the pool`;
    for (const u of [s.upgrade.oneWave, s.upgrade.twoWaves]) {
      const c = upgradeCost(u, s.pool);
      const counts = `${c.kiloRuns} kilo runs + ${c.poolChecks} pool checks`;
      const runs = u.runs
        .map((r) => `wave ${r.wave}: ${r.hosts} ${r.op === "create" ? "replaced" : "updated in place"} at ${r.level}`)
        .join(", ");
      rows.push(
        figure(
          label(u),
          c.requests === null || c.requestBytes === null
            ? counts
            : `${counts}: ${c.requests.toLocaleString("en-US")} requests, ${c.requestBytes.toLocaleString("en-US")} B`,
          `smoke steps counted from the graph (before/after a new tool, @pulumi/command 1.2.1's rules): ${runs || "none"}${
            u.idle > 0 ? `, ${u.idle} run nothing` : ""
          }; ${s.pool ? "× the measured cost of one check (the two rows above)" : "counts only: the pool cost of a check (part pool) was not measured"}${
            u.hosts !== UPGRADE_FLEET.hosts ? `; ${u.hosts} hosts, not ${UPGRADE_FLEET.hosts}: quick run` : ""
          }`,
        ),
      );
    }
  }
  if (s.doctor) {
    for (const d of s.doctor) {
      rows.push(
        figure(
          `doctor, ${d.hosts} local hosts, --parallel ${d.parallel}`,
          `${fmtSeconds(d.wallPerHostMs / 1000)} per host`,
          `${fmtSeconds(d.totalMs / 1000)} in all; one host's own check ${fmtSeconds(d.meanHostMs / 1000)} on average; ${d.allOk ? "every host ok" : "NOT every host ok"}`,
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
      figure(
        "Disk after install / platform package alone",
        fmtRatio(d.hostBytes / d.platformBytes),
        goal(d.hostBytes / d.platformBytes, TARGETS.diskToPlatform),
      ),
    );
  }
  if (s.package) {
    const p = s.package;
    const ms = (xs: number[]) => xs.map((x) => x / 1000);
    rows.push(
      figure(
        "npm tarball",
        fmtBytes(p.tarballBytes),
        `target < ${fmtBytes(TARGETS.tarballBytes)}: ${p.tarballBytes < TARGETS.tarballBytes ? "met" : "MISSED"}`,
      ),
      timeRow(
        "Program start, KiloHost from the installed package",
        ms(p.startMs.installed),
        "to the first resource; run.js, ts-node",
      ),
      timeRow("Program start, KiloHost from the repo's sources", ms(p.startMs.sources), "the same program in a clone"),
      timeRow(
        "Program start, @pulumi/pulumi alone",
        ms(p.startMs.sdk),
        "a bare component; interleaved with the two above",
      ),
      figure(
        "Program start, installed / SDK alone",
        fmtRatio(startRatio(p, "installed")),
        goal(startRatio(p, "installed"), TARGETS.startRatio),
      ),
      figure("Program start, sources / SDK alone", fmtRatio(startRatio(p, "sources")), "ratio of medians"),
    );
  }
  const m = s.machine;
  const load = m.loadAverage
    ? ` Load average (1 min) ${m.loadAverage[0].toFixed(2)} at the start, ${m.loadAverage[1].toFixed(2)} at the end.`
    : "";
  const quick = s.quick ? " Quick mode (--quick): small fleets, no registry install, no real kilo." : "";
  const head = `Machine: ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB RAM, Node ${m.node}, ${m.os}. Runs per time: ${s.runs} (min/median/max).${load}${quick}`;
  const p = s.program;
  const version = p
    ? `\nProgram: commit ${p.commit}${p.uncommittedFiles > 0 ? ` with uncommitted edits in ${p.uncommittedFiles} file(s) of program/deployer/host/common` : ""}.`
    : "";
  return `${head}${version}\n\n${markdownTable(["Measure", "n", "min", "median", "max", "Notes"], rows)}\n`;
}
