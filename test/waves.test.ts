/**
 * Waves deployed for real under mocks (`pulumi up` as harness/deployingMock runs it, one temporary HOME per
 * host, kilo already there): a wave-1 host's steps wait for the wave-0 host's smoke check. When the canary's
 * check fails (its own key is unknown to the pool), not one step of the wave-1 host runs; when it passes,
 * wave 1 deploys, every one of its steps after the canary's check. Smoke level `pool`: no tokens spent.
 */
import { rmSync } from "node:fs";
import type * as pulumi from "@pulumi/pulumi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deployFleet, readStackConfig } from "../deployer/fleet";
import { deployingMock, LocalCommandRunner } from "../harness/deployingMock";
import { type FakePooler, startFakePooler } from "../harness/fakePooler";
import { makeHome } from "../harness/hostHome";
import { TEST_KILO_VERSION } from "../harness/kilo";
import { defaultMockState, evaluate, type MockResult, stackConfig } from "../harness/pulumiMocks";

const KEY = "test-key-waves-6c1d0e77";
const UNKNOWN_KEY = "test-key-waves-unknown-0b9a";
const HOSTS = ["canary", "late"] as const;
type Host = (typeof HOSTS)[number];

let pooler: FakePooler;
const roots: string[] = [];

beforeAll(async () => {
  pooler = await startFakePooler({ keys: KEY });
});
afterAll(async () => {
  await pooler?.stop();
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

/**
 * One `pulumi up` of canary (wave 0) and late (wave 1) on fresh HOMEs; the order steps started and ended.
 * `failed` resolves when a step fails: under mocks a failed resource's URN never settles (a real engine stops
 * the program there), so what waits on it — the wave-1 host — stays blocked and the evaluation never ends.
 */
function up(canaryKey: string) {
  const runners = {} as Record<Host, LocalCommandRunner>;
  for (const h of HOSTS) {
    const { root, home, tmp } = makeHome({ kilo: true, tool: false });
    roots.push(root);
    runners[h] = new LocalCommandRunner({ cwd: root, home, tmp });
  }
  const mocks = { canary: deployingMock(runners.canary), late: deployingMock(runners.late) };
  const events: string[] = [];
  const newResource = async (args: pulumi.runtime.MockResourceArgs): Promise<MockResult> => {
    const host = HOSTS.find((h) => args.name.startsWith(`${h}-`));
    if (!host || args.type !== "command:local:Command") return defaultMockState(args);
    events.push(`start ${args.name}`);
    try {
      const r = await mocks[host].newResource(args);
      events.push(`end ${args.name}`);
      return r;
    } catch (err) {
      events.push(`failed ${args.name}`);
      onFailure(String(err));
      throw err;
    }
  };
  let onFailure: (why: string) => void = () => {};
  const failed = new Promise<string>((resolve) => {
    onFailure = resolve;
  });
  const stack = stackConfig({
    poolerBaseUrl: pooler.url,
    codexPoolerApiKey: KEY,
    apiKeys: { canary: canaryKey },
    sshPrivateKey: undefined,
    kiloVersion: TEST_KILO_VERSION,
    smokeCheck: { level: "pool", timeoutSeconds: 60 },
    hosts: [
      { name: "late", local: true, shells: ["sh"], wave: 1 },
      { name: "canary", local: true, shells: ["sh"] },
    ],
  });
  // The fleet without the stack's exports: a failed step's outputs then reject nowhere (under mocks an
  // export of a failed resource's output never settles, which a real engine ends by stopping the program).
  const evaluation = evaluate(
    () => {
      const c = readStackConfig();
      deployFleet(c.rawConfig, c.secrets);
    },
    { newResource, config: stack.config, secretKeys: stack.secretKeys },
  );
  return { evaluation, failed, events, runners };
}

describe("waves under the deploying mocks", () => {
  it("with the canary passing, wave 1 deploys, every step after the canary's smoke check", {
    timeout: 120_000,
  }, async () => {
    const { evaluation, events, runners } = up(KEY);
    const e = await evaluation;
    expect(e.error).toBeUndefined();
    expect(runners.late.executed.map((x) => `${x.name} ${x.code}`)).toEqual(
      ["tool", "install", "config", "env", "smoke"].map((s) => `late-${s} 0`),
    );
    const canaryDone = events.indexOf("end canary-smoke");
    expect(canaryDone).toBeGreaterThanOrEqual(0);
    expect(events.findIndex((x) => x.startsWith("start late-"))).toBeGreaterThan(canaryDone);
  });
  it("a failing wave-0 smoke check: no step of the wave-1 host runs", { timeout: 120_000 }, async () => {
    // The SDK hands a failed registration to the unhandled-rejection logic (the language host exits on it):
    // here those rejections are the expected failure, collected instead of failing the run.
    const saved = process.listeners("unhandledRejection");
    const rejections: string[] = [];
    process.removeAllListeners("unhandledRejection");
    process.on("unhandledRejection", (r) => rejections.push(String(r)));
    const { failed, events, runners } = up(UNKNOWN_KEY);
    let why: string;
    try {
      why = await failed;
      // A wave-1 step would start right after the canary's check (milliseconds in the passing test): give it
      // ample time to show itself if the gate were missing.
      await new Promise((r) => setTimeout(r, 3000));
    } finally {
      process.removeAllListeners("unhandledRejection");
      for (const l of saved) process.on("unhandledRejection", l);
    }
    expect(why).toContain("canary-smoke create exited 1");
    expect(why).toContain("api_key_missing");
    expect(rejections.every((r) => r.includes("canary-smoke"))).toBe(true);
    expect(events.filter((x) => x.includes("late-"))).toEqual([]);
    expect(runners.canary.executed.map((x) => x.name)).toEqual([
      "canary-tool",
      "canary-install",
      "canary-config",
      "canary-env",
      "canary-smoke",
    ]);
    expect(runners.late.executed).toEqual([]);
  });
});
