/**
 * Zero-downtime key rotation the way Codex Pooler works, deployed for real under mocks (`pulumi up` as
 * harness/deployingMock runs it, on one temporary HOME per host): the pool holds two keys, A and B.
 *
 *   1. the fleet is deployed with A;
 *   2. one canary host switches to B through its own entry (`apiKeys.<host>`): only its env and smoke
 *      re-run, the pool sees only B from then on, and the hosts still on A keep working (A is still active);
 *   3. the fleet key becomes B: the other hosts' env and smoke re-run, the canary's nothing;
 *   4. A is revoked in the pool (status disabled): the next smoke checks (a reconcile `pulumi up`, every
 *      step of every host re-run) all pass; a host put back on A fails with the api_key_disabled reason.
 *
 * Cheap: the canary runs the full `kilo run` check, the others `smokeCheck.level: "pool"` (no tokens);
 * kilo 7.7.7 is already in each HOME (linked from the test cache), so the install step runs no npm.
 */
import { rmSync } from "node:fs";
import type * as pulumi from "@pulumi/pulumi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HOST_STEPS } from "../deployer/kiloHost";
import { type Deployed, deployingMock, LocalCommandRunner } from "../harness/deployingMock";
import { type FakePooler, startFakePooler } from "../harness/fakePooler";
import { makeHome } from "../harness/hostHome";
import { TEST_KILO_VERSION } from "../harness/kilo";
import { defaultMockState, type Evaluation, evaluateIndex, type MockResult, stackConfig } from "../harness/pulumiMocks";

const KEY_A = "test-key-rotation-a-3f81c2d9";
const KEY_B = "test-key-rotation-b-95e0a47b";
const CANARY = "canary";
const HOSTS = [CANARY, "alpha", "beta"] as const;
type Host = (typeof HOSTS)[number];

let pooler: FakePooler;
const roots: string[] = [];
const runners = {} as Record<Host, LocalCommandRunner>;

