/**
 * What one smoke check costs the pool, measured: a HOME deployed the way the steps leave it (the shipped
 * tool, kilo.jsonc, the env file, the cached real kilo), the tool's `smoke` subcommand run against a
 * stand-in pooler, and the stand-in's request log summed. Tests and the bench (`smokePoolBytes`) use it.
 */

import { rmSync } from "node:fs";
import { parseResult, type SmokeResult } from "../common/result";
import { toolStepCommands } from "../deployer/hostSteps";
import { hostToolArtifact } from "../deployer/hostTool";
import { type FakePooler, startFakePooler } from "./fakePooler";
import { buildSettings, deployScripts, makeHome, scriptEnv } from "./hostHome";
import { runScript } from "./runScript";

export interface SmokeHost {
  root: string;
  home: string;
  tmp: string;
  env: NodeJS.ProcessEnv;
  /** The smoke step's command (`deployScripts(built).smoke.create`). */
  smoke: string;
}

/**
 * A HOME as a deploy leaves it before its smoke step: the tool shipped, the config and env steps run
 * (with `key`), kilo linked from the test cache. `extra`/`hostExtra` as for `buildSettings`. Asynchronous
 * (no spawnSync), so a stand-in pooler in the same process keeps answering meanwhile.
 */
export async function deploySmokeHost(opts: {
  key: string;
  extra?: Record<string, unknown>;
  hostExtra?: Record<string, unknown>;
  env?: Record<string, string | undefined>;
}): Promise<SmokeHost> {
  const { root, home, tmp } = makeHome({ files: {}, kilo: true });
  const env = scriptEnv(home, tmp, opts.env ?? {});
  const tool = hostToolArtifact();
  const steps = deployScripts(buildSettings(opts.extra ?? {}, opts.hostExtra ?? {}));
  if (!steps.smoke) throw new Error("the smoke check is disabled in these settings");
  for (const [name, script, stdin] of [
    ["tool", toolStepCommands(tool.id, { kind: "local", source: tool.file }).create, ""],
    ["config", steps.config.create, ""],
    ["env", steps.env.create, opts.key],
  ] as const) {
    const r = await runStep(script, env, home, stdin);
    if (r.code !== 0) throw new Error(`the ${name} step failed: ${r.stderr}`);
  }
  return { root, home, tmp, env, smoke: steps.smoke.create };
}

/** Runs a step command as local.Command does (`/bin/sh -c`), asynchronously (the stand-in answers meanwhile). */
export function runStep(
  script: string,
  env: NodeJS.ProcessEnv,
  cwd: string,
  stdin = "",
): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  return runScript(script, env, { stdin, cwd });
}

export interface SmokeCost {
  level: SmokeResult["level"];
  /** Requests that reached the pool. */
  requests: number;
  /** Request body bytes sent to the pool (GETs send none). */
  requestBytes: number;
  /** Response body bytes the pool sent back. */
  responseBytes: number;
  /** The smoke step's wall time. */
  ms: number;
}

/** Runs one smoke check at `level` against a fresh stand-in pooler and sums what reached it. */
export async function measureSmokeCost(level: SmokeResult["level"]): Promise<SmokeCost> {
  const key = `test-key-smoke-cost-${Math.random().toString(36).slice(2, 10)}`;
  const pooler: FakePooler = await startFakePooler({ keys: key });
  const host = await deploySmokeHost({ key, extra: { poolerBaseUrl: pooler.url, smokeCheck: { level } } });
  try {
    const r = await runStep(host.smoke, host.env, host.root);
    const result = parseResult(r.stdout, "smoke");
    if (r.code !== 0 || result?.level !== level) throw new Error(`the smoke check failed: ${r.stderr}`);
    const reqs = pooler.requests;
    return {
      level,
      requests: reqs.length,
      requestBytes: reqs.reduce((n, q) => n + q.requestBytes, 0),
      responseBytes: reqs.reduce((n, q) => n + q.responseBytes, 0),
      ms: r.ms,
    };
  } finally {
    await pooler.stop();
    rmSync(host.root, { recursive: true, force: true });
  }
}
