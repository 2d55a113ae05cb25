/**
 * `npm run bench`: the figures a platform team asks for before trusting kilo-fleet, measured side by
 * side in one run and printed as a Markdown table (min/median/max over --runs runs for every time), or
 * with --json one JSON object. What it measures, its options and the figures: bench/README.md.
 * Progress goes to stderr. Benchmarks print figures; nothing here asserts a timing.
 */
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir, totalmem, type } from "node:os";
import { dirname, join } from "node:path";
import { formatResult } from "../common/result";
import { measureDoctor } from "../harness/doctorCost";
import { startFakePooler } from "../harness/fakePooler";
import { type Built, buildSettings } from "../harness/hostHome";
import { type InstallMethod, otherMethod, timeColdInstall } from "../harness/installCost";
import { TEST_KILO_VERSION } from "../harness/kilo";
import { measureSmokeCost } from "../harness/smokeCost";
import { inProcessDiffHosts, type Options, parseArgs } from "./args";
import type { ChangesResult, FloorResult, ProgramResult, StateResult, WorkerRequest } from "./evalWorker";
import { countDiffering, type HostKind } from "./fleetShape";
import { type BenchSamples, formatTable, toJson, UPGRADE_FLEET } from "./format";
import {
  configure,
  diskUsage,
  findPlatformPackage,
  freshHome,
  type Host,
  hostEnv,
  listTree,
  type StepOutput,
  timeBareRun,
  timeInstall,
  timeSmoke,
  treeUsage,
} from "./hostRuns";
import { measurePackage } from "./packageStart";
import { hostStateBytes, jsonBytes, type StateResource } from "./stateBytes";
import type { UpgradeRuns } from "./upgradeRuns";

const progress = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);

const REPO = dirname(__dirname);
/** What the evaluation workers load: the program, its components, the test harness and the worker. */
const PROGRAM_FILES = [
  "index.ts",
  "program",
  "deployer",
  "host",
  "common",
  "harness",
  "bench",
  "stacks/kilo-fleet.lock.json",
  "package.json",
  "tsconfig.json",
];

/**
 * A copy of the program as it is now, in `scratch/program` (node_modules linked), for every evaluation
 * worker of this run to load: the checkout is shared, and an edit landing mid-run must not make two
 * evaluations of "the same" stack differ, nor mix versions in one table.
 */
function snapshotProgram(scratch: string): string {
  const root = join(scratch, "program");
  for (const f of PROGRAM_FILES) {
    mkdirSync(dirname(join(root, f)), { recursive: true });
    cpSync(join(REPO, f), join(root, f), { recursive: true });
  }
  symlinkSync(join(REPO, "node_modules"), join(root, "node_modules"));
  return root;
}

/** The commit the program is at, and how many of its files differ from it (uncommitted edits). */
function programVersion(): { commit: string; uncommittedFiles: number } | undefined {
  try {
    const git = (...args: string[]) => execFileSync("git", args, { cwd: REPO, encoding: "utf8" }).trim();
    const commit = git("rev-parse", "--short", "HEAD");
    const dirty = git("status", "--porcelain", "--", "program", "deployer", "host", "common");
    return { commit, uncommittedFiles: dirty === "" ? 0 : dirty.split("\n").length };
  } catch {
    return undefined;
  }
}

/** One measurement in a fresh node process (bench/evalWorker.ts of the snapshot `program`). */
function runWorker<T>(program: string, request: WorkerRequest, scratch: string): Promise<T> {
  const out = join(scratch, `worker-${request.mode}-${randomBytes(4).toString("hex")}.json`);
  const worker = join(program, "bench", "evalWorker.ts");
  const args = ["--max-old-space-size=8192", "--import", "tsx", worker, out, JSON.stringify(request)];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: program, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) {
        return reject(
          new Error(`evaluation worker ${JSON.stringify(request)} failed (exit ${code}): ${stderr.trim()}`),
        );
      }
      const r = JSON.parse(readFileSync(out, "utf8")) as T;
      rmSync(out, { force: true });
      resolve(r);
    });
  });
}

interface SizeSlot {
  seconds: number[];
  floorSeconds: number[];
  digests: ProgramResult["digests"][];
  resources: number;
}

