/**
 * A bastion for real (issue 21, item 1): two private sshds on loopback, the target and a jump host
 * (harness/sshd.ts, `jumpHost: true`, which logs every connection it forwards). Step commands reach the
 * target only through the jump host, both host keys pinned (each in its own known-hosts file, strict); a wrong
 * pinned key for either is refused before any command runs. (`pulumi up` maps `ssh.proxy` to the provider's
 * `connection.proxy`: test/fleet.diff.test.ts.) `kilo-fleet hostkeys` runs as the CLI, a child process, against a
 * stack whose host sits behind the jump host, authenticating to it with an ssh-agent as an operator would; a failed
 * hop to the jump host (hostkeys and doctor, cli/sshJump.ts) is said in the hop's own words, naming `ssh.proxy`.
 */
import { spawn, spawnSync } from "node:child_process";
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkArgsFor, checkHosts, type DoctorTarget, type HostReport } from "../cli/doctor";
import { hostKeyLine, scanHostKeysVia } from "../cli/hostKeys";
import { parseResult } from "../common/result";
import { toolStepCommands } from "../deployer/hostSteps";
import { hostToolArtifact } from "../deployer/hostTool";
import { buildSettings, deployScripts } from "../harness/hostHome";
import { freePort, type SshServer, startSshd, strictSshOptions } from "../harness/sshd";
import { startSilentServer } from "../harness/tinyproxy";

let target: SshServer;
let jump: SshServer;
let dir: string;
const tool = hostToolArtifact();
const ROOT = join(__dirname, "..");
const TSX = join(ROOT, "node_modules", ".bin", "tsx");
/** A stack's secret (never decrypted): no output of the CLI may carry it. */
const FAKE_CIPHERTEXT = "v1:AAAAAAAAfakeCiphertextForTestsOnly==";

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
function spawnAsync(
  argv: string[],
  input = "",
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ["pipe", "pipe", "pipe"], ...options });
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
    // A child that exits without reading its stdin (ssh-add, the CLI) is no error: its exit code says how it went.
    child.stdin.on("error", () => {});
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

/** `kilo-fleet ARGS`, run as `npm run kilo-fleet --` runs it, with `env` over this process's environment. */
function kiloFleet(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnAsync([TSX, join(ROOT, "cli", "kilo-fleet.ts"), ...args], "", {
    cwd: ROOT,
    env: { ...process.env, ...env },
  });
}

/** The key a server's sshd really serves (its host key .pub file) and the fingerprint `ssh-keygen -lf` gives it. */
function servedHostKey(server: SshServer): { line: string; fingerprint: string } {
  const pub = join(dirname(server.privateKeyPath), "ssh_host_ed25519_key.pub");
  const keygen = spawnSync("ssh-keygen", ["-lf", pub], { encoding: "utf8" });
  if (keygen.status !== 0) throw new Error(`ssh-keygen -lf ${pub}: ${keygen.stderr}`);
  return {
    line: server.hostPublicKey,
    fingerprint: keygen.stdout.split(" ")[1],
  };
}

let stacks = 0;
/**
 * A stack file: the host `inner` (the target) behind the jump host at `jumpPort`, pinned to `pins.jump` (default: its
 * own key); the target's key pinned to `pins.target`, or not yet.
 */
function jumpStack(jumpPort: number, pins: { jump?: string; target?: string } = {}): string {
  const file = join(dir, `Pulumi.jump${++stacks}.yaml`);
  const targetKey = pins.target !== undefined ? `, hostKey: "${pins.target}"` : "";
  writeFileSync(
    file,
    [
      "config:",
      "  kilo-fleet:poolerBaseUrl: http://localhost:4000/v1",
      `  kilo-fleet:codexPoolerApiKey: {secure: "${FAKE_CIPHERTEXT}"}`,
      `  kilo-fleet:sshJumpPrivateKey: {secure: "${FAKE_CIPHERTEXT}"}`,
      "  kilo-fleet:ssh:",
      `    proxy: {host: 127.0.0.1, user: ${jump.user}, port: ${jumpPort}, hostKey: "${pins.jump ?? jump.hostPublicKey}"}`,
      "  kilo-fleet:hosts:",
      `    - {name: inner, ssh: {host: 127.0.0.1, user: ${target.user}, port: ${target.port}${targetKey}}}`,
      "",
    ].join("\n"),
  );
  return file;
}

