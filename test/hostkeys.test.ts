/**
 * `kilo-fleet hostkeys` against a real sshd on loopback: the line to pin is the server's own key, the
 * fingerprint is the one `ssh-keygen -lf` prints, a pinned key that differs (exit 1) and an unreachable host
 * (exit 3, "could not check", which wins) each get one line saying so.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  blobKeyType,
  mapLimit,
  parseKeyscanOutput,
  pinCommand,
  preferredHostKey,
  scanHostKeys,
  sshKeyFingerprint,
} from "../cli/hostKeys";
import { type SshServer, startSshd } from "../harness/sshd";

const ROOT = join(__dirname, "..");
const TSX = join(ROOT, "node_modules", ".bin", "tsx");
const scratch = mkdtempSync(join(tmpdir(), "kilo-fleet-hostkeys-"));
/** A throwaway key that is not the server's. */
const OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICpwKafbufgN/DFRTNy7UXTcX9APmrEuh7+tZoozMi4I";

let sshd: SshServer;
let closedPort: number;
beforeAll(async () => {
  sshd = await startSshd();
  // A port nothing listens on: bound, then released.
  closedPort = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
});
afterAll(async () => {
  await sshd?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

function cli(...args: string[]) {
  const r = spawnSync(TSX, [join(ROOT, "cli", "kilo-fleet.ts"), ...args], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function stack(hosts: string): string {
  const path = join(scratch, `Pulumi.h${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, `config:\n  kilo-fleet:poolerBaseUrl: http://localhost:4000/v1\n  kilo-fleet:hosts:\n${hosts}`);
  return path;
}

function keygenFingerprint(keyLine: string): string {
  const file = join(scratch, "key.pub");
  writeFileSync(file, `${keyLine}\n`);
  const r = spawnSync("ssh-keygen", ["-lf", file], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ssh-keygen -lf failed: ${r.stderr}`);
  return r.stdout.split(" ")[1];
}

describe("fingerprints and keyscan output", () => {
  it("sshKeyFingerprint equals ssh-keygen -lf, for ed25519, ecdsa and rsa keys", () => {
    const dir = mkdtempSync(join(scratch, "keys-"));
    for (const [type, bits] of [
      ["ed25519", []],
      ["ecdsa", ["-b", "256"]],
      ["rsa", ["-b", "2048"]],
    ] as const) {
      const f = join(dir, type);
      const g = spawnSync("ssh-keygen", ["-q", "-t", type, ...bits, "-N", "", "-f", f], { encoding: "utf8" });
      expect(g.status, g.stderr).toBe(0);
      const line = spawnSync("cat", [`${f}.pub`], { encoding: "utf8" }).stdout.trim();
      expect(sshKeyFingerprint(line)).toBe(keygenFingerprint(line));
      expect(sshKeyFingerprint(line)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    }
    expect(sshKeyFingerprint(sshd.hostPublicKey)).toBe(keygenFingerprint(sshd.hostPublicKey));
  });

  it("parses ssh-keyscan output, drops comments and blobs that lie about their type, prefers ed25519", () => {
    const [, ed] = OTHER_KEY.split(" ");
    const keys = parseKeyscanOutput(
      `# 127.0.0.1:22 SSH-2.0-OpenSSH_9\nh ssh-rsa ${ed}\nh ssh-ed25519 ${ed}\nh ssh-ed25519 ${ed}\nh ssh-ed25519 !!!\n`,
    );
    expect(keys).toEqual([{ type: "ssh-ed25519", base64: ed }]);
    expect(blobKeyType(ed)).toBe("ssh-ed25519");
    expect(
      preferredHostKey([
        { type: "ssh-rsa", base64: "x" },
        { type: "ecdsa-sha2-nistp256", base64: "y" },
        { type: "ssh-ed25519", base64: "z" },
      ])?.type,
    ).toBe("ssh-ed25519");
    expect(pinCommand(2, { type: "ssh-ed25519", base64: ed }, "prod")).toBe(
      `pulumi config set --stack 'prod' --path 'hosts[2].ssh.hostKey' 'ssh-ed25519 ${ed}'`,
    );
  });

  it("mapLimit keeps order and never runs more than the bound at once", async () => {
    let running = 0;
    let peak = 0;
    const out = await mapLimit([5, 1, 4, 2, 3, 0], 2, async (n) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, n * 5));
      running--;
      return n * 10;
    });
    expect(out).toEqual([50, 10, 40, 20, 30, 0]);
    expect(peak).toBe(2);
  });
});

