/**
 * install.method package through the shipped tool, on hosts without Node.js: the PATH every step runs with
 * is a directory of symlinks to this machine's /usr/bin tools minus node, nodejs, npm, npx and corepack
 * (locally by the test; over SSH by sshd's `SetEnv PATH=…`). The install step is the tool's sh header alone
 * (`install-package`, host/kilo-package.sh's functions); every other step runs the tool as JavaScript on
 * the kilo it installed (BUN_BE_BUN=1), the smoke check included (against the stand-in pooler).
 *
 * The real registry: deploy, re-apply (same bytes in HOME), smoke, destroy (HOME as before), locally and
 * over SSH. A stand-in registry on loopback (harness/fakeRegistry.ts): a tampered tarball is refused with
 * nothing changed, and a download killed midway leaves the old kilo in use, both through the tool's
 * subcommand. And a method switch (package → npm → package) with node present.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseResult } from "../common/result";
import { hostStepCommands } from "../deployer/hostSteps";
import { hostToolArtifact } from "../deployer/hostTool";
import { type KiloLock, readLockFile, shippedLockPath } from "../deployer/kiloLock";
import { type FakePooler, startFakePooler } from "../harness/fakePooler";
import { cachedTarball, type FakeRegistry, fakeKiloTarball, startFakeRegistry } from "../harness/fakeRegistry";
import {
  buildSettings,
  deployScripts,
  type Entry,
  isForeignFile,
  makeHome,
  scriptEnv,
  snapshot,
  snapshotObject,
  USER_FILES,
} from "../harness/hostHome";
import { runScript } from "../harness/runScript";
import { type SshServer, startSshd } from "../harness/sshd";

const KEY = "test-key-package-9c2e41d7";
const VERSION = "7.7.7";
const NODE_TOOLS = ["node", "nodejs", "npm", "npx", "corepack"];
const LOCK = readLockFile(shippedLockPath());
const tool = hostToolArtifact();
const scratch = mkdtempSync(join(tmpdir(), "kilo-fleet-pkg-tool-"));

let pooler: FakePooler;
beforeAll(async () => {
  pooler = await startFakePooler({ keys: KEY });
});
afterAll(async () => {
  await pooler?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

/** A PATH directory with every /usr/bin tool but node and npm. */
function pathWithoutNode(root: string): string {
  const bin = join(root, "path-without-node");
  mkdirSync(bin);
  for (const name of readdirSync("/usr/bin")) {
    if (!NODE_TOOLS.includes(name)) symlinkSync(join("/usr/bin", name), join(bin, name));
  }
  return bin;
}

const run = (script: string, env: NodeJS.ProcessEnv, stdin = "") => runScript(script, env, { stdin });

/** The one `kilo-fleet: …` line of a failed step (exit 1, nothing on stdout). */
function failureLine(r: { code: number | null; stdout: string; stderr: string }): string {
  expect(r.code, r.stderr).toBe(1);
  expect(r.stdout).toBe("");
  const lines = r.stderr.split("\n").filter((l) => l.startsWith("kilo-fleet:"));
  expect(lines, r.stderr).toHaveLength(1);
  return lines[0];
}