/** An ssh-agent holding `key` (the operator's, which the hop to the jump host offers); stop() kills it by its pid. */
async function startAgent(key: string): Promise<{ sock: string; stop: () => void }> {
  const sock = join(dir, "agent.sock");
  const agent = spawn("ssh-agent", ["-D", "-a", sock], { stdio: "ignore" });
  const stop = () => {
    agent.kill();
  };
  try {
    const env = { ...process.env, SSH_AUTH_SOCK: sock };
    // The socket file exists from bind(), before listen(): wait until ssh-add reaches the agent (-l: 2 = it cannot).
    const answers = async () =>
      agent.exitCode !== null || (await spawnAsync(["ssh-add", "-l"], "", { env })).code !== 2;
    await expect.poll(answers, { timeout: 10_000 }).toBe(true);
    const add = await spawnAsync(["ssh-add", key], "", { env });
    if (add.code !== 0) throw new Error(`ssh-add: ${add.stderr}`);
  } catch (e) {
    stop();
    throw e;
  }
  return { sock, stop };
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
    const target0 = (jumpKey: string, port = target.port, hostKey = target.hostPublicKey): DoctorTarget => ({
      name: "remote",
      kind: "ssh",
      ssh: {
        host: "127.0.0.1",
        user: target.user,
        port,
        hostKey,
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
    // The jump host's key, said in the hop's own words and naming ssh.proxy (not the host's ssh.hostKey).
    expect(bad).toMatchObject({
      status: "unreachable",
      reason: `the jump host 127.0.0.1:${jump.port} (ssh.proxy): Host key verification failed.`,
    });
    expect(forwarded() - before).toBe(1);
    // The hop went well and the host's key is the wrong one: that is the reason, not the jump host.
    const [spoofed] = await checkHosts([target0(jump.hostPublicKey, target.port, jump.hostPublicKey)], {
      tool,
      identity: target.privateKeyPath,
    });
    expect(spoofed).toMatchObject({
      status: "unreachable",
      reason: "host key verification failed: the host's key is not the pinned ssh.hostKey",
    });
    await expect.poll(() => forwarded() - before).toBe(2);
    // The jump host is reached but cannot reach the host: said so, with the host's address.
    const closed = await freePort();
    const [gone] = await checkHosts([target0(jump.hostPublicKey, closed)], { tool, identity: target.privateKeyPath });
    expect(gone).toMatchObject({
      status: "unreachable",
      reason: `the jump host 127.0.0.1:${jump.port} (ssh.proxy) could not connect to 127.0.0.1:${closed} (stdio forwarding failed)`,
    });
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
    // Said in the hop's own words, naming ssh.proxy (not the closed connection the host's side sees next).
    expect(wrong).toEqual({
      ok: false,
      reason: `the jump host 127.0.0.1:${jump.port} (ssh.proxy): Host key verification failed.`,
    });
    expect(forwarded() - before).toBe(1);
    const closed = await freePort();
    const notThere = await scanHostKeysVia({ host: "127.0.0.1", port: closed }, jumpHost, {
      identity: jump.privateKeyPath,
    });
    expect(notThere).toEqual({
      ok: false,
      reason: `the jump host 127.0.0.1:${jump.port} (ssh.proxy) could not connect to 127.0.0.1:${closed} (stdio forwarding failed)`,
    });
  });

  it("kilo-fleet hostkeys (the CLI, end to end) scans the host through it and names both servers' own keys, as text and --json", {
    timeout: 60_000,
  }, async () => {
    const targetKey = servedHostKey(target);
    const jumpKey = servedHostKey(jump);
    expect(targetKey.line).not.toBe(jumpKey.line);
    const stack = jumpStack(jump.port);
    const agent = await startAgent(jump.privateKeyPath);
    try {
      const before = forwarded();
      const [text, json] = await Promise.all([
        kiloFleet(["hostkeys", "--file", stack], { SSH_AUTH_SOCK: agent.sock }),
        kiloFleet(["hostkeys", "--file", stack, "--json"], { SSH_AUTH_SOCK: agent.sock }),
      ]);
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout).toBe(
        [
          `inner (hosts[0], 127.0.0.1:${target.port}):`,
          `  ED25519  ${targetKey.fingerprint}`,
          `  pulumi config set --path 'hosts[0].ssh.hostKey' '${targetKey.line}'`,
          `  through the jump host 127.0.0.1:${jump.port} (ssh.proxy), whose keys are:`,
          `    ED25519  ${jumpKey.fingerprint}`,
          "",
        ].join("\n"),
      );
      expect(json.code, json.stderr).toBe(0);
      expect(JSON.parse(json.stdout)).toEqual([
        {
          name: "inner",
          index: 0,
          host: "127.0.0.1",
          port: target.port,
          pinned: "absent",
          keys: [{ type: "ssh-ed25519", hostKey: targetKey.line, fingerprint: targetKey.fingerprint }],
          command: `pulumi config set --path 'hosts[0].ssh.hostKey' '${targetKey.line}'`,
          jump: {
            host: "127.0.0.1",
            port: jump.port,
            pinned: "matches",
            keys: [{ type: "ssh-ed25519", hostKey: jumpKey.line, fingerprint: jumpKey.fingerprint }],
          },
        },
      ]);
      // Each run got the target's key through the jump host: it forwarded one connection to the target's port.
      await expect.poll(() => forwarded() - before).toBe(2);
      for (const out of [text.stdout, text.stderr, json.stdout, json.stderr]) {
        expect(out).not.toContain("fakeCiphertext");
        expect(out).not.toContain("PRIVATE KEY");
      }
    } finally {
      agent.stop();
    }
  });

  it("kilo-fleet hostkeys --identity FILE: logs in to the jump host with that key, no agent needed; a missing file is a usage error", {
    timeout: 60_000,
  }, async () => {
    const stack = jumpStack(jump.port);
    const targetKey = servedHostKey(target);
    const noAgent = { SSH_AUTH_SOCK: "" };
    const before = forwarded();
    const r = await kiloFleet(["hostkeys", "--file", stack, "--identity", jump.privateKeyPath, "--json"], noAgent);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject([{ name: "inner", keys: [{ hostKey: targetKey.line }] }]);
    await expect.poll(() => forwarded() - before).toBe(1);
    // Without it (and no agent) the jump host lets nobody in: the key above is what got through.
    const denied = await kiloFleet(["hostkeys", "--file", stack, "--json"], noAgent);
    expect(denied.code, denied.stderr).toBe(3);
    expect(JSON.parse(denied.stdout)[0].error).toMatch(
      /the jump host 127\.0\.0\.1:\d+ \(ssh\.proxy\): .*Permission denied/,
    );
    const missing = await kiloFleet(["hostkeys", "--file", stack, "--identity", "/nonexistent/key"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("--identity: no such file: /nonexistent/key");
  });

  it("kilo-fleet hostkeys: a jump host that does not answer (a wrong ssh.proxy port) exits 3, one line naming the host and ssh.proxy", {
    timeout: 60_000,
  }, async () => {
    const closed = await freePort();
    const stack = jumpStack(closed);
    const before = forwarded();
    const [text, json] = await Promise.all([
      kiloFleet(["hostkeys", "--file", stack]),
      kiloFleet(["hostkeys", "--file", stack, "--json"]),
    ]);
    expect(text.code, text.stderr).toBe(3);
    const line = new RegExp(
      `^inner \\(hosts\\[0\\], 127\\.0\\.0\\.1:${target.port}\\): unreachable: the jump host 127\\.0\\.0\\.1:${closed} \\(ssh\\.proxy\\): [^\\n]*Connection refused\n$`,
    );
    expect(text.stdout).toMatch(line);
    expect(json.code, json.stderr).toBe(3);
    const [report] = JSON.parse(json.stdout) as { name: string; keys: unknown[]; error?: string }[];
    expect(report).toMatchObject({ name: "inner", keys: [] });
    expect(`inner (hosts[0], 127.0.0.1:${target.port}): unreachable: ${report.error}\n`).toMatch(line);
    expect(forwarded()).toBe(before);
    for (const out of [text.stdout, text.stderr, json.stdout, json.stderr]) expect(out).not.toContain("fakeCiphertext");
  });

  it("kilo-fleet doctor: a jump host that does not answer, or whose pinned key is wrong, exits 3, one line naming the host, the jump host and ssh.proxy in the hop's own words (text and --json)", {
    timeout: 60_000,
  }, async () => {
    const closed = await freePort();
    const cases = [
      {
        stack: jumpStack(closed, { target: target.hostPublicKey }),
        reason: `the jump host 127.0.0.1:${closed} (ssh.proxy): ssh: connect to host 127.0.0.1 port ${closed}: Connection refused`,
      },
      {
        stack: jumpStack(jump.port, { jump: target.hostPublicKey, target: target.hostPublicKey }),
        reason: `the jump host 127.0.0.1:${jump.port} (ssh.proxy): Host key verification failed.`,
      },
    ];
    const before = forwarded();
    for (const { stack, reason } of cases) {
      const [text, json] = await Promise.all([
        kiloFleet(["doctor", "--file", stack]),
        kiloFleet(["doctor", "--file", stack, "--json"]),
      ]);
      expect(text.code, text.stdout + text.stderr).toBe(3);
      expect(text.stdout.split("\n").filter((l) => l.startsWith("inner"))).toEqual([`inner  unreachable: ${reason}`]);
      expect(json.code, json.stdout + json.stderr).toBe(3);
      const doc = JSON.parse(json.stdout) as { unreachable: number; hosts: HostReport[] };
      expect(doc.unreachable).toBe(1);
      expect(doc.hosts).toMatchObject([{ host: "inner", status: "unreachable", reason }]);
      for (const out of [text.stdout, text.stderr, json.stdout, json.stderr])
        expect(out).not.toContain("fakeCiphertext");
    }
    // Neither got past the jump host: nothing was forwarded to the host.
    expect(forwarded()).toBe(before);
  });

  it("kilo-fleet doctor: a jump host that takes the connection and never answers, within doctor's --timeout, is named (text and --json)", {
    timeout: 60_000,
  }, async () => {
    const silent = await startSilentServer();
    try {
      const stack = jumpStack(silent.port, { target: target.hostPublicKey });
      // doctor's own deadline (2 s) comes before the hop's ConnectTimeout (the host's, 10 s).
      const [text, json] = await Promise.all([
        kiloFleet(["doctor", "--file", stack, "--timeout", "2"]),
        kiloFleet(["doctor", "--file", stack, "--timeout", "2", "--json"]),
      ]);
      const reason = new RegExp(
        `^no answer within [23] s through the jump host 127\\.0\\.0\\.1:${silent.port} \\(ssh\\.proxy\\) \\(it, or the host behind it\\)$`,
      );
      expect(text.code, text.stdout + text.stderr).toBe(3);
      const line = text.stdout.split("\n").filter((l) => l.startsWith("inner"));
      expect(line).toHaveLength(1);
      expect(line[0].replace(/^inner +unreachable: /, "")).toMatch(reason);
      expect(json.code, json.stdout + json.stderr).toBe(3);
      const doc = JSON.parse(json.stdout) as { hosts: HostReport[] };
      expect(doc.hosts).toMatchObject([{ host: "inner", status: "unreachable" }]);
      expect(doc.hosts[0].reason).toMatch(reason);
    } finally {
      await silent.stop();
    }
  });
});
