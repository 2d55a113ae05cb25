/**
 * What `pulumi up` would re-run, proven as a diff: the program (index.ts) is evaluated twice under mocks,
 * before and after one config change, and every resource's inputs are compared (secrets unwrapped).
 * With @pulumi/command 1.2.1, a changed input re-runs the step (update, or create); a changed `triggers`
 * replaces it (re-runs it too). So "the resources whose inputs differ" is exactly "the steps that run".
 */

import { afterEach, describe, expect, it } from "vitest";
import { hostToolArtifact, useHostToolArtifact, writeHostToolArtifact } from "../deployer/hostTool";
import { HOST_STEPS } from "../deployer/kiloHost";
import { ROTATED_API_KEY, ROTATED_SSH_KEY } from "../harness/fakeSecrets";
import {
  diffEvaluations,
  type Evaluation,
  evaluateIndex,
  programResources,
  stackConfig,
  TEST_HOST_KEY,
  TEST_HOSTS,
  unwrapSecrets,
} from "../harness/pulumiMocks";

const NEW_KEY = ROTATED_API_KEY;

async function run(overrides: Record<string, unknown> = {}): Promise<Evaluation> {
  const e = await evaluateIndex(stackConfig(overrides));
  if (e.error) throw e.error;
  return e;
}

/** `{ "<host>-env": [...], ... }` for every host: the same change everywhere. */
function onEveryHost(changes: Record<string, string[] | "any">): Record<string, string[] | "any"> {
  const out: Record<string, string[] | "any"> = {};
  for (const h of TEST_HOSTS) for (const [step, keys] of Object.entries(changes)) out[`${h.name}-${step}`] = keys;
  return out;
}

function triggersOf(e: Evaluation, name: string): string[] {
  return (unwrapSecrets(e.byName(name).inputs.triggers) as unknown[]).map(String);
}

/** A host's children: the steps, plus the tool copy over SSH. */
function children(h: { name: string; ssh?: unknown }): string[] {
  return [...HOST_STEPS.map((s) => `${h.name}-${s}`), ...(h.ssh ? [`${h.name}-tool-copy`] : [])];
}

/** Asserts the changed set, and that no step but smoke is replaced (only smoke has triggers). */
function expectChanged(before: Evaluation, after: Evaluation, expected: Record<string, string[] | "any">) {
  const diff = diffEvaluations(before, after);
  expect(diff.added).toEqual([]);
  expect(diff.removed).toEqual([]);
  expect(Object.keys(diff.changed).sort()).toEqual(Object.keys(expected).sort());
  for (const [name, keys] of Object.entries(diff.changed)) {
    const want = expected[name];
    if (want !== "any") expect(keys, name).toEqual(want);
    if (!name.endsWith("-smoke") && !name.endsWith("-tool"))
      expect(keys, `${name} must update in place, not be replaced`).not.toContain("triggers");
    // Every re-run smoke check is re-run by its triggers, whatever else changed.
    if (name.endsWith("-smoke")) expect(keys, name).toContain("triggers");
  }
}

afterEach(() => useHostToolArtifact(undefined));

