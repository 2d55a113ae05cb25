/**
 * The policy step on a stand-in managed dir (KILO_FLEET_TEST_SYSTEM_DIR), run by the shipped tool as the
 * steps run it: the file and directory modes (whatever the umask), twice = once byte for byte, a managed
 * file that was there put back byte for byte (mode included), a directory it created removed, a symlink
 * refused with nothing written, and another managed file setting a policy key warned about. The real
 * /etc/kilo, through sudo over SSH, with kilo's effective config: test/policy.ssh.test.ts.
 */
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseJsonc } from "jsonc-parser";
import { afterAll, describe, expect, it } from "vitest";
import { hostLayout } from "../common/hostPaths";
import { KILO_CONFIG_SCHEMA_URL } from "../common/kiloConfigMerge";
import { parseResult } from "../common/result";
import { shQuote } from "../common/shellQuote";
import { encodeStepArg, type StepArgs } from "../common/stepArgs";
import { hostToolArtifact } from "../deployer/hostTool";
import { startFakePooler } from "../harness/fakePooler";
import { buildSettings, deployScripts, scriptEnv, snapshot, snapshotObject } from "../harness/hostHome";
import { ensureKilo } from "../harness/kilo";
import { TEST_POLICY as POLICY } from "../harness/policy";
import { runScript } from "../harness/runScript";
import { deploySmokeHost, runStep } from "../harness/smokeCost";
import { checkPaths, runCheck } from "../host/check";
import { envVars } from "../host/envFile";
import { POLICY_FILE_HEADER, renderPolicyFile } from "../host/policy";
import { effectiveConfig, policyMismatches } from "../host/policyCheck";

const root = mkdtempSync(join(tmpdir(), "kilo-fleet-policy-"));
const toolFile = hostToolArtifact().file;
const roots: string[] = [];
afterAll(() => {
  for (const r of [root, ...roots]) rmSync(r, { recursive: true, force: true });
});

let n = 0;
/** A fresh place: `etc/` (the managed dir's parent) and a HOME. */
function place() {
  const base = join(root, `p${n++}`);
  mkdirSync(join(base, "etc"), { recursive: true });
  mkdirSync(join(base, "home"), { recursive: true });
  return { etc: join(base, "etc"), dir: join(base, "etc", "kilo"), home: join(base, "home") };
}

