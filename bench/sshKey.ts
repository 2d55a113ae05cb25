/**
 * A fresh ed25519 private key in OpenSSH's own format (`ssh-keygen -t ed25519` output: the
 * `-----BEGIN OPENSSH PRIVATE KEY-----` text, unencrypted), for the state figure of an SSH host: the key
 * is an input of every remote step, so its real size matters. Built with node's crypto, no ssh-keygen.
 *
 * Format (PROTOCOL.key of OpenSSH): "openssh-key-v1\0", cipher "none", kdf "none", empty kdf options, one
 * key, its public blob, then the private section (two equal check words, key type, public key, the 64-byte
 * private key = seed ‖ public key, comment) padded 1, 2, 3, ... to a multiple of 8; base64 in lines of 70.
 */
import { generateKeyPairSync, randomBytes } from "node:crypto";

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const sshString = (b: Buffer | string) => {
  const buf = typeof b === "string" ? Buffer.from(b, "utf8") : b;
  return Buffer.concat([u32(buf.length), buf]);
};

/** The raw 32-byte public key and seed of a new ed25519 key pair. */
function newEd25519(): { pub: Buffer; seed: Buffer } {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const jwkPub = publicKey.export({ format: "jwk" }) as { x: string };
  const jwkPriv = privateKey.export({ format: "jwk" }) as { d: string };
  return { pub: Buffer.from(jwkPub.x, "base64url"), seed: Buffer.from(jwkPriv.d, "base64url") };
}

/** The OpenSSH private key text of a new ed25519 key with `comment` (as ssh-keygen's `-C`). */
export function ed25519OpenSshKey(comment = "dev@workstation"): string {
  const { pub, seed } = newEd25519();
  const type = "ssh-ed25519";
  const publicBlob = Buffer.concat([sshString(type), sshString(pub)]);
  const check = randomBytes(4);
  let priv = Buffer.concat([
    check,
    check,
    sshString(type),
    sshString(pub),
    sshString(Buffer.concat([seed, pub])),
    sshString(comment),
  ]);
  const pad = (8 - (priv.length % 8)) % 8;
  priv = Buffer.concat([priv, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const body = Buffer.concat([
    Buffer.from("openssh-key-v1\0", "latin1"),
    sshString("none"),
    sshString("none"),
    sshString(""),
    u32(1),
    sshString(publicBlob),
    sshString(priv),
  ]).toString("base64");
  const lines = body.match(/.{1,70}/g) ?? [];
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join("\n")}\n-----END OPENSSH PRIVATE KEY-----\n`;
}
