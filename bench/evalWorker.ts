/**
 * One measurement of the program under Pulumi mocks, in a fresh process (spawned by bench.ts), through the
 * tests' own path (harness/pulumiMocks.ts `evaluate`/`evaluateIndex` + `stackConfig`). Writes a JSON result
 * to the file named by its first argument; its second is the request (JSON):
 *
 * - `{"mode":"program","hosts":N,"twice"?:true}`: kilo-fleet's index.ts for a fleet of N hosts (bench/
 *   fleetShape.ts). `{ seconds, resources, digests: {<urn>: <sha256 of the inputs>}, childrenPerHost,
 *   inProcess? }`. `seconds` is the wall time of `evaluateIndex` (program import included, process start-up
 *   not). With `twice` it evaluates the same config again in this process (deployer/fleet.ts, as index.ts
 *   calls it) and counts, with `diffEvaluations`, the resources added, removed or with differing inputs.
 * - `{"mode":"floor","hosts":N,"children":{"local":a,"ssh":b}}`: the SDK's own floor for the same fleet: per
 *   host one component with as many minimal `local.Command` children (`create: "true"`, each depending on
 *   the one before) as the program gives that kind of host, under the same mocks and config, timed the same
 *   way (the SDK modules imported inside the timed part, as index.ts imports them). `{ seconds, resources }`.
 * - `{"mode":"state","outputsFile":F}`: a local and an SSH host (ed25519 private key, pinned host key),
 *   each Command's mocked stdout/stderr taken from F (`{<step>: {stdout, stderr}}`); every recorded resource
 *   and the stack's outputs, for bench/stateBytes.ts. `{ resources, stackOutputs, hosts, toolBytes }`.
 * - `{"mode":"changes"}`: the same two hosts evaluated as a base, then unchanged, with the API key rotated,
 *   with kilo bumped, and with a new kilo-fleet (a second tool artifact: the real text plus a trailing
 *   comment); for each, which steps' inputs differ from the base (`diffEvaluations`), and which steps'
 *   inputs name the base's tool. `{ scenarios, namingTool }`.
 * - `{"mode":"upgrade","hosts":N,"wave0":k}`: a fleet of N hosts, the first k in wave 0 and the rest in wave 1,
 *   evaluated as deployed and after a tool-only release; what each host's smoke step runs on that `pulumi up`
 *   (bench/upgradeRuns.ts). `{ hosts, wave0, runs, idle }`.
 *
 * Usage: node --import tsx bench/evalWorker.ts <out.json> '<request json>'
 */
