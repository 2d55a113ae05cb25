/**
 * Runs a host script the way local.Command does (`/bin/sh -c <script>`, stdin piped), asynchronously, in
 * its own process group, capturing stdout/stderr and the time taken. Optionally SIGKILLs the whole group
 * (the script, node and anything else it started) after a delay: the reliability suite's crash injection.
 * With `shell`, runs `<shell> -c <script>` instead: how sshd has a user's login shell run a
 * remote.Command's command line.
 */
import { spawn } from "node:child_process";

export interface ScriptRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** The runner SIGKILLed the process group. */
  killed: boolean;
}

/**
 * Runs a script as local.Command does (`/bin/sh -c <script>`, stdin piped), in its own process group.
 * With `killAfterMs`, SIGKILLs the whole group then (kill -9 of the script, node and all); with `killWhen`,
 * once that promise resolves (e.g. when the script is seen at work). With `shell`
 * (e.g. `/usr/bin/fish`), that shell runs it as `<shell> -c <script>`, as a login shell over SSH does.
 */
export function runScript(
  script: string,
  env: NodeJS.ProcessEnv,
  opts: { stdin?: string; killAfterMs?: number; killWhen?: Promise<unknown>; cwd?: string; shell?: string } = {},
): Promise<ScriptRun> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const child = spawn(opts.shell ?? "/bin/sh", ["-c", script], {
      env,
      cwd: opts.cwd ?? env.HOME,
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
    });
    let stdout = "";
    let stderr = "";
    let killed = false;
    let done = false;
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.stdin.on("error", () => {
      // killed before it read stdin: nothing to do
    });
    const kill = () => {
      if (done || child.pid === undefined) return;
      try {
        process.kill(-child.pid, "SIGKILL");
        killed = true;
      } catch {
        // already gone
      }
    };
    let timer: NodeJS.Timeout | undefined;
    if (opts.killAfterMs !== undefined) timer = setTimeout(kill, opts.killAfterMs);
    opts.killWhen?.then(kill, () => {
      // no kill
    });
    child.on("error", reject);
    child.on("close", (code, signal) => {
      done = true;
      if (timer) clearTimeout(timer);
      // A killed group may leave nothing running: make sure (the group id is the shell's pid).
      if (killed && child.pid !== undefined) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          // gone
        }
      }
      resolve({
        code,
        signal,
        stdout,
        stderr,
        killed,
        ms: Number(process.hrtime.bigint() - started) / 1e6,
      });
    });
    child.stdin.end(opts.stdin ?? "");
  });
}
