/**
 * Failure paths: each gives one clear `kilo-fleet: ...` line on stderr, exit 1, and leaves no
 * half-written file. npm missing, node too old, npm install failing (unreachable npmRegistry), invalid
 * JSONC, and an unwritable ~/.config (over SSH as an ordinary user: root ignores file modes).
 */
import { chmodSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { parseResult } from "../common/result";
import { hostToolArtifact } from "../deployer/hostTool";
import {
  buildSettings,
  deployScripts,
  makeHome,
  runLocal,
  scriptEnv,
  snapshot,
  snapshotObject,
  USER_BASHRC,
  USER_KILO_JSONC,
} from "../harness/hostHome";
import { type SshServer, startSshd } from "../harness/sshd";

// install.method npm: the header's node/npm checks (the package method needs neither: install.package).
const built = buildSettings({ install: { method: "npm" } });
const scripts = deployScripts(built);
/** A step that only needs the tool to start (no state: it changes nothing): proves a JavaScript runtime was found. */
const probe = scripts.config.delete ?? "";
const oneLine = (s: string) => expect(s.split("\n").filter(Boolean)).toHaveLength(1);
const noTempLeft = (tmp: string) => expect(readdirSync(tmp).filter((n) => n.startsWith("kilo-fleet"))).toEqual([]);

/** A PATH dir holding every /usr/bin tool except node/npm (and `node` pointing at `nodeTarget`, if given). */
function toolsWithout(root: string, nodeTarget?: string): string {
  const bin = join(root, "tools");
  mkdirSync(bin);
  for (const name of readdirSync("/usr/bin")) {
    if (["node", "nodejs", "npm", "npx", "corepack"].includes(name)) continue;
    symlinkSync(join("/usr/bin", name), join(bin, name));
  }
  if (nodeTarget) symlinkSync(nodeTarget, join(bin, "node"));
  return bin;
}

describe("node and npm", () => {
  test("npm missing: the npm install says so in one line, nothing written; the other steps need node only", () => {
    const h = makeHome();
    try {
      const env = scriptEnv(h.home, h.tmp, { PATH: toolsWithout(h.root, process.execPath) });
      const before = snapshotObject(snapshot(h.home));
      const r = runLocal(scripts.install.create, env);
      expect(r.code).toBe(1);
      oneLine(r.stderr);
      expect(r.stderr).toMatch(
        /^kilo-fleet: node >= 18 and npm are required on this host for install\.method npm: npm not found \(node \d+\.\d+\.\d+ is at \/\S+\/tools\/node, with no npm beside it or on PATH\)\n$/,
      );
      expect(r.stdout).toBe("");
      expect(snapshotObject(snapshot(h.home))).toEqual(before);
      noTempLeft(h.tmp);
      // config and env run on that node, without npm.
      for (const s of [scripts.config, scripts.env]) {
        const r = runLocal(s.create, env, "test-key-x\n");
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toMatch(/kilo-fleet-result \{"step":"(config|env)"/);
      }
    } finally {
      rmSync(h.root, { recursive: true, force: true });
    }
  });

  test("no node at all (nor a Bun kilo: npm's launcher script does not count), and a node older than 18: one line each", () => {
    const h = makeHome();
    try {
      const tools = toolsWithout(h.root);
      // npm's layout: ~/.local/bin/kilo is a node script, which cannot run the tool without node.
      mkdirSync(join(h.home, ".local/bin"), { recursive: true });
      writeFileSync(join(h.home, ".local/bin/kilo"), "#!/usr/bin/env node\nrequire('x')\n", { mode: 0o755 });
      let r = runLocal(probe, scriptEnv(h.home, h.tmp, { PATH: tools }));
      expect(r.code).toBe(1);
      oneLine(r.stderr);
      expect(r.stderr).toMatch(
        /^kilo-fleet: node >= 18 or the kilo that install\.method package installs \(~\/\.local\/bin\/kilo\) is required on this host to run this step: no node found on PATH \(/,
      );
      r = runLocal(scripts.install.create, scriptEnv(h.home, h.tmp, { PATH: tools }));
      expect(r.code).toBe(1);
      oneLine(r.stderr);
      expect(r.stderr).toMatch(
        /^kilo-fleet: node >= 18 and npm are required on this host for install\.method npm: no node found on PATH \(/,
      );
      const old = join(h.root, "old");
      mkdirSync(old);
      writeFileSync(join(old, "node"), "#!/bin/sh\necho 16.20.2\n");
      writeFileSync(join(old, "npm"), "#!/bin/sh\necho 8.19.4\n");
      chmodSync(join(old, "node"), 0o755);
      chmodSync(join(old, "npm"), 0o755);
      r = runLocal(probe, scriptEnv(h.home, h.tmp, { PATH: `${old}:${tools}` }));
      expect(r.code).toBe(1);
      oneLine(r.stderr);
      expect(r.stderr).toBe(
        `kilo-fleet: node >= 18 or the kilo that install.method package installs (~/.local/bin/kilo) is required on this host to run this step: node 16.20.2 at ${old}/node is older than 18\n`,
      );
    } finally {
      rmSync(h.root, { recursive: true, force: true });
    }
  });

  test("node and npm off the PATH: found in ~/.local/bin, and the newest nvm version >= 18", () => {
    const h = makeHome();
    try {
      const tools = toolsWithout(h.root);
      const npm = join(process.execPath, "..", "npm");
      mkdirSync(join(h.home, ".local/bin"), { recursive: true });
      symlinkSync(process.execPath, join(h.home, ".local/bin/node"));
      symlinkSync(npm, join(h.home, ".local/bin/npm"));
      // Only ~/.local/bin has a node: the tool runs, so the header found it there.
      let r = runLocal(probe, scriptEnv(h.home, h.tmp, { PATH: tools }));
      expect(r.stderr).toBe("");
      expect(r.stdout).toContain('kilo-fleet-result {"step":"config-delete"');
      rmSync(join(h.home, ".local/bin"), { recursive: true });
      for (const [v, real] of [
        ["v16.20.2", false],
        ["v20.9.0", true],
        ["v9.0.0", false],
      ] as const) {
        const d = join(h.home, ".nvm/versions/node", v, "bin");
        mkdirSync(d, { recursive: true });
        if (real) {
          symlinkSync(process.execPath, join(d, "node"));
          symlinkSync(npm, join(d, "npm"));
        } else {
          writeFileSync(join(d, "node"), `#!/bin/sh\necho ${v.slice(1)}\n`);
          writeFileSync(join(d, "npm"), "#!/bin/sh\necho 1.0.0\n");
          chmodSync(join(d, "node"), 0o755);
          chmodSync(join(d, "npm"), 0o755);
        }
      }
      // The fake nodes only print a version: the tool ran, so the header picked the real v20.9.0.
      r = runLocal(probe, scriptEnv(h.home, h.tmp, { PATH: tools }));
      expect(r.stderr).toBe("");
      expect(r.stdout).toContain('kilo-fleet-result {"step":"config-delete"');
    } finally {
      rmSync(h.root, { recursive: true, force: true });
    }
  });
});

test("npm install failing (unreachable npmRegistry): one line with npm's reason, nothing left behind", async () => {
  // A port nobody listens on: bind, note it, close.
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => resolve(typeof a === "object" && a ? a.port : 9));
    });
  });
  const b = buildSettings({ npmRegistry: `http://127.0.0.1:${port}/`, install: { method: "npm" } });
  const h = makeHome({ files: { ".bashrc": USER_BASHRC } });
  try {
    const before = snapshotObject(snapshot(h.home));
    // npm's own retries (2, with 10-60 s back-off) are the user's npm config; a test needs no minute-long wait.
    const r = runLocal(deployScripts(b).install.create, scriptEnv(h.home, h.tmp, { npm_config_fetch_retries: "0" }));
    expect(r.code).toBe(1);
    oneLine(r.stderr);
    expect(r.stderr).toMatch(
      new RegExp(
        `^kilo-fleet: npm install @kilocode/cli@7\\.7\\.7 failed on test-host \\(ECONNREFUSED: .*127\\.0\\.0\\.1:${port}.*\\)\\n$`,
      ),
    );
    expect(snapshotObject(snapshot(h.home))).toEqual(before); // not even an empty ~/.local/lib
    noTempLeft(h.tmp);
  } finally {
    rmSync(h.root, { recursive: true, force: true });
  }
}, 120_000);

