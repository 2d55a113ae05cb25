/**
 * What `pulumi up` would re-run, proven as a diff: the program (index.ts) is evaluated twice under mocks,
 * before and after one config change, and every resource's inputs are compared (secrets unwrapped).
 * With @pulumi/command 1.2.1, a changed input re-runs the step (update, or create); a changed `triggers`
 * replaces it (re-runs it too). So "the resources whose inputs differ" is exactly "the steps that run".
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { hostToolArtifact, useHostToolArtifact, writeHostToolArtifact } from "../deployer/hostTool";
import { HOST_STEPS } from "../deployer/kiloHost";
import { readLockFile, shippedLockPath, withVersion, writeLockFile } from "../deployer/kiloLock";
import { ROTATED_API_KEY, ROTATED_SSH_KEY } from "../harness/fakeSecrets";
import { makePrivateCa } from "../harness/privateCa";
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

afterEach(() => {
  useHostToolArtifact(undefined);
  vi.unstubAllEnvs();
});

/** `pulumi up` refuses a pinned version missing from the lock: the shipped lock plus a stand-in 7.8.0 entry. */
const lockDir = mkdtempSync(join(tmpdir(), "kilo-fleet-diff-lock-"));
afterAll(() => rmSync(lockDir, { recursive: true, force: true }));
function useLockWith780(): void {
  const file = join(lockDir, "kilo-fleet.lock.json");
  writeLockFile(
    file,
    withVersion(readLockFile(shippedLockPath()) ?? { version: 1, kilo: {} }, "7.8.0", {
      "linux-x64": {
        package: "@kilocode/cli-linux-x64",
        tarball: "https://registry.npmjs.org/@kilocode/cli-linux-x64/-/cli-linux-x64-7.8.0.tgz",
        integrity: `sha512-${"B".repeat(86)}==`,
      },
    }),
  );
  vi.stubEnv("KILO_FLEET_LOCK_FILE", file);
}

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
    useLockWith780();
    const before = await run({ kiloVersion: "7.7.7" });
    const after = await run({ kiloVersion: "7.8.0" });
    expectChanged(before, after, onEveryHost({ install: "any", smoke: "any" }));
    expect(triggersOf(after, "alice-laptop-smoke")).toContain("kilo=7.8.0 package");
  });

  it("bumping one host's kiloVersion override touches only that host", async () => {
    useLockWith780();
    const hosts = TEST_HOSTS.map((h) => ({ ...h }));
    const before = await run({ hosts });
    hosts[1] = { ...hosts[1], kiloVersion: "7.8.0" };
    const after = await run({ hosts });
    expectChanged(before, after, { "bob-desktop-install": "any", "bob-desktop-smoke": "any" });
  });

  it("pulumi up refuses a pinned version missing from the lock file, naming the lock command", async () => {
    const e = await evaluateIndex(stackConfig({ kiloVersion: "7.8.0" }));
    expect((e.error as Error).message).toContain(
      `kilo-fleet:kiloVersion: kilo 7.8.0 is not in the lock file ${shippedLockPath()}; run: npm run kilo-fleet -- lock`,
    );
    expect(programResources(e)).toEqual([]);
  });

  it("switching install.method re-runs only install (in place) and the smoke check (its install trigger)", async () => {
    const before = await run();
    const after = await run({ install: { method: "npm" } });
    expectChanged(before, after, onEveryHost({ install: ["create", "delete"], smoke: ["triggers"] }));
    for (const h of TEST_HOSTS) {
      expect(String(before.byName(`${h.name}-install`).inputs.create)).toContain(" install-package '7.7.7 - ");
      expect(String(after.byName(`${h.name}-install`).inputs.create)).toContain(` install '{\`host\`:\`${h.name}\``);
      const [tb, ta] = [triggersOf(before, `${h.name}-smoke`), triggersOf(after, `${h.name}-smoke`)];
      expect(ta.filter((t, i) => t !== tb[i])).toEqual(["kilo=7.7.7 npm"]);
    }
  });

  it("one host's install.method override touches only that host's install and smoke", async () => {
    const hosts = TEST_HOSTS.map((h) => ({ ...h }));
    const before = await run({ hosts });
    hosts[2] = { ...hosts[2], install: { method: "npm" } } as (typeof hosts)[number];
    const after = await run({ hosts });
    expectChanged(before, after, { "carol-box-install": ["create", "delete"], "carol-box-smoke": ["triggers"] });
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

  it("policy: its own step; a policy change re-runs only <host>-policy and <host>-smoke (its argument), become only <host>-policy", async () => {
    const policy = { model: "gpt-5.5", permission: { bash: "deny" }, share: "disabled" };
    const none = await run();
    const withPolicy = await run({ policy, become: "sudo" });
    // Turning a policy on adds the step and the env file's settings (telemetry, sharing off).
    const on = diffEvaluations(none, withPolicy);
    expect(on.added.sort()).toEqual(TEST_HOSTS.map((h) => `${h.name}-policy`).sort());
    expect(on.removed).toEqual([]);
    expect(on.changed).toEqual(onEveryHost({ env: ["create"], smoke: ["create"] }));
    const policyStep = withPolicy.byName("bob-desktop-policy").inputs;
    expect(policyStep.create).toMatch(
      /^\/bin\/sh ~\/\.local\/share\/kilo-fleet\/tool-[0-9a-f]{12}\.cjs policy-apply '\{`host`:`bob-desktop`,`policy`:\{`provider`:/,
    );
    expect(policyStep.delete).toMatch(/policy-delete '\{`host`:`bob-desktop`,`become`:`sudo`\}'$/);
    expect(policyStep.triggers).toBeUndefined();

    const changed = await run({ policy: { ...policy, permission: { bash: "ask" } }, become: "sudo" });
    expect(diffEvaluations(withPolicy, changed)).toEqual({
      added: [],
      removed: [],
      changed: onEveryHost({ policy: ["create"], smoke: ["create"] }),
    });
    const becomeNone = await run({ policy, become: "none" });
    expect(diffEvaluations(withPolicy, becomeNone)).toEqual({
      added: [],
      removed: [],
      changed: onEveryHost({ policy: ["create", "delete"] }),
    });
    // Nothing else changes the policy step: the key, the model, the smoke timeout.
    const other = await run({
      policy,
      become: "sudo",
      codexPoolerApiKey: NEW_KEY,
      smokeCheck: { enabled: true, timeoutSeconds: 60 },
    });
    expect(Object.keys(diffEvaluations(withPolicy, other).changed).filter((n) => n.endsWith("-policy"))).toEqual([]);
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
      // A local host's create copies the named file; an SSH host's is the same for every build.
      expected[`${h.name}-tool`] = h.ssh ? ["delete", "triggers"] : ["create", "delete", "triggers"];
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

describe("per-host keys, reconcile, SSH dials, npm token (issues 11 and 13)", () => {
  const BOB_KEY = "test-key-pool-bob-1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d";
  const BOB_KEY_2 = "test-key-pool-bob-rotated-6d5c4b3a2f1e0d9c8b7a6f5e4d3c";

  it("changing one host's own key (apiKeys) re-runs only that host's env (stdin) and smoke (key trigger)", async () => {
    const before = await run({ apiKeys: { "bob-desktop": BOB_KEY } });
    const after = await run({ apiKeys: { "bob-desktop": BOB_KEY_2 } });
    expectChanged(before, after, { "bob-desktop-env": ["stdin"], "bob-desktop-smoke": ["triggers"] });
    expect(unwrapSecrets(after.byName("bob-desktop-env").inputs.stdin)).toBe(BOB_KEY_2);
    expect(unwrapSecrets(after.byName("alice-laptop-env").inputs.stdin)).not.toBe(BOB_KEY_2);
    // Moving a host from the fleet key to its own: again that host only.
    const fleetOnly = await run();
    expectChanged(fleetOnly, before, { "bob-desktop-env": ["stdin"], "bob-desktop-smoke": ["triggers"] });
  });

  it("every host with its own key needs no fleet key; a host left with neither stops the deploy, naming it", async () => {
    const all = Object.fromEntries(TEST_HOSTS.map((h, i) => [h.name, `${BOB_KEY}${i}`]));
    const e = await evaluateIndex(stackConfig({ codexPoolerApiKey: undefined, apiKeys: all }));
    expect(e.error).toBeUndefined();
    for (const [i, h] of TEST_HOSTS.entries()) {
      expect(unwrapSecrets(e.byName(`${h.name}-env`).inputs.stdin)).toBe(`${BOB_KEY}${i}`);
    }
    const { "carol-box": _c, ...partial } = all;
    const bad = await evaluateIndex(stackConfig({ codexPoolerApiKey: undefined, apiKeys: partial }));
    expect(String((bad.error as Error).message)).toContain(
      `kilo-fleet:apiKeys.carol-box: host "carol-box" has no API key`,
    );
    expect(bad.resources.filter((r) => r.custom)).toEqual([]);
  });

  /** Every step of `hosts` changes its create command only; no triggers change anywhere (in-place updates). */
  function expectReconciled(before: Evaluation, after: Evaluation, hosts: string[]) {
    const diff = diffEvaluations(before, after);
    expect(diff.added).toEqual([]);
    expect(diff.removed).toEqual([]);
    const expected = Object.fromEntries(hosts.flatMap((h) => HOST_STEPS.map((s) => [`${h}-${s}`, ["create"]])));
    expect(diff.changed).toEqual(expected);
  }

  it("kilo-fleet:reconcile re-runs every step of every host in place (create changes, no triggers, nothing replaced)", async () => {
    const before = await run();
    const after = await run({ reconcile: "2026-11-26" });
    expectReconciled(
      before,
      after,
      TEST_HOSTS.map((h) => h.name),
    );
    expect(after.byName("alice-laptop-tool").inputs.create).toContain("# reconcile `2026-11-26`");
    expect(after.byName("bob-desktop-config").inputs.create).toContain(`,\`reconcile\`:\`2026-11-26\`}'`);
    // A second new value re-runs them again; the same value twice re-runs nothing.
    expectReconciled(
      after,
      await run({ reconcile: "2026-11-27" }),
      TEST_HOSTS.map((h) => h.name),
    );
    expect(diffEvaluations(after, await run({ reconcile: "2026-11-26" })).changed).toEqual({});
  });

  it("hosts[i].reconcile re-runs exactly that host's steps, and wins over the fleet value", async () => {
    const hosts = TEST_HOSTS.map((h) => ({ ...h }));
    const before = await run({ hosts, reconcile: "a" });
    hosts[2] = { ...hosts[2], reconcile: "carol-2026-11-26" } as (typeof hosts)[number];
    const after = await run({ hosts, reconcile: "a" });
    expectReconciled(before, after, ["carol-box"]);
    // The fleet value changing now leaves carol alone (her own value wins).
    expectReconciled(after, await run({ hosts, reconcile: "b" }), ["alice-laptop", "bob-desktop"]);
  });

  it("SSH dials: connectTimeoutSeconds -> perDialTimeout, connectAttempts N -> dialErrorLimit N-1 (defaults 10 and 3); per host wins", async () => {
    const conn = (e: Evaluation, name: string) =>
      unwrapSecrets(e.byName(name).inputs.connection) as Record<string, unknown>;
    const d = await run();
    for (const step of ["tool", "tool-copy", "install", "config", "env", "smoke"]) {
      expect(conn(d, `bob-desktop-${step}`)).toMatchObject({ perDialTimeout: 10, dialErrorLimit: 2 });
    }
    expect(d.byName("alice-laptop-install").inputs.connection).toBeUndefined();
    const hosts = TEST_HOSTS.map((h) => ({ ...h }));
    hosts[2] = { ...hosts[2], ssh: { ...hosts[2].ssh, connectAttempts: 5 } } as (typeof hosts)[number];
    const e = await run({ hosts, ssh: { connectTimeoutSeconds: 4, connectAttempts: 1 } });
    expect(conn(e, "bob-desktop-install")).toMatchObject({ perDialTimeout: 4, dialErrorLimit: 0 });
    expect(conn(e, "carol-box-install")).toMatchObject({ perDialTimeout: 4, dialErrorLimit: 4 });
    expect(conn(e, "bob-desktop-install")).toMatchObject({ host: "10.0.0.5", hostKey: TEST_HOST_KEY });
  });

  it("npmToken reaches each (npm) install step only as its stdin; the install then logs nothing and keeps its output secret", async () => {
    const token = "npm_test_token_0a1b2c3d4e5f";
    const before = await run({ install: { method: "npm" } });
    const after = await run({ install: { method: "npm" }, npmRegistry: "https://npm.example.com/", npmToken: token });
    const diff = diffEvaluations(before, after);
    expect(Object.keys(diff.changed).sort()).toEqual(TEST_HOSTS.map((h) => `${h.name}-install`).sort());
    for (const h of TEST_HOSTS) {
      const r = after.byName(`${h.name}-install`);
      expect(unwrapSecrets(r.inputs.stdin)).toBe(token);
      expect(r.inputs.logging).toBe("none");
      expect(r.additionalSecretOutputs).toEqual(expect.arrayContaining(["stdout", "stderr"]));
      expect(JSON.stringify(r.inputs.create)).not.toContain(token);
    }
    // The package method sends no token: its install step gets none.
    const pkg = await run({ npmRegistry: "https://npm.example.com/", npmToken: token });
    for (const h of TEST_HOSTS) expect(pkg.byName(`${h.name}-install`).inputs.stdin).toBeUndefined();
    const hits = programResources(after).flatMap((r) =>
      JSON.stringify(unwrapSecrets(r.inputs)).includes(token) ? [r.name] : [],
    );
    expect(hits.sort()).toEqual(TEST_HOSTS.map((h) => `${h.name}-install`).sort());
  });
});

describe("kilo-fleet:caCertificates", () => {
  it("re-runs install and env in place (their argument), nothing else; the package download gets each certificate's DER", async () => {
    const ca = makePrivateCa({ name: "diff-ca" });
    try {
      const before = await run();
      const after = await run({ caCertificates: ca.caCert });
      expectChanged(before, after, onEveryHost({ install: ["create"], env: ["create"] }));
      const der = ca.caCert.replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, "");
      for (const h of TEST_HOSTS) {
        expect(after.byName(`${h.name}-install`).inputs.create).toContain(` --ca=${der} linux-x64=`);
      }
      // install.method npm: in its argument, as PEM (npm's --cafile).
      const npm = await run({ install: { method: "npm" } });
      const npmCa = await run({ install: { method: "npm" }, caCertificates: ca.caCert });
      expectChanged(npm, npmCa, onEveryHost({ install: ["create"], env: ["create"] }));
    } finally {
      ca.cleanup();
    }
  });
});

describe("kilo-fleet:proxy (issue 21)", () => {
  it("a proxy re-runs install and env in place (their argument) and the smoke check (its proxy trigger), nothing else", async () => {
    const before = await run();
    const after = await run({ proxy: { https: "http://proxy.corp:3128", noProxy: ".corp" } });
    expectChanged(before, after, onEveryHost({ install: ["create"], env: ["create"], smoke: ["triggers"] }));
    for (const h of TEST_HOSTS) {
      expect(after.byName(`${h.name}-install`).inputs.create).toContain(
        "--proxy=http://proxy.corp:3128 --no-proxy=.corp ",
      );
      expect(after.byName(`${h.name}-env`).inputs.create).toContain(
        "`proxy`:{`https`:`http://proxy.corp:3128`,`noProxy`:`.corp`}",
      );
      expect(triggersOf(after, `${h.name}-smoke`)).toContain(
        'proxy={"https":"http://proxy.corp:3128","noProxy":".corp"}',
      );
    }
  });

  it("proxyCredentials reach only the install's and the env step's stdin (a secret line), never a command or the state in plain", async () => {
    const creds = "proxyuser:pr0xy-s3cret-77a1";
    const proxy = { https: "http://proxy.corp:3128" };
    const before = await run({ proxy });
    const after = await run({ proxy, proxyCredentials: creds });
    expectChanged(before, after, onEveryHost({ install: ["create", "logging", "stdin"], env: ["create", "stdin"] }));
    for (const h of TEST_HOSTS) {
      const install = after.byName(`${h.name}-install`);
      expect(install.inputs.create).toContain("--proxy=http://proxy.corp:3128 --proxy-auth ");
      expect(unwrapSecrets(install.inputs.stdin)).toBe(creds);
      expect(install.inputs.logging).toBe("none");
      expect(unwrapSecrets(after.byName(`${h.name}-env`).inputs.stdin)).toMatch(new RegExp(`\n${creds}$`));
    }
    const hits = programResources(after).flatMap((r) =>
      JSON.stringify(unwrapSecrets(r.inputs)).includes(creds) ? [r.name] : [],
    );
    expect(hits.sort()).toEqual(TEST_HOSTS.flatMap((h) => [`${h.name}-env`, `${h.name}-install`]).sort());
    // Only in stdin, and there as a secret (Pulumi's secret signature wraps it).
    for (const r of programResources(after)) {
      const { stdin, ...rest } = r.inputs as Record<string, unknown>;
      expect(JSON.stringify(rest)).not.toContain(creds);
      if (JSON.stringify(stdin ?? "").includes(creds)) {
        expect(JSON.stringify(stdin)).toContain("4dabf18193072939515e22adb298388d");
      }
    }
  });
});

describe("ssh.proxy, a jump host (issue 21, item 1)", () => {
  const JUMP = { host: "bastion.corp", user: "jump", hostKey: TEST_HOST_KEY };
  it("maps to every remote step's connection.proxy, pinned, with the host's dial limits and key; local hosts untouched", async () => {
    const before = await run();
    const after = await run({ ssh: { proxy: JUMP } });
    const ssh = TEST_HOSTS.filter((h) => h.ssh !== undefined);
    const remote = ssh.flatMap((h) => children(h));
    const diff = diffEvaluations(before, after);
    expect(Object.keys(diff.changed).sort()).toEqual(remote.sort());
    for (const h of ssh) {
      const conn = unwrapSecrets(after.byName(`${h.name}-install`).inputs.connection) as Record<string, unknown>;
      expect(conn.proxy).toEqual({
        host: "bastion.corp",
        port: 22,
        user: "jump",
        hostKey: TEST_HOST_KEY,
        perDialTimeout: 10,
        dialErrorLimit: 2,
        privateKey: (conn as { privateKey: string }).privateKey,
      });
    }
  });

  it("a host's own ssh.proxy wins; sshJumpPrivateKey is the jump host's key, a secret", async () => {
    const [, bob] = TEST_HOSTS;
    const jumpKey = ROTATED_SSH_KEY;
    const e = await run({
      ssh: { proxy: JUMP },
      sshJumpPrivateKey: jumpKey,
      hosts: TEST_HOSTS.map((h) =>
        h === bob ? { ...h, ssh: { ...h.ssh, proxy: { ...JUMP, host: "other-bastion", port: 2222 } } } : h,
      ),
    });
    const raw = e.byName(`${bob.name}-env`).inputs.connection;
    const conn = unwrapSecrets(raw) as { privateKey: string; proxy: Record<string, unknown> };
    expect([conn.proxy.host, conn.proxy.port]).toEqual(["other-bastion", 2222]);
    expect(conn.proxy.privateKey).not.toBe(conn.privateKey);
    // The connection holding the keys is a secret as a whole.
    expect(JSON.stringify(raw)).toMatch(/^\{"4dabf18193072939515e22adb298388d"/);
  });
});

describe("waves (issue 21, item 3)", () => {
  it("every host in wave 0 (explicitly) is today's graph exactly", async () => {
    const before = await run();
    const after = await run({ hosts: TEST_HOSTS.map((h) => ({ ...h, wave: 0 })) });
    expect(diffEvaluations(before, after)).toEqual(diffEvaluations(before, before));
    expectChanged(before, after, {});
  });

  it("wave 1's first step waits for every wave-0 host's smoke check (env where it is off), wave 2's for wave 1's", async () => {
    const [a, b, c] = TEST_HOSTS;
    const e = await run({
      hosts: [
        { ...c, wave: 2 },
        { ...a, wave: 0 },
        { ...b, wave: 1, smokeCheck: undefined },
      ],
    });
    const urn = (name: string) => e.byName(name).urn;
    const dependsOnTool = (h: string) => e.byName(`${h}-tool`).dependencies;
    expect(dependsOnTool(a.name)).toEqual([]);
    expect(dependsOnTool(b.name)).toEqual([urn(`${a.name}-smoke`)]);
    expect(dependsOnTool(c.name)).toEqual([urn(`${b.name}-smoke`)]);
    // Only the first step: the others wait on it through the chain, as today.
    expect(e.byName(`${c.name}-install`).dependencies).not.toContain(urn(`${b.name}-smoke`));
    const off = await run({ smokeCheck: { enabled: false }, hosts: [{ ...a }, { ...b, wave: 1 }] });
    expect(off.byName(`${b.name}-tool`).dependencies).toEqual([off.byName(`${a.name}-env`).urn]);
  });

  it("a release that only replaces the host tool: wave 0 re-runs its kilo-run check (create), later waves update at level pool", async () => {
    const [a, b, c] = TEST_HOSTS;
    const hosts = [a, { ...b, wave: 1 }, { ...c, wave: 1, smokeCheck: { level: "pool" } }];
    const before = await run({ hosts });
    const current = hostToolArtifact();
    useHostToolArtifact(writeHostToolArtifact(`${current.text}// a later kilo-fleet\n`));
    const after = await run({ hosts });
    const diff = diffEvaluations(before, after);
    // No trigger of a smoke step changed: @pulumi/command runs `update` (where there is one), not `create`.
    expect([a, b, c].map((h) => diff.changed[`${h.name}-smoke`])).toEqual([
      ["create"],
      ["create", "update"],
      ["create"],
    ]);
    const smoke = (h: { name: string }) => after.byName(`${h.name}-smoke`).inputs as Record<string, string>;
    expect(smoke(a).update).toBeUndefined();
    expect(smoke(b).create).toContain("`level`:`kilo-run`");
    expect(smoke(b).update).toBe(smoke(b).create.replace("`level`:`kilo-run`", "`level`:`pool`"));
    expect(triggersOf(after, `${b.name}-smoke`)).toContain("smoke=kilo-run");
    // Already at level pool: nothing to lower, no update, no extra trigger.
    expect(smoke(c).update).toBeUndefined();
    expect(triggersOf(after, `${c.name}-smoke`)).not.toContain("smoke=kilo-run");
  });

  it("the stack output shows each host's wave", async () => {
    const [a, b] = TEST_HOSTS;
    const e = await run({ hosts: [a, { ...b, wave: 3 }] });
    const hosts = unwrapSecrets(e.stackOutputs?.hosts) as Record<string, { wave: number }>;
    expect([hosts[a.name].wave, hosts[b.name].wave]).toEqual([0, 3]);
  });
});

describe("a large fleet", () => {
  // The bench evaluates 1000 hosts and times it; here a fleet large enough to show nothing depends on a
  // fixed count, quickly enough for CI.
  const FLEET = 300;
  it(`evaluates ${FLEET} hosts`, { timeout: 600_000 }, async () => {
    const hosts = Array.from({ length: FLEET }, (_, i) =>
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
      `[kilo-fleet] ${FLEET}-host fleet: ${programResources(e).length} resources evaluated under mocks in ${seconds.toFixed(1)} s`,
    );
    // Half the hosts are SSH hosts, which also copy the tool.
    expect(programResources(e)).toHaveLength(FLEET * (1 + HOST_STEPS.length) + FLEET / 2);
    const exported = (e.stackOutputs as { hosts: Record<string, unknown> }).hosts;
    expect(Object.keys(exported)).toHaveLength(FLEET);
  });
});