async function measureEvaluation(o: Options, samples: BenchSamples, program: string, scratch: string): Promise<void> {
  // The shape of a host (children per kind of host), for the floor; also a warm-up, not counted.
  const probe = await runWorker<ProgramResult>(program, { mode: "program", hosts: 2 }, scratch);
  const { local, ssh } = probe.childrenPerHost;
  if (local === undefined || ssh === undefined) throw new Error("the probe evaluation found no local or SSH host");
  const children: Record<HostKind, number> = { local, ssh };
  progress(`a host is its component + ${local} children (local) or ${ssh} (SSH)`);
  const withFloor = o.only.has("eval");
  const bySize = new Map<number, SizeSlot>(
    o.sizes.map((h) => [h, { seconds: [], floorSeconds: [], digests: [], resources: 0 }]),
  );
  let inProcess: ProgramResult["inProcess"];
  const inProcessHosts = inProcessDiffHosts(o.sizes);
  // Round-robin over the sizes, so a slow spell of the machine is spread over all of them; the program
  // and its floor alternate which goes first.
  for (let run = 0; run < o.runs; run++) {
    for (const [i, hosts] of o.sizes.entries()) {
      const slot = bySize.get(hosts) as SizeSlot;
      const measureProgram = async () => {
        const twice = o.only.has("unchanged") && run === 0 && hosts === inProcessHosts;
        const r = await runWorker<ProgramResult>(program, { mode: "program", hosts, twice }, scratch);
        slot.seconds.push(r.seconds);
        slot.resources = r.resources;
        if (o.only.has("unchanged")) slot.digests.push(r.digests);
        if (r.inProcess) inProcess = r.inProcess;
        return r;
      };
      const measureFloor = async () => {
        const f = await runWorker<FloorResult>(program, { mode: "floor", hosts, children }, scratch);
        slot.floorSeconds.push(f.seconds);
        return f;
      };
      let r: ProgramResult;
      let f: FloorResult | undefined;
      if (!withFloor) r = await measureProgram();
      else if ((run + i) % 2 === 0) {
        r = await measureProgram();
        f = await measureFloor();
      } else {
        f = await measureFloor();
        r = await measureProgram();
      }
      if (f && f.resources !== r.resources) {
        throw new Error(`the floor registered ${f.resources} resources for ${hosts} hosts, the program ${r.resources}`);
      }
      progress(
        `evaluation ${hosts} host(s), run ${run + 1}/${o.runs}: ${r.seconds.toFixed(3)} s, ${r.resources} resources${
          f ? `; SDK floor ${f.seconds.toFixed(3)} s (${(r.seconds / f.seconds).toFixed(2)}×)` : ""
        }`,
      );
    }
  }
  samples.evaluation = o.sizes.map((hosts) => {
    const s = bySize.get(hosts) as SizeSlot;
    return {
      hosts,
      resources: s.resources,
      seconds: s.seconds,
      ...(withFloor ? { floorSeconds: s.floorSeconds } : {}),
    };
  });
  if (o.only.has("unchanged")) {
    let pairs = 0;
    let compared = 0;
    let differing = 0;
    for (const { digests } of bySize.values()) {
      for (let i = 1; i < digests.length; i++) {
        pairs++;
        compared += Object.keys(digests[0]).length;
        differing += countDiffering(digests[0], digests[i]);
      }
    }
    samples.unchanged = {
      pairs,
      resourcesCompared: compared,
      differing,
      inProcessHosts,
      inProcessDiffering: inProcess?.differing ?? Number.NaN,
    };
    progress(`unchanged stack: ${differing} differing over ${pairs} pairs; in one process: ${inProcess?.differing}`);
  }
}

/** A step's output as it would read on a host whose HOME is /home/dev (temp HOMEs have long paths). */
function asOnHostDev(out: StepOutput, home: string): StepOutput {
  return { stdout: out.stdout.replaceAll(home, "/home/dev"), stderr: out.stderr.replaceAll(home, "/home/dev") };
}

/**
 * The state bytes per host: the tool, config and env steps run for real on a fresh HOME (no network) for
 * their stdout; the install and smoke steps' stdout from the host measurements when they ran, else their
 * result line only. Then the program with a local and an SSH host evaluated under mocks that return
 * those outputs, and every resource of each host counted (bench/stateBytes.ts).
 */
