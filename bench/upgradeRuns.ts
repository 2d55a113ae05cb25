/**
 * What a tool-only kilo-fleet release makes each host's smoke check run, counted from the program's own
 * graph (issue 21): a fleet evaluated as deployed, then again with a later host tool; for each host's smoke
 * step, what @pulumi/command 1.2.1 does on that `pulumi up` (harness/commandDiff.ts) and the level of the
 * command it runs (the step's JSON argument). The smoke step is the only one that reaches the pool.
 */
import { decodeStepArg, type SmokeArgs } from "../common/stepArgs";
import { commandOp, commandScript } from "../harness/commandDiff";
import type { Evaluation } from "../harness/pulumiMocks";
import { evaluateFleet, type Mocks } from "./evaluateFleet";
import { fleetHosts } from "./fleetShape";

export type SmokeLevel = SmokeArgs["level"];

/** The smoke steps of one `pulumi up`, by what they run. */
export interface SmokeRuns {
  /** `hosts` hosts of `wave` whose smoke step runs its `op` command (create: replaced; update: in place) at `level`. */
  runs: { wave: number; op: "create" | "update"; level: SmokeLevel; hosts: number }[];
  /** Hosts whose smoke step runs nothing. */
  idle: number;
}

/** A tool-only release on a fleet of `hosts` (bench/fleetShape.ts), `wave0` of them in wave 0, the rest in wave 1. */
export interface UpgradeRuns extends SmokeRuns {
  hosts: number;
  wave0: number;
}

/** The smoke checks at each level (kilo runs: `kilo-run`; pool checks: `pool`) of some runs. */
export function levelCounts(r: SmokeRuns): Record<SmokeLevel, number> {
  const out: Record<SmokeLevel, number> = { "kilo-run": 0, pool: 0 };
  for (const x of r.runs) out[x.level] += x.hosts;
  return out;
}

/**
 * The decoded argument of a tool step's command line, `/bin/sh <tool> <sub> '<json>'` (deployer/hostSteps.ts
 * `toolCommand`); throws when `command` is not one for `sub`.
 */
export function toolCommandArg(command: string, sub: string): unknown {
  const head = "/bin/sh ";
  const afterTool = command.startsWith(head) ? command.slice(command.indexOf(" ", head.length) + 1) : "";
  const prefix = `${sub} '`;
  if (!afterTool.startsWith(prefix) || !afterTool.endsWith("'") || afterTool.length < prefix.length + 1) {
    throw new Error(`not a ${sub} command of the host tool: ${command.slice(0, 120)}`);
  }
  return decodeStepArg(afterTool.slice(prefix.length, -1));
}

/** The level a smoke step's command runs the check at. */
export function smokeLevel(command: string): SmokeLevel {
  const level = (toolCommandArg(command, "smoke") as Partial<SmokeArgs>).level;
  if (level !== "kilo-run" && level !== "pool") throw new Error(`a smoke command without a level: ${command}`);
  return level;
}

/** Each host's smoke step's inputs (secrets unwrapped), by host name. */
export function smokeInputs(
  mocks: Mocks,
  e: Evaluation,
  hosts: readonly string[],
): Map<string, Record<string, unknown>> {
  const byName = new Map(mocks.programResources(e).map((r) => [r.name, r]));
  return new Map(
    hosts.map((h) => {
      const r = byName.get(`${h}-smoke`);
      if (!r) throw new Error(`no smoke step for host ${h}`);
      return [h, mocks.unwrapSecrets(r.inputs) as Record<string, unknown>];
    }),
  );
}

/** What each host's smoke step runs on the `pulumi up` from `before` to `after` (inputs by host). */
export function smokeRuns(
  before: Map<string, Record<string, unknown>>,
  after: Map<string, Record<string, unknown>>,
  waveOf: (host: string) => number,
): SmokeRuns {
  const counts = new Map<string, SmokeRuns["runs"][number]>();
  let idle = 0;
  for (const [host, now] of after) {
    const old = before.get(host);
    if (!old) throw new Error(`host ${host}'s smoke step is new`);
    const change = commandOp(old, now);
    const op: "create" | "update" | undefined =
      change === "replace" ? "create" : change === "update" ? "update" : undefined;
    const script = op && commandScript(op, now);
    if (!op || script === undefined) {
      idle++;
      continue;
    }
    const run = { wave: waveOf(host), op, level: smokeLevel(script) };
    const key = JSON.stringify(run);
    const c = counts.get(key) ?? { ...run, hosts: 0 };
    c.hosts++;
    counts.set(key, c);
  }
  const runs = [...counts.values()].sort(
    (a, b) => a.wave - b.wave || a.op.localeCompare(b.op) || a.level.localeCompare(b.level),
  );
  return { runs, idle };
}

/** Runs `fn` with a later kilo-fleet: the host tool's text plus a trailing comment (a second tool artifact). */
export async function withLaterTool<T>(fn: () => Promise<T>): Promise<T> {
  const { hostToolArtifact, useHostToolArtifact, writeHostToolArtifact } = await import("../deployer/hostTool");
  const base = hostToolArtifact();
  useHostToolArtifact(writeHostToolArtifact(`${base.text}// a later kilo-fleet (bench)\n`));
  try {
    if (hostToolArtifact().id === base.id) throw new Error("the later tool has the same id");
    return await fn();
  } finally {
    useHostToolArtifact(base);
  }
}

/**
 * A tool-only release on `hosts` hosts with the first `wave0` in wave 0 and the rest in wave 1 (all of
 * them: one wave): the fleet evaluated as deployed and with a later tool, every smoke step compared.
 */
export async function measureUpgradeRuns(mocks: Mocks, hosts: number, wave0: number): Promise<UpgradeRuns> {
  const fleet = fleetHosts(hosts).map((h, i) => (i < wave0 ? h : { ...h, wave: 1 }));
  const names = fleet.map((h) => h.name);
  const waves = new Map(fleet.map((h) => [h.name, h.wave ?? 0]));
  const stack = mocks.stackConfig({ hosts: fleet });
  const before = smokeInputs(mocks, await evaluateFleet(mocks, stack), names);
  const after = await withLaterTool(async () => smokeInputs(mocks, await evaluateFleet(mocks, stack), names));
  return { hosts, wave0, ...smokeRuns(before, after, (h) => waves.get(h) ?? 0) };
}