import "./viShim";
import { writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { Resource } from "@pulumi/pulumi";
import { ROTATED_API_KEY } from "../harness/fakeSecrets";
import type { Evaluation, HostEntry, RecordedResource } from "../harness/pulumiMocks";
import { evaluateFleet, type Mocks } from "./evaluateFleet";
import {
  digestInputs,
  fleetHosts,
  type HostKind,
  JUMP_STATE_HOST,
  KILO_BUMP_VERSION,
  type ScenarioName,
  STATE_HOSTS,
} from "./fleetShape";
import { ed25519OpenSshKey } from "./sshKey";
import type { StepOutput } from "./stateBytes";
import { measureUpgradeRuns, type UpgradeRuns, withLaterTool } from "./upgradeRuns";

export type WorkerRequest =
  | { mode: "program"; hosts: number; twice?: boolean }
  | { mode: "floor"; hosts: number; children: Record<HostKind, number> }
  | { mode: "state"; outputsFile: string }
  | { mode: "changes" }
  | { mode: "upgrade"; hosts: number; wave0: number };

export interface ProgramResult {
  seconds: number;
  resources: number;
  digests: Record<string, string>;
  /** Children of each kind of host's component (one number per kind present). */
  childrenPerHost: Partial<Record<HostKind, number>>;
  inProcess?: { differing: number; compared: number };
}

export interface FloorResult {
  seconds: number;
  resources: number;
}

export interface StateResult {
  resources: RecordedResource[];
  stackOutputs: Record<string, unknown> | undefined;
  hosts: Record<HostKind, string>;
  /** The SSH host behind a jump host (ssh.proxy). */
  jumpHost: string;
  toolBytes: number;
}

/** Steps (by role: `tool`, `tool-copy`, `install`, …) whose inputs differ, with the differing input keys. */
export type StepChanges = Record<string, string[]>;

export interface ChangesResult {
  scenarios: Record<ScenarioName, { steps: Record<HostKind, StepChanges>; added: string[]; removed: string[] }>;
  /** The steps whose inputs name the base's tool file, per kind of host. */
  namingTool: Record<HostKind, string[]>;
}

const KILO_HOST_TYPE = "kilo-fleet:index:KiloHost";

/** Children of each component, keyed by the kind of its host. */
function childrenPerHost(resources: RecordedResource[], hosts: HostEntry[]): Partial<Record<HostKind, number>> {
  const out: Partial<Record<HostKind, number>> = {};
  for (const c of resources.filter((r) => r.type === KILO_HOST_TYPE)) {
    const entry = hosts.find((h) => h.name === c.name);
    if (!entry) continue;
    const kind: HostKind = entry.ssh ? "ssh" : "local";
    const n = resources.filter((r) => r.parent === c.urn).length;
    if (out[kind] !== undefined && out[kind] !== n)
      throw new Error(`${kind} hosts have ${out[kind]} and ${n} children`);
    out[kind] = n;
  }
  return out;
}

async function program(mocks: Mocks, hosts: number, twice: boolean): Promise<ProgramResult> {
  const fleet = fleetHosts(hosts);
  const stack = mocks.stackConfig({ hosts: fleet });
  const started = performance.now();
  const e = await mocks.evaluateIndex(stack);
  const seconds = (performance.now() - started) / 1000;
  if (e.error) throw e.error;
  const resources = mocks.programResources(e);
  const digests: Record<string, string> = {};
  for (const r of resources) digests[r.urn] = digestInputs(mocks.unwrapSecrets(r.inputs));
  let inProcess: ProgramResult["inProcess"];
  if (twice) {
    const d = mocks.diffEvaluations(e, await evaluateFleet(mocks, stack));
    inProcess = {
      differing: d.added.length + d.removed.length + Object.keys(d.changed).length,
      compared: resources.length,
    };
  }
  return {
    seconds,
    resources: resources.length,
    digests,
    childrenPerHost: childrenPerHost(resources, fleet),
    inProcess,
  };
}

async function floor(mocks: Mocks, hosts: number, children: Record<HostKind, number>): Promise<FloorResult> {
  const fleet = fleetHosts(hosts);
  const stack = mocks.stackConfig({ hosts: fleet });
  const started = performance.now();
  const e = await mocks.evaluate(
    async () => {
      const pulumi = await import("@pulumi/pulumi");
      const command = await import("@pulumi/command");
      class FloorHost extends pulumi.ComponentResource {
        constructor(name: string, n: number) {
          super("bench:index:FloorHost", name, {}, {});
          let before: Resource | undefined;
          for (let i = 0; i < n; i++) {
            before = new command.local.Command(
              `${name}-${i}`,
              { create: "true" },
              { parent: this, ...(before ? { dependsOn: [before] } : {}) },
            );
          }
          this.registerOutputs({});
        }
      }
      for (const h of fleet) new FloorHost(h.name, children[h.ssh ? "ssh" : "local"]);
    },
    { config: stack.config, secretKeys: stack.secretKeys },
  );
  const seconds = (performance.now() - started) / 1000;
  if (e.error) throw e.error;
  return { seconds, resources: mocks.programResources(e).length };
}

/** The two hosts of the state and changes figures, with a real-sized ed25519 key. */
function stateStack(mocks: Mocks, overrides: Record<string, unknown> = {}) {
  return mocks.stackConfig({ hosts: STATE_HOSTS, sshPrivateKey: SSH_KEY, ...overrides });
}
const SSH_KEY = ed25519OpenSshKey();

/** The step of a resource name (`alice-laptop-tool-copy` → `tool-copy`), and its host's kind. */
function stepOf(name: string): { kind: HostKind; step: string } | undefined {
  for (const h of [...STATE_HOSTS, JUMP_STATE_HOST]) {
    if (name.startsWith(`${h.name}-`)) return { kind: h.ssh ? "ssh" : "local", step: name.slice(h.name.length + 1) };
  }
  return undefined;
}

async function state(mocks: Mocks, outputsFile: string): Promise<StateResult> {
  const { readFileSync } = await import("node:fs");
  const { hostToolArtifact } = await import("../deployer/hostTool");
  const outputs = JSON.parse(readFileSync(outputsFile, "utf8")) as Record<string, StepOutput>;
  const e = await evaluateFleet(mocks, stateStack(mocks, { hosts: [...STATE_HOSTS, JUMP_STATE_HOST] }), (args) => {
    const s = stepOf(args.name);
    if ((args.type === "command:local:Command" || args.type === "command:remote:Command") && s) {
      const out = outputs[s.step];
      if (!out) throw new Error(`no stdout for the ${s.step} step`);
      return { id: `${args.name}-id`, state: { ...args.inputs, stdout: out.stdout, stderr: out.stderr } };
    }
    return mocks.defaultMockState(args);
  });
  const hosts = Object.fromEntries(STATE_HOSTS.map((h) => [h.ssh ? "ssh" : "local", h.name])) as Record<
    HostKind,
    string
  >;
  return {
    resources: mocks.programResources(e),
    stackOutputs: e.stackOutputs,
    hosts,
    jumpHost: JUMP_STATE_HOST.name,
    toolBytes: Buffer.byteLength(hostToolArtifact().text, "utf8"),
  };
}

/** Runs `fn` with KILO_FLEET_LOCK_FILE naming a copy of the shipped lock that also has KILO_BUMP_VERSION. */
async function withBumpedLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const { createHash } = await import("node:crypto");
  const { readFileSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { shippedLockPath } = await import("../deployer/kiloLock");
  const lock = JSON.parse(readFileSync(shippedLockPath(), "utf8")) as {
    kilo: Record<string, Record<string, { tarball: string; integrity: string }>>;
  };
  const [from, platforms] = Object.entries(lock.kilo)[0] ?? [];
  if (!from || !platforms) throw new Error("the shipped lock has no kilo version");
  lock.kilo[KILO_BUMP_VERSION] = Object.fromEntries(
    Object.entries(platforms).map(([platform, e]) => [
      platform,
      {
        ...e,
        tarball: e.tarball.split(from).join(KILO_BUMP_VERSION),
        integrity: `sha512-${createHash("sha512").update(`bench ${platform} ${KILO_BUMP_VERSION}`).digest("base64")}`,
      },
    ]),
  );
  const file = join(dir, "kilo-fleet.bumped.lock.json");
  writeFileSync(file, JSON.stringify(lock, null, 2));
  const before = process.env.KILO_FLEET_LOCK_FILE;
  process.env.KILO_FLEET_LOCK_FILE = file;
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env.KILO_FLEET_LOCK_FILE;
    else process.env.KILO_FLEET_LOCK_FILE = before;
  }
}

