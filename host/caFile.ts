/**
 * The CA certificates file on the host (`kilo-fleet:caCertificates`): `<config dir>/ca-certificates.pem`,
 * next to the env file, 0644 (certificates are public), written atomically and recorded in the env step's
 * state so delete removes it. The env file exports `NODE_EXTRA_CA_CERTS=<it>`: kilo 7.7.7 (a Bun binary)
 * and node add it to their roots (measured by test/caTrust.test.ts). npm does NOT read that variable and
 * its `--cafile` REPLACES its roots, so the install step gets `npmCaBundle` (node's roots plus these).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as tls from "node:tls";
import { caFileText } from "../common/caFile";
import { HostError, removeFile, writeFileAtomic, writeJson } from "./fsUtil";

export const CA_FILE_NAME = "ca-certificates.pem";

/** Where the CA file goes: beside the env file, in kilo's config dir. */
export const caFilePath = (configDir: string) => path.join(configDir, CA_FILE_NAME);

/** What the env step's state records about the CA file (a field of shell.json). */
export interface CaState {
  /** The CA file kilo-fleet wrote (absolute), removed on delete or when the setting goes away. */
  caFile?: string;
}

/**
 * Defense in depth on the host (the deployer validated it with X509Certificate): PEM certificates only,
 * never a private key. Messages never quote the text.
 */
export function checkCaPem(pem: string): void {
  if (/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(pem)) {
    throw new HostError("refusing to write the CA certificates: the text holds a PRIVATE KEY block");
  }
  if (!/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.test(pem)) {
    throw new HostError("the CA certificates text holds no PEM certificate");
  }
}

/**
 * Writes `pem` to the CA file (or, `pem` undefined, removes the file kilo-fleet wrote earlier), recording
 * it in `state` (saved to `stateFile` before the file changes, so a crash never leaves an unrecorded file).
 * Refuses a symlink at the path, like the env file. Returns the file written, or undefined.
 */
export function applyCaFile(
  configDir: string,
  state: CaState,
  stateFile: string,
  pem: string | undefined,
): string | undefined {
  const file = caFilePath(configDir);
  if (pem === undefined) {
    if (state.caFile !== undefined) {
      removeFile(state.caFile);
      delete state.caFile;
      writeJson(stateFile, state);
    }
    return undefined;
  }
  checkCaPem(pem);
  refuseSymlink(file, "the CA certificates");
  if (state.caFile !== file) {
    // A recorded file elsewhere (XDG_CONFIG_HOME changed): removed once the new one is recorded.
    const old = state.caFile;
    state.caFile = file;
    writeJson(stateFile, state);
    if (old !== undefined) removeFile(old);
  }
  writeFileAtomic(file, caFileText(pem), 0o644);
  return file;
}

/** Removes the CA file kilo-fleet recorded (a symlink there is unlinked, never followed). */
export function deleteCaFile(state: CaState): string | undefined {
  if (state.caFile === undefined) return undefined;
  const file = state.caFile;
  delete state.caFile;
  return removeFile(file) ? file : undefined;
}

/**
 * The file for npm's `--cafile`: npm replaces its trusted roots with it, so it holds `roots` (node's
 * bundled Mozilla roots by default) followed by the custom certificates.
 */
export function npmCaBundle(customPem: string, roots: readonly string[] = tls.rootCertificates): string {
  const body = [...roots, customPem].map((c) => c.trim()).join("\n");
  return `${body}\n`;
}

/** Throws one line naming `file` when it is a symlink: kilo-fleet never writes through one there. */
export function refuseSymlink(file: string, what: string): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(file);
  } catch {
    return;
  }
  if (st.isSymbolicLink()) {
    throw new HostError(
      `refusing to write ${what} through a symlink: ${file} is a symlink (to ${fs.readlinkSync(file)}); remove it and deploy again`,
    );
  }
}