beforeAll(async () => {
  pooler = await startFakePooler({ apiKeys: { [KEY_A]: {}, [KEY_B]: {} } });
  for (const h of HOSTS) {
    const { root, home, tmp } = makeHome({ kilo: true, tool: false });
    roots.push(root);
    runners[h] = new LocalCommandRunner({ cwd: root, home, tmp });
  }
});
afterAll(async () => {
  await pooler?.stop();
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

type Fleet = Record<Host, Deployed>;

/** `pulumi up` of the stack with these settings after `previous`: each host's Commands on its own HOME. */
async function up(
  settings: { fleetKey: string; apiKeys?: Partial<Record<Host, string>>; reconcile?: string },
  previous?: Fleet,
): Promise<{ e: Evaluation; states: Fleet }> {
  const mocks = Object.fromEntries(HOSTS.map((h) => [h, deployingMock(runners[h], previous?.[h])])) as Record<
    Host,
    ReturnType<typeof deployingMock>
  >;
  const stack = stackConfig({
    poolerBaseUrl: pooler.url,
    codexPoolerApiKey: settings.fleetKey,
    apiKeys: settings.apiKeys,
    sshPrivateKey: undefined,
    kiloVersion: TEST_KILO_VERSION,
    reconcile: settings.reconcile,
    hosts: HOSTS.map((name) => ({
      name,
      local: true,
      shells: ["sh"],
      ...(name === CANARY ? { smokeCheck: { level: "kilo-run" } } : {}),
    })),
    smokeCheck: { level: "pool", timeoutSeconds: 120 },
  });
  const newResource = (args: pulumi.runtime.MockResourceArgs): Promise<MockResult> | MockResult => {
    const host = HOSTS.find((h) => args.name.startsWith(`${h}-`));
    return host && args.type === "command:local:Command" ? mocks[host].newResource(args) : defaultMockState(args);
  };
  const e = await evaluateIndex(stack, { newResource });
  if (!e.error) for (const h of HOSTS) await mocks[h].finish();
  return { e, states: Object.fromEntries(HOSTS.map((h) => [h, mocks[h].states])) as Fleet };
}

/** What ran since `marks` (one mark per host), as `<name>:<op>`, hosts in order. */
function ranSince(marks: Record<Host, number>): string[] {
  return HOSTS.flatMap((h) => runners[h].executed.slice(marks[h]).map((x) => `${x.name}:${x.op}`));
}
const mark = () => Object.fromEntries(HOSTS.map((h) => [h, runners[h].executed.length])) as Record<Host, number>;

function smokeOf(e: Evaluation, host: Host): Record<string, unknown> {
  return (e.stackOutputs as { hosts: Record<string, { smoke: Record<string, unknown> }> }).hosts[host].smoke;
}

/** The keys the pool saw (requests that presented one), and what it did with them. */
function keysSeen(from: number): { keys: string[]; refused: number; chats: number } {
  const withKey = pooler.requests.slice(from).filter((r) => r.key !== undefined);
  return {
    keys: [...new Set(withKey.map((r) => r.key as string))],
    refused: withKey.filter((r) => !r.authorized).length,
    chats: withKey.filter((r) => r.path === "/v1/chat/completions").length,
  };
}

/** Every executed step's output holds neither key. */
function expectNoKeyPrinted() {
  for (const h of HOSTS)
    for (const x of runners[h].executed)
      for (const k of [KEY_A, KEY_B]) expect(`${x.stdout}\n${x.stderr}`, x.name).not.toContain(k);
}

let fleet: Fleet;
/** What step 1 deployed (every host on A). */
let first: Fleet;

describe("zero-downtime rotation from A to B with both keys in the pool", () => {
  it("1. deploys every host with A: every smoke check passes (the canary's kilo run, the others' pool checks)", {
    timeout: 300_000,
  }, async () => {
    const from = pooler.requests.length;
    const marks = mark();
    const r = await up({ fleetKey: KEY_A });
    if (r.e.error) throw r.e.error;
    fleet = r.states;
    first = r.states;
    expect(ranSince(marks)).toEqual(HOSTS.flatMap((h) => HOST_STEPS.map((s) => `${h}-${s}:create`)));
    for (const h of HOSTS) {
      expect(smokeOf(r.e, h), h).toMatchObject({
        enabled: true,
        pass: true,
        level: h === CANARY ? "kilo-run" : "pool",
      });
    }
    const seen = keysSeen(from);
    expect(seen).toEqual({ keys: [KEY_A], refused: 0, chats: 2 });
    expectNoKeyPrinted();
  });

  it("2. the canary switches to B (apiKeys.canary): only its env and smoke re-run, the pool sees only B, and the hosts still on A keep working", {
    timeout: 300_000,
  }, async () => {
    expect(fleet, "step 1 must have passed").toBeDefined();
    const from = pooler.requests.length;
    const marks = mark();
    const r = await up({ fleetKey: KEY_A, apiKeys: { [CANARY]: KEY_B } }, fleet);
    if (r.e.error) throw r.e.error;
    fleet = r.states;
    expect(ranSince(marks)).toEqual([`${CANARY}-env:update`, `${CANARY}-smoke:delete`, `${CANARY}-smoke:create`]);
    expect(smokeOf(r.e, CANARY)).toMatchObject({ pass: true, level: "kilo-run" });
    expect(keysSeen(from)).toEqual({ keys: [KEY_B], refused: 0, chats: 2 });

    // Mid-rollout, A is still active in the pool: a smoke check of a host still on A passes.
    const during = pooler.requests.length;
    for (const h of ["alpha", "beta"] as const) {
      const smoke = fleet[h].get(`${h}-smoke`);
      const again = await runners[h].run(`${h}-smoke`, "create", smoke?.inputs ?? {});
      expect(again.stdout, h).toMatch(/kilo-fleet-result \{"step":"smoke","pass":true,"level":"pool"/);
    }
    expect(keysSeen(during)).toEqual({ keys: [KEY_A], refused: 0, chats: 0 });
  });

  it("3. the fleet key becomes B: the other hosts' env and smoke re-run, the canary's nothing; the pool sees only B", {
    timeout: 300_000,
  }, async () => {
    expect(fleet, "step 2 must have passed").toBeDefined();
    const from = pooler.requests.length;
    const marks = mark();
    const r = await up({ fleetKey: KEY_B, apiKeys: { [CANARY]: KEY_B } }, fleet);
    if (r.e.error) throw r.e.error;
    fleet = r.states;
    expect(ranSince(marks)).toEqual(
      ["alpha", "beta"].flatMap((h) => [`${h}-env:update`, `${h}-smoke:delete`, `${h}-smoke:create`]),
    );
    for (const h of HOSTS) expect(smokeOf(r.e, h), h).toMatchObject({ pass: true });
    const seen = keysSeen(from);
    expect(seen.keys).toEqual([KEY_B]);
    expect(seen.refused).toBe(0);
  });

  it("4. A revoked in the pool: the next smoke checks (a reconcile) all pass with B; a host still on A fails with api_key_disabled", {
    timeout: 300_000,
  }, async () => {
    expect(fleet, "step 3 must have passed").toBeDefined();
    pooler.setKeyPolicy(KEY_A, { status: "disabled" });

    const from = pooler.requests.length;
    const marks = mark();
    const r = await up({ fleetKey: KEY_B, apiKeys: { [CANARY]: KEY_B }, reconcile: "after revoking A" }, fleet);
    if (r.e.error) throw r.e.error;
    fleet = r.states;
    // The reconcile re-ran every step of every host in place, the smoke checks included.
    expect(ranSince(marks)).toEqual(HOSTS.flatMap((h) => HOST_STEPS.map((s) => `${h}-${s}:update`)));
    for (const h of HOSTS) {
      expect(smokeOf(r.e, h), h).toMatchObject({ pass: true, level: h === CANARY ? "kilo-run" : "pool" });
    }
    expect(keysSeen(from)).toEqual({ keys: [KEY_B], refused: 0, chats: 2 });

    // A host still on A (beta as step 1 left it: its env file holding A) fails its smoke check with the
    // pool's reason: its env and smoke commands exactly as step 1 deployed them.
    const before = pooler.requests.length;
    const old = (name: string) => first.beta.get(name)?.inputs ?? {};
    await runners.beta.run("beta-env", "update", old("beta-env"));
    await expect(runners.beta.run("beta-smoke", "create", old("beta-smoke"))).rejects.toThrow(/api_key_disabled/);
    const failed = runners.beta.executed.at(-1);
    expect(failed).toMatchObject({ name: "beta-smoke", op: "create", code: 1, stdout: "" });
    expect(failed?.stderr).toBe(
      "smoke check failed on beta: the pool has disabled this API key (api_key_disabled: paused or revoked) — re-enable it in the pool, or set kilo-fleet:codexPoolerApiKey (or kilo-fleet:apiKeys.beta) to an active Pool API key",
    );
    const refused = pooler.requests.slice(before).filter((q) => q.key !== undefined);
    expect(refused.map((q) => [q.key, q.status, q.code])).toEqual([[KEY_A, 401, "api_key_disabled"]]);
    expectNoKeyPrinted();
  });
});
