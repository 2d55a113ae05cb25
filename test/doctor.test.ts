/**
 * `kilo-fleet doctor` on real HOMEs deployed by the real steps (harness/doctorCost.ts `deployHome`: the
 * shipped tool, install with a stand-in kilo package, config, env): two hosts, one drifted one item at a
 * time; the doctor names exactly that item on exactly that host and nothing on the other; neither HOME
 * changes by a byte; re-running the steps repairs what they own and the doctor is clean again. Then the
 * command itself: table, --json, --host, --key-env, exit codes, a stack that is invalid, a check argument longer
 * than one command-line argument may be.
 */
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { checkArgsFor, checkHosts, type DoctorIo, doctor, type HostReport } from "../cli/doctor";
import { MAX_ARG_BYTES } from "../common/argLimit";
import { decodeStepArg, encodeStepArg } from "../common/stepArgs";
import { hostToolArtifact } from "../deployer/hostTool";
import { type DeployedHome, deployHome, localTarget } from "../harness/doctorCost";
import { type Built, buildSettings, runLocal, snapshot, testKey } from "../harness/hostHome";
import { TEST_KILO_VERSION } from "../harness/kilo";
import { makePrivateCa } from "../harness/privateCa";

const ROOT = join(__dirname, "..");
// npm: the install step finds the stand-in kilo at the pin and keeps it (no registry); see doctorCost.ts.
const built = buildSettings({ kiloVersion: TEST_KILO_VERSION, install: { method: "npm" } });
const tool = hostToolArtifact();
const provider = built.spec.providerId;
const KEY = testKey();

const cleanup: string[] = [];
afterAll(() => {
  for (const d of cleanup) rmSync(d, { recursive: true, force: true });
});

/** A deployed HOME with its own (empty) system config dir. */
function deployed(key = KEY, kilo: "npm" | "package" = "npm", b: Built = built): DeployedHome & { systemDir: string } {
  const systemDir = mkdtempSync(join(tmpdir(), "kilo-fleet-etc-kilo-"));
  cleanup.push(systemDir);
  const d = deployHome(b, key, { kilo, env: { KILO_FLEET_TEST_SYSTEM_DIR: systemDir } });
  cleanup.push(d.root);
  return { ...d, systemDir };
}

/** Doctor on the HOMEs (names alpha, beta, …); asserts that no HOME (nor its TMPDIR) changed by a byte. */
async function doctorOn(homes: DeployedHome[], key?: string, b: Built = built): Promise<HostReport[]> {
  const before = homes.map((h) => [snapshot(h.home), snapshot(h.tmp)]);
  const names = ["alpha", "beta", "gamma"];
  const reports = await checkHosts(
    homes.map((h, i) => localTarget(b, names[i], h, key !== undefined)),
    { tool, key, parallel: 2 },
  );
  homes.forEach((h, i) => {
    expect(snapshot(h.home)).toEqual(before[i][0]);
    expect(snapshot(h.tmp)).toEqual(before[i][1]);
  });
  if (key !== undefined) expect(JSON.stringify(reports)).not.toContain(key);
  return reports;
}

const edit = (file: string, f: (text: string) => string) => writeFileSync(file, f(readFileSync(file, "utf8")));
const kiloJsonc = (d: DeployedHome) => join(d.home, ".config/kilo/kilo.jsonc");
const envFile = (d: DeployedHome) => join(d.home, ".config/kilo/codex-pooler.env");
const kiloPkg = (d: DeployedHome) => join(d.home, ".local/lib/node_modules/@kilocode/cli/package.json");

/** Re-runs the install, config and env steps (as the reconcile would). */
function repair(d: DeployedHome, key = KEY): void {
  for (const [step, stdin] of [
    ["install", ""],
    ["config", ""],
    ["env", `${key}\n`],
  ] as const) {
    const r = runLocal(d.steps[step].create, d.env, stdin);
    expect(r.code, r.stderr).toBe(0);
  }
}

interface DriftCase {
  name: string;
  drift: (d: DeployedHome & { systemDir: string }) => void;
  item: string;
  what: RegExp;
  /** The steps put it back (otherwise it is the user's own file, outside what the steps manage). */
  stepsRepair: boolean;
  check?: (r: HostReport) => void;
}