async function measureState(
  samples: BenchSamples,
  program: string,
  scratch: string,
  measured: Partial<Record<"install" | "smoke", StepOutput>>,
): Promise<void> {
  const b = buildSettings({}, { name: "alice-laptop" });
  const { host: h, tool } = freshHome();
  const outputs: Record<string, StepOutput> = {};
  const source: Record<string, "run" | "result"> = {};
  try {
    const { config, env } = configure(b, h, `test-key-bench-${randomBytes(8).toString("hex")}`);
    for (const [step, out] of Object.entries({ tool, config, env })) {
      outputs[step] = asOnHostDev(out, h.home);
      source[step] = "run";
    }
  } finally {
    rmSync(h.root, { recursive: true, force: true });
  }
  const resultOnly = {
    install: formatResult({
      step: "install",
      kiloVersion: b.spec.kiloVersion,
      bin: "/home/dev/.local/bin/kilo",
      method: "npm",
      changed: true,
    }),
    smoke: formatResult({
      step: "smoke",
      pass: true,
      level: "kilo-run",
      kiloVersion: b.spec.kiloVersion,
      seconds: 8.2,
    }),
  };
  for (const step of ["install", "smoke"] as const) {
    const m = measured[step];
    outputs[step] = m ?? { stdout: resultOnly[step], stderr: "" };
    source[step] = m ? "run" : "result";
  }
  const outputsFile = join(scratch, "step-outputs.json");
  writeFileSync(outputsFile, JSON.stringify(outputs));
  const r = await runWorker<StateResult>(program, { mode: "state", outputsFile }, scratch);
  const stepOf = (res: StateResource) => {
    for (const name of [...Object.values(r.hosts), r.jumpHost]) {
      if (res.name.startsWith(`${name}-`)) return outputs[res.name.slice(name.length + 1)];
    }
    return undefined;
  };
  const hostsOut = (r.stackOutputs?.hosts ?? {}) as Record<string, unknown>;
  const per = (kind: HostKind | "sshJump") => {
    const name = kind === "sshJump" ? r.jumpHost : r.hosts[kind];
    const x = hostStateBytes(r.resources, name, "kilo-fleet:index:KiloHost", stepOf, hostsOut[name]);
    return { bytes: x.bytes, entryBytes: x.entryBytes, resources: x.resources.length, contributors: x.contributors };
  };
  samples.state = {
    toolBytes: r.toolBytes,
    hosts: { local: per("local"), ssh: per("ssh") },
    sshJump: per("sshJump"),
    stdoutSource: source,
    stackBytes: jsonBytes({ kiloConfig: r.stackOutputs?.kiloConfig }) - 2,
  };
  progress(
    `state per host: local ${samples.state.hosts.local.bytes} B, SSH ${samples.state.hosts.ssh.bytes} B; tool ${r.toolBytes} B`,
  );
  const { hosts, sshJump } = samples.state;
  for (const [kind, h] of [
    ["local", hosts.local],
    ["ssh", hosts.ssh],
    ["SSH behind a jump", sshJump],
  ] as const) {
    const top = h?.contributors.slice(0, 12) ?? [];
    progress(`state, ${kind} host, largest: ${top.map((c) => `${c.what} ${c.bytes} B`).join("; ")}`);
  }
}

async function measureChanges(o: Options, samples: BenchSamples, program: string, scratch: string): Promise<void> {
  const r = await runWorker<ChangesResult>(program, { mode: "changes" }, scratch);
  samples.changes = r;
  const steps = (sc: keyof ChangesResult["scenarios"]) =>
    `local ${Object.keys(r.scenarios[sc].steps.local).join("+") || "none"}, SSH ${Object.keys(r.scenarios[sc].steps.ssh).join("+") || "none"}`;
  progress(
    `re-run: unchanged ${steps("unchanged")}; rotation ${steps("rotation")}; kilo bump ${steps("kiloBump")}; upgrade ${steps("toolUpgrade")}`,
  );
  // A tool-only release on a fleet in one wave and in two (issue 21): what each smoke step runs, from the graph.
  const hosts = o.quick ? UPGRADE_FLEET.quickHosts : UPGRADE_FLEET.hosts;
  const upgrade = async (wave0: number) => {
    const u = await runWorker<UpgradeRuns>(program, { mode: "upgrade", hosts, wave0 }, scratch);
    progress(
      `tool-only upgrade, ${hosts} hosts, ${wave0} in wave 0: ${u.runs.map((x) => `wave ${x.wave} ${x.op} at ${x.level} × ${x.hosts}`).join(", ") || "nothing"}; ${u.idle} idle`,
    );
    return u;
  };
  samples.upgrade = { oneWave: await upgrade(hosts), twoWaves: await upgrade(UPGRADE_FLEET.canaries) };
}

