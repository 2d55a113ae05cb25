/**
 * The key comparison of `kilo-fleet doctor --key-env` as a challenge: the deployer sends a fresh nonce, the
 * host answers with `keyProof(its key, nonce)`, and the deployer compares that with `keyProof(its key,
 * nonce)`. The host never sees the deployer's key, and learns nothing it did not hold.
 */
import { createHmac } from "node:crypto";

/** What the nonce is: 32 random bytes as 64 lowercase hex digits. */
export const NONCE_PATTERN = /^[0-9a-f]{64}$/;

/** HMAC-SHA256 keyed with `key` over a fixed label and the nonce, as hex. */
export function keyProof(key: string, nonce: string): string {
  return createHmac("sha256", Buffer.from(key, "latin1"))
    .update(`kilo-fleet doctor key challenge v1\n${nonce}`)
    .digest("hex");
}
