/**
 * What an install costs, by install.method, for the bench (issue 12: package vs npm side by side): one cold
 * install step on a fresh HOME (the tool shipped, as the tool step leaves it), exactly as the deploy runs it,
 * timed; the HOME is removed afterwards.
 *
 *   const r = timeColdInstall("npm", { kiloVersion: "7.7.7" })   // { seconds, method: "npm", kiloVersion }
 *
 * It throws unless the step installed (`changed`) the version asked for by the method asked for, so a figure
 * never comes from a run that did something else (a no-op, a fallback to a kilo already there).
 */
import { rmSync } from "node:fs";
import type { InstallResult } from "../common/result";
import { parseResult } from "../common/result";
import { buildSettings, deployScripts, makeHome, runLocal, scriptEnv } from "./hostHome";

export type InstallMethod = "package" | "npm";

export const INSTALL_METHODS: readonly InstallMethod[] = ["package", "npm"];

/** The other method (to measure side by side with the default). */
export const otherMethod = (m: InstallMethod): InstallMethod => (m === "package" ? "npm" : "package");

export interface ColdInstall {
  seconds: number;
  method: InstallMethod;
  kiloVersion: string;
}

/**
 * One cold install step by `method` on a fresh HOME; `npmRegistry` as the stack would set it. The step's
 * environment is this process's, with HOME/TMPDIR moved and without what `npm run` adds (npm_config_*,
 * npm_package_*), which `pulumi up` would not pass on.
 */
export function timeColdInstall(
  method: InstallMethod,
  opts: { kiloVersion: string; npmRegistry?: string },
): ColdInstall {
  const built = buildSettings({
    kiloVersion: opts.kiloVersion,
    install: { method },
    ...(opts.npmRegistry !== undefined ? { npmRegistry: opts.npmRegistry } : {}),
  });
  const command = deployScripts(built).install.create;
  const h = makeHome({ files: {} });
  try {
    const drop = Object.keys(process.env).filter((k) => /^npm_/i.test(k));
    const env = scriptEnv(h.home, h.tmp, Object.fromEntries(drop.map((k) => [k, undefined])));
    const started = performance.now();
    const r = runLocal(command, env);
    const seconds = (performance.now() - started) / 1000;
    const result = parseResult(r.stdout, "install") as InstallResult | undefined;
    if (r.code !== 0 || !result?.changed || result.method !== method || result.kiloVersion !== opts.kiloVersion) {
      throw new Error(
        `cold install by ${method} did not do what was measured: exit ${r.code}, stdout ${JSON.stringify(r.stdout.slice(-400))}, stderr ${JSON.stringify(r.stderr.slice(-400))}`,
      );
    }
    return { seconds, method, kiloVersion: result.kiloVersion };
  } finally {
    rmSync(h.root, { recursive: true, force: true });
  }
}