test("invalid JSONC in kilo.jsonc: one line with line and column, the file untouched, no backup, no state", () => {
  const broken = `${USER_KILO_JSONC.slice(0, -3)},, }\n`;
  const h = makeHome({ files: { ".config/kilo/kilo.jsonc": broken } });
  try {
    const before = snapshotObject(snapshot(h.home));
    const r = runLocal(scripts.config.create, scriptEnv(h.home, h.tmp));
    expect(r.code).toBe(1);
    oneLine(r.stderr);
    expect(r.stderr).toMatch(
      new RegExp(
        `^kilo-fleet: ${h.home}/\\.config/kilo/kilo\\.jsonc is not valid JSONC \\(line 5, column \\d+: \\w+\\); left it untouched`,
      ),
    );
    expect(snapshotObject(snapshot(h.home))).toEqual(before);
    noTempLeft(h.tmp);
  } finally {
    rmSync(h.root, { recursive: true, force: true });
  }
});

test("warns once per file and key when a file kilo applies over kilo.jsonc sets a managed key", () => {
  const h = makeHome({
    files: {
      ".config/kilo/kilo.jsonc": USER_KILO_JSONC,
      ".config/kilo/opencode.json": '{"$schema": "x", "model": "openai/gpt-4o", "share": "manual"}',
      ".kilocode/config.json": '{"provider": {"codex-pooler": {"options": {"baseURL": "http://x/v1"}}}}',
    },
  });
  try {
    const r = runLocal(scripts.config.create, scriptEnv(h.home, h.tmp));
    expect(r.code).toBe(0);
    const warnings = r.stderr.split("\n").filter(Boolean);
    expect(warnings).toEqual([
      `kilo-fleet: warning: ${h.home}/.config/kilo/opencode.json sets "model", and kilo applies that file over kilo.jsonc, so kilo-fleet's value is ignored`,
      `kilo-fleet: warning: ${h.home}/.kilocode/config.json sets "provider.codex-pooler", and kilo applies that file over kilo.jsonc, so kilo-fleet's value is ignored`,
    ]);
    // The result names them too (and names no file when none overrides: test/steps.local.test.ts).
    expect(parseResult(r.stdout, "config")).toEqual({
      step: "config",
      configPath: "~/.config/kilo/kilo.jsonc",
      status: "updated",
      overriddenBy: [`${h.home}/.config/kilo/opencode.json`, `${h.home}/.kilocode/config.json`],
    });
  } finally {
    rmSync(h.root, { recursive: true, force: true });
  }
});

