import { existsSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hostToolArtifact, useHostToolArtifact, writeHostToolArtifact } from "../deployer/hostTool";
import { HOST_STEPS } from "../deployer/kiloHost";
import { type Deployed, deployingMock, LocalCommandRunner } from "../harness/deployingMock";
import { type FakePooler, startFakePooler } from "../harness/fakePooler";
import { type Entry, makeHome, snapshot, snapshotObject } from "../harness/hostHome";
import { TEST_KILO_VERSION } from "../harness/kilo";
import { type Evaluation, evaluateIndex, findString, stackConfig } from "../harness/pulumiMocks";

const OLD_KEY = "test-key-e2e-mocks-old-5c1f9a7e";
const NEW_KEY = "test-key-e2e-mocks-new-d84b2e60";
const HOST = "e2e-box";

const USER_FILES: Record<string, string> = {
  ".bashrc":
    "# ~/.bashrc: a user's own, Debian style\ncase $- in\n    *i*) ;;\n      *) return;;\nesac\nalias ll='ls -alF'\n",
  ".profile": "# ~/.profile of the user\nexport EDITOR=vi",
  ".config/kilo/kilo.jsonc":
    '// my own kilo settings\n{\n  "share": "disabled", // keep this\n  "model": "someone/else"\n}\n',
};

let pooler: FakePooler;
let root: string;
let home: string;
let tmp: string;
let before: Record<string, Entry>;
/** Runs the Commands on the temporary HOME and records every script run, in order. */
let runner: LocalCommandRunner;

function deploy(key: string, previous?: Deployed) {
  const mock = deployingMock(runner, previous);
  const stack = stackConfig({
    poolerBaseUrl: pooler.url,
    codexPoolerApiKey: key,
    sshPrivateKey: undefined,
    // The install step installs this version's platform package (the default install.method), checked
    // against stacks/kilo-fleet.lock.json, into HOME (~5 s). The npm method: install.npm, steps.local and steps.ssh.
    kiloVersion: TEST_KILO_VERSION,
    hosts: [{ name: HOST, local: true, shells: ["bash", "sh"] }],
    smokeCheck: { enabled: true, timeoutSeconds: 120 },
  });
  return evaluateIndex(stack, { newResource: mock.newResource }).then(async (e) => {
    // The engine deletes what it replaced create-before-delete (the old tool step) last.
    if (!e.error) await mock.finish();
    return { e, states: mock.states };
  });
}

function hostExports(e: Evaluation): Record<string, unknown> {
  return (e.stackOutputs as { hosts: Record<string, Record<string, unknown>> }).hosts[HOST];
}

let first: Awaited<ReturnType<typeof deploy>>;
let second: Awaited<ReturnType<typeof deploy>>;
let third: Awaited<ReturnType<typeof deploy>>;

beforeAll(async () => {
  pooler = await startFakePooler({ keys: OLD_KEY });
  ({ root, home, tmp } = makeHome({ files: USER_FILES, tool: false }));
  runner = new LocalCommandRunner({ cwd: root, home, tmp });
  before = snapshotObject(snapshot(home));
});