/** The tool's policy subcommand, as the step runs it (`/bin/sh <tool> …`), with `umask`. */
function policy<S extends "policy-apply" | "policy-delete">(
  p: ReturnType<typeof place>,
  sub: S,
  args: StepArgs[S],
  umask = "022",
) {
  const r = spawnSync("/bin/sh", ["-c", `umask ${umask}; exec /bin/sh "$0" "$@"`, toolFile, sub, encodeStepArg(args)], {
    encoding: "utf8",
    timeout: 30_000,
    env: scriptEnv(p.home, p.home, { KILO_FLEET_TEST_SYSTEM_DIR: p.dir }),
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const apply = (p: ReturnType<typeof place>, pol: Record<string, unknown> = POLICY, umask?: string) =>
  policy(p, "policy-apply", { host: "h1", policy: pol }, umask);
const del = (p: ReturnType<typeof place>) => policy(p, "policy-delete", { host: "h1" });
const mode = (f: string) => statSync(f).mode & 0o7777;
/** doctor's host check on `p`'s HOME and managed dir, for one item, with `args` over a plain host's. */
const doctorDrift = (
  p: ReturnType<typeof place>,
  item: string,
  args: Partial<StepArgs["check"]> = {},
  extraEnv: NodeJS.ProcessEnv = {},
) => {
  const env = scriptEnv(p.home, p.home, { KILO_FLEET_TEST_SYSTEM_DIR: p.dir });
  return runCheck(checkPaths(hostLayout(env, p.home), { ...env, ...extraEnv }), {
    host: "h1",
    version: "7.7.7",
    managed: {},
    var: "CODEX_POOLER_API_KEY",
    shells: ["sh"],
    compareKey: false,
    ...args,
  }).result.drift.filter((d) => d.item === item);
};

describe("policy-apply / policy-delete on a stand-in managed dir", () => {
  it("creates the dir 0755 and the file 0644 with $schema first (umask 077 too); twice = once; delete leaves the parent as it was", () => {
    const p = place();
    const before = snapshotObject(snapshot(p.etc));
    const r = apply(p, POLICY, "077");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const file = join(p.dir, "kilo.jsonc");
    expect(parseResult(r.stdout, "policy")).toEqual({ step: "policy", path: file, status: "created" });
    expect(mode(p.dir)).toBe(0o755);
    expect(mode(file)).toBe(0o644);
    const text = readFileSync(file, "utf8");
    expect(text.split("\n")[0]).toBe(POLICY_FILE_HEADER);
    const parsed = parseJsonc(text) as Record<string, unknown>;
    expect(Object.keys(parsed)[0]).toBe("$schema");
    expect(parsed).toEqual({ $schema: KILO_CONFIG_SCHEMA_URL, ...POLICY });
    // The record is root's only.
    expect(mode(join(p.dir, ".kilo-fleet-policy.json"))).toBe(0o600);
    // No lock or temp file left.
    const first = snapshotObject(snapshot(p.etc));
    expect(Object.keys(first).sort()).toEqual(["kilo", "kilo/.kilo-fleet-policy.json", "kilo/kilo.jsonc"]);

    const again = apply(p);
    expect(again.code).toBe(0);
    expect(parseResult(again.stdout, "policy")?.status).toBe("unchanged");
    expect(snapshotObject(snapshot(p.etc))).toEqual(first);

    // A changed policy is an update, in place.
    const changed = apply(p, { ...POLICY, model: "codex-pooler/gpt-5.4" });
    expect(parseResult(changed.stdout, "policy")?.status).toBe("updated");
    expect((parseJsonc(readFileSync(file, "utf8")) as { model: string }).model).toBe("codex-pooler/gpt-5.4");

    const d = del(p);
    expect(d.stderr).toBe("");
    expect(d.code).toBe(0);
    expect(d.stdout).toContain(`removed ${file}`);
    expect(snapshotObject(snapshot(p.etc))).toEqual(before);
    // Twice: nothing recorded, nothing touched.
    const d2 = del(p);
    expect(d2.code).toBe(0);
    expect(d2.stdout).toContain("nothing recorded");
  });

  it("puts back a managed file that was there, byte for byte and mode, and leaves a directory it did not create", () => {
    const p = place();
    mkdirSync(p.dir);
    chmodSync(p.dir, 0o755);
    const theirs = '// the admin\'s own\n{ "model": "corp/m",\t"share": "manual" }'; // no trailing newline
    writeFileSync(join(p.dir, "kilo.jsonc"), theirs);
    chmodSync(join(p.dir, "kilo.jsonc"), 0o640);
    writeFileSync(join(p.dir, "opencode.json"), '{ "model": "other/m", "theme": "x" }\n');
    const before = snapshotObject(snapshot(p.etc));

    const r = apply(p);
    expect(r.code).toBe(0);
    expect(parseResult(r.stdout, "policy")).toEqual({
      step: "policy",
      path: join(p.dir, "kilo.jsonc"),
      status: "updated",
      replaced: true,
    });
    // Another managed file that sets a policy key: warned about, by name and key.
    expect(r.stderr).toBe(
      `kilo-fleet: warning: ${join(p.dir, "opencode.json")} is a managed file too and sets model: kilo may take those from it instead of the policy\n`,
    );
    expect(mode(join(p.dir, "kilo.jsonc"))).toBe(0o644);
    expect(apply(p).code).toBe(0);

    const d = del(p);
    expect(d.code).toBe(0);
    expect(d.stdout).toContain("put back the managed file");
    expect(snapshotObject(snapshot(p.etc))).toEqual(before);
  });

  it("two applies at once on a new managed dir: one creates it, both succeed, one record, the file right", async () => {
    const p = place();
    const run = () =>
      runScript(
        `/bin/sh ${shQuote(toolFile)} policy-apply '${encodeStepArg({ host: "h1", policy: POLICY })}'`,
        scriptEnv(p.home, p.home, { KILO_FLEET_TEST_SYSTEM_DIR: p.dir }),
      );
    const results = await Promise.all([run(), run()]);
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    expect(results.map((r) => parseResult(r.stdout, "policy")?.status).sort()).toEqual(["created", "unchanged"]);
    expect(readFileSync(join(p.dir, "kilo.jsonc"), "utf8")).toBe(renderPolicyFile(POLICY));
    expect(JSON.parse(readFileSync(join(p.dir, ".kilo-fleet-policy.json"), "utf8"))).toEqual({
      file: join(p.dir, "kilo.jsonc"),
      createdDir: true,
      previous: null,
    });
    expect(Object.keys(snapshotObject(snapshot(p.etc))).sort()).toEqual([
      "kilo",
      "kilo/.kilo-fleet-policy.json",
      "kilo/kilo.jsonc",
    ]);
  });

  it("refuses a symlink at the managed file, and a managed dir users cannot read; nothing written", () => {
    const p = place();
    mkdirSync(p.dir);
    chmodSync(p.dir, 0o755);
    writeFileSync(join(p.etc, "elsewhere"), "{}\n");
    symlinkSync(join(p.etc, "elsewhere"), join(p.dir, "kilo.jsonc"));
    const before = snapshotObject(snapshot(p.etc));
    const r = apply(p);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `kilo-fleet: refusing to write the policy through a symlink: ${join(p.dir, "kilo.jsonc")} is one; nothing was written\n`,
    );
    expect(snapshotObject(snapshot(p.etc))).toEqual(before);

    const q = place();
    mkdirSync(q.dir, { mode: 0o700 });
    chmodSync(q.dir, 0o700);
    const r2 = apply(q);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toBe(
      `kilo-fleet: ${q.dir} is mode 0700: other users could not read the policy in it; make it 0755 and deploy again (nothing was written)\n`,
    );
    expect(existsSync(join(q.dir, "kilo.jsonc"))).toBe(false);
    expect(existsSync(join(q.dir, ".kilo-fleet-policy.json"))).toBe(false);
  });
});

describe("what a policy adds around the managed file", () => {
  it("the env file also turns telemetry and sharing off (what kilo reads only from the user's side)", () => {
    const p = place();
    const r = spawnSync(
      process.execPath,
      [
        toolFile,
        "env-apply",
        encodeStepArg({
          var: "CODEX_POOLER_API_KEY",
          pinned: true,
          shells: ["sh"],
          telemetryOff: true,
          shareOff: true,
        } satisfies StepArgs["env-apply"]),
      ],
      {
        input: "test-key-policy\n",
        encoding: "utf8",
        env: scriptEnv(p.home, p.home, { KILO_FLEET_TEST_SYSTEM_DIR: p.dir }),
      },
    );
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const envFile = join(p.home, ".config/kilo/codex-pooler.env");
    const vars = spawnSync(
      "/bin/sh",
      ["-c", '. "$1" && echo "$KILO_TELEMETRY_LEVEL $KILO_DISABLE_SHARE $KILO_DISABLE_AUTOUPDATE"', "sh", envFile],
      {
        encoding: "utf8",
      },
    );
    expect(vars.stdout).toBe("off 1 1\n");
    // doctor compares the env file with what the env step writes, the policy's settings included.
    const envDrift = (flags: { telemetryOff?: true; shareOff?: true }) => doctorDrift(p, "env-file", flags);
    expect(envDrift({ telemetryOff: true, shareOff: true })).toEqual([]);
    expect(envDrift({}).map((d) => d.what)).toEqual([
      "~/.config/kilo/codex-pooler.env was edited: it sets KILO_TELEMETRY_LEVEL, which the env step does not write",
      "~/.config/kilo/codex-pooler.env was edited: it sets KILO_DISABLE_SHARE, which the env step does not write",
    ]);
    expect(envVars("K", "v", false)).toEqual([["K", "v"]]);
  });

  it("config-apply does not call kilo-fleet's own policy an override; another managed file still is", () => {
    const p = place();
    expect(apply(p).code).toBe(0);
    const config = (): { stderr: string; code: number | null } => {
      const r = spawnSync(
        process.execPath,
        [toolFile, "config-apply", encodeStepArg({ managed: { model: "codex-pooler/gpt-5.5" } })],
        {
          encoding: "utf8",
          env: scriptEnv(p.home, p.home, { KILO_FLEET_TEST_SYSTEM_DIR: p.dir }),
        },
      );
      return { stderr: r.stderr, code: r.status };
    };
    expect(config()).toEqual({ stderr: "", code: 0 });
    writeFileSync(join(p.dir, "kilo.json"), '{ "model": "x/y" }\n');
    expect(config().stderr).toContain(`${join(p.dir, "kilo.json")} sets "model"`);
  });

  it("doctor: the managed file against the policy, its mode, another managed file, and the bypass variables", () => {
    const p = place();
    expect(apply(p).code).toBe(0);
    const check = (extraEnv: NodeJS.ProcessEnv = {}) => doctorDrift(p, "policy", { policy: POLICY }, extraEnv);
    expect(check()).toEqual([]);

    const file = join(p.dir, "kilo.jsonc");
    writeFileSync(file, renderPolicyFile({ ...POLICY, model: "other/model" }));
    chmodSync(file, 0o666);
    writeFileSync(join(p.dir, "opencode.json"), '{ "share": "auto", "theme": "x" }\n');
    writeFileSync(join(p.home, ".profile"), '# mine\nexport KILO_PERMISSION=\'{"bash":"allow"}\'\n');
    expect(check({ KILO_TEST_MANAGED_CONFIG_DIR: "/tmp/elsewhere" })).toEqual([
      {
        item: "policy",
        what: `${file} differs from the policy at model`,
        path: "model",
        expected: '"codex-pooler/gpt-5.5"',
        found: '"other/model"',
        file,
      },
      { item: "policy", what: `${file} is mode 0666 owned by uid 0, expected 0644 owned by root`, file },
      {
        item: "policy",
        what: `${join(p.dir, "opencode.json")} is a managed file too and sets share: kilo may take those from it instead of the policy`,
        file: join(p.dir, "opencode.json"),
      },
      {
        item: "policy",
        what: "~/.profile line 2 sets KILO_PERMISSION, so kilo lays it over the policy's permission",
        file: "~/.profile",
      },
      {
        item: "policy",
        what: "KILO_TEST_MANAGED_CONFIG_DIR is set in the environment the check ran in, so kilo reads another managed dir instead of the policy",
      },
    ]);
    rmSync(file);
    expect(check()[0]).toEqual({ item: "policy", what: `${file} is missing: the policy is not enforced`, file });
  });

  it("doctor: a managed dir or file that a group, everyone or a user other than root can write is named, with its mode", () => {
    const p = place();
    expect(apply(p).code).toBe(0);
    const file = join(p.dir, "kilo.jsonc");
    const check = () => doctorDrift(p, "policy", { policy: POLICY }).map((d) => [d.file, d.what]);
    expect(check()).toEqual([]);
    const dirFinding = (m: string, uid: number) => [
      p.dir,
      `${p.dir} is mode ${m} owned by uid ${uid}, expected owned by root and not group- or world-writable (whoever can write it can replace the policy)`,
    ];
    for (const m of [0o777, 0o775, 0o1777]) {
      chmodSync(p.dir, m);
      expect(check()).toEqual([dirFinding(m.toString(8).padStart(4, "0"), 0)]);
    }
    chmodSync(p.dir, 0o755);
    chownSync(p.dir, 1000, 1000);
    expect(check()).toEqual([dirFinding("0755", 1000)]);
    chownSync(p.dir, 0, 0);
    // The file: group-writable, or root's no more.
    chmodSync(file, 0o664);
    expect(check()).toEqual([[file, `${file} is mode 0664 owned by uid 0, expected 0644 owned by root`]]);
    chmodSync(file, 0o644);
    chownSync(file, 1000, 1000);
    expect(check()).toEqual([[file, `${file} is mode 0644 owned by uid 1000, expected 0644 owned by root`]]);
    chownSync(file, 0, 0);
    expect(check()).toEqual([]);
  });
});

describe("the smoke check's view of the policy: kilo's effective config, no key given to it", () => {
  it("policyMismatches compares the policy's leaves only, never a provider's apiKey", () => {
    const effective = {
      ...POLICY,
      permission: { ...POLICY.permission, webfetch: "allow" },
      provider: { "codex-pooler": { options: { baseURL: "http://127.0.0.1:9/v1", apiKey: "" } } },
    };
    expect(policyMismatches(POLICY, effective)).toEqual([]);
    expect(
      policyMismatches(POLICY, {
        ...effective,
        model: "user/own",
        permission: { bash: "allow", edit: "ask" },
        provider: { "codex-pooler": { options: { baseURL: "http://elsewhere/v1", apiKey: "x" } } },
      }),
    ).toEqual([
      { path: "model", expected: POLICY.model, found: "user/own" },
      {
        path: "provider.codex-pooler.options.baseURL",
        expected: "http://127.0.0.1:9/v1",
        found: "http://elsewhere/v1",
      },
      { path: "permission.bash", expected: "deny", found: "allow" },
    ]);
  });

  it("the real kilo, the user's config losing to the managed one, and the env file's variables withheld", () => {
    const p = place();
    expect(apply(p).code).toBe(0);
    const configDir = join(p.home, ".config/kilo");
    mkdirSync(configDir, { recursive: true });
    writeFileSync(join(configDir, "kilo.jsonc"), '{ "model": "user/own", "permission": { "bash": "allow" } }\n');
    const scratch = join(p.home, "scratch");
    const effective = effectiveConfig({
      kiloBin: ensureKilo().bin,
      configDir,
      scratch,
      inherited: { ...process.env, KILO_FLEET_TEST_SYSTEM_DIR: p.dir, CODEX_POOLER_API_KEY: "test-key-withheld" },
      withheld: ["CODEX_POOLER_API_KEY"],
      timeoutMs: 60_000,
    }) as { provider: Record<string, { options: { apiKey: string } }> };
    expect(policyMismatches(POLICY, effective)).toEqual([]);
    // kilo resolved {env:CODEX_POOLER_API_KEY} to nothing: it never had the variable.
    expect(effective.provider["codex-pooler"].options.apiKey).toBe("");
    // The user's own file is untouched (kilo ran on a copy).
    expect(readFileSync(join(configDir, "kilo.jsonc"), "utf8")).toBe(
      '{ "model": "user/own", "permission": { "bash": "allow" } }\n',
    );
  }, 60_000);
});

describe("the smoke check with a policy (the real kilo, the stand-in pooler, level pool)", () => {
  it("passes when kilo follows the deployed policy, and fails in one line when the managed file says otherwise; no key printed", async () => {
    const key = "test-key-policy-smoke-4b1e";
    const pooler = await startFakePooler({ keys: key });
    try {
      const p = place();
      const extra = {
        poolerBaseUrl: pooler.url,
        policy: { model: "gpt-5.5", permission: { bash: "deny" }, share: "disabled" },
        smokeCheck: { enabled: true, timeoutSeconds: 120, level: "pool" },
      };
      const host = await deploySmokeHost({
        key,
        extra,
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", KILO_FLEET_TEST_SYSTEM_DIR: p.dir },
      });
      roots.push(host.root);
      const steps = deployScripts(buildSettings(extra));
      const pol = await runStep(steps.policy?.create ?? "false", host.env, host.home);
      expect(pol.code, pol.stderr).toBe(0);
      const ok = await runStep(host.smoke, host.env, host.home);
      expect(ok.stderr).toBe("");
      expect(ok.code).toBe(0);
      expect(parseResult(ok.stdout, "smoke")?.pass).toBe(true);

      // The managed file no longer what the policy step wrote.
      const file = join(p.dir, "kilo.jsonc");
      const deployed = readFileSync(file, "utf8");
      writeFileSync(file, deployed.replace('"bash": "deny"', '"bash": "allow"'));
      const edited = await runStep(host.smoke, host.env, host.home);
      expect(edited.code).toBe(1);
      expect(edited.stderr).toBe(
        `smoke check failed on test-host: ${file} is not the stack's policy (changed since the policy step wrote it: kilo-fleet doctor names the differences)\n`,
      );
      // The file is right, but another managed file beside it wins in kilo 7.7.7: kilo's own view says so.
      writeFileSync(file, deployed);
      writeFileSync(join(p.dir, "opencode.json"), '{ "permission": { "bash": "allow" } }\n');
      const bad = await runStep(host.smoke, host.env, host.home);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toBe(
        'smoke check failed on test-host: kilo does not follow the policy (is kilo\'s managed config deployed, and nothing beside it?): permission.bash is "allow", the policy says "deny"\n',
      );
      for (const out of [ok.stdout, ok.stderr, edited.stderr, bad.stdout, bad.stderr, pol.stdout])
        expect(out).not.toContain(key);
    } finally {
      await pooler.stop();
    }
  }, 120_000);
});

describe("killed at every write/rename boundary (KILO_FLEET_TEST_CRASH_AT), the policy step converges", () => {
  const THEIRS = '{ "share": "manual" }';
  const run = (p: ReturnType<typeof place>, sub: "policy-apply" | "policy-delete", crashAt?: number) =>
    spawnSync(
      process.execPath,
      [toolFile, sub, encodeStepArg(sub === "policy-apply" ? { host: "h1", policy: POLICY } : { host: "h1" })],
      {
        encoding: "utf8",
        env: scriptEnv(p.home, p.home, {
          KILO_FLEET_TEST_SYSTEM_DIR: p.dir,
          ...(crashAt ? { KILO_FLEET_TEST_CRASH_AT: String(crashAt) } : {}),
        }),
      },
    );
  const text = renderPolicyFile(POLICY);
  it.each([
    ["no managed dir", false],
    ["an administrator's managed file", true],
  ])(
    "%s: every crash of apply, then of delete, leaves the old or the new file, and the next runs end as before",
    (_, theirs) => {
      const setup = () => {
        const p = place();
        if (theirs) {
          mkdirSync(p.dir, { mode: 0o755 });
          writeFileSync(join(p.dir, "kilo.jsonc"), THEIRS, { mode: 0o640 });
        }
        return { p, before: snapshotObject(snapshot(p.etc)) };
      };
      const fileNow = (p: ReturnType<typeof place>) =>
        existsSync(join(p.dir, "kilo.jsonc")) ? readFileSync(join(p.dir, "kilo.jsonc"), "utf8") : undefined;
      const old = theirs ? THEIRS : undefined;
      let crashes = 0;
      for (const op of ["policy-apply", "policy-delete"] as const) {
        for (let n = 1; n < 60; n++) {
          const { p, before } = setup();
          if (op === "policy-delete") expect(run(p, "policy-apply").status).toBe(0);
          const r = run(p, op, n);
          if (r.status === 0) break;
          crashes++;
          expect(r.signal, `${op} at ${n}`).toBe("SIGKILL");
          expect([old, text], `${op} at ${n}`).toContain(fileNow(p));
          // The next deploy (or destroy) finishes the job; a destroy then leaves everything as before.
          const again = run(p, op);
          expect(again.status, `${op} at ${n}: ${again.stderr}`).toBe(0);
          expect(fileNow(p), `${op} at ${n}`).toBe(op === "policy-apply" ? text : old);
          if (op === "policy-apply") expect(run(p, "policy-delete").status).toBe(0);
          expect(snapshotObject(snapshot(p.etc)), `${op} at ${n}`).toEqual(before);
        }
      }
      expect(crashes).toBeGreaterThan(10);
    },
    120_000,
  );
});
