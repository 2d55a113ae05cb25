/**
 * `npm run bench`: the figures a platform team asks for before trusting kilo-fleet, measured side by
 * side in one run and printed as a Markdown table (min/median/max over --runs runs for every time):
 *
 * 1. program evaluation under Pulumi mocks for 1, 10, 100 and 1000 hosts (each in a fresh process,
 *    through the tests' evaluateIndex), per-host cost, least-squares slope, linearity;
 * 2. an unchanged stack evaluated again: resources whose inputs differ (must be 0);
 * 3. the install step cold (fresh HOME, real registry) vs. on a host already at the pin;
 * 4. the smoke check vs. the bare seed command by hand, against the stand-in pooler, interleaved;
 * 5. disk the install added under HOME vs. the platform package alone.
 *
 * Options: --json (one JSON object on stdout, nothing else), --runs N (default 3, at least 3 for the
 * figures the README quotes), --only eval,unchanged,install,smoke,disk (a subset, for trying things;
 * install is measured whenever smoke or disk is, since they use the installed host).
 * Progress goes to stderr. Benchmarks print figures; nothing here asserts a timing.
 */
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { cpus, loadavg, release, tmpdir, totalmem, type } from "node:os";
import { dirname, join } from "node:path";
import { parseSettings, resolveHost } from "../deployer/settings";
import { startFakePooler } from "../harness/fakePooler";
import { TEST_KILO_VERSION } from "../harness/kilo";
import { FLEET_SIZES, IN_PROCESS_DIFF_HOSTS, type Options, parseArgs } from "./args";
import { countDiffering } from "./fleetShape";
import { type BenchSamples, formatTable, toJson } from "./format";
import {
  configure,
  diskUsage,
  findPlatformPackage,
  freshHome,
  type Host,
  hostEnv,
  listTree,
  timeBareRun,
  timeInstall,
  timeSmoke,
  treeUsage,
} from "./hostRuns";

const progress = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);

interface WorkerResult {
  seconds: number;
  resources: number;
  digests: Record<string, string>;
  inProcess?: { differing: number; compared: number };
}

const REPO = dirname(__dirname);
/** What the evaluation workers load: the program, its components, the test harness and the worker. */
const PROGRAM_FILES = ["index.ts", "deployer", "host", "common", "harness", "bench", "package.json", "tsconfig.json"];

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
    const dirty = git("status", "--porcelain", "--", "index.ts", "deployer", "host", "common");
    return { commit, uncommittedFiles: dirty === "" ? 0 : dirty.split("\n").length };
  } catch {
    return undefined;
  }
}

/** One evaluation in a fresh node process (bench/evalWorker.ts of the snapshot `program`). */
function evaluateInWorker(program: string, hosts: number, twice: boolean, scratch: string): Promise<WorkerResult> {
  const out = join(scratch, `eval-${hosts}-${randomBytes(4).toString("hex")}.json`);
  const worker = join(program, "bench", "evalWorker.ts");
  const args = ["--max-old-space-size=8192", "--import", "tsx", worker, String(hosts), out];
  if (twice) args.push("--twice");
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: program, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) return reject(new Error(`evaluation of ${hosts} hosts failed (exit ${code}): ${stderr.trim()}`));
      const r = JSON.parse(readFileSync(out, "utf8")) as WorkerResult;
      rmSync(out, { force: true });
      resolve(r);
    });
  });
}

