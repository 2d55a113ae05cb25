/**
 * A wrong pinned host key fails before anything runs on the host.
 *
 * What kilo-fleet does: KiloHost hands the stack's pinned key (`hosts[].ssh.hostKey`), exactly, to every
 * remote step as `connection.hostKey`, and to the CopyToRemote of the tool. What the provider then does
 * (pulumi-command 1.2.1, not available here): golang.org/x/crypto/ssh `FixedHostKey`, which compares the
 * whole marshalled key the server presents with the pinned one and aborts the handshake on any
 * difference, before authentication, so before any command. The same check with OpenSSH against the
 * loopback sshd (harness/sshd.ts): a known_hosts holding only the pinned key, with
 * `StrictHostKeyChecking=yes`, refuses a server presenting another key, and the command never runs (the
 * canary file it would create stays absent); with the server's own key the same command runs.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HOST_STEPS } from "../deployer/kiloHost";
import { evaluateIndex, programResources, stackConfig, unwrapSecrets } from "../harness/pulumiMocks";
import { type SshServer, startSshd, strictSshOptions } from "../harness/sshd";

let sshd: SshServer;
let scratch: string;
/** An ed25519 key that is not the server's: what a spoofed or rebuilt host presents instead. */
let otherKey: string;

beforeAll(async () => {
  sshd = await startSshd();
  scratch = mkdtempSync(join(tmpdir(), "kilo-fleet-pinning-"));
  const file = join(scratch, "other_ed25519");
  const r = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "someone-else", "-f", file]);
  if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
  otherKey = readFileSync(`${file}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" ");
});
afterAll(async () => {
  await sshd?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

interface Connection {
  host: string;
  port: number;
  user: string;
  hostKey?: string;
}

/** Every remote resource of the program for this stack, with its (unwrapped) connection. */
async function remoteConnections(hosts: unknown[]): Promise<{ name: string; type: string; connection: Connection }[]> {
  const e = await evaluateIndex(stackConfig({ hosts }));
  if (e.error) throw e.error;
  return programResources(e)
    .filter((r) => r.type.startsWith("command:remote:"))
    .map((r) => ({
      name: r.name,
      type: r.type,
      connection: (unwrapSecrets(r.inputs) as { connection: Connection }).connection,
    }));
}

/**
 * OpenSSH with the trust the pinned key gives: a known_hosts of `[host]:port <pinned>` alone, strict
 * checking, no other known_hosts, batch mode (no prompt to accept anything).
 */
function sshOptions(c: Connection, pinned: string): string[] {
  const knownHosts = join(scratch, `known_hosts-${Math.random().toString(36).slice(2)}`);
  writeFileSync(knownHosts, `[${c.host}]:${c.port} ${pinned}\n`);
  return strictSshOptions(sshd.privateKeyPath, knownHosts);
}

function sshRun(c: Connection, pinned: string, commandLine: string) {
  const r = spawnSync(
    "ssh",
    ["-T", ...sshOptions(c, pinned), "-p", String(c.port), `${c.user}@${c.host}`, commandLine],
    { encoding: "utf8", input: "", timeout: 30_000 },
  );
  return { code: r.status, stderr: r.stderr };
}

/** One SFTP put as CopyToRemote does it. */
function sftpPut(c: Connection, pinned: string, local: string, remote: string) {
  const r = spawnSync("sftp", [...sshOptions(c, pinned), "-P", String(c.port), "-b", "-", `${c.user}@${c.host}`], {
    encoding: "utf8",
    input: `put ${local} ${remote}\n`,
    timeout: 30_000,
  });
  return { code: r.status, stderr: r.stderr };
}

describe("a wrong pinned host key", () => {
  it("KiloHost passes exactly the stack's pinned key as every remote step's and the tool copy's connection.hostKey", async () => {
    const remotes = await remoteConnections([
      { name: "spoofed", ssh: { host: "127.0.0.1", port: sshd.port, user: sshd.user, hostKey: otherKey } },
      { name: "genuine", ssh: { host: "127.0.0.1", port: sshd.port, user: sshd.user, hostKey: sshd.hostPublicKey } },
    ]);
    for (const [host, key] of [
      ["spoofed", otherKey],
      ["genuine", sshd.hostPublicKey],
    ] as const) {
      const mine = remotes.filter((r) => r.name.startsWith(`${host}-`));
      expect(mine.map((r) => r.name).sort()).toEqual(
        [...HOST_STEPS.map((s) => `${host}-${s}`), `${host}-tool-copy`].sort(),
      );
      expect(mine.find((r) => r.name === `${host}-tool-copy`)?.type).toBe("command:remote:CopyToRemote");
      for (const r of mine) {
        expect(r.connection, r.name).toMatchObject({ host: "127.0.0.1", port: sshd.port, user: sshd.user });
        expect(r.connection.hostKey, r.name).toBe(key);
      }
    }
    expect(otherKey).not.toBe(sshd.hostPublicKey);
  });

  it("OpenSSH with that pinned key refuses the server before any command runs; with the server's own key the command runs", async () => {
    const [spoofed] = (
      await remoteConnections([
        { name: "spoofed", ssh: { host: "127.0.0.1", port: sshd.port, user: sshd.user, hostKey: otherKey } },
      ])
    ).filter((r) => r.name === "spoofed-install");
    const c = spoofed.connection;
    const canary = join(sshd.home, "kilo-fleet-canary");
    const command = `: > "$HOME/kilo-fleet-canary"`;

    const refused = sshRun(c, c.hostKey ?? "", command);
    expect(refused.code).toBe(255);
    expect(refused.stderr).toMatch(/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
    expect(existsSync(canary)).toBe(false);

    // The tool copy (SFTP) is refused the same way: nothing is written.
    const local = join(scratch, "tool.cjs");
    writeFileSync(local, "// a tool\n");
    const copy = sftpPut(c, c.hostKey ?? "", local, "kilo-fleet-copied");
    expect(copy.code).not.toBe(0);
    expect(copy.stderr).toMatch(/Host key verification failed/);
    expect(existsSync(join(sshd.home, "kilo-fleet-copied"))).toBe(false);

    // Controls: the same command and copy with the server's own key do run (the comment is no part of the key).
    const accepted = sshRun(c, `${sshd.hostPublicKey} any-comment`, command);
    expect(accepted, accepted.stderr).toMatchObject({ code: 0 });
    expect(existsSync(canary)).toBe(true);
    expect(sftpPut(c, sshd.hostPublicKey, local, "kilo-fleet-copied").code).toBe(0);
    expect(readFileSync(join(sshd.home, "kilo-fleet-copied"), "utf8")).toBe("// a tool\n");
  });
});