describe("scanning the loopback sshd", () => {
  it("scanHostKeys returns the server's own key; a closed port is a reason, not keys", async () => {
    const r = await scanHostKeys({ host: "127.0.0.1", port: sshd.port });
    expect(r).toEqual({ ok: true, keys: [expect.objectContaining({ type: "ssh-ed25519" })] });
    if (r.ok) expect(`${r.keys[0].type} ${r.keys[0].base64}`).toBe(sshd.hostPublicKey);
    const closed = await scanHostKeys({ host: "127.0.0.1", port: closedPort }, { timeoutSeconds: 2 });
    expect(closed.ok).toBe(false);
    expect(await scanHostKeys({ host: "-oProxyCommand=touch /tmp/x", port: 22 })).toEqual({
      ok: false,
      reason: "not a host name or address",
    });
  });

  it("prints the hostKey line to paste and the fingerprint, for an unpinned host of an (invalid) stack", () => {
    const path = stack(
      `    - {name: me, local: true}\n    - {name: box, ssh: {host: 127.0.0.1, port: ${sshd.port}, user: u}}\n`,
    );
    expect(cli("validate", "--file", path).stderr).toContain("kilo-fleet:hosts[1].ssh.hostKey: is required");
    const r = cli("hostkeys", "--file", path);
    expect(r.stderr).toContain("Compare each fingerprint with the server's own");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        `box (hosts[1], 127.0.0.1:${sshd.port}):`,
        `  ED25519  ${keygenFingerprint(sshd.hostPublicKey)}`,
        `  pulumi config set --path 'hosts[1].ssh.hostKey' '${sshd.hostPublicKey}'`,
        "",
      ].join("\n"),
    );
  });

  it("exit 3 (a host not checked wins over a key that differs): a pinned key that differs, and an unreachable host, each on its own line; --json says the same", () => {
    const path = stack(
      [
        `    - {name: good, ssh: {host: 127.0.0.1, port: ${sshd.port}, user: u, hostKey: "${sshd.hostPublicKey}"}}`,
        `    - {name: spoofed, ssh: {host: 127.0.0.1, port: ${sshd.port}, user: u, hostKey: "${OTHER_KEY}"}}`,
        `    - {name: gone, ssh: {host: 127.0.0.1, port: ${closedPort}, user: u, insecureIgnoreHostKey: true}}`,
        "",
      ].join("\n"),
    );
    const r = cli("hostkeys", "--file", path);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain("good (hosts[0]");
    expect(r.stdout).toContain("  pinned hostKey: matches a key the server offered");
    expect(r.stdout).toMatch(
      /spoofed \(hosts\[1\][^\n]*\n[^\n]*\n {2}pinned hostKey: DIFFERS from every key the server offered/,
    );
    expect(r.stdout).toMatch(
      new RegExp(`^gone \\(hosts\\[2\\], 127\\.0\\.0\\.1:${closedPort}\\): unreachable: .+$`, "m"),
    );
    const j = cli("hostkeys", "--file", path, "--json");
    expect(j.code).toBe(3);
    const reports = JSON.parse(j.stdout) as { name: string; pinned: string; error?: string; keys: unknown[] }[];
    expect(reports.map((x) => [x.name, x.pinned, x.error === undefined])).toEqual([
      ["good", "matches", true],
      ["spoofed", "differs", true],
      ["gone", "absent", false],
    ]);
    expect(reports[0].keys).toEqual([
      {
        type: "ssh-ed25519",
        hostKey: sshd.hostPublicKey,
        fingerprint: keygenFingerprint(sshd.hostPublicKey),
      },
    ]);
  });

  it("--stack NAME: a stack without SSH hosts says so and passes", () => {
    const r = cli("hostkeys", "--stack", "dev");
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("stacks/Pulumi.dev.yaml: no SSH hosts\n");
  });
});
