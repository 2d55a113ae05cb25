/**
 * The CA file's bytes (`kilo-fleet:caCertificates`, written by the env step beside the env file): pure, shared
 * by the host tool, which writes and checks it, and the deployer, which gives the check (doctor) its
 * `fileDigest` (common/digest.ts).
 */

/** The CA file's text: the PEM text with one final newline. */
export const caFileText = (pem: string): string => (pem.endsWith("\n") ? pem : `${pem}\n`);
