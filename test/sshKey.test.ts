/**
 * The SSH key as the state holds it: an unencrypted OpenSSH ed25519 key becomes the same key in PKCS#8
 * (what the provider's Go SSH library parses as "PRIVATE KEY"), everything else passes through.
 */
import { execFileSync } from "node:child_process";
import { createPrivateKey, createPublicKey, sign, verify } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { compactPrivateKey, openSshEd25519Seed } from "../deployer/sshKey";

const dir = mkdtempSync(join(tmpdir(), "kilo-fleet-sshkey-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A fresh key from ssh-keygen: its private file and its public line. */
function keygen(type: string, passphrase = ""): { pem: string; pub: string } {
  const file = join(dir, `${type}-${Math.random().toString(36).slice(2)}`);
  execFileSync("ssh-keygen", ["-q", "-t", type, "-N", passphrase, "-C", "test@kilo-fleet", "-f", file]);
  return { pem: readFileSync(file, "utf8"), pub: readFileSync(`${file}.pub`, "utf8").trim() };
}

describe("compactPrivateKey", () => {
  it("turns an OpenSSH ed25519 key into the same key in PKCS#8, a third of the size", () => {
    for (let i = 0; i < 5; i++) {
      const { pem, pub } = keygen("ed25519");
      const out = compactPrivateKey(pem);
      expect(out).toMatch(/^-----BEGIN PRIVATE KEY-----\n[A-Za-z0-9+/=]{64}\n-----END PRIVATE KEY-----\n$/);
      expect(out.length).toBeLessThan(pem.length / 3 + 1);
      // Signatures made with it verify against the key's own public line (what sshd checks).
      const raw = Buffer.from(pub.split(" ")[1], "base64").subarray(-32);
      const spki = Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), raw]);
      const publicKey = createPublicKey({ key: spki, format: "der", type: "spki" });
      const data = Buffer.from(`session ${i}`);
      expect(verify(null, data, publicKey, sign(null, data, createPrivateKey(out)))).toBe(true);
      // And it holds no more than the seed: no comment, no public-key copy of another key.
      expect(Buffer.from(out.split("\n")[1], "base64").subarray(16)).toEqual(openSshEd25519Seed(pem));
    }
  });

  it("passes every other key through unchanged: RSA, ECDSA, a passphrase-protected ed25519, PEM, garbage", () => {
    const others = [
      keygen("rsa").pem,
      keygen("ecdsa").pem,
      keygen("ed25519", "a passphrase").pem,
      "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n",
      "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAAtestkeytestkey\n-----END OPENSSH PRIVATE KEY-----\n",
      "not a key",
    ];
    for (const pem of others) expect(compactPrivateKey(pem)).toBe(pem);
  });
});
