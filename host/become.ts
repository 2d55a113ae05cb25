/**
 * `become: sudo`: the policy step run as root through `sudo -n` by a non-root user. The same tool file
 * and JavaScript runtime are run again under sudo (root's PATH may have neither); a sudo that is missing
 * or wants a password fails in one line naming the host and the setting, before anything is written.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { encodeStepArg } from "../common/stepArgs";
import { HostError } from "./fsUtil";

/** Where sudo is: PATH first, then the usual places (an SSH session's PATH is short). */
export function findSudo(env: NodeJS.ProcessEnv): string | undefined {
  const dirs = [...(env.PATH ?? "").split(":"), "/usr/bin", "/bin", "/usr/local/bin", "/usr/sbin", "/sbin"];
  for (const d of dirs) {
    if (!d.startsWith("/")) continue;
    const f = path.join(d, "sudo");
    try {
      fs.accessSync(f, fs.constants.X_OK);
      return f;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The last line of what sudo said (its refusal comes after any warning), printable and short. */
const lastLine = (text: string) =>
  (
    text
      .split("\n")
      .filter((l) => l.trim() !== "")
      .pop() ?? "no message"
  )
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, "")
    .trim()
    .slice(0, 160);

/**
 * Runs `<runtime> <tool> sub '<args>'` through `sudo -n`, passing its output through; the exit code.
 * A refusal by sudo itself (no kilo-fleet line on stderr) is one HostError naming the host and `become`.
 */
export function runViaSudo(host: string, sub: string, args: unknown): number {
  const sudo = findSudo(process.env);
  if (sudo === undefined) {
    throw new HostError(
      `policy on ${host}: become: sudo is set, but this host has no sudo; nothing was written (install sudo, or deploy the policy as root)`,
    );
  }
  // Run as Bun (kilo's binary, no node on the host): the child must be told again.
  const runtime =
    typeof process.versions.bun === "string"
      ? ["env", "BUN_BE_BUN=1", "BUN_RUNTIME_TRANSPILER_CACHE_PATH=0", process.execPath]
      : [process.execPath];
  const r = spawnSync(sudo, ["-n", "--", ...runtime, path.resolve(process.argv[1]), sub, encodeStepArg(args)], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  process.stdout.write(r.stdout ?? "");
  if (r.status === 0) {
    process.stderr.write(r.stderr ?? "");
    return 0;
  }
  if (/^kilo-fleet: /m.test(r.stderr ?? "")) {
    process.stderr.write(r.stderr);
    return 1;
  }
  const said = lastLine(r.stderr || String(r.error ?? `exit ${r.status}`));
  if (!said.startsWith("sudo:")) {
    throw new HostError(`policy on ${host}: the step run through sudo failed (${r.status ?? r.signal}): ${said}`);
  }
  throw new HostError(
    `policy on ${host}: become: sudo, but sudo -n refused (${said}); nothing was written (allow this user passwordless sudo, or deploy the policy as root)`,
  );
}
