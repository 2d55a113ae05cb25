/**
 * A bastion for real (issue 21, item 1): two private sshds on loopback, the target and a jump host
 * (harness/sshd.ts, `jumpHost: true`, which logs every connection it forwards). Step commands reach the
 * target only through the jump host, both host keys pinned (each in its own known-hosts file, strict); a wrong
 * pinned key for either is refused before any command runs. (`pulumi up` maps `ssh.proxy` to the provider's
 * `connection.proxy`: test/fleet.diff.test.ts.)
 */
import { spawn } from "node:child_process";
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkArgsFor, checkHosts, type DoctorTarget } from "../cli/doctor";
import { hostKeyLine, scanHostKeysVia } from "../cli/hostKeys";
import { parseResult } from "../common/result";
import { toolStepCommands } from "../deployer/hostSteps";
import { hostToolArtifact } from "../deployer/hostTool";
import { buildSettings, deployScripts } from "../harness/hostHome";
import { type SshServer, startSshd, strictSshOptions } from "../harness/sshd";

let target: SshServer;
let jump: SshServer;
let dir: string;
const tool = hostToolArtifact();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "kilo-fleet-bastion-"));
  [target, jump] = await Promise.all([startSshd(), startSshd({ jumpHost: true })]);
}, 120_000);
afterAll(async () => {
  await Promise.all([target?.stop(), jump?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

/** A known-hosts file pinning `key` for 127.0.0.1:`port`. */
function pin(name: string, port: number, key: string): string {
  const file = join(dir, name);
  writeFileSync(file, `[127.0.0.1]:${port} ${key}\n`);
  return file;
}

/** ssh's options reaching the target through the jump host (ProxyCommand: both hops strict, each pinned). */
function viaJump(keys: { target?: string; jump?: string } = {}): string[] {
  const jumpKnown = pin("jump_known_hosts", jump.port, keys.jump ?? jump.hostPublicKey);
  const targetKnown = pin("target_known_hosts", target.port, keys.target ?? target.hostPublicKey);
  const hop = ["ssh", ...strictSshOptions(jump.privateKeyPath, jumpKnown), "-p", String(jump.port)];
  const proxyCommand = [...hop, "-W", "%h:%p", `${jump.user}@127.0.0.1`].join(" ");
  return [...strictSshOptions(target.privateKeyPath, targetKnown), "-o", `ProxyCommand=${proxyCommand}`];
}

/**
 * Runs `argv` without blocking the event loop: the jump sshd's log arrives through this process's pipes, and
 * a blocked loop would leave it blocked writing its debug log.
 */
function spawnAsync(argv: string[], input = ""): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

function ssh(command: string, keys?: { target?: string; jump?: string }) {
  return spawnAsync([
    "ssh",
    "-T",
    "-p",
    String(target.port),
    ...viaJump(keys),
    "-o",
    "LogLevel=ERROR",
    `${target.user}@127.0.0.1`,
    command,
  ]);
}

/** Connections the jump host forwarded to the target's port so far. */
const forwarded = () =>
  jump
    .log()
    .match(
      new RegExp(`server_request_direct_tcpip: originator [^\\n]* target 127\\.0\\.0\\.1 port ${target.port}`, "g"),
    )?.length ?? 0;

describe("a jump host between the deployer and the target", () => {
  it("the steps run on the target through it, and it logs each forwarded connection", {
    timeout: 120_000,
  }, async () => {
    const before = forwarded();
    const toolStep = await ssh(toolStepCommands(tool.id, { kind: "ssh" }).create);
    expect(toolStep.code, toolStep.stderr).toBe(0);
    expect(toolStep.stdout).toBe("");
    const sftp = await spawnAsync(
      ["sftp", "-P", String(target.port), ...viaJump(), "-b", "-", `${target.user}@127.0.0.1`],
      `put ${tool.file} ${tool.pathInHome}\n`,
    );
    expect(sftp.code, sftp.stderr).toBe(0);
    const config = await ssh(deployScripts(buildSettings(), "ssh").config.create);
    expect(config.code, config.stderr).toBe(0);
    expect(parseResult(config.stdout, "config")).toMatchObject({ configPath: "~/.config/kilo/kilo.jsonc" });
    expect(existsSync(join(target.home, ".config/kilo/kilo.jsonc"))).toBe(true);
    await expect.poll(() => forwarded() - before).toBe(3);
  });

  it("a wrong pinned key for either host is refused before any command runs", { timeout: 60_000 }, async () => {
    const marker = join(target.home, "ran");
    expect(jump.hostPublicKey).not.toBe(target.hostPublicKey);
    const badJump = await ssh("touch ~/ran", { jump: target.hostPublicKey });
    expect(badJump.code).toBe(255);
    expect(badJump.stderr).toContain("Host key verification failed");
    const before = forwarded();
    const badTarget = await ssh("touch ~/ran", { target: jump.hostPublicKey });
    expect(badTarget.code).toBe(255);
    expect(badTarget.stderr).toContain("Host key verification failed");
    // The jump host forwarded the connection; the target's key did not match, so nothing ran there.
    await expect.poll(() => forwarded() - before).toBe(1);
    expect(existsSync(marker)).toBe(false);
  });

  it("doctor checks the host through it (ProxyCommand ssh -W, both keys pinned); a wrong jump-host key: unreachable", {
    timeout: 60_000,
  }, async () => {
    // doctor offers one identity (--identity, or the agent) to both hops: the jump host accepts it too.
    appendFileSync(join(dirname(jump.privateKeyPath), "authorized_keys"), readFileSync(`${target.privateKeyPath}.pub`));
    const target0 = (jumpKey: string): DoctorTarget => ({
      name: "remote",
      kind: "ssh",
      ssh: {
        host: "127.0.0.1",
        user: target.user,
        port: target.port,
        hostKey: target.hostPublicKey,
        proxy: { host: "127.0.0.1", user: jump.user, port: jump.port, hostKey: jumpKey },
      },
      args: checkArgsFor(buildSettings().spec, false),
    });
    const before = forwarded();
    const [ok] = await checkHosts([target0(jump.hostPublicKey)], { tool, identity: target.privateKeyPath });
    // Reached and checked: kilo is not installed there yet, so the check finds drift (not "unreachable").
    expect(ok.status, ok.reason).toBe("drifted");
    await expect.poll(() => forwarded() - before).toBe(1);
    const [bad] = await checkHosts([target0(target.hostPublicKey)], { tool, identity: target.privateKeyPath });
    expect(bad.status).toBe("unreachable");
    expect(bad.reason).toMatch(/host key verification failed/);
    expect(forwarded() - before).toBe(1);
  });

  it("hostkeys scans the host through it (its key recorded, nothing run) with the jump host pinned", {
    timeout: 60_000,
  }, async () => {
    const jumpHost = { host: "127.0.0.1", user: jump.user, port: jump.port, hostKey: jump.hostPublicKey };
    const before = forwarded();
    const scan = await scanHostKeysVia({ host: "127.0.0.1", port: target.port }, jumpHost, {
      identity: target.privateKeyPath,
    });
    expect(scan.ok && scan.keys.map(hostKeyLine)).toEqual([target.hostPublicKey]);
    await expect.poll(() => forwarded() - before).toBe(1);
    const wrong = await scanHostKeysVia(
      { host: "127.0.0.1", port: target.port },
      { ...jumpHost, hostKey: target.hostPublicKey },
      {
        identity: target.privateKeyPath,
      },
    );
    expect(wrong).toMatchObject({ ok: false });
    expect(forwarded() - before).toBe(1);
  });
});
