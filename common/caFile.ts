/**
 * The CA file's bytes (`kilo-fleet:caCertificates`, written by the env step beside the env file): pure, shared
 * by the host tool, which writes and checks it, and the deployer, which gives the check (doctor) its hash.
 */
import { createHash } from "node:crypto";

/** The CA file's text: the PEM text with one final newline. */
export const caFileText = (pem: string): string => (pem.endsWith("\n") ? pem : `${pem}\n`);

/** What the check is given of `caCertificates`: the first 32 hex digits of the CA file's sha256. */
export function caFileSha256(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex").slice(0, 32);
}
