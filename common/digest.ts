/** The hashes the deployer and the host tool agree on (pure). */
import { createHash } from "node:crypto";

/** The sha256 of UTF-8 text, in hex. */
export const sha256Hex = (text: string): string => createHash("sha256").update(text, "utf8").digest("hex");

/**
 * What a step's argument carries of a file the host compares with its own copy (the policy, the CA file):
 * the first 32 hex digits of its sha256.
 */
export const fileDigest = (text: string): string => sha256Hex(text).slice(0, 32);
