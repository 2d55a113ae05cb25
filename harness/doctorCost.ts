/**
 * `kilo-fleet doctor` on many local HOMEs, measured (the bench wires `measureDoctor`), and what the doctor
 * tests share: a HOME deployed by the real steps (the shipped tool, install, config, env), with a stand-in
 * kilo package (its package.json and a `bin/kilo` that prints the version; the check never runs it) in
 * the npm layout or kilo-fleet's package layout, so no registry is needed.
 */
import { chmodSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { checkArgsFor, checkHosts, type DoctorTarget, type HostReport } from "../cli/doctor";
import { hostToolArtifact } from "../deployer/hostTool";
import { type Built, buildSettings, deployScripts, makeHome, runLocal, scriptEnv } from "./hostHome";
import { TEST_KILO_VERSION } from "./kilo";

function writeFakeKilo(dir: string, name: string, version: string): void {
  mkdirSync(join(dir, "bin"), { recursive: true });
  writeFileSync(join(dir, "package.json"), `${JSON.stringify({ name, version }, null, 2)}\n`);
  writeFileSync(join(dir, "bin", "kilo"), `#!/bin/sh\necho ${version}\n`);
  chmodSync(join(dir, "bin", "kilo"), 0o755);
}

/** A stand-in kilo as npm lays it out under ~/.local (what the install step finds and keeps). */
export function fakeKiloNpm(home: string, version = TEST_KILO_VERSION): string {
  const pkg = join(home, ".local", "lib", "node_modules", "@kilocode", "cli");
  writeFakeKilo(pkg, "@kilocode/cli", version);
  mkdirSync(join(home, ".local", "bin"), { recursive: true });
  symlinkSync("../lib/node_modules/@kilocode/cli/bin/kilo", join(home, ".local", "bin", "kilo"));
  return join(pkg, "package.json");
}

/** A stand-in kilo as host/kilo-package.sh lays it out (its platform package, ~/.local/bin/kilo linked to it). */
export function fakeKiloPackage(home: string, version = TEST_KILO_VERSION, platform = "linux-x64"): string {
  const dir = join(home, ".local", "share", "kilo-fleet", "kilo", version, platform);
  writeFakeKilo(dir, `@kilocode/cli-${platform}`, version);
  mkdirSync(join(home, ".local", "bin"), { recursive: true });
  symlinkSync(join(dir, "bin", "kilo"), join(home, ".local", "bin", "kilo"));
  return join(dir, "package.json");
}

export interface DeployedHome {
  root: string;
  home: string;
  tmp: string;
  env: NodeJS.ProcessEnv;
  /** The steps' commands (to repair a drift by re-running them). */
  steps: ReturnType<typeof deployScripts>;
}

/**
 * A HOME as a deploy leaves it: makeHome's user files and the shipped tool, a stand-in kilo (`kilo`:
 * npm layout by default), then the install, config and env (with `key`) steps. `built` should have
 * `install.method` npm (its install step then finds the stand-in at the pin and keeps it); with the
 * package layout the install step is not run (it would fetch the real package). `env` extra variables
 * (e.g. KILO_FLEET_TEST_SYSTEM_DIR) go into every run.
 */
export function deployHome(
  built: Built,
  key: string,
  opts: { kilo?: "npm" | "package"; env?: Record<string, string | undefined> } = {},
): DeployedHome {
  const { root, home, tmp } = makeHome();
  const env = scriptEnv(home, tmp, opts.env ?? {});
  if ((opts.kilo ?? "npm") === "npm") fakeKiloNpm(home, built.spec.kiloVersion);
  else fakeKiloPackage(home, built.spec.kiloVersion);
  const steps = deployScripts(built);
  for (const [name, stdin] of [
    ["install", ""],
    ["config", ""],
    ["env", `${key}\n`],
  ] as const) {
    if (name === "install" && (opts.kilo === "package" || built.spec.install.method !== "npm")) continue;
    const r = runLocal(steps[name].create, env, stdin);
    if (r.code !== 0) throw new Error(`the ${name} step failed: ${r.stderr}`);
  }
  return { root, home, tmp, env, steps };
}

/** The doctor's target for a deployed local HOME. */
export function localTarget(built: Built, name: string, d: DeployedHome, compareKey = false): DoctorTarget {
  return {
    name,
    kind: "local",
    env: d.env,
    args: { ...checkArgsFor(built.spec, compareKey), host: name },
  };
}

export interface DoctorCost {
  hosts: number;
  parallel: number;
  /** Wall time of the whole doctor run. */
  totalMs: number;
  /** totalMs / hosts. */
  wallPerHostMs: number;
  /** The mean of each host's own check time (the tool's start, the reads, the result). */
  meanHostMs: number;
  maxHostMs: number;
  /** Every host matched (a doctor that reports drift on freshly deployed HOMEs is wrong). */
  allOk: boolean;
}

/**
 * Doctor on `hosts` freshly deployed local HOMEs (deploying them is not timed), with the bound
 * `parallel`; each `parallel` value in `bounds` is measured on the same HOMEs, in order.
 */
export async function measureDoctor(opts: { hosts: number; bounds?: number[] }): Promise<DoctorCost[]> {
  const built = buildSettings({ kiloVersion: TEST_KILO_VERSION, install: { method: "npm" } });
  const tool = hostToolArtifact();
  const homes: DeployedHome[] = [];
  try {
    for (let i = 0; i < opts.hosts; i++) homes.push(deployHome(built, `test-key-doctor-${i}`));
    const targets = homes.map((d, i) => localTarget(built, `host-${i}`, d));
    const out: DoctorCost[] = [];
    for (const parallel of opts.bounds ?? [1, 8]) {
      const started = performance.now();
      const reports: HostReport[] = await checkHosts(targets, { tool, parallel });
      const totalMs = performance.now() - started;
      const per = reports.map((r) => r.seconds * 1000);
      out.push({
        hosts: opts.hosts,
        parallel,
        totalMs,
        wallPerHostMs: totalMs / opts.hosts,
        meanHostMs: per.reduce((a, b) => a + b, 0) / per.length,
        maxHostMs: Math.max(...per),
        allOk: reports.every((r) => r.status === "ok"),
      });
    }
    return out;
  } finally {
    for (const h of homes) rmSync(h.root, { recursive: true, force: true });
  }
}