afterAll(async () => {
  useHostToolArtifact(undefined);
  await pooler?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe("index.ts provisions a local host for real under mocks", () => {
  it("runs tool, install (package), config, env and smoke in order, and exports what they report", {
    timeout: 600_000,
  }, async () => {
    first = await deploy(OLD_KEY);
    if (first.e.error) throw first.e.error;
    expect(runner.executed.map((x) => `${x.name}:${x.op}`)).toEqual(HOST_STEPS.map((s) => `${HOST}-${s}:create`));
    const exported = hostExports(first.e);
    expect(Object.keys(exported).sort()).toEqual(
      ["configPath", "envFilePath", "kiloVersion", "kind", "smoke", "wave"].sort(),
    );
    expect(exported).toMatchObject({
      kind: "local",
      wave: 0,
      kiloVersion: TEST_KILO_VERSION,
      configPath: "~/.config/kilo/kilo.jsonc",
      envFilePath: "~/.config/kilo/codex-pooler.env",
      smoke: {
        enabled: true,
        pass: true,
        level: "kilo-run",
        kiloVersion: TEST_KILO_VERSION,
        seconds: expect.any(Number),
        // The seed's limits let a turn reach more than the stand-in pool serves (its context_length), by
        // kilo's arithmetic with the default threshold: min(228000 − 20000, 272000 × 0.75) + 64000.
        warnings: [
          expect.stringMatching(
            /^kilo-fleet:models\.gpt-5\.5\.limit reaches 268000 tokens, over the pool's context_length \d+; fits: limit\.context \d+, limit\.input \d+$/,
          ),
        ],
      },
    });
    expect(first.e.stackOutputs?.kiloConfig).toMatchObject({ model: "codex-pooler/gpt-5.5" });
    // The pool's warnings ride along: here the seed model's limits over the pool's context_length.
    const warnings = (exported.smoke as { warnings?: string[] }).warnings ?? [];
    expect(warnings.length).toBeGreaterThan(0);
    for (const w of warnings) expect(w).toContain("kilo-fleet:models");
    // …and are the deploy's own warnings (the smoke step logs nothing).
    for (const w of warnings) expect(first.e.warnings).toContain(`${HOST}: smoke check: ${w}`);
    // The tool is in place, once, at its content-addressed path.
    expect(readFileSync(join(home, hostToolArtifact().pathInHome), "utf8")).toBe(hostToolArtifact().text);
    // What is on the machine now.
    const install = runner.executed.find((x) => x.name === `${HOST}-install`);
    expect(install?.stdout).toMatch(/kilo-fleet-result \{"step":"install","method":"package",/);
    const linked = readlinkSync(join(home, ".local/bin/kilo"));
    expect(linked).toMatch(
      new RegExp(`^${home}/\\.local/share/kilo-fleet/kilo/${TEST_KILO_VERSION}/linux-x64[^/]*/bin/kilo$`),
    );
    expect(readFileSync(join(linked, "../../package.json"), "utf8")).toContain(`"version": "${TEST_KILO_VERSION}"`);
    const kiloJsonc = readFileSync(join(home, ".config/kilo/kilo.jsonc"), "utf8");
    expect(kiloJsonc).toContain(pooler.url);
    expect(kiloJsonc).toContain('"share": "disabled", // keep this');
    expect(kiloJsonc).not.toContain(OLD_KEY);
    const envFile = join(home, ".config/kilo/codex-pooler.env");
    expect(statSync(envFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(envFile, "utf8")).toContain(OLD_KEY);
    // The smoke check really talked to the pooler with the key.
    expect(pooler.requests.some((r) => r.path === "/v1/chat/completions" && r.key === OLD_KEY && r.authorized)).toBe(
      true,
    );
    // No step printed the key.
    for (const x of runner.executed) expect(`${x.stdout}\n${x.stderr}`).not.toContain(OLD_KEY);
    // In the recorded state the key is only the env command's stdin, as a secret.
    for (const r of first.e.resources) {
      for (const hit of findString(r.inputs, OLD_KEY))
        expect(`${r.name}.${hit.path}:${hit.secret}`).toBe(`${HOST}-env.stdin:true`);
    }
  });

  it("after a key rotation, re-runs only env and smoke, and the pooler sees only the new key", {
    timeout: 600_000,
  }, async () => {
    expect(first?.e.error, "the first deployment must have passed").toBeUndefined();
    pooler.setKeys(NEW_KEY);
    pooler.requests.length = 0;
    const ran = runner.executed.length;
    second = await deploy(NEW_KEY, first.states);
    if (second.e.error) throw second.e.error;
    // env: stdin changed → update (its create); smoke: its key trigger changed → replaced (delete, create).
    expect(runner.executed.slice(ran).map((x) => `${x.name}:${x.op}`)).toEqual([
      `${HOST}-env:update`,
      `${HOST}-smoke:delete`,
      `${HOST}-smoke:create`,
    ]);
    expect(readFileSync(join(home, ".config/kilo/codex-pooler.env"), "utf8")).toContain(NEW_KEY);
    expect(readFileSync(join(home, ".config/kilo/codex-pooler.env"), "utf8")).not.toContain(OLD_KEY);
    const chats = pooler.requests.filter((r) => r.path === "/v1/chat/completions");
    expect(chats.length).toBeGreaterThan(0);
    expect(chats.every((r) => r.key === NEW_KEY && r.authorized)).toBe(true);
    expect(hostExports(second.e).smoke).toMatchObject({ enabled: true, pass: true });
  });

  it("a kilo-fleet upgrade (a new tool) ships the new tool, re-runs the steps that name it, then removes the old tool", {
    timeout: 600_000,
  }, async () => {
    expect(second?.e.error, "the rotation must have passed").toBeUndefined();
    const oldTool = hostToolArtifact();
    const newTool = writeHostToolArtifact(`${oldTool.text}// a later kilo-fleet\n`);
    useHostToolArtifact(newTool);
    const ran = runner.executed.length;
    third = await deploy(NEW_KEY, second.states);
    if (third.e.error) throw third.e.error;
    // Create before delete: the new tool first, the steps that name it in place, the old tool's delete last.
    expect(runner.executed.slice(ran).map((x) => `${x.name}:${x.op}`)).toEqual([
      `${HOST}-tool:create`,
      `${HOST}-install:update`,
      `${HOST}-config:update`,
      `${HOST}-env:update`,
      `${HOST}-smoke:update`,
      `${HOST}-tool:delete`,
    ]);
    expect(existsSync(join(home, newTool.pathInHome))).toBe(true);
    expect(existsSync(join(home, oldTool.pathInHome))).toBe(false);
    expect(hostExports(third.e).smoke).toMatchObject({ enabled: true, pass: true });
  });

  it("destroying after the upgrade (every delete, in reverse order, with its stored inputs) finds the tool each delete names and leaves HOME exactly as it was", {
    timeout: 600_000,
  }, async () => {
    const deployed = third?.states;
    expect(deployed, "the upgrade must have run").toBeDefined();
    const ran = runner.executed.length;
    if (deployed)
      await runner.destroy(
        deployed,
        HOST_STEPS.map((s) => `${HOST}-${s}`),
      );
    const destroyed = runner.executed.slice(ran);
    expect(destroyed.map((x) => x.name)).toEqual([...HOST_STEPS].reverse().map((s) => `${HOST}-${s}`));
    // Each delete ran the tool and printed its result (a missing tool would fail it).
    for (const x of destroyed.filter((d) => d.name !== `${HOST}-smoke` && d.name !== `${HOST}-tool`)) {
      expect(x.stdout, x.name).toMatch(/kilo-fleet-result \{"step":"(install|config|env)-delete"/);
    }
    const after = snapshotObject(snapshot(home));
    const changed = [...new Set([...Object.keys(before), ...Object.keys(after)])]
      .filter((p) => !isDeepStrictEqual(before[p], after[p]))
      .map((p) => `${p}: ${before[p] ? (after[p] ? "changed" : "removed") : "left behind"}`);
    expect(changed).toEqual([]);
    expect(after).toEqual(before);
  });
});