describe("re-runs, as diffs of two evaluations", () => {
  it("an identical re-run changes nothing at all: same resources, inputs, parents, dependencies, options", async () => {
    const a = await run();
    const b = await run();
    expect(diffEvaluations(a, b)).toEqual({ added: [], removed: [], changed: {} });
    const shape = (e: Evaluation) =>
      programResources(e)
        .map(({ outputs: _o, ...r }) => ({ ...r, inputs: unwrapSecrets(r.inputs) }))
        .sort((x, y) => x.urn.localeCompare(y.urn));
    expect(shape(b)).toEqual(shape(a));
    // Same key order too (what the engine serializes), not only equal values.
    expect(JSON.stringify(shape(b))).toBe(JSON.stringify(shape(a)));
  });

  it("rotating the API key re-runs only the env command (new stdin) and the smoke check (new key trigger)", async () => {
    const before = await run();
    const after = await run({ codexPoolerApiKey: NEW_KEY });
    expectChanged(before, after, onEveryHost({ env: ["stdin"], smoke: ["triggers"] }));
    for (const h of TEST_HOSTS) {
      const [tb, ta] = [triggersOf(before, `${h.name}-smoke`), triggersOf(after, `${h.name}-smoke`)];
      expect(ta.filter((t, i) => t !== tb[i]).map((t) => t.split(":")[0])).toEqual(["key=hmac-sha256"]);
    }
  });

  it("bumping kiloVersion re-runs only install (in place) and the smoke check", async () => {
    const before = await run({ kiloVersion: "7.7.7" });
    const after = await run({ kiloVersion: "7.8.0" });
    expectChanged(before, after, onEveryHost({ install: "any", smoke: "any" }));
    expect(triggersOf(after, "alice-laptop-smoke")).toContain("kilo=7.8.0");
  });

  it("bumping one host's kiloVersion override touches only that host", async () => {
    const hosts = TEST_HOSTS.map((h) => ({ ...h }));
    const before = await run({ hosts });
    hosts[1] = { ...hosts[1], kiloVersion: "7.8.0" };
    const after = await run({ hosts });
    expectChanged(before, after, { "bob-desktop-install": "any", "bob-desktop-smoke": "any" });
  });

  const models = {
    "gpt-5.5": { limit: { context: 272000, input: 228000, output: 64000 } },
    "gpt-5.4-mini": { limit: { context: 128000, output: 16000 } },
  };

  it("changing the model re-runs only config and the smoke check", async () => {
    const before = await run({ models, model: "gpt-5.5" });
    const after = await run({ models, model: "gpt-5.4-mini" });
    expectChanged(before, after, onEveryHost({ config: "any", smoke: "any" }));
  });

  it("changing a model's limits re-runs only config and the smoke check (its config trigger)", async () => {
    const before = await run({ models });
    const after = await run({
      models: { ...models, "gpt-5.5": { limit: { context: 272000, input: 200000, output: 64000 } } },
    });
    expectChanged(before, after, onEveryHost({ config: "any", smoke: "any" }));
  });

  it("moving to another pooler base URL re-runs only config and the smoke check", async () => {
    const before = await run();
    const after = await run({ poolerBaseUrl: "https://pooler2.example.com/v1" });
    expectChanged(before, after, onEveryHost({ config: "any", smoke: "any" }));
  });

  it("changing the smoke timeout re-runs only the smoke check", async () => {
    const before = await run();
    const after = await run({ smokeCheck: { enabled: true, timeoutSeconds: 60 } });
    const diff = diffEvaluations(before, after);
    expect(diff).toEqual({ added: [], removed: [], changed: onEveryHost({ smoke: ["create"] }) });
  });

  it("rotating the SSH key re-runs every step of the SSH hosts (their connection changed), nothing on local hosts", async () => {
    const before = await run();
    const after = await run({
      sshPrivateKey: ROTATED_SSH_KEY,
    });
    const sshHosts = TEST_HOSTS.filter((h) => h.ssh);
    const expected: Record<string, string[]> = {};
    for (const h of sshHosts) for (const name of children(h)) expected[name] = ["connection"];
    expect(diffEvaluations(before, after)).toEqual({ added: [], removed: [], changed: expected });
  });

  it("adding a host creates only that host's resources", async () => {
    const before = await run();
    const after = await run({
      hosts: [...TEST_HOSTS, { name: "dave-mini", ssh: { host: "dave.lan", user: "dave", hostKey: TEST_HOST_KEY } }],
    });
    const diff = diffEvaluations(before, after);
    expect(diff.removed).toEqual([]);
    expect(diff.changed).toEqual({});
    expect(diff.added).toEqual(["dave-mini", ...children({ name: "dave-mini", ssh: true })].sort());
  });

  it("removing a host deletes only that host's resources", async () => {
    const before = await run();
    const after = await run({ hosts: TEST_HOSTS.filter((h) => h.name !== "bob-desktop") });
    const diff = diffEvaluations(before, after);
    expect(diff.added).toEqual([]);
    expect(diff.changed).toEqual({});
    expect(diff.removed).toEqual(["bob-desktop", ...children({ name: "bob-desktop", ssh: true })].sort());
  });

  it("a kilo-fleet upgrade (a new host tool) replaces the tool step and updates the steps that name it", async () => {
    const before = await run();
    const current = hostToolArtifact();
    const upgraded = writeHostToolArtifact(`${current.text}// a later kilo-fleet\n`);
    useHostToolArtifact(upgraded);
    const after = await run();
    const expected: Record<string, string[]> = {};
    for (const h of TEST_HOSTS) {
      expected[`${h.name}-tool`] = ["create", "delete", "triggers"];
      if (h.ssh) expected[`${h.name}-tool-copy`] = ["remotePath", "source"];
      for (const step of ["install", "config", "env"]) expected[`${h.name}-${step}`] = ["create", "delete"];
      expected[`${h.name}-smoke`] = ["create"];
    }
    const diff = diffEvaluations(before, after);
    expect(diff).toEqual({ added: [], removed: [], changed: expected });
    // Every stored command now names the new tool and no other: a destroy after the upgrade finds it
    // (the old tool step's delete, which runs last, removes only the old file).
    for (const r of programResources(after)) {
      const text = JSON.stringify(unwrapSecrets(r.inputs));
      expect(text, r.name).not.toContain(current.id);
    }
    for (const h of TEST_HOSTS) {
      expect(String(after.byName(`${h.name}-config`).inputs.delete)).toContain(`tool-${upgraded.id}.cjs`);
      expect(triggersOf(after, `${h.name}-tool`)).toEqual([`tool=${upgraded.id}`]);
    }
  });

  it("disabling the smoke check removes only the smoke resources", async () => {
    const before = await run();
    const after = await run({ smokeCheck: { enabled: false } });
    const diff = diffEvaluations(before, after);
    expect(diff.added).toEqual([]);
    expect(diff.changed).toEqual({});
    expect(diff.removed).toEqual(TEST_HOSTS.map((h) => `${h.name}-smoke`).sort());
  });
});

describe("a large fleet", () => {
  it("evaluates 1000 hosts", { timeout: 600_000 }, async () => {
    const hosts = Array.from({ length: 1000 }, (_, i) =>
      i % 2 === 0
        ? {
            name: `dev-${String(i).padStart(4, "0")}`,
            ssh: { host: `10.1.${i >> 8}.${i & 255}`, user: "dev", hostKey: TEST_HOST_KEY },
          }
        : { name: `dev-${String(i).padStart(4, "0")}`, local: true as const },
    );
    const started = performance.now();
    const e = await run({ hosts });
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `[kilo-fleet] 1000-host fleet: ${programResources(e).length} resources evaluated under mocks in ${seconds.toFixed(1)} s`,
    );
    // 500 SSH hosts also copy the tool.
    expect(programResources(e)).toHaveLength(1000 * (1 + HOST_STEPS.length) + 500);
    const exported = (e.stackOutputs as { hosts: Record<string, unknown> }).hosts;
    expect(Object.keys(exported)).toHaveLength(1000);
  });
});