const diffOf = (a: Record<string, Entry>, b: Record<string, Entry>) =>
  [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((p) => JSON.stringify(a[p]) !== JSON.stringify(b[p]));

describe("locally, node and npm hidden: the real registry", () => {
  it("deploys (tool, install, config, env, smoke on the installed kilo), re-applies with the same bytes, destroys to the same HOME", {
    timeout: 600_000,
  }, async () => {
    expect(LOCK?.kilo[VERSION], "stacks/kilo-fleet.lock.json must lock the default version").toBeDefined();
    const h = makeHome({ tool: false });
    try {
      const env = scriptEnv(h.home, h.tmp, { PATH: pathWithoutNode(h.root) });
      for (const hidden of ["node", "npm"]) {
        expect((await run(`command -v ${hidden}`, env)).code, `${hidden} is visible`).not.toBe(0);
      }
      const built = buildSettings({
        poolerBaseUrl: pooler.url,
        kiloVersion: VERSION,
        smokeCheck: { enabled: true, timeoutSeconds: 120 },
      });
      expect(built.spec.install).toEqual({ method: "package" });
      const steps = deployScripts(built);
      const smoke = steps.smoke?.create ?? "";
      expect(steps.install.create).toBe(
        `/bin/sh ~/.local/share/kilo-fleet/tool-${tool.id}.cjs install-package '${VERSION} - linux-x64=${LOCK?.kilo[VERSION]["linux-x64"].integrity}'`,
      );
      const before = snapshotObject(snapshot(h.home));

      expect((await run(steps.tool.create, env)).code).toBe(0);
      const shipped = snapshotObject(snapshot(h.home));
      // Before kilo is there, a JavaScript step has nothing to run on: one line, nothing changed.
      expect(failureLine(await run(steps.config.create, env))).toMatch(
        /^kilo-fleet: node >= 18 or the kilo that install\.method package installs \(~\/\.local\/bin\/kilo\) is required on this host to run this step: no node found on PATH \(/,
      );
      expect(snapshotObject(snapshot(h.home))).toEqual(shipped);

      const createAll = async () => {
        const out: Record<string, string> = {};
        for (const [step, script] of [
          ["tool", steps.tool.create],
          ["install", steps.install.create],
          ["config", steps.config.create],
          ["env", steps.env.create],
          ["smoke", smoke],
        ] as const) {
          const r = await run(script, env, step === "env" ? `${KEY}\n` : "");
          expect(r.code, `${step}: ${r.stderr}`).toBe(0);
          expect(`${r.stdout}${r.stderr}`).not.toContain(KEY);
          out[step] = r.stdout;
          out[`${step}Ms`] = String(Math.round(r.ms));
        }
        return out;
      };
      const first = await createAll();
      process.stdout.write(
        `[package, no node] cold: install ${first.installMs} ms, config ${first.configMs} ms, env ${first.envMs} ms, smoke ${first.smokeMs} ms\n`,
      );
      expect(parseResult(first.install, "install")).toEqual({
        step: "install",
        method: "package",
        kiloVersion: VERSION,
        platform: expect.stringMatching(/^linux-x64(-baseline)?$/),
        bin: join(h.home, ".local/bin/kilo"),
        changed: true,
      });
      expect(parseResult(first.config, "config")?.status).toBe("updated");
      expect(parseResult(first.smoke, "smoke")).toMatchObject({ pass: true, level: "kilo-run", kiloVersion: VERSION });
      expect(pooler.requests.some((r) => r.path === "/v1/chat/completions" && r.key === KEY && r.authorized)).toBe(
        true,
      );
      expect(readlinkSync(join(h.home, ".local/bin/kilo"))).toMatch(
        new RegExp(`/\\.local/share/kilo-fleet/kilo/${VERSION.replace(/\./g, "\\.")}/linux-x64[^/]*/bin/kilo$`),
      );

      const deployed = snapshotObject(snapshot(h.home, isForeignFile));
      const again = await createAll();
      expect(parseResult(again.install, "install")?.changed).toBe(false);
      expect(Number(again.installMs)).toBeLessThan(1000);
      expect(parseResult(again.config, "config")?.status).toBe("unchanged");
      expect(parseResult(again.smoke, "smoke")?.pass).toBe(true);
      expect(diffOf(snapshotObject(snapshot(h.home, isForeignFile)), deployed)).toEqual([]);

      for (const [step, script] of [
        ["env", steps.env.delete],
        ["config", steps.config.delete],
        ["install", steps.install.delete],
        ["tool", steps.tool.delete],
      ] as const) {
        const r = await run(script ?? "", env);
        expect(r.code, `${step} delete: ${r.stderr}`).toBe(0);
        if (step === "install") {
          expect(r.stdout.trimEnd().split("\n").pop()).toBe(
            'kilo-fleet-result {"step":"install-delete","outcome":"removed the kilo installed from its package"}',
          );
        }
      }
      // Byte for byte, nothing filtered: kilo's own directories went to throw-away HOMEs.
      expect(diffOf(snapshotObject(snapshot(h.home)), before)).toEqual([]);
    } finally {
      rmSync(h.root, { recursive: true, force: true });
    }
  });
});

describe("over SSH, the session's PATH without node and npm: the real registry", () => {
  let server: SshServer;
  beforeAll(async () => {
    server = await startSshd({ shell: "/bin/bash", noNode: true });
    server.writeAsUser(USER_FILES);
    // A used machine's ~/.local/state (shells keep history there): kilo, run by the user below, adds to it.
    expect(server.asUser(["mkdir", "-p", ".local/state"]).code).toBe(0);
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
  });

  it("deploys (tool copied over SFTP), re-applies with the same bytes, runs the smoke check, destroys to the same HOME", {
    timeout: 600_000,
  }, async () => {
    const ssh = (script: string, stdin = "") => server.run(script, stdin, { timeoutMs: 300_000 });
    const hidden = await ssh("command -v node; command -v npm; echo $PATH");
    expect(hidden.stdout).toBe(`${server.noNodePath}\n`);
    const steps = deployScripts(
      buildSettings({
        poolerBaseUrl: pooler.url,
        kiloVersion: VERSION,
        smokeCheck: { enabled: true, timeoutSeconds: 120 },
      }),
      "ssh",
    );
    const before = snapshotObject(snapshot(server.home, isForeignFile));
    const createAll = async () => {
      const out: Record<string, string> = {};
      const t = await ssh(steps.tool.create);
      expect(t.code, t.stderr).toBe(0);
      server.copyToRemote(tool.file, tool.pathInHome);
      for (const [step, script] of [
        ["install", steps.install.create],
        ["config", steps.config.create],
        ["env", steps.env.create],
        ["smoke", steps.smoke?.create ?? ""],
      ] as const) {
        const started = Date.now();
        const r = await ssh(script, step === "env" ? `${KEY}\n` : "");
        expect(r.code, `${step}: ${r.stderr}`).toBe(0);
        expect(`${r.stdout}${r.stderr}`).not.toContain(KEY);
        out[step] = r.stdout;
        out[`${step}Ms`] = String(Date.now() - started);
      }
      return out;
    };
    const first = await createAll();
    process.stdout.write(
      `[package, no node, ssh] cold: install ${first.installMs} ms, config ${first.configMs} ms, env ${first.envMs} ms, smoke ${first.smokeMs} ms\n`,
    );
    expect(parseResult(first.install, "install")).toMatchObject({
      method: "package",
      kiloVersion: VERSION,
      bin: `${server.home}/.local/bin/kilo`,
      changed: true,
    });
    expect(parseResult(first.smoke, "smoke")).toMatchObject({ pass: true, kiloVersion: VERSION });
    // A login shell of the user finds the kilo the package install linked, and its key.
    const probe = await ssh(`bash -lc 'command -v kilo; kilo --version; echo "[$CODEX_POOLER_API_KEY]"'`);
    expect(probe.stdout).toBe(`${server.home}/.local/bin/kilo\n${VERSION}\n[${KEY}]\n`);

    const deployed = snapshotObject(snapshot(server.home, isForeignFile));
    const again = await createAll();
    expect(parseResult(again.install, "install")?.changed).toBe(false);
    expect(diffOf(snapshotObject(snapshot(server.home, isForeignFile)), deployed)).toEqual([]);

    for (const script of [steps.env.delete, steps.config.delete, steps.install.delete, steps.tool.delete]) {
      const r = await ssh(script ?? "");
      expect(r.code, r.stderr).toBe(0);
    }
    expect(diffOf(snapshotObject(snapshot(server.home, isForeignFile)), before)).toEqual([]);
  });
});

describe("a stand-in registry on loopback, through the tool's install-package", () => {
  let reg: FakeRegistry;
  beforeAll(async () => {
    const entry = LOCK?.kilo[VERSION]?.["linux-x64"];
    if (!entry) throw new Error(`stacks/kilo-fleet.lock.json has no ${VERSION} linux-x64 entry`);
    reg = await startFakeRegistry({
      packages: [
        { platform: "linux-x64", version: VERSION, file: await cachedTarball(entry) },
        { platform: "linux-x64", version: "7.7.8", file: fakeKiloTarball(scratch, "7.7.8") },
        { platform: "linux-x64", version: "7.7.9", file: fakeKiloTarball(scratch, "7.7.9") },
      ],
    });
  }, 300_000);
  afterAll(async () => {
    await reg?.stop();
  });

  /** The install step for `version`, against the stand-in, with the lock the stand-in's bytes give. */
  const installStep = (version: string) => {
    const built = buildSettings({ kiloVersion: version, npmRegistry: reg.url });
    const lock: KiloLock = {
      version: 1,
      kilo: {
        [version]: {
          "linux-x64": {
            package: "@kilocode/cli-linux-x64",
            tarball: "-",
            integrity: reg.integrity("linux-x64", version),
          },
        },
      },
    };
    return hostStepCommands(built.spec.name, built.spec, tool, "local", lock ? { lock } : {}).install;
  };
  /** `kilo --version` through the link (kilo makes directories in the HOME it runs with: a throw-away one). */
  const linkedVersion = async (home: string) => {
    const kiloHome = mkdtempSync(join(scratch, "kilo-home-"));
    const r = await run(`"${home}/.local/bin/kilo" --version`, { PATH: "/usr/bin:/bin", HOME: kiloHome });
    rmSync(kiloHome, { recursive: true, force: true });
    return r.stdout.trim();
  };

  it("a tampered tarball is refused in one line with nothing changed, on a fresh HOME and over an installed kilo", {
    timeout: 300_000,
  }, async () => {
    const h = makeHome();
    try {
      const env = scriptEnv(h.home, h.tmp, { PATH: pathWithoutNode(h.root) });
      const before = snapshotObject(snapshot(h.home));
      reg.setMode("tamper");
      expect(failureLine(await run(installStep(VERSION).create, env))).toMatch(
        /^kilo-fleet: the downloaded @kilocode\/cli-linux-x64@7\.7\.7 does not match the lock file's sha512 \(lock: sha512-\S+, downloaded: sha512-\S+, from http:\/\/127\.0\.0\.1:\d+\/@kilocode\/cli-linux-x64\/-\/cli-linux-x64-7\.7\.7\.tgz\); nothing was changed$/,
      );
      expect(snapshotObject(snapshot(h.home))).toEqual(before);

      reg.setMode("ok");
      const r = await run(installStep("7.7.8").create, env);
      expect(parseResult(r.stdout, "install"), r.stderr).toMatchObject({ kiloVersion: "7.7.8", changed: true });
      const installed = snapshotObject(snapshot(h.home));
      reg.setMode("tamper");
      expect(failureLine(await run(installStep("7.7.9").create, env))).toMatch(/does not match the lock file's sha512/);
      expect(snapshotObject(snapshot(h.home))).toEqual(installed);
      expect(await linkedVersion(h.home)).toBe("7.7.8");
      reg.setMode("ok");
      expect((await run(installStep("7.7.8").delete ?? "", env)).code).toBe(0);
      expect(snapshotObject(snapshot(h.home))).toEqual(before);
    } finally {
      reg.setMode("ok");
      rmSync(h.root, { recursive: true, force: true });
    }
  });

  it("a download killed midway (kill -9 of the step) leaves the old kilo linked and working; the next run is a clean no-op", {
    timeout: 300_000,
  }, async () => {
    const h = makeHome();
    try {
      const env = scriptEnv(h.home, h.tmp, { PATH: pathWithoutNode(h.root) });
      reg.setMode("ok");
      expect((await run(installStep("7.7.8").create, env)).code).toBe(0);
      const installed = snapshotObject(snapshot(h.home));

      reg.setMode("stall");
      const killed = await runScript(installStep(VERSION).create, env, {
        killWhen: reg.waitForTarballBytes(1_000_000),
      });
      expect(killed.killed).toBe(true);
      expect(await linkedVersion(h.home)).toBe("7.7.8");
      const kiloDir = join(h.home, ".local/share/kilo-fleet/kilo");
      expect(readdirSync(kiloDir).filter((n) => !n.startsWith("."))).toEqual(["7.7.8"]);

      reg.setMode("ok");
      const next = await run(installStep("7.7.8").create, env);
      expect(parseResult(next.stdout, "install"), next.stderr).toMatchObject({ kiloVersion: "7.7.8", changed: false });
      // The next run swept what the kill left (the download dir, the dead run's lock).
      expect(snapshotObject(snapshot(h.home))).toEqual(installed);
    } finally {
      reg.setMode("ok");
      rmSync(h.root, { recursive: true, force: true });
    }
  });
});

describe("switching install.method on one host (node and npm present)", () => {
  it("package → npm → package: each install removes the other method's kilo first; the delete leaves HOME as before", {
    timeout: 600_000,
  }, async () => {
    const h = makeHome();
    try {
      const env = scriptEnv(h.home, h.tmp);
      const steps = (method: "package" | "npm") =>
        deployScripts(buildSettings({ kiloVersion: VERSION, install: { method } })).install;
      const before = snapshotObject(snapshot(h.home));
      const link = join(h.home, ".local/bin/kilo");
      const npmPackageJson = join(h.home, ".local/lib/node_modules/@kilocode/cli/package.json");

      const a = await run(steps("package").create, env);
      expect(parseResult(a.stdout, "install"), a.stderr).toMatchObject({ method: "package", changed: true });
      expect(readlinkSync(link)).toContain("/.local/share/kilo-fleet/kilo/");

      const b = await run(steps("npm").create, env);
      expect(parseResult(b.stdout, "install"), b.stderr).toMatchObject({ method: "npm", changed: true });
      expect(b.stderr).toContain("[kilo-fleet] removing the kilo install.method package installed");
      expect(readlinkSync(link)).toBe("../lib/node_modules/@kilocode/cli/bin/kilo");
      expect(existsSync(join(h.home, ".local/share/kilo-fleet/kilo"))).toBe(false);

      const c = await run(steps("package").create, env);
      expect(parseResult(c.stdout, "install"), c.stderr).toMatchObject({ method: "package", changed: true });
      expect(c.stderr).toContain("[kilo-fleet] removing the kilo install.method npm installed");
      expect(readlinkSync(link)).toContain("/.local/share/kilo-fleet/kilo/");
      expect(existsSync(npmPackageJson)).toBe(false);

      expect((await run(steps("package").delete ?? "", env)).code).toBe(0);
      expect(diffOf(snapshotObject(snapshot(h.home)), before)).toEqual([]);
    } finally {
      rmSync(h.root, { recursive: true, force: true });
    }
  });

  it("a kilo the user installed with npm at the pinned version is kept (preexisting), and the delete leaves it", async () => {
    const h = makeHome({ kilo: true });
    try {
      const env = scriptEnv(h.home, h.tmp, { PATH: pathWithoutNode(h.root) });
      const install = deployScripts(buildSettings({ kiloVersion: VERSION })).install;
      const before = snapshotObject(snapshot(h.home));
      const r = await run(install.create, env);
      expect(r.code, r.stderr).toBe(0);
      expect(parseResult(r.stdout, "install")).toEqual({
        step: "install",
        kiloVersion: VERSION,
        bin: join(h.home, ".local/bin/kilo"),
        method: "preexisting",
        changed: false,
      });
      expect(snapshotObject(snapshot(h.home))).toEqual(before);
      expect((await run(install.delete ?? "", env)).code).toBe(0);
      expect(snapshotObject(snapshot(h.home))).toEqual(before);
      // Another version is not taken over: the user's kilo is never replaced.
      const other = deployScripts(buildSettings({ kiloVersion: "latest" })).install;
      expect(failureLine(await run(other.create, env))).toMatch(
        /\.local\/bin\/kilo exists and kilo-fleet did not install it .* or set install\.method npm, and deploy again$/,
      );
      expect(snapshotObject(snapshot(h.home))).toEqual(before);
    } finally {
      rmSync(h.root, { recursive: true, force: true });
    }
  });
});