const CASES: DriftCase[] = [
  {
    name: "a managed key edited (the pooler's URL)",
    drift: (d) => edit(kiloJsonc(d), (t) => t.replace("http://localhost:4000/v1", "http://evil.example:4000/v1")),
    item: "kilo.jsonc",
    what: new RegExp(
      `^provider\\.${provider}\\.options\\.baseURL: expected "http://localhost:4000/v1", found "http://evil`,
    ),
    stepsRepair: true,
    check: (r) =>
      expect(r.drift[0]).toMatchObject({
        path: `provider.${provider}.options.baseURL`,
        expected: '"http://localhost:4000/v1"',
        found: '"http://evil.example:4000/v1"',
      }),
  },
  {
    name: "the model key removed",
    drift: (d) => edit(kiloJsonc(d), (t) => t.replace(/"model": "[^"]*",/, "")),
    item: "kilo.jsonc",
    what: /^model: expected ".*", found \(absent\)$/,
    stepsRepair: true,
  },
  {
    name: "the env file deleted",
    drift: (d) => unlinkSync(envFile(d)),
    item: "env-file",
    what: /codex-pooler\.env is missing/,
    stepsRepair: true,
  },
  {
    name: "the env file chmod 0644",
    drift: (d) => chmodSync(envFile(d), 0o644),
    item: "env-file",
    what: /has mode 0644, expected 0600/,
    stepsRepair: true,
  },
  {
    name: "the bash block removed",
    drift: (d) => edit(join(d.home, ".bashrc"), (t) => t.replace(/# >>> kilo-fleet[\s\S]*?# <<< kilo-fleet <<<\n/, "")),
    item: "rc-block",
    what: /^bash: no kilo-fleet block in ~\/\.bashrc$/,
    stepsRepair: true,
  },
  {
    name: "the zsh block edited",
    drift: (d) => edit(join(d.home, ".zshrc"), (t) => t.replace("if [ -r", "if [ -f")),
    item: "rc-block",
    what: /^zsh: the kilo-fleet block in ~\/\.zshrc was edited$/,
    stepsRepair: true,
  },
  {
    name: "kilo downgraded",
    drift: (d) => edit(kiloPkg(d), (t) => t.replace(`"version": "${TEST_KILO_VERSION}"`, '"version": "7.0.1"')),
    item: "kilo",
    what: new RegExp(`^7\\.0\\.1 installed, pinned ${TEST_KILO_VERSION.replaceAll(".", "\\.")}$`),
    stepsRepair: false,
  },
  {
    name: "kilo removed",
    drift: (d) => unlinkSync(join(d.home, ".local/bin/kilo")),
    item: "kilo",
    what: /^not installed: no runnable kilo at ~\/\.local\/bin\/kilo$/,
    stepsRepair: false,
  },
  {
    name: "an opencode.json that overrides the pooler",
    drift: (d) =>
      writeFileSync(
        join(d.home, ".config/kilo/opencode.json"),
        JSON.stringify({ provider: { [provider]: { options: { baseURL: "http://elsewhere/v1" } } } }),
      ),
    item: "override",
    what: new RegExp(
      `^~/\\.config/kilo/opencode\\.json sets provider\\.${provider}, and kilo applies it over kilo\\.jsonc$`,
    ),
    stepsRepair: false,
  },
  {
    name: "a ~/.kilocode config setting the model",
    drift: (d) => {
      mkdirSync(join(d.home, ".kilocode"));
      writeFileSync(join(d.home, ".kilocode/config.jsonc"), '{ "model": "other/model" }');
    },
    item: "override",
    what: /^~\/\.kilocode\/config\.jsonc sets model/,
    stepsRepair: false,
  },
  {
    name: "the managed (system) dir setting enabled_providers",
    drift: (d) => writeFileSync(join(d.systemDir, "kilo.json"), '{ "enabled_providers": ["openai"] }'),
    item: "override",
    what: /kilo\.json sets enabled_providers/,
    stepsRepair: false,
  },
  {
    name: "KILO_CONFIG set in .bashrc",
    drift: (d) => edit(join(d.home, ".bashrc"), (t) => `${t}export KILO_CONFIG="$HOME/other-kilo.json"\n`),
    item: "override",
    what: /^~\/\.bashrc line \d+ sets KILO_CONFIG, so kilo reads another config$/,
    stepsRepair: false,
  },
  {
    name: "KILO_CONFIG_CONTENT set in .zshenv",
    drift: (d) => writeFileSync(join(d.home, ".zshenv"), "# mine\nexport KILO_CONFIG_CONTENT='{}'\n"),
    item: "override",
    what: /^~\/\.zshenv line 2 sets KILO_CONFIG_CONTENT/,
    stepsRepair: false,
  },
  {
    name: "autoupdate turned back on in kilo.jsonc",
    drift: (d) => edit(kiloJsonc(d), (t) => t.replace('"autoupdate": false', '"autoupdate": true')),
    item: "autoupdate",
    what: /sets autoupdate to true \(the pin needs false\)$/,
    stepsRepair: true,
  },
  {
    name: "KILO_DISABLE_AUTOUPDATE dropped from the env file",
    drift: (d) => edit(envFile(d), (t) => t.replace("export KILO_DISABLE_AUTOUPDATE='1'\n", "")),
    item: "autoupdate",
    what: /no longer sets KILO_DISABLE_AUTOUPDATE=1/,
    stepsRepair: true,
  },
];

describe("doctor names exactly the drifted item on exactly the drifted host", () => {
  const clean = deployed();

  test("freshly deployed HOMEs: ok, nothing else (npm layout; and with the key compared: same)", async () => {
    const other = deployed();
    const [a, b] = await doctorOn([other, clean]);
    for (const r of [a, b]) {
      expect(r).toMatchObject({ status: "ok", drift: [], tool: "deployed", kind: "local" });
      expect(r.kilo).toEqual({ version: TEST_KILO_VERSION, layout: "npm" });
      expect(r.key).toBeUndefined();
    }
    const withKey = await doctorOn([other, clean], KEY);
    for (const r of withKey) expect(r).toMatchObject({ status: "ok", key: "same", drift: [] });
  });

  for (const c of CASES) {
    test(c.name, async () => {
      const d = deployed();
      c.drift(d);
      const [drifted, other] = await doctorOn([d, clean]);
      expect(other).toMatchObject({ host: "beta", status: "ok", drift: [] });
      expect(drifted.host).toBe("alpha");
      expect(drifted.status).toBe("drifted");
      expect(drifted.drift.map((f) => f.item)).toEqual([c.item]);
      expect(drifted.drift[0].what).toMatch(c.what);
      c.check?.(drifted);
      if (c.stepsRepair) {
        repair(d);
        const [again] = await doctorOn([d]);
        expect(again).toMatchObject({ status: "ok", drift: [] });
      }
    });
  }

  test("a different key (--key-env): key, only same/different comes back; the env step with the key repairs it", async () => {
    const d = deployed();
    const other = testKey();
    const r = runLocal(d.steps.env.create, d.env, `${other}\n`);
    expect(r.code, r.stderr).toBe(0);
    const [drifted, ok] = await doctorOn([d, clean], KEY);
    expect(ok).toMatchObject({ status: "ok", key: "same" });
    expect(drifted).toMatchObject({ status: "drifted", key: "different" });
    expect(drifted.drift.map((f) => f.item)).toEqual(["key"]);
    expect(JSON.stringify(drifted)).not.toContain(other);
    // Without --key-env the key is not looked at: the host matches.
    expect((await doctorOn([d]))[0]).toMatchObject({ status: "ok" });
    repair(d);
    expect((await doctorOn([d], KEY))[0]).toMatchObject({ status: "ok", key: "same" });
  });

  test("XDG_CONFIG_HOME set after the deploy: the moved config dir is named; the steps move the files (issue 17, item 1)", async () => {
    const d = deployed();
    d.env = { ...d.env, XDG_CONFIG_HOME: join(d.home, "xdg") };
    const [r] = await doctorOn([d]);
    expect(r.status).toBe("drifted");
    const moved = r.drift.filter((f) => /XDG_CONFIG_HOME changed/.test(f.what));
    expect(moved.map((f) => [f.item, f.found, f.expected])).toEqual([
      ["kilo.jsonc", "~/.config/kilo", "~/xdg/kilo"],
      ["env-file", "~/.config/kilo", "~/xdg/kilo"],
    ]);
    repair(d);
    expect((await doctorOn([d], KEY))[0]).toMatchObject({ status: "ok", key: "same", drift: [] });
    expect(readdirSync(join(d.home, ".config/kilo")).filter((n) => n.startsWith("codex-pooler"))).toEqual([]);
  });

  test("XDG_STATE_HOME set after the deploy: the records stay where the steps find them, nothing to report (issue 17, item 1)", async () => {
    const d = deployed();
    d.env = { ...d.env, XDG_STATE_HOME: join(d.home, "state-elsewhere") };
    expect((await doctorOn([d], KEY))[0]).toMatchObject({ status: "ok", key: "same", drift: [] });
  });

  test("records an earlier version kept under XDG_STATE_HOME: named; the next apply moves them", async () => {
    const d = deployed();
    const xdg = join(d.home, "state-elsewhere");
    const fixed = join(d.home, ".local/state/kilo-fleet");
    mkdirSync(join(xdg, "kilo-fleet"), { recursive: true });
    for (const name of readdirSync(fixed)) renameSync(join(fixed, name), join(xdg, "kilo-fleet", name));
    rmSync(join(d.home, ".local/state"), { recursive: true });
    d.env = { ...d.env, XDG_STATE_HOME: xdg };
    const [r] = await doctorOn([d], KEY);
    expect(r.status).toBe("drifted");
    expect(r.drift.map((f) => [f.item, f.found, f.expected])).toEqual([
      ["records", "~/state-elsewhere/kilo-fleet", "~/.local/state/kilo-fleet"],
    ]);
    expect(r.drift[0].what).toMatch(/where an earlier version kept them \(XDG_STATE_HOME\): deploy again to move them/);
    repair(d);
    expect((await doctorOn([d], KEY))[0]).toMatchObject({ status: "ok", key: "same", drift: [] });
    // kilo-fleet's dir there is gone; the one above it is not on its records (made here by the test): kept.
    expect(readdirSync(xdg)).toEqual([]);
  });

  test("--key-env hands the host no key: a tool file replaced by a recorder gets a fresh nonce only (issue 17, item 11)", async () => {
    const d = deployed();
    const rec = join(d.root, "recorded");
    mkdirSync(rec);
    // The user's (or anyone's) replacement of the deployed tool: records all it is given, answers a guess.
    const recorder = `#!/bin/sh
n=$(ls '${rec}' | wc -l | tr -d ' ')
cat > '${rec}/stdin.'$n
printf '%s\\n' "$@" > '${rec}/argv.'$n
env > '${rec}/env.'$n
printf 'kilo-fleet-result {"step":"check","kilo":{"layout":"npm"},"drift":[],"keyProof":{"hmac":"%s","file":"~/x"}}\\n' "$(printf '0%.0s' $(seq 64))"
`;
    writeFileSync(join(d.home, ".local/share/kilo-fleet", `tool-${tool.id}.cjs`), recorder);
    const target = localTarget(built, "alpha", d, true);
    const reports = [
      await checkHosts([target], { tool, key: KEY, parallel: 1 }),
      await checkHosts([target], { tool, key: KEY, parallel: 1 }),
    ].flat();
    const names = readdirSync(rec).sort();
    expect(names).toEqual(["argv.0", "argv.3", "env.0", "env.3", "stdin.0", "stdin.3"]);
    // The check's argument is stdin's first line (none on the command line), the nonce the second.
    for (const n of ["argv.0", "argv.3"]) expect(readFileSync(join(rec, n), "utf8")).toBe("check\n-\n");
    const stdins = ["stdin.0", "stdin.3"].map((n) => readFileSync(join(rec, n), "utf8").split("\n"));
    for (const [arg, nonce, ...rest] of stdins) {
      expect(decodeStepArg(arg)).toEqual(target.args);
      expect(nonce).toMatch(/^[0-9a-f]{64}$/);
      expect(rest).toEqual([""]);
    }
    expect(stdins[0][1]).not.toBe(stdins[1][1]);
    for (const n of names) expect(readFileSync(join(rec, n), "utf8")).not.toContain(KEY);
    // A guessed answer is not the key's: the verdict is made here.
    for (const r of reports) {
      expect(r).toMatchObject({ status: "drifted", key: "different" });
      expect(r.drift.map((f) => f.item)).toEqual(["key"]);
    }
  });

  test("kilo in kilo-fleet's package layout: its version is read through the link; a downgrade is named", async () => {
    const d = deployed(KEY, "package");
    const [r] = await doctorOn([d]);
    expect(r).toMatchObject({ status: "ok", kilo: { version: TEST_KILO_VERSION, layout: "package" } });
    const pkg = join(d.home, ".local/share/kilo-fleet/kilo", TEST_KILO_VERSION, "linux-x64", "package.json");
    edit(pkg, (t) => t.replace(`"version": "${TEST_KILO_VERSION}"`, '"version": "7.7.6"'));
    const [after] = await doctorOn([d]);
    expect(after.drift).toEqual([
      expect.objectContaining({ item: "kilo", what: `7.7.6 installed, pinned ${TEST_KILO_VERSION}` }),
    ]);
  });

  test("with a lock, a package-layout kilo is checked against it through the install's own record", async () => {
    const d = deployed(KEY, "package");
    const integrity = (c: string) => `sha512-${c.repeat(86)}==`;
    const record = join(d.home, ".local/state/kilo-fleet/kilo-package");
    const check = async (locked: Record<string, string>) => {
      const target = localTarget(built, "alpha", d);
      const before = snapshot(d.home);
      const [r] = await checkHosts([{ ...target, args: { ...target.args, locked } }], { tool, parallel: 1 });
      expect(snapshot(d.home)).toEqual(before);
      return r;
    };
    // No record of kilo-fleet's: the package cannot be vouched for.
    expect((await check({ "linux-x64": integrity("A") })).drift).toEqual([
      expect.objectContaining({
        item: "kilo",
        what: `kilo ${TEST_KILO_VERSION} has no install record of kilo-fleet's: its package is unverified`,
      }),
    ]);
    mkdirSync(join(d.home, ".local/state/kilo-fleet"), { recursive: true });
    writeFileSync(
      record,
      `root ${d.home}/.local/share/kilo-fleet/kilo\nversion ${TEST_KILO_VERSION} linux-x64 ${integrity("A")}\n`,
    );
    // The recorded package is the locked one: nothing to report.
    expect(await check({ "linux-x64": integrity("A"), "darwin-arm64": integrity("B") })).toMatchObject({
      status: "ok",
    });
    // The lock moved on (or the record is of another package): named, with both integrities cut short.
    const moved = await check({ "linux-x64": integrity("C") });
    expect(moved.drift).toEqual([
      expect.objectContaining({
        item: "kilo",
        what: `kilo ${TEST_KILO_VERSION} (linux-x64) is not the locked package`,
        expected: `${integrity("C").slice(0, 19)}…`,
        found: `${integrity("A").slice(0, 19)}…`,
      }),
    ]);
    expect((await check({ "darwin-arm64": integrity("B") })).drift).toEqual([
      expect.objectContaining({
        item: "kilo",
        what: `the lock has no linux-x64 package for kilo ${TEST_KILO_VERSION}`,
      }),
    ]);
  });

  test("several drifts at once are all named; a host without the deployed tool runs the build's", async () => {
    const d = deployed();
    unlinkSync(envFile(d));
    edit(join(d.home, ".bashrc"), (t) => `${t}KILO_CONFIG_DIR=/srv/kilo\n`);
    const toolDir = join(d.home, ".local/share/kilo-fleet");
    const shipped = readdirSync(toolDir).find((f) => f.startsWith("tool-"));
    expect(shipped).toBe(`tool-${tool.id}.cjs`);
    renameSync(join(toolDir, `tool-${tool.id}.cjs`), join(d.root, "tool.aside"));
    const [r] = await doctorOn([d]);
    expect(r.tool).toBe("sent");
    expect(r.drift.map((f) => f.item).sort()).toEqual(["env-file", "override"]);
  });

  test("the check subcommand takes no lock and writes nothing even with a deploy's lock held (busy)", async () => {
    const d = deployed();
    mkdirSync(join(d.home, ".kilo-fleet.lock"));
    writeFileSync(join(d.home, ".kilo-fleet.lock", "owner"), `${process.pid} ${hostname()}\n`);
    const [r] = await doctorOn([d]);
    expect(r).toMatchObject({ status: "ok", busy: true });
  }, 30_000);
});

describe("a host with caCertificates and a proxy: the variables they add to the env file", () => {
  const ca = makePrivateCa({ name: "doctor" });
  afterAll(() => ca.cleanup());
  const PROXY = { https: "http://127.0.0.1:3128", noProxy: "localhost,127.0.0.1" };
  const withExtras = (proxy?: typeof PROXY) =>
    buildSettings({
      kiloVersion: TEST_KILO_VERSION,
      install: { method: "npm" },
      caCertificates: ca.caCert,
      ...(proxy !== undefined ? { proxy } : {}),
    });

  const ENV = "~/.config/kilo/codex-pooler.env";
  const CA_FILE = "~/.config/kilo/ca-certificates.pem";
  const edited = (v: string) => ({
    item: "env-file",
    what: `${ENV} was edited: ${v} is not what the env step writes`,
    path: v,
    file: ENV,
  });
  /** The env step again (what the next deploy does); the doctor is clean after it. */
  const envStep = async (d: DeployedHome, b: Built) => {
    const r = runLocal(d.steps.env.create, d.env, `${KEY}\n`);
    expect(r.code, r.stderr).toBe(0);
    expect((await doctorOn([d], KEY, b))[0]).toMatchObject({ status: "ok", key: "same", drift: [] });
  };

  test("caCertificates: a fresh deploy matches; NODE_EXTRA_CA_CERTS edited, the CA file loosened, removed or not the stack's: named", async () => {
    const b = withExtras();
    const d = deployed(KEY, "npm", b);
    const caFile = join(d.home, ".config/kilo/ca-certificates.pem");
    expect(readFileSync(envFile(d), "utf8")).toContain(`\nexport NODE_EXTRA_CA_CERTS='${caFile}'\n`);
    expect((await doctorOn([d], KEY, b))[0]).toMatchObject({ status: "ok", key: "same", drift: [] });
    const drift = async (bb: Built = b) => (await doctorOn([d], undefined, bb))[0].drift;

    const text = readFileSync(envFile(d), "utf8");
    edit(envFile(d), (t) =>
      t.replace(/^export NODE_EXTRA_CA_CERTS=.*$/m, "export NODE_EXTRA_CA_CERTS='/tmp/mine.pem'"),
    );
    expect(await drift()).toEqual([edited("NODE_EXTRA_CA_CERTS")]);
    writeFileSync(envFile(d), text);

    const whats = async (bb?: Built) => (await drift(bb)).map((f) => f.what);
    const notTheStacks = `${CA_FILE} is not the stack's caCertificates (edited, or the setting changed since the deploy)`;
    chmodSync(caFile, 0o666);
    expect(await whats()).toEqual([`${CA_FILE} has mode 0666, expected 0644`]);
    chmodSync(caFile, 0o644);
    const other = makePrivateCa({ name: "doctor-other" });
    try {
      const changed = buildSettings({ kiloVersion: TEST_KILO_VERSION, caCertificates: other.caCert });
      expect(await whats(changed)).toEqual([notTheStacks]);
    } finally {
      other.cleanup();
    }
    edit(caFile, (t) => `${t}\n`);
    expect(await whats()).toEqual([notTheStacks]);
    unlinkSync(caFile);
    expect(await whats()).toEqual([`the CA file ${CA_FILE} is missing`]);
    await envStep(d, b);
  });

  test("caCertificates and a proxy: a fresh deploy matches; each variable edited, dropped or added is named by name", async () => {
    const b = withExtras(PROXY);
    const d = deployed(KEY, "npm", b);
    const text = readFileSync(envFile(d), "utf8");
    for (const v of ["NODE_EXTRA_CA_CERTS", "HTTPS_PROXY", "no_proxy"])
      expect(text).toMatch(new RegExp(`^export ${v}='`, "m"));
    expect((await doctorOn([d], KEY, b))[0]).toMatchObject({ status: "ok", key: "same", drift: [] });
    for (const v of ["HTTPS_PROXY", "no_proxy"]) {
      edit(envFile(d), (t) =>
        t.replace(new RegExp(`^export ${v}='[^']*'$`, "m"), `export ${v}='http://elsewhere:3128'`),
      );
      const [r] = await doctorOn([d], undefined, b);
      expect(r.status).toBe("drifted");
      expect(r.drift).toEqual([edited(v)]);
      writeFileSync(envFile(d), text);
    }
    edit(envFile(d), (t) => `${t.replace(/^export NO_PROXY=.*\n/m, "")}export NODE_OPTIONS='--inspect'\n`);
    const [r] = await doctorOn([d], undefined, b);
    expect(r.drift.map((f) => [f.path, f.what])).toEqual([
      ["NO_PROXY", `${ENV} was edited: it does not set NO_PROXY`],
      ["NODE_OPTIONS", `${ENV} was edited: it sets NODE_OPTIONS, which the env step does not write`],
    ]);
    await envStep(d, b);
  });
});

describe("the command", () => {
  const scratch = mkdtempSync(join(tmpdir(), "kilo-fleet-doctor-cli-"));
  cleanup.push(scratch);
  const stack = join(scratch, "Pulumi.doc.yaml");
  writeFileSync(
    stack,
    [
      "config:",
      "  kilo-fleet:poolerBaseUrl: http://localhost:4000/v1",
      `  kilo-fleet:kiloVersion: "${TEST_KILO_VERSION}"`,
      "  kilo-fleet:hosts:",
      "    - name: alpha",
      "      local: true",
      "",
    ].join("\n"),
  );
  const run = async (argv: string[], env: NodeJS.ProcessEnv, tty = false) => {
    let stdout = "";
    let stderr = "";
    const io: DoctorIo = {
      env,
      stdout: (t) => {
        stdout += t;
      },
      stderr: (t) => {
        stderr += t;
      },
      stderrIsTTY: tty,
      projectDir: ROOT,
      tool,
    };
    const code = await doctor(argv, io);
    return { code, stdout, stderr };
  };

  test("table, --json, --key-env, --host and the exit codes", async () => {
    const d = deployed();
    const before = snapshot(d.home);
    let r = await run(["--file", stack], d.env);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toMatch(/^HOST {3}STATUS\nalpha {2}ok\n1 host: 1 ok \(\d+\.\d s\)\n$/);

    chmodSync(envFile(d), 0o640);
    r = await run(["--file", stack, "--json"], d.env);
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ ok: 0, drifted: 1, unreachable: 0, error: 0 });
    expect(doc.hosts).toEqual([
      expect.objectContaining({
        host: "alpha",
        status: "drifted",
        drift: [expect.objectContaining({ item: "env-file" })],
      }),
    ]);
    chmodSync(envFile(d), 0o600);

    r = await run(["--file", stack, "--key-env", "DOCTOR_TEST_KEY"], { ...d.env, DOCTOR_TEST_KEY: testKey() });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /alpha {2}drifted: key: the key in ~\/\.config\/kilo\/codex-pooler\.env is not the one compared/,
    );
    r = await run(["--file", stack, "--key-env", "DOCTOR_TEST_KEY", "--host", "alpha"], {
      ...d.env,
      DOCTOR_TEST_KEY: KEY,
    });
    expect(r.code).toBe(0);
    r = await run(["--file", stack], d.env, true);
    expect(r.stderr).toContain("doctor: 1/1 checked (alpha: ok)");
    expect(r.stdout).toContain("alpha  ok\n");
    expect(snapshot(d.home)).toEqual(before);
  });

  test("a check argument longer than one command-line argument may be (config and policy both large): ok, exit 0; --key-env; drift at its end named", async () => {
    // Each step's argument fits (validate passes); the check's holds the managed config and the policy both.
    const instructions = Array.from(
      { length: 2000 },
      (_, i) => `docs/team/instructions/rule-${String(i).padStart(5, "0")}.md`,
    );
    const bash = Object.fromEntries(
      Array.from({ length: 2000 }, (_, i) => [`tool-${String(i).padStart(5, "0")} --dangerous-flag *`, "deny"]),
    );
    const settings = { kiloSettings: { instructions }, policy: { permission: { bash } } };
    const big = buildSettings({ kiloVersion: TEST_KILO_VERSION, install: { method: "npm" }, ...settings });
    expect(Buffer.byteLength(encodeStepArg(checkArgsFor(big.spec, true)))).toBeGreaterThan(MAX_ARG_BYTES);
    const d = deployed(KEY, "npm", big);
    chmodSync(d.systemDir, 0o755); // as /etc/kilo is (the policy step refuses a dir other users cannot read)
    const policyStep = runLocal(d.steps.policy?.create ?? "false", d.env);
    expect(policyStep.code, policyStep.stderr).toBe(0);
    const file = join(scratch, "Pulumi.big.yaml");
    writeFileSync(
      file,
      [
        "config:",
        "  kilo-fleet:poolerBaseUrl: http://localhost:4000/v1",
        `  kilo-fleet:kiloVersion: "${TEST_KILO_VERSION}"`,
        ...Object.entries(settings).map(([k, v]) => `  kilo-fleet:${k}: ${JSON.stringify(v)}`),
        "  kilo-fleet:hosts:",
        "    - name: alpha",
        "      local: true",
        "",
      ].join("\n"),
    );
    const before = snapshot(d.home);
    let r = await run(["--file", file], d.env);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toContain("alpha  ok\n");
    r = await run(["--file", file, "--key-env", "DOCTOR_TEST_KEY"], { ...d.env, DOCTOR_TEST_KEY: KEY });
    expect(r).toMatchObject({ code: 0, stderr: "" });
    r = await run(["--file", file, "--key-env", "DOCTOR_TEST_KEY", "--json"], {
      ...d.env,
      DOCTOR_TEST_KEY: testKey(),
    });
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).hosts[0]).toMatchObject({ status: "drifted", key: "different" });
    // The policy's last entry is the argument's end: it arrived whole.
    const policyFile = join(d.systemDir, "kilo.jsonc");
    edit(policyFile, (t) =>
      t.replace('"tool-01999 --dangerous-flag *": "deny"', '"tool-01999 --dangerous-flag *": "allow"'),
    );
    r = await run(["--file", file, "--json"], d.env);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).hosts[0].drift).toEqual([
      expect.objectContaining({ item: "policy", path: "permission.bash.tool-01999 --dangerous-flag *" }),
    ]);
    expect(snapshot(d.home)).toEqual(before);
  });

  test("usage errors exit 2, an invalid stack 1", async () => {
    const env = { ...process.env, DOCTOR_TEST_KEY: undefined };
    for (const [argv, message] of [
      [[], /needs --stack NAME or --file PATH/],
      [["--file", stack, "--host", "nope"], /no host "nope" .*\(hosts: alpha\)/],
      [["--file", stack, "--key-env", "DOCTOR_TEST_KEY"], /\$DOCTOR_TEST_KEY is not set/],
      [["--file", stack, "--key", "sk-abc"], /--key is refused/],
      [["--file", stack, "--parallel", "0"], /--parallel must be 1-256/],
      [["--stack", "no-such-stack"], /no stack "no-such-stack"/],
    ] as const) {
      const r = await run([...argv], env);
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe("");
    }
    expect((await run(["--file", stack, "--key", "sk-abc"], env)).stderr).not.toContain("sk-abc");
    const bad = join(scratch, "Pulumi.bad.yaml");
    writeFileSync(bad, "config:\n  kilo-fleet:poolerBaseUrl: not-a-url\n  kilo-fleet:hosts: []\n");
    // An invalid stack is a problem found (exit 1), as validate says it: one exit-code table (cli/shared.ts).
    const r = await run(["--file", bad], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/invalid, no host checked\n {2}kilo-fleet:poolerBaseUrl: /);
  });

  test("npm run kilo-fleet -- doctor (the real entry point)", () => {
    const d = deployed();
    edit(kiloJsonc(d), (t) => t.replace('"autoupdate": false', '"autoupdate": true'));
    const r = spawnSync(
      join(ROOT, "node_modules/.bin/tsx"),
      [join(ROOT, "cli/kilo-fleet.ts"), "doctor", "--file", stack],
      {
        cwd: ROOT,
        env: d.env,
        encoding: "utf8",
        timeout: 60_000,
      },
    );
    expect(r.stderr).toBe("");
    expect(r.status).toBe(1);
    expect(r.stdout).toContain("alpha  drifted: autoupdate: ~/.config/kilo/kilo.jsonc sets autoupdate to true");
  });
});

describe("the ssh invocation", () => {
  test("ends ssh's options with --, so a host name can never be read as an option", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kilo-fleet-ssh-argv-"));
    cleanup.push(dir);
    const record = join(dir, "argv");
    const fakeSsh = join(dir, "ssh");
    writeFileSync(fakeSsh, `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a"; done >${record}\nexit 255\n`, {
      mode: 0o755,
    });
    const [report] = await checkHosts(
      [
        {
          name: "box",
          kind: "ssh",
          ssh: { host: "box.lan", user: "dev", port: 2222 },
          args: { host: "box", version: "7.7.7", managed: {}, var: "K", shells: "default", compareKey: false },
        },
      ],
      { tool, sshBinary: fakeSsh, timeoutMs: 10_000 },
    );
    expect(report.status).toBe("unreachable");
    const argv = readFileSync(record, "utf8").split("\n");
    const end = argv.indexOf("--");
    expect(end).toBeGreaterThan(0);
    expect(argv.slice(end + 1, end + 2)).toEqual(["box.lan"]);
    expect(argv.slice(0, end)).toContain("-l");
  });
});