/** The registry npm on the host would use (what the install step installs from). */
function npmRegistry(h: Host): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn("npm", ["config", "get", "registry"], { env: hostEnv(h), stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.on("close", () => resolve(out.trim() || "npm's default registry"));
    child.on("error", () => resolve("npm's default registry"));
  });
}

/** The install (cold, warm), smoke and disk measurements; the outputs of the last cold install and smoke check. */
async function measureHost(
  o: Options,
  samples: BenchSamples,
): Promise<Partial<Record<"install" | "smoke", StepOutput>>> {
  const key = `test-key-bench-${randomBytes(8).toString("hex")}`;
  const pooler = await startFakePooler({ keys: key });
  const homes: Host[] = [];
  const outputs: Partial<Record<"install" | "smoke", StepOutput>> = {};
  try {
    const b: Built = buildSettings(
      { poolerBaseUrl: pooler.url, kiloVersion: TEST_KILO_VERSION, smokeCheck: { timeoutSeconds: 300 } },
      { name: "bench-host" },
    );

    // 5 + 7: cold install on a fresh HOME (tool shipped), then the same step again there (already at the pin).
    // With install, the other install.method's cold install too, on its own fresh HOME, interleaved (it goes
    // second on even runs, first on odd ones).
    const method0 = b.spec.install.method;
    const other = otherMethod(method0);
    const coldByMethod: Record<InstallMethod, number[]> = { package: [], npm: [] };
    const otherCold = () => {
      if (!o.only.has("install")) return;
      const r = timeColdInstall(other, { kiloVersion: b.spec.kiloVersion });
      coldByMethod[other].push(r.seconds);
      progress(`install run ${coldByMethod[other].length}/${o.runs}: cold by ${other} ${r.seconds.toFixed(2)} s`);
    };
    const cold: number[] = [];
    const warm: number[] = [];
    let method = "";
    const disks: BenchSamples["disk"][] = [];
    for (let run = 0; run < o.runs; run++) {
      if (run % 2 === 1) otherCold();
      const { host: h } = freshHome();
      homes.push(h);
      const before = new Set(listTree(h.home));
      const c = timeInstall(b, h, "cold");
      cold.push(c.seconds);
      coldByMethod[method0].push(c.seconds);
      outputs.install = asOnHostDev(c.output, h.home);
      method = c.method;
      const added = listTree(h.home).filter((r) => !before.has(r));
      const usage = diskUsage(added.map((r) => join(h.home, r)));
      const pkg = findPlatformPackage(h.home);
      if (!pkg) throw new Error(`no kilo platform package under ${h.home}`);
      const platform = treeUsage(join(h.home, pkg));
      disks.push({
        hostBytes: usage.bytes,
        hostApparentBytes: usage.apparentBytes,
        platformPackage: pkg,
        platformBytes: platform.bytes,
        platformApparentBytes: platform.apparentBytes,
      });
      warm.push(timeInstall(b, h, "warm").seconds);
      progress(
        `install run ${run + 1}/${o.runs}: cold ${cold[run].toFixed(2)} s, warm ${warm[run].toFixed(3)} s; added ${(usage.bytes / 2 ** 20).toFixed(1)} MiB`,
      );
      // Keep the last HOME (a host as the deploy leaves it) for the smoke runs; the others go now.
      if (run < o.runs - 1) rmSync(h.root, { recursive: true, force: true });
      if (run % 2 === 0) otherCold();
    }
    samples.install = {
      registry: await npmRegistry(homes[homes.length - 1]),
      kiloVersion: b.spec.kiloVersion,
      method,
      cold,
      warm,
      ...(o.only.has("install") ? { coldByMethod } : {}),
    };
    if (o.only.has("disk")) {
      // Every run installs the same package: the figures should agree; the median run is reported.
      const sorted = [...disks].sort((x, y) => (x?.hostBytes ?? 0) - (y?.hostBytes ?? 0));
      samples.disk = sorted[(sorted.length - 1) >> 1];
    }

    if (o.only.has("smoke")) {
      // 6: the real config and env steps on the installed host, then smoke check and bare run, interleaved.
      const h = homes[homes.length - 1];
      configure(b, h, key);
      progress("smoke: warm-up (one run of each, not counted)");
      const variants = {
        smoke: async () => {
          const r = await timeSmoke(b, h);
          outputs.smoke = asOnHostDev(r.output, h.home);
          return r.seconds;
        },
        bare: () => timeBareRun(b, h),
        bareSmokeEnv: () => timeBareRun(b, h, { smokeEnv: true }),
      };
      const names = Object.keys(variants) as (keyof typeof variants)[];
      for (const name of names) await variants[name]();
      const times = { smoke: [] as number[], bare: [] as number[], bareSmokeEnv: [] as number[] };
      for (let run = 0; run < o.runs; run++) {
        // Interleaved, and each run starts with a different one.
        for (let j = 0; j < names.length; j++) {
          const name = names[(run + j) % names.length];
          times[name].push(await variants[name]());
        }
        progress(
          `smoke run ${run + 1}/${o.runs}: smoke ${times.smoke[run].toFixed(2)} s, bare ${times.bare[run].toFixed(2)} s, bare with the smoke env ${times.bareSmokeEnv[run].toFixed(2)} s`,
        );
      }
      samples.smoke = times;
    }
  } finally {
    await pooler.stop();
    for (const h of homes) rmSync(h.root, { recursive: true, force: true });
  }
  return outputs;
}