async function changes(mocks: Mocks, lockDir: string): Promise<ChangesResult> {
  const { hostToolArtifact } = await import("../deployer/hostTool");
  const base = await evaluateFleet(mocks, stateStack(mocks));
  const baseTool = hostToolArtifact();
  const byStep = (e: Evaluation, pick: (r: RecordedResource) => boolean) => {
    const out: Record<HostKind, string[]> = { local: [], ssh: [] };
    for (const r of mocks.programResources(e)) {
      const s = stepOf(r.name);
      if (s && pick(r)) out[s.kind].push(s.step);
    }
    return out;
  };
  const namingTool = byStep(
    base,
    (r) => mocks.findString(r.inputs, baseTool.id).length > 0 && r.type !== KILO_HOST_TYPE,
  );
  const diff = (after: Evaluation) => {
    const d = mocks.diffEvaluations(base, after);
    const steps: Record<HostKind, StepChanges> = { local: {}, ssh: {} };
    for (const [name, keys] of Object.entries(d.changed)) {
      const s = stepOf(name);
      if (s) steps[s.kind][s.step] = keys;
      else steps.local[name] = keys;
    }
    return { steps, added: d.added, removed: d.removed };
  };
  const unchanged = diff(await evaluateFleet(mocks, stateStack(mocks)));
  const rotation = diff(await evaluateFleet(mocks, stateStack(mocks, { codexPoolerApiKey: ROTATED_API_KEY })));
  // A kilo bump as a pull request makes it: the lock gains the new version (`npm run kilo-fleet -- lock`),
  // then the pin moves. The lock entry is made up (the bench never downloads it).
  const kiloBump = await withBumpedLock(lockDir, () =>
    evaluateFleet(mocks, stateStack(mocks, { kiloVersion: KILO_BUMP_VERSION })),
  ).then(diff);
  const upgrade = diff(await withLaterTool(() => evaluateFleet(mocks, stateStack(mocks))));
  return { scenarios: { unchanged, rotation, kiloBump, toolUpgrade: upgrade }, namingTool };
}

async function main(): Promise<void> {
  const [out, requestText] = process.argv.slice(2);
  if (!out || !requestText) throw new Error("usage: evalWorker.ts <out.json> '<request json>'");
  const request = JSON.parse(requestText) as WorkerRequest;
  // Imported after the vitest stand-in is in place.
  const mocks = await import("../harness/pulumiMocks");
  let result: ProgramResult | FloorResult | StateResult | ChangesResult | UpgradeRuns;
  switch (request.mode) {
    case "program":
      result = await program(mocks, request.hosts, request.twice === true);
      break;
    case "floor":
      result = await floor(mocks, request.hosts, request.children);
      break;
    case "state":
      result = await state(mocks, request.outputsFile);
      break;
    case "changes":
      result = await changes(mocks, dirname(out));
      break;
    case "upgrade":
      result = await measureUpgradeRuns(mocks, request.hosts, request.wave0);
      break;
    default:
      throw new Error(`unknown mode in ${requestText}`);
  }
  writeFileSync(out, JSON.stringify(result));
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`evalWorker: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
