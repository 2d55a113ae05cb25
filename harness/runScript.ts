/**
 * The one way tests, the bench and the deploying mocks run a step's command: as local.Command does,
 * `<shell> -c <command>` (default /bin/sh; a login shell's name to run it as sshd has the user's shell run a
 * remote.Command's command line), stdin piped then closed, stdout/stderr captured.
 *
 * - `runScript`: asynchronous, in its own process group, timed; can SIGKILL the whole group (the command,
 *   node and anything else it started) after a delay or on a signal — the reliability suite's crash injection.
 * - `runScriptSync`: the same, synchronous, for straight-line tests.
 * - `spawnScript`: the same, with the child handed back, for tests that feed stdin slowly or watch /proc.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from "node:child_process";

/** What a synchronous run gives back. */
export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `runScript`'s argv: `<shell> -c <command>`. */
function argv(script: string, shell = "/bin/sh"): [string, string[]] {
  return [shell, ["-c", script]];
}

/** Runs a command synchronously (cwd HOME, 5 minutes at most). */
export function runScriptSync(script: string, env: NodeJS.ProcessEnv, stdin = "", opts: { shell?: string } = {}): Run {
  const [cmd, args] = argv(script, opts.shell);
  const r = spawnSync(cmd, args, { env, input: stdin, encoding: "utf8", cwd: env.HOME, timeout: 300_000 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Starts a command and hands back the child (stdin left open). */
export function spawnScript(script: string, env: NodeJS.ProcessEnv): ChildProcessWithoutNullStreams {
  const [cmd, args] = argv(script);
  return spawn(cmd, args, { env, cwd: env.HOME, stdio: ["pipe", "pipe", "pipe"] });
}

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
    const [cmd, args] = argv(script, opts.shell);
    const child = spawn(cmd, args, {
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