function machine(): BenchSamples["machine"] {
  const c = cpus();
  return {
    cpus: c.length,
    cpuModel: (c[0]?.model ?? "unknown CPU").replace(/\s+/g, " ").trim(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    os: `${type()} ${release()}`,
    loadAverage: [loadavg()[0], loadavg()[0]],
  };
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const version = programVersion();
  const samples: BenchSamples = {
    runs: o.runs,
    ...(o.quick ? { quick: true } : {}),
    machine: machine(),
    ...(version ? { program: version } : {}),
  };
  const scratch = mkdtempSync(join(tmpdir(), "kilo-fleet-bench-"));
  const started = performance.now();
  try {
    const needsProgram = (["eval", "unchanged", "state", "changes", "package"] as const).some((p) => o.only.has(p));
    const program = needsProgram ? snapshotProgram(scratch) : "";
    if (o.only.has("eval") || o.only.has("unchanged")) await measureEvaluation(o, samples, program, scratch);
    if (!o.only.has("eval")) delete samples.evaluation;
    let measured: Partial<Record<"install" | "smoke", StepOutput>> = {};
    if (o.only.has("install") || o.only.has("smoke") || o.only.has("disk")) measured = await measureHost(o, samples);
    if (!o.only.has("install")) delete samples.install;
    if (o.only.has("state")) await measureState(samples, program, scratch, measured);
    if (o.only.has("changes")) await measureChanges(o, samples, program, scratch);
    if (o.only.has("pool")) {
      // One smoke check at each level against a fresh stand-in pooler: requests and bytes sent to the pool.
      const kiloRun = await measureSmokeCost("kilo-run");
      const pool = await measureSmokeCost("pool");
      samples.pool = { "kilo-run": kiloRun, pool };
      progress(
        `smoke cost: kilo-run ${kiloRun.requests} requests ${kiloRun.requestBytes} B, pool ${pool.requests} requests ${pool.requestBytes} B`,
      );
    }
    if (o.only.has("doctor")) {
      // doctor on freshly deployed local HOMEs, one at a time and with the default bound.
      const hosts = o.quick ? 4 : 50;
      samples.doctor = (await measureDoctor({ hosts, bounds: [1, 8] })).map((d) => ({ ...d }));
      for (const d of samples.doctor) progress(`doctor, ${d.hosts} hosts, --parallel ${d.parallel}: ${d.totalMs} ms`);
    }
    if (o.only.has("package")) {
      samples.package = measurePackage(o.runs, join(scratch, "package"), program);
      progress(`package: tarball ${samples.package.tarballBytes} B`);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  if (samples.machine.loadAverage) samples.machine.loadAverage[1] = loadavg()[0];
  progress(`done in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  process.stdout.write(o.json ? `${JSON.stringify(toJson(samples), null, 2)}\n` : formatTable(samples));
}

main().catch((err) => {
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