async function measureEvaluation(o: Options, samples: BenchSamples, scratch: string): Promise<void> {
  const program = snapshotProgram(scratch);
  const byHosts = new Map(
    FLEET_SIZES.map((h) => [h, { seconds: [] as number[], digests: [] as WorkerResult["digests"][], resources: 0 }]),
  );
  let inProcess: WorkerResult["inProcess"];
  // Round-robin over the sizes, so a slow spell of the machine is spread over all of them.
  for (let run = 0; run < o.runs; run++) {
    for (const hosts of FLEET_SIZES) {
      const twice = o.only.has("unchanged") && run === 0 && hosts === IN_PROCESS_DIFF_HOSTS;
      const r = await evaluateInWorker(program, hosts, twice, scratch);
      const slot = byHosts.get(hosts) as { seconds: number[]; digests: WorkerResult["digests"][]; resources: number };
      slot.seconds.push(r.seconds);
      slot.resources = r.resources;
      if (o.only.has("unchanged")) slot.digests.push(r.digests);
      if (r.inProcess) inProcess = r.inProcess;
      progress(
        `evaluation ${hosts} host(s), run ${run + 1}/${o.runs}: ${r.seconds.toFixed(3)} s, ${r.resources} resources`,
      );
    }
  }
  samples.evaluation = FLEET_SIZES.map((hosts) => {
    const s = byHosts.get(hosts) as { seconds: number[]; resources: number };
    return { hosts, resources: s.resources, seconds: s.seconds };
  });
  if (o.only.has("unchanged")) {
    let pairs = 0;
    let compared = 0;
    let differing = 0;
    for (const { digests } of byHosts.values()) {
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
      inProcessHosts: IN_PROCESS_DIFF_HOSTS,
      inProcessDiffering: inProcess?.differing ?? Number.NaN,
    };
    progress(`unchanged stack: ${differing} differing over ${pairs} pairs; in one process: ${inProcess?.differing}`);
  }
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

async function measureHost(o: Options, samples: BenchSamples): Promise<void> {
  const key = `test-key-bench-${randomBytes(8).toString("hex")}`;
  const pooler = await startFakePooler({ keys: key });
  const homes: Host[] = [];
  try {
    const parsed = parseSettings({
      "kilo-fleet:poolerBaseUrl": pooler.url,
      "kilo-fleet:kiloVersion": TEST_KILO_VERSION,
      "kilo-fleet:smokeCheck": { timeoutSeconds: 300 },
      "kilo-fleet:hosts": [{ name: "bench-host", local: true }],
    });
    if (!parsed.ok) throw new Error(parsed.errors.map((e) => `${e.key}: ${e.message}`).join("\n"));
    const settings = parsed.settings;
    const host = resolveHost(settings, settings.hosts[0]);

    // 3 + 5: cold install on a fresh HOME, then the same script again on that HOME (already at the pin).
    const cold: number[] = [];
    const warm: number[] = [];
    const disks: BenchSamples["disk"][] = [];
    for (let run = 0; run < o.runs; run++) {
      const h = freshHome();
      homes.push(h);
      const before = new Set(listTree(h.home));
      cold.push(timeInstall(settings, host, h, "cold"));
      const added = listTree(h.home).filter((r) => !before.has(r));
      const usage = diskUsage(added.map((r) => join(h.home, r)));
      const pkg = findPlatformPackage(h.home);
      if (!pkg) throw new Error(`no @kilocode/cli-<platform> package under ${h.home}`);
      const platform = treeUsage(join(h.home, pkg));
      disks.push({
        hostBytes: usage.bytes,
        hostApparentBytes: usage.apparentBytes,
        platformPackage: pkg,
        platformBytes: platform.bytes,
        platformApparentBytes: platform.apparentBytes,
      });
      warm.push(timeInstall(settings, host, h, "warm"));
      progress(
        `install run ${run + 1}/${o.runs}: cold ${cold[run].toFixed(2)} s, warm ${warm[run].toFixed(3)} s; added ${(usage.bytes / 2 ** 20).toFixed(1)} MiB`,
      );
      // Keep the last HOME (a host as the deploy leaves it) for the smoke runs; the others go now.
      if (run < o.runs - 1) rmSync(h.root, { recursive: true, force: true });
    }
    samples.install = {
      registry: await npmRegistry(homes[homes.length - 1]),
      kiloVersion: host.kiloVersion,
      cold,
      warm,
    };
    if (o.only.has("disk")) {
      // Every run installs the same package: the figures should agree; the median run is reported.
      const sorted = [...disks].sort((a, b) => (a?.hostBytes ?? 0) - (b?.hostBytes ?? 0));
      samples.disk = sorted[(sorted.length - 1) >> 1];
    }

    if (o.only.has("smoke")) {
      // 4: the real config and env steps on the installed host, then smoke check and bare run, interleaved.
      const h = homes[homes.length - 1];
      configure(settings, host, h, key);
      progress("smoke: warm-up (one run of each, not counted)");
      const variants = {
        smoke: () => timeSmoke(settings, host, h),
        bare: () => timeBareRun(settings, host, h),
        bareSmokeEnv: () => timeBareRun(settings, host, h, { smokeEnv: true }),
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
  const samples: BenchSamples = { runs: o.runs, machine: machine(), ...(version ? { program: version } : {}) };
  const scratch = mkdtempSync(join(tmpdir(), "kilo-fleet-bench-"));
  const started = performance.now();
  try {
    if (o.only.has("eval") || o.only.has("unchanged")) await measureEvaluation(o, samples, scratch);
    if (!o.only.has("eval")) delete samples.evaluation;
    if (o.only.has("install") || o.only.has("smoke") || o.only.has("disk")) await measureHost(o, samples);
    if (!o.only.has("install")) delete samples.install;
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
