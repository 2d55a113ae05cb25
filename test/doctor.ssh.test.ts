/**
 * `kilo-fleet doctor` over SSH, with the system ssh client against the loopback sshd: a host deployed by
 * the real steps run as remote.Command runs them (the tool copied over SFTP as CopyToRemote does), a local
 * host beside it, a host on a closed port and one whose pinned host key is wrong. Drift on the SSH host is
 * named on that host only; its HOME never changes; a host without the deployed tool gets the build's for
 * the run only (nothing left in its TMPDIR); the key to compare travels on stdin; any login shell works; a check
 * argument too long for the remote command line travels on stdin too.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { checkArgsFor, type DoctorIo, doctor, type HostReport } from "../cli/doctor";
import { remoteCommandLine } from "../cli/remoteCommandLine";
import { encodeStepArg } from "../common/stepArgs";
import { hostToolArtifact } from "../deployer/hostTool";
import { type DeployedHome, deployHome } from "../harness/doctorCost";
import { buildSettings, deployScripts, isForeignFile, snapshot, testKey, USER_FILES } from "../harness/hostHome";
import { TEST_KILO_VERSION } from "../harness/kilo";
import { ensureAptPackages, freePort, type SshServer, startSshd } from "../harness/sshd";

const ROOT = join(__dirname, "..");
// npm: the install step finds the stand-in kilo at the pin and keeps it (no registry).
const built = buildSettings({ kiloVersion: TEST_KILO_VERSION, install: { method: "npm" } });
const scripts = deployScripts(built, "ssh");
const tool = hostToolArtifact();
const KEY = testKey();

let server: SshServer;
let laptop: DeployedHome;
let scratch: string;
let stack: string;

const remote = async (commandLine: string, stdin = "") => {
  const r = await server.run(commandLine, stdin, { timeoutMs: 120_000 });
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return r;
};

/** As the user on the SSH host. */
const asUser = (script: string) => {
  const r = server.asUser(["sh", "-c", script]);
  expect(r.code, r.stderr).toBe(0);
};

/** The user's files in /tmp that the doctor could have left (its mktemp names). */
const doctorTemps = () => readdirSync("/tmp").filter((f) => f.startsWith("kilo-fleet-doctor."));

