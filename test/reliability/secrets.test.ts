/**
 * Secret exposure sweep (issue 6): a full apply + rotate + destroy cycle, through the program's own
 * resource graph: index.ts evaluated under Pulumi mocks whose `newResource` really runs every
 * `command:local:Command` as @pulumi/command 1.2.1 does (interpreter + script, stdin piped;
 * harness/deployingMock.ts, whose `finish()` runs what a create-before-delete replacement deletes), on a
 * temp HOME holding the user's own files: the tool step ships the host tool into it, and every other step
 * runs it (`/bin/sh <tool> <sub> '<json>'`), with the real kilo (linked from the test cache, so install
 * does not run npm) and the stand-in pooler, so the tool's smoke subcommand runs real kilo. Then:
 * - the old and the new key appear in no file under the temp root (HOME and TMPDIR) nor in the cached
 *   kilo install the HOME links to;
 * - in no command's stdout or stderr, no Pulumi warning, no line this test logged;
 * - in no resource's inputs (both evaluations) or mocked state except the env command's stdin, which is
 *   a secret.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseResult } from "../../common/result";
import { HOST_STEPS } from "../../deployer/kiloHost";
import { type Deployed, deployingMock, LocalCommandRunner } from "../../harness/deployingMock";
import { type FakePooler, startFakePooler } from "../../harness/fakePooler";
import { linkCachedKilo, USER_BASHRC, USER_KILO_JSONC, USER_PROFILE } from "../../harness/hostHome";
import { ensureKilo, TEST_KILO_VERSION } from "../../harness/kilo";
import { type Evaluation, evaluateIndex, findString, stackConfig } from "../../harness/pulumiMocks";

const OLD_KEY = "test-key-sweep-old-2f8e61c4";
const NEW_KEY = "test-key-sweep-new-9a0d37b5";
const HOST = "sweep-box";

const root = mkdtempSync(join(tmpdir(), "kilo-fleet-sweep-"));
const home = join(root, "home");
const tmp = join(root, "tmp");
let pooler: FakePooler | undefined;
afterAll(async () => {
  await pooler?.stop();
  rmSync(root, { recursive: true, force: true });
});

/** Everything this test logs (checked too). */
const logged: string[] = [];
const log = (line: string) => {
  logged.push(line);
  console.log(line);
};

const runner = new LocalCommandRunner({ cwd: root, home, tmp });
const executed = runner.executed;

/** `pulumi up` under mocks: unchanged inputs run nothing, changed triggers replace (delete first), else update. */
async function deploy(key: string, previous?: Deployed): Promise<{ e: Evaluation; states: Deployed }> {
  const { newResource, states, finish } = deployingMock(runner, previous);
  const stack = stackConfig({
    poolerBaseUrl: pooler?.url,
    codexPoolerApiKey: key,
    sshPrivateKey: undefined,
    kiloVersion: TEST_KILO_VERSION,
    hosts: [{ name: HOST, local: true, shells: ["bash", "sh"] }],
    smokeCheck: { enabled: true, timeoutSeconds: 120 },
  });
  const e = await evaluateIndex(stack, { newResource });
  await finish();
  return { e, states };
}

/** Files under `dirs` whose bytes contain `needle` (grep -rlF: fast over kilo's install). */
function grepFiles(needle: string, dirs: string[]): string[] {
  const r = spawnSync("grep", ["-rlF", "--", needle, ...dirs], { encoding: "utf8" });
  if (r.status !== 0 && r.status !== 1) throw new Error(`grep failed: ${r.stderr}`);
  return r.stdout.split("\n").filter(Boolean);
}

