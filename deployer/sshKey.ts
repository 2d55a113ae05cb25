/**
 * The SSH private key as the state holds it. @pulumi/command keeps the whole connection, key included,
 * in every remote step's inputs and again in its outputs (encrypted), so its size counts a dozen times per
 * host. An unencrypted ed25519 key in OpenSSH's format (`-----BEGIN OPENSSH PRIVATE KEY-----`, ~410
 * characters) is the same key as a PKCS#8 PEM of 119 characters, which the provider's Go SSH library
 * parses as well (`ssh.ParsePrivateKey` → `x509.ParsePKCS8PrivateKey`, ed25519 included). Any other key
 * (RSA, ECDSA, a passphrase-protected one, one already in PEM) is passed through unchanged.
 */
import { createPrivateKey, createPublicKey } from "node:crypto";

/** DER prefix of a PKCS#8 ed25519 private key: SEQUENCE { version 0, AlgorithmIdentifier 1.3.101.112, OCTET STRING { OCTET STRING <32-byte seed> } }. */
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

/** Reads SSH's wire format: uint32 length + bytes. */
class Reader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}
  bytes(n: number): Buffer {
    if (this.at + n > this.buf.length) throw new Error("truncated");
    const b = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return b;
  }
  uint32(): number {
    return this.bytes(4).readUInt32BE(0);
  }
  string(): Buffer {
    return this.bytes(this.uint32());
  }
}

/** The 32-byte seed of an unencrypted OpenSSH ed25519 key, or undefined when the text is anything else. */
export function openSshEd25519Seed(pem: string): Buffer | undefined {
  const m = /^-----BEGIN OPENSSH PRIVATE KEY-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END OPENSSH PRIVATE KEY-----\s*$/.exec(
    pem.trim(),
  );
  if (!m) return undefined;
  try {
    const r = new Reader(Buffer.from(m[1].replace(/\s+/g, ""), "base64"));
    if (r.bytes(15).toString("latin1") !== "openssh-key-v1\0") return undefined;
    const cipher = r.string().toString();
    const kdf = r.string().toString();
    r.string(); // kdf options
    if (cipher !== "none" || kdf !== "none" || r.uint32() !== 1) return undefined;
    r.string(); // public key blob
    const priv = new Reader(r.string());
    const check1 = priv.uint32();
    const check2 = priv.uint32();
    if (check1 !== check2) return undefined; // the check ints differ: not decrypted
    if (priv.string().toString() !== "ssh-ed25519") return undefined;
    const pub = priv.string();
    const secret = priv.string(); // seed (32) + public key (32)
    if (pub.length !== 32 || secret.length !== 64 || !secret.subarray(32).equals(pub)) return undefined;
    return Buffer.from(secret.subarray(0, 32));
  } catch {
    return undefined;
  }
}

/** The key as it goes into the connection: PKCS#8 PEM for an unencrypted OpenSSH ed25519 key, else as given. */
export function compactPrivateKey(pem: string): string {
  const seed = openSshEd25519Seed(pem);
  if (seed === undefined) return pem;
  const der = Buffer.concat([PKCS8_ED25519_PREFIX, seed]);
  const out = `-----BEGIN PRIVATE KEY-----\n${der.toString("base64")}\n-----END PRIVATE KEY-----\n`;
  // The same key, or nothing: derive the public key both ways and compare.
  const fromPkcs8 = createPublicKey(createPrivateKey(out)).export({ format: "der", type: "spki" });
  const pub = fromPkcs8.subarray(fromPkcs8.length - 32);
  const r = new Reader(Buffer.from(pem.trim().split(/\r?\n/).slice(1, -1).join(""), "base64"));
  r.bytes(15);
  r.string();
  r.string();
  r.string();
  r.uint32();
  const blob = new Reader(r.string());
  blob.string();
  return blob.string().equals(pub) ? out : pem;
}