beforeAll(async () => {
  ensureAptPackages([{ pkg: "fish", bin: "/usr/bin/fish" }]);
  server = await startSshd({ shell: "/bin/bash" });
  server.writeAsUser(USER_FILES);
  // A stand-in kilo in the npm layout (what the install step finds and keeps; no registry needed).
  asUser(
    [
      "set -e",
      "d=.local/lib/node_modules/@kilocode/cli",
      'mkdir -p "$d/bin" .local/bin',
      `printf '{"name":"@kilocode/cli","version":"${TEST_KILO_VERSION}"}\\n' >"$d/package.json"`,
      `printf '#!/bin/sh\\necho ${TEST_KILO_VERSION}\\n' >"$d/bin/kilo"`,
      'chmod 755 "$d/bin/kilo"',
      "ln -s ../lib/node_modules/@kilocode/cli/bin/kilo .local/bin/kilo",
    ].join("\n"),
  );
  await shipTool();
  for (const step of ["install", "config", "env"] as const) {
    await remote(scripts[step].create, step === "env" ? `${KEY}\n` : "");
  }
  laptop = deployHome(built, KEY);

  scratch = mkdtempSync(join(tmpdir(), "kilo-fleet-doctor-ssh-"));
  const wrongKey = join(scratch, "wrong");
  spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", wrongKey]);
  const wrongPub = readFileSync(`${wrongKey}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" ");
  const ssh = (port: number, hostKey: string) =>
    `      ssh: { host: 127.0.0.1, port: ${port}, user: ${server.user}, hostKey: "${hostKey}" }`;
  stack = join(scratch, "Pulumi.fleet.yaml");
  writeFileSync(
    stack,
    [
      "config:",
      "  kilo-fleet:poolerBaseUrl: http://localhost:4000/v1",
      `  kilo-fleet:kiloVersion: "${TEST_KILO_VERSION}"`,
      "  kilo-fleet:hosts:",
      "    - name: laptop",
      "      local: true",
      "    - name: remote",
      ssh(server.port, server.hostPublicKey),
      "    - name: asleep",
      ssh(await freePort(), server.hostPublicKey),
      "    - name: impostor",
      ssh(server.port, wrongPub),
      "",
    ].join("\n"),
  );
});

afterAll(async () => {
  await server?.stop();
  for (const d of [laptop?.root, scratch]) if (d) rmSync(d, { recursive: true, force: true });
});

async function shipTool() {
  await remote(scripts.tool.create);
  server.copyToRemote(tool.file, tool.pathInHome);
}

/** `doctor --file <file> --identity <key> --json …` (default: the fleet's stack); asserts neither HOME changed and no temp was left. */
async function runDoctor(extra: string[], env: Record<string, string> = {}, file = stack) {
  // The remote HOME without the files login shells write themselves (fish's ~/.local/share/fish, …).
  const remoteHome = () => snapshot(server.home, isForeignFile);
  const before = [remoteHome(), snapshot(laptop.home)];
  const temps = doctorTemps();
  let stdout = "";
  let stderr = "";
  const io: DoctorIo = {
    env: { ...laptop.env, ...env },
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    stderrIsTTY: false,
    projectDir: ROOT,
    tool,
  };
  const code = await doctor(["--file", file, "--identity", server.privateKeyPath, "--json", ...extra], io);
  expect(remoteHome()).toEqual(before[0]);
  expect(snapshot(laptop.home)).toEqual(before[1]);
  expect(doctorTemps()).toEqual(temps);
  expect(stderr).toBe("");
  const doc = JSON.parse(stdout) as { hosts: HostReport[] };
  const byName = Object.fromEntries(doc.hosts.map((h) => [h.host, h]));
  return { code, doc, byName, stdout };
}

const mine = ["--host", "laptop", "--host", "remote"];

describe("doctor over SSH", () => {
  test("the fleet: local and SSH ok, a closed port and a wrong host key unreachable (the others still checked)", async () => {
    const t = Date.now();
    const { code, byName, doc } = await runDoctor([]);
    process.stdout.write(`[doctor ssh] 4 hosts in ${Date.now() - t} ms\n`);
    expect(code).toBe(3);
    expect(doc.hosts.map((h) => h.host)).toEqual(["laptop", "remote", "asleep", "impostor"]);
    expect(byName.laptop).toMatchObject({ status: "ok", kind: "local", drift: [] });
    expect(byName.remote).toMatchObject({
      status: "ok",
      kind: "ssh",
      drift: [],
      tool: "deployed",
      kilo: { version: TEST_KILO_VERSION, layout: "npm" },
    });
    expect(byName.asleep).toMatchObject({ status: "unreachable", kind: "ssh" });
    expect(byName.asleep.reason).toMatch(/^connection refused \(127\.0\.0\.1 port \d+\)$/);
    expect(byName.impostor).toMatchObject({ status: "unreachable" });
    expect(byName.impostor.reason).toBe("host key verification failed: the host's key is not the pinned ssh.hostKey");
  });

  test("a host that accepts the connection and never answers: unreachable after --timeout", async () => {
    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()));
    const port = (silent.address() as { port: number }).port;
    try {
      const file = join(scratch, "Pulumi.silent.yaml");
      writeFileSync(
        file,
        [
          "config:",
          "  kilo-fleet:poolerBaseUrl: http://localhost:4000/v1",
          "  kilo-fleet:hosts:",
          "    - name: silent",
          `      ssh: { host: 127.0.0.1, port: ${port}, user: ${server.user}, hostKey: "${server.hostPublicKey}" }`,
          "",
        ].join("\n"),
      );
      let out = "";
      const t = Date.now();
      const code = await doctor(["--file", file, "--timeout", "2"], {
        env: process.env,
        stdout: (x) => {
          out += x;
        },
        stderr: () => {},
        stderrIsTTY: false,
        projectDir: ROOT,
        tool,
      });
      expect(Date.now() - t).toBeLessThan(8_000);
      expect(code).toBe(3);
      expect(out).toMatch(/^silent {2}unreachable: no answer within 2 s$/m);
    } finally {
      silent.close();
    }
  });

  test("the block removed from .bashrc: rc-block on remote only; the env step repairs it", async () => {
    asUser(`sed -i '/^# >>> kilo-fleet/,/^# <<< kilo-fleet <<</d' .bashrc`);
    let r = await runDoctor(mine);
    expect(r.code).toBe(1);
    expect(r.byName.laptop).toMatchObject({ status: "ok", drift: [] });
    expect(r.byName.remote.status).toBe("drifted");
    expect(r.byName.remote.drift.map((f) => [f.item, f.what])).toEqual([
      ["rc-block", "bash: no kilo-fleet block in ~/.bashrc"],
    ]);
    await remote(scripts.env.create, `${KEY}\n`);
    r = await runDoctor(mine);
    expect(r.code).toBe(0);
  });

  test("the env file 0644 and an opencode.json: both named, on remote only", async () => {
    asUser(`chmod 644 .config/kilo/codex-pooler.env && printf '{"autoupdate": true}' > .config/kilo/opencode.jsonc`);
    const r = await runDoctor(mine);
    expect(r.code).toBe(1);
    expect(r.byName.laptop.status).toBe("ok");
    expect(r.byName.remote.drift.map((f) => f.item)).toEqual(["env-file", "override"]);
    expect(r.byName.remote.drift[0].what).toBe("~/.config/kilo/codex-pooler.env has mode 0644, expected 0600");
    expect(r.byName.remote.drift[1].what).toMatch(/^~\/\.config\/kilo\/opencode\.jsonc sets autoupdate/);
    asUser("chmod 600 .config/kilo/codex-pooler.env && rm .config/kilo/opencode.jsonc");
    expect((await runDoctor(mine)).code).toBe(0);
  });

  test("--key-env: the key goes on stdin, is compared on the host, only same/different comes back", async () => {
    let r = await runDoctor([...mine, "--key-env", "DOCTOR_KEY"], { DOCTOR_KEY: KEY });
    expect(r.code).toBe(0);
    expect(r.byName.remote.key).toBe("same");
    const other = testKey();
    r = await runDoctor([...mine, "--key-env", "DOCTOR_KEY"], { DOCTOR_KEY: other });
    expect(r.code).toBe(1);
    expect(r.stdout).not.toContain(other);
    for (const h of ["laptop", "remote"]) {
      expect(r.byName[h]).toMatchObject({ status: "drifted", key: "different" });
      expect(r.byName[h].drift.map((f) => f.item)).toEqual(["key"]);
    }
  });

  test("a host without the current tool gets it for this run only; any login shell", async () => {
    await remote(scripts.tool.delete ?? "");
    expect(readdirSync(server.home, { recursive: true }).join("\n")).not.toContain(`tool-${tool.id}`);
    try {
      for (const shell of ["/bin/dash", "/usr/bin/fish"]) {
        server.setShell(shell);
        if (shell === "/usr/bin/fish") {
          // fish makes ~/.config/fish on its first start, so fish is now one of the host's shells: the env
          // step (as a deploy would) adds its block and env file, and the host matches again.
          await remote("true");
          let r = await runDoctor(["--host", "remote"]);
          expect(r.byName.remote.drift.map((f) => [f.item, f.what])).toEqual([
            ["env-file", "the fish env file ~/.config/kilo/codex-pooler.env.fish is missing"],
            ["rc-block", "fish: no kilo-fleet block in ~/.config/fish/conf.d/kilo-fleet.fish (the file is missing)"],
          ]);
          await remote(scripts.tool.create);
          server.copyToRemote(tool.file, tool.pathInHome);
          await remote(scripts.env.create, `${KEY}\n`);
          await remote(scripts.tool.delete ?? "");
          r = await runDoctor(["--host", "remote"]);
          expect(r.byName.remote).toMatchObject({ status: "ok", tool: "sent" });
        }
        const r = await runDoctor(["--host", "remote", "--key-env", "DOCTOR_KEY"], { DOCTOR_KEY: KEY });
        expect(r.code, shell).toBe(0);
        expect(r.byName.remote).toMatchObject({ status: "ok", tool: "sent", key: "same" });
      }
    } finally {
      server.setShell("/bin/bash");
      await shipTool();
    }
    const r = await runDoctor(["--host", "remote"]);
    expect(r.byName.remote).toMatchObject({ status: "ok", tool: "deployed" });
  });

  test("a check argument that base64 would push over the remote command line's limit: ok, exit 0 (deployed tool or sent, --key-env); drift at its end named", async () => {
    // The config step (~117 KB) fits one argument, so validate passes; base64-wrapped, the check's would not.
    const instructions = Array.from(
      { length: 3000 },
      (_, i) => `docs/team/instructions/rule-${String(i).padStart(5, "0")}.md`,
    );
    const big = buildSettings({
      kiloVersion: TEST_KILO_VERSION,
      install: { method: "npm" },
      kiloSettings: { instructions },
    });
    const word = encodeStepArg(checkArgsFor(big.spec, true));
    expect(() => remoteCommandLine(`: '${word}'`)).toThrow(/argument limit/);
    const file = join(scratch, "Pulumi.big.yaml");
    writeFileSync(
      file,
      [
        "config:",
        "  kilo-fleet:poolerBaseUrl: http://localhost:4000/v1",
        `  kilo-fleet:kiloVersion: "${TEST_KILO_VERSION}"`,
        `  kilo-fleet:kiloSettings: ${JSON.stringify({ instructions })}`,
        "  kilo-fleet:hosts:",
        "    - name: remote",
        `      ssh: { host: 127.0.0.1, port: ${server.port}, user: ${server.user}, hostKey: "${server.hostPublicKey}" }`,
        "",
      ].join("\n"),
    );
    try {
      await remote(deployScripts(big, "ssh").config.create);
      let r = await runDoctor(["--key-env", "DOCTOR_KEY"], { DOCTOR_KEY: KEY }, file);
      expect(r.code).toBe(0);
      expect(r.byName.remote).toMatchObject({ status: "ok", tool: "deployed", key: "same", drift: [] });
      await remote(scripts.tool.delete ?? "");
      r = await runDoctor(["--key-env", "DOCTOR_KEY"], { DOCTOR_KEY: KEY }, file);
      expect(r.code).toBe(0);
      expect(r.byName.remote).toMatchObject({ status: "ok", tool: "sent", key: "same", drift: [] });
      // The last instruction is near the argument's end: it arrived whole.
      asUser("sed -i 's/rule-02999[.]md/rule-xxxxx.md/' .config/kilo/kilo.jsonc");
      r = await runDoctor([], {}, file);
      expect(r.code).toBe(1);
      expect(r.byName.remote.drift).toEqual([expect.objectContaining({ item: "kilo.jsonc", path: "instructions" })]);
    } finally {
      await shipTool();
      await remote(scripts.config.create);
    }
    const r = await runDoctor(mine);
    expect(r.code).toBe(0);
    expect(r.byName.remote).toMatchObject({ status: "ok", tool: "deployed" });
  });
});
