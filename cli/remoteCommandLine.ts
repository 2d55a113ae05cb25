/**
 * `ssh host <command>` hands its command string to the remote user's login shell (bash, zsh, fish, dash...);
 * `kilo-fleet doctor` runs its script on SSH hosts this way (the check's argument goes on stdin, not in it).
 * `remoteCommandLine` wraps a script so that every such shell passes it to /bin/sh unchanged:
 *
 *   exec /bin/sh -c 'kf_b64=<base64>; kf_s=$(printf %s "$kf_b64" | base64 -d 2>/dev/null) || ... ; eval "$kf_s"'
 *
 * Inside the single quotes there are only [A-Za-z0-9+/=], letters, `$(){}|;_%"-` and spaces: no
 * backslash (fish treats `\\` and `\'` in single quotes specially), no `!` (csh history), no newline.
 * Decoding: `base64 -d` (GNU, BusyBox, macOS 13+), then `base64 -D` (older macOS), then
 * `openssl base64 -d -A`. stdin is untouched, so it still reaches the script.
 */
import { fitsInOneArgument, MAX_ARG_BYTES } from "../common/argLimit";

/** `script` as one command line every login shell hands to /bin/sh; throws when it exceeds one argument. */
export function remoteCommandLine(script: string): string {
  if (script.includes("\0")) throw new Error("kilo-fleet: a host script cannot contain a NUL byte");
  const b64 = Buffer.from(script, "utf8").toString("base64");
  const inner =
    `kf_b64=${b64}; ` +
    'kf_s=$(printf %s "$kf_b64" | base64 -d 2>/dev/null) || kf_s=$(printf %s "$kf_b64" | base64 -D 2>/dev/null) || kf_s=$(printf %s "$kf_b64" | openssl base64 -d -A) || { echo "kilo-fleet: cannot decode the script: no base64 or openssl on this host" >&2; exit 1; }; ' +
    'unset kf_b64; eval "$kf_s"';
  const line = `exec /bin/sh -c '${inner}'`;
  if (!fitsInOneArgument(line)) {
    throw new Error(
      `kilo-fleet: the remote command line is ${Buffer.byteLength(line)} bytes, over the ${MAX_ARG_BYTES}-byte argument limit`,
    );
  }
  return line;
}