describe("an unwritable ~/.config (an ordinary user over SSH)", () => {
  let server: SshServer;
  beforeAll(async () => {
    server = await startSshd({ shell: "/bin/bash" });
  });
  afterAll(async () => {
    await server?.stop();
  });

  test("config and env scripts: one line each, nothing written anywhere", async () => {
    const as = (argv: string[]) => {
      const r = server.asUser(argv);
      expect(r.code, r.stderr).toBe(0);
    };
    // The tool step and its copy first, as on a deployed host.
    const ssh = deployScripts(built, "ssh");
    expect((await server.run(ssh.tool.create)).code).toBe(0);
    const tool = hostToolArtifact();
    server.copyToRemote(tool.file, tool.pathInHome);
    as(["sh", "-c", `printf '%s' "$1" > .bashrc && mkdir -m 555 .config`, "sh", USER_BASHRC]);
    const before = snapshotObject(snapshot(server.home));
    for (const s of [ssh.config, ssh.env]) {
      const r = await server.run(s.create, "test-key-unwritable\n");
      expect(r.code, r.stderr).toBe(1);
      oneLine(r.stderr);
      expect(r.stderr).toBe(`kilo-fleet: cannot create ${server.home}/.config/kilo: permission denied\n`);
      expect(snapshotObject(snapshot(server.home))).toEqual(before);
    }
    // With ~/.config/kilo present but read-only, the write itself fails: still one line, no temp file.
    as(["chmod", "755", ".config"]);
    as(["mkdir", "-m", "555", ".config/kilo"]);
    const ro = snapshotObject(snapshot(server.home));
    const r = await server.run(ssh.config.create);
    expect(r.code).toBe(1);
    oneLine(r.stderr);
    expect(r.stderr).toBe(`kilo-fleet: cannot write ${server.home}/.config/kilo: permission denied\n`);
    expect(snapshotObject(snapshot(server.home))).toEqual(ro);
    const e = await server.run(ssh.env.create, "test-key-ro\n");
    expect(e.code).toBe(1);
    expect(e.stderr).toBe(`kilo-fleet: cannot write ${server.home}/.config/kilo: permission denied\n`);
    expect(snapshotObject(snapshot(server.home))).toEqual(ro);
  });
});