describe("secret exposure sweep after apply, rotate and destroy", () => {
  it("neither key appears in any file, output, log or input but the env command's stdin", {
    timeout: 300_000,
  }, async () => {
    const started = Date.now();
    pooler = await startFakePooler({ keys: OLD_KEY });
    mkdirSync(tmp, { recursive: true });
    for (const [rel, text] of Object.entries({
      ".bashrc": USER_BASHRC,
      ".profile": USER_PROFILE,
      ".config/kilo/kilo.jsonc": USER_KILO_JSONC,
    })) {
      mkdirSync(dirname(join(home, rel)), { recursive: true });
      writeFileSync(join(home, rel), text);
    }
    linkCachedKilo(home);

    const first = await deploy(OLD_KEY);
    if (first.e.error) throw first.e.error;
    expect(executed.map((x) => `${x.name}:${x.op}`)).toEqual(HOST_STEPS.map((s) => `${HOST}-${s}:create`));
    const smokeResult = (x: { name: string; stdout: string } | undefined) =>
      x?.name === `${HOST}-smoke` ? parseResult(x.stdout, "smoke") : undefined;
    expect(smokeResult(executed.at(-1))).toMatchObject({
      pass: true,
      level: "kilo-run",
      kiloVersion: TEST_KILO_VERSION,
    });
    const oldKeyUsed = pooler.requests.some((r) => r.key === OLD_KEY && r.authorized);
    // While deployed, the key is in the env file and in no other file (kilo's scratch dirs included).
    const midFindings: string[] = [];
    let filesSearched = 0;
    const midSweep = (stage: string, key: string, gone?: string) => {
      filesSearched += grepFiles("", [root]).length;
      for (const f of grepFiles(key, [root]))
        if (f !== join(home, ".config/kilo/codex-pooler.env")) midFindings.push(`${stage}: key in ${f}`);
      if (gone) for (const f of grepFiles(gone, [root])) midFindings.push(`${stage}: the rotated-out key in ${f}`);
    };
    midSweep("after apply", OLD_KEY);

    pooler.setKeys(NEW_KEY);
    const ran = executed.length;
    const second = await deploy(NEW_KEY, first.states);
    if (second.e.error) throw second.e.error;
    expect(executed.slice(ran).map((x) => `${x.name}:${x.op}`)).toEqual([
      `${HOST}-env:update`,
      `${HOST}-smoke:delete`,
      `${HOST}-smoke:create`,
    ]);
    expect(smokeResult(executed.at(-1))).toMatchObject({ pass: true, level: "kilo-run" });
    const newKeyUsed = pooler.requests.some((r) => r.key === NEW_KEY && r.authorized);
    midSweep("after rotation", NEW_KEY, OLD_KEY);

    await runner.destroy(
      second.states,
      HOST_STEPS.map((s) => `${HOST}-${s}`),
    );

    // The sweep.
    const findings: string[] = [...midFindings];
    const kilo = ensureKilo();
    filesSearched += grepFiles("", [root]).length;
    let places = 0;
    for (const key of [OLD_KEY, NEW_KEY]) {
      const tag = key === OLD_KEY ? "old key" : "new key";
      for (const f of grepFiles(key, [root, `${kilo.prefix}/`])) findings.push(`${tag} in file ${f}`);
      for (const x of executed) {
        places += 2;
        if (x.stdout.includes(key)) findings.push(`${tag} in ${x.name} ${x.op} stdout`);
        if (x.stderr.includes(key)) findings.push(`${tag} in ${x.name} ${x.op} stderr`);
      }
      for (const w of [...first.e.warnings, ...second.e.warnings])
        if (w.includes(key)) findings.push(`${tag} in a warning`);
      for (const l of logged) if (l.includes(key)) findings.push(`${tag} in this test's log`);
      for (const ev of [first, second]) {
        for (const r of ev.e.resources) {
          places++;
          for (const hit of findString(r.inputs, key)) {
            if (`${r.name}.${hit.path}` === `${HOST}-env.stdin` && hit.secret) continue;
            findings.push(`${tag} in ${r.name} input ${hit.path} (secret: ${hit.secret})`);
          }
          for (const hit of findString(r.outputs ?? {}, key)) findings.push(`${tag} in ${r.name} output ${hit.path}`);
        }
        for (const [name, { state }] of ev.states) {
          places++;
          const { stdin: _stdin, ...rest } = state;
          for (const hit of findString(rest, key)) findings.push(`${tag} in ${name} state ${hit.path}`);
        }
        for (const hit of findString(ev.e.stackOutputs ?? {}, key))
          findings.push(`${tag} in the stack output ${hit.path}`);
      }
    }
    log(
      `[reliability] secret sweep: apply + rotate + destroy under Pulumi mocks with the real kilo ${TEST_KILO_VERSION} (${executed.length} step runs, smoke checks passed with the old and the new key: ${oldKeyUsed}/${newKeyUsed}); searched the temp root after apply, rotation and destroy (${filesSearched} file reads), kilo's install, ${places} outputs/inputs/states, and this test's log: ${findings.length} findings, ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    for (const l of logged) for (const key of [OLD_KEY, NEW_KEY]) expect(l).not.toContain(key);
    expect(oldKeyUsed && newKeyUsed).toBe(true);
    expect(findings).toEqual([]);
  });
});
