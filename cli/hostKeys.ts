/**
 * SSH host keys for `kilo-fleet hostkeys`: scan a server with `ssh-keyscan`, fingerprint each key the way
 * `ssh-keygen -lf` prints it (`SHA256:` + unpadded base64 of the SHA-256 of the key blob), and say which
 * line to pin. The fingerprints are for a person to compare out of band (the server's console, its
 * admin): a scan over the same network an attacker could answer on proves nothing by itself.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { shQuote } from "../common/shellQuote";
import { lastLine, readIfAny } from "./shared";
import { type JumpHost, jumpHop, jumpHostName } from "./sshJump";

export interface HostPublicKey {
  /** `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, ... */
  type: string;
  /** The key blob, base64. */
  base64: string;
}

/** `SHA256:<base64 without padding>` of the key blob, as `ssh-keygen -lf` prints it. */
export function sshKeyFingerprint(key: HostPublicKey | string): string {
  const base64 = typeof key === "string" ? (key.trim().split(/\s+/)[1] ?? "") : key.base64;
  const blob = Buffer.from(base64, "base64");
  if (blob.length === 0) throw new Error("not an SSH public key (no base64 blob)");
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** The key type a blob declares (its first length-prefixed string); undefined when it is not one. */
export function blobKeyType(base64: string): string | undefined {
  const blob = Buffer.from(base64, "base64");
  if (blob.length < 4) return undefined;
  const n = blob.readUInt32BE(0);
  if (n === 0 || n > 64 || blob.length < 4 + n) return undefined;
  return blob.subarray(4, 4 + n).toString("latin1");
}

/**
 * The keys in `ssh-keyscan` output (`host keytype base64` lines; `#` comments skipped). A line whose blob
 * does not declare its own type is dropped.
 */
export function parseKeyscanOutput(text: string): HostPublicKey[] {
  const keys: HostPublicKey[] = [];
  for (const line of text.split("\n")) {
    const t = line.trim();
    if (t === "" || t.startsWith("#")) continue;
    const [, type, base64] = t.split(/\s+/);
    if (!type || !base64 || !/^[A-Za-z0-9+/]+=*$/.test(base64) || blobKeyType(base64) !== type) continue;
    if (!keys.some((k) => k.type === type && k.base64 === base64)) keys.push({ type, base64 });
  }
  return keys;
}

/** Short name of a key type, as `ssh-keygen -l` prints it: `ED25519`, `ECDSA`, `RSA`. */
export function keyTypeName(type: string): string {
  if (type.includes("ed25519")) return "ED25519";
  if (type.startsWith("ecdsa")) return "ECDSA";
  if (type === "ssh-rsa") return "RSA";
  return type;
}

const PREFERENCE = ["ED25519", "ECDSA", "RSA"];

/** The key to pin: ed25519, else ecdsa, else rsa, else the first. */
export function preferredHostKey(keys: readonly HostPublicKey[]): HostPublicKey | undefined {
  const rank = (k: HostPublicKey) => {
    const i = PREFERENCE.indexOf(keyTypeName(k.type));
    return i === -1 ? PREFERENCE.length : i;
  };
  return [...keys].sort((a, b) => rank(a) - rank(b))[0];
}

/** `type base64`: the value of `hosts[i].ssh.hostKey`. */
export const hostKeyLine = (k: HostPublicKey) => `${k.type} ${k.base64}`;

/** The command that pins `key` for host `index` of the stack. */
export function pinCommand(index: number, key: HostPublicKey, stack?: string): string {
  const stackArg = stack === undefined ? "" : ` --stack ${shQuote(stack)}`;
  return `pulumi config set${stackArg} --path ${shQuote(`hosts[${index}].ssh.hostKey`)} ${shQuote(hostKeyLine(key))}`;
}

/** Whether a pinned `hostKey` line is among the scanned keys. */
export function pinnedKeyMatches(pinned: string, keys: readonly HostPublicKey[]): boolean {
  const [type, base64] = pinned.trim().split(/\s+/);
  return keys.some((k) => k.type === type && k.base64 === base64);
}

export type ScanResult = { ok: true; keys: HostPublicKey[] } | { ok: false; reason: string };

/**
 * Runs `ssh-keyscan -p PORT -t ed25519,ecdsa,rsa -T SECONDS HOST` (no shell), killed after `timeoutSeconds`
 * plus a grace second if it still runs. `keyscan` is the program to run (for tests).
 */
export function scanHostKeys(
  target: { host: string; port: number },
  options: { timeoutSeconds?: number; keyscan?: string } = {},
): Promise<ScanResult> {
  const timeout = options.timeoutSeconds ?? 5;
  if (target.host === "" || target.host.startsWith("-") || /[\s\u0000-\u001f\u007f]/.test(target.host)) {
    return Promise.resolve({ ok: false, reason: "not a host name or address" });
  }
  return new Promise((resolve) => {
    const child = spawn(
      options.keyscan ?? "ssh-keyscan",
      ["-p", String(target.port), "-t", "ed25519,ecdsa,rsa", "-T", String(timeout), "--", target.host],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    let killed = false;
    const timer = setTimeout(
      () => {
        killed = true;
        child.kill("SIGKILL");
      },
      (timeout + 1) * 1000,
    );
    child.once("error", (e) => {
      clearTimeout(timer);
      resolve({ ok: false, reason: `cannot run ssh-keyscan (${e.message}); install openssh-client` });
    });
    child.once("close", () => {
      clearTimeout(timer);
      const keys = parseKeyscanOutput(Buffer.concat(out).toString("utf8"));
      if (keys.length > 0) return resolve({ ok: true, keys });
      const said = Buffer.concat(err)
        .toString("utf8")
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l !== "" && !l.startsWith("#"))
        .pop();
      resolve({
        ok: false,
        reason: killed
          ? `no answer within ${timeout} s`
          : (said ?? `no host key offered within ${timeout} s (unreachable, or not an SSH server)`),
      });
    });
  });
}

/** Maps `items` through `f` with at most `limit` running at once, results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, f: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await f(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * The keys a host behind a jump host offers: `ssh-keyscan` cannot go through one, so `ssh` connects through
 * the jump host (ProxyCommand `ssh -W`, the jump host strictly pinned by its `hostKey`) with an empty
 * known-hosts file that accepts the target's key and records it, and stops before authenticating (no
 * identity offered, batch mode). One key: the one the server negotiates (ed25519 first). `identity`: the key
 * the hop to the jump host offers (default: the operator's agent and keys). A failure names `ssh.proxy`; one of
 * the hop (refused, its key, its login, its forward) is said in the hop's own words (its `-E` log), not as the
 * closed connection the host's side then sees.
 */
export async function scanHostKeysVia(
  target: { host: string; port: number },
  jump: JumpHost,
  options: { timeoutSeconds?: number; identity?: string; ssh?: string } = {},
): Promise<ScanResult> {
  const timeout = options.timeoutSeconds ?? 5;
  for (const h of [target.host, jump.host]) {
    if (h === "" || h.startsWith("-") || /[\s\u0000-\u001f\u007f]/.test(h)) {
      return { ok: false, reason: "not a host name or address" };
    }
  }
  const dir = mkdtempSync(join(tmpdir(), "kilo-fleet-hostkeys-"));
  try {
    const found = join(dir, "found_known_hosts");
    const ssh = options.ssh ?? "ssh";
    const common = [
      "-F",
      "/dev/null",
      "-o",
      "BatchMode=yes",
      "-o",
      `ConnectTimeout=${timeout}`,
      "-o",
      "LogLevel=ERROR",
    ];
    const hop = jumpHop(jump, target, {
      dir,
      timeoutSeconds: timeout,
      ssh,
      identity: options.identity,
      noConfigFile: true,
    });
    const argv = [
      ...common,
      ...hop.options,
      ...[
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        `UserKnownHostsFile=${found}`,
        "-o",
        "GlobalKnownHostsFile=/dev/null",
      ],
      ...["-o", "HashKnownHosts=no", "-o", "PubkeyAuthentication=no", "-o", "PasswordAuthentication=no"],
      ...["-o", "KbdInteractiveAuthentication=no", "-o", "IdentitiesOnly=yes", "-o", "IdentityFile=/dev/null"],
      ...["-p", String(target.port), "-l", "kilo-fleet-hostkeys", "--", target.host, "true"],
    ];
    const stderr = await new Promise<string>((resolve) => {
      const child = spawn(ssh, argv, { stdio: ["ignore", "ignore", "pipe"] });
      const err: Buffer[] = [];
      child.stderr.on("data", (d: Buffer) => err.push(d));
      const timer = setTimeout(() => child.kill("SIGKILL"), (timeout * 2 + 1) * 1000);
      child.once("error", (e) => {
        clearTimeout(timer);
        resolve(`cannot run ssh (${e.message}); install openssh-client`);
      });
      child.once("close", () => {
        clearTimeout(timer);
        resolve(Buffer.concat(err).toString("utf8"));
      });
    });
    const keys = parseKeyscanOutput(readIfAny(found));
    if (keys.length > 0) return { ok: true, keys };
    const hopFailure = hop.failure();
    if (hopFailure !== undefined) return { ok: false, reason: hopFailure };
    return { ok: false, reason: `through ${jumpHostName(jump)}: ${lastLine(stderr) ?? "no host key offered"}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
