/**
 * File primitives for the host tool: atomic writes (temp file beside the target, fsync, rename) and
 * kilo-fleet's state files. Runs on the host, bundled by esbuild: node built-ins only.
 */
import * as fs from "node:fs";
import * as path from "node:path";

/** A failure the tool reports as one `kilo-fleet: ...` line (no stack). */
export class HostError extends Error {}

/**
 * Crash injection for the reliability tests (test/reliability/crash.test.ts), inert in production:
 * with `KILO_FLEET_TEST_CRASH_AT=N` in the tool's environment, the Nth call of `crashPoint` (after each
 * mkdir, temp-file open, write, fsync, rename, unlink, chmod and lock step) SIGKILLs the tool, so every
 * write/rename boundary can be hit on purpose. No script sets the variable, and a remote session does not
 * forward it; unset, empty or not a positive integer, nothing happens.
 */
const crashAt = Number(process.env.KILO_FLEET_TEST_CRASH_AT) || 0;
let fsSteps = 0;
export function crashPoint(): void {
  if (crashAt > 0 && ++fsSteps === crashAt) process.kill(process.pid, "SIGKILL");
}

/** The file a write to `target` must change: a symlinked dotfile is written through its link. */
export function resolveTarget(target: string): string {
  try {
    if (fs.lstatSync(target).isSymbolicLink()) return fs.realpathSync(target);
  } catch {
    // missing: write the path itself
  }
  return target;
}

export function readIfExists(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

function describe(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err.code === "EACCES" || err.code === "EPERM") return "permission denied";
  if (err.code === "ENOTDIR") return "a parent path is not a directory";
  if (err.code === "EROFS") return "read-only file system";
  if (err.code === "ENOSPC") return "no space left on device";
  return err.code ?? String(err.message ?? e);
}

/** The directories `mkdir -p dir` would create, outermost first. */
function missingDirs(dir: string): string[] {
  const missing: string[] = [];
  for (let d = path.resolve(dir); !fs.existsSync(d); d = path.dirname(d)) {
    missing.unshift(d);
    if (path.dirname(d) === d) break;
  }
  return missing;
}

/** `mkdir -p` that returns the directories it created, outermost first. */
export function mkdirs(dir: string, mode = 0o755): string[] {
  const missing = missingDirs(dir);
  for (const d of missing) {
    try {
      fs.mkdirSync(d, { mode });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw new HostError(`cannot create ${d}: ${describe(e)}`);
    }
    crashPoint();
  }
  return missing;
}

const TEMP_MARK = ".kilo-fleet-tmp-";
/** The temp name kilo-fleet uses beside `target` while it writes or creates it: `.<name>.kilo-fleet-tmp-<pid>`. */
const tempPath = (target: string) =>
  path.join(path.dirname(target), `.${path.basename(target)}${TEMP_MARK}${process.pid}`);

/**
 * Whether process `pid` is alive. A zombie (killed, not yet reaped: a `kill -9` of the whole script
 * orphans node, and some init processes reap late or never) is not: on Linux its /proc state is `Z`;
 * elsewhere kill(pid, 0) is all there is.
 */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true;
  }
}

/**
 * Removes what a killed kilo-fleet run left beside `target`: its temp file (or directory) whose pid is not
 * running. Without this, a crash mid-write would leave `.<name>.kilo-fleet-tmp-<pid>` behind for good,
 * and the env file's temp file holds the key (found by test/reliability/crash.hook.test.ts).
 */
export function removeStaleTemps(target: string): void {
  const prefix = `.${path.basename(target)}${TEMP_MARK}`;
  let names: string[];
  try {
    names = fs.readdirSync(path.dirname(target));
  } catch {
    return;
  }
  for (const n of names) {
    if (!n.startsWith(prefix) || !/^[1-9]\d*$/.test(n.slice(prefix.length))) continue;
    const pid = Number(n.slice(prefix.length));
    if (pid !== process.pid && isRunning(pid)) continue;
    try {
      fs.rmSync(path.join(path.dirname(target), n), { recursive: true, force: true });
    } catch {
      // best effort: it is only litter
    }
    crashPoint();
  }
}

/**
 * Writes `data` to `target` atomically: a temp file beside it (created exclusively with `mode`), fsync,
 * rename. `mode` undefined keeps an existing file's mode (0644 for a new one). A symlink is written through.
 */
export function writeFileAtomic(target: string, data: string | Uint8Array, mode?: number): void {
  const file = resolveTarget(target);
  let finalMode = mode;
  if (finalMode === undefined) {
    try {
      finalMode = fs.statSync(file).mode & 0o7777;
    } catch {
      finalMode = 0o644;
    }
  }
  removeStaleTemps(file);
  const tmp = tempPath(file);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, "wx", 0o600);
    crashPoint();
    fs.writeSync(fd, typeof data === "string" ? Buffer.from(data, "utf8") : data);
    crashPoint();
    fs.fchmodSync(fd, finalMode);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    crashPoint();
    fs.renameSync(tmp, file);
    crashPoint();
  } catch (e) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw new HostError(`cannot write ${file}: ${describe(e)}`);
  }
  try {
    const dfd = fs.openSync(path.dirname(file), "r");
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  } catch {
    // directory fsync is best effort (not supported everywhere)
  }
}

export function removeFile(file: string): boolean {
  removeStaleTemps(resolveTarget(file));
  try {
    fs.unlinkSync(file);
    crashPoint();
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw new HostError(`cannot remove ${file}: ${describe(e)}`);
  }
}

export function readJson<T>(file: string): T | undefined {
  const text = readIfExists(file);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new HostError(`kilo-fleet's state file ${file} is corrupt; remove it and deploy again`);
  }
}

export function writeJson(file: string, value: unknown): void {
  mkdirsRecorded(path.dirname(file), path.dirname(file));
  writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`, 0o600);
}

/** The step state files in the state dir; when none is left, the recorded directories are removed. */
export const STEP_STATE_FILES = ["config.json", "shell.json", "install"] as const;
export const DIRS_FILE = "dirs.json";

/** Adds `dirs` to the state dir's record of the directories kilo-fleet created. */
function addDirsRecord(stateDir: string, dirs: string[]): void {
  if (dirs.length === 0) return;
  const file = path.join(stateDir, DIRS_FILE);
  const known = readJson<string[]>(file) ?? [];
  const all = [...new Set([...known, ...dirs.map((d) => path.resolve(d))])];
  if (all.length !== known.length) writeFileAtomic(file, `${JSON.stringify(all, null, 2)}\n`, 0o600);
}

/**
 * Creates the state dir and its missing parents together with their record, atomically: the chain is
 * built under a temp name beside its outermost missing directory, with `dirs.json` inside, then renamed
 * into place. A crash leaves either nothing (a stale temp dir, removed on the next run) or recorded
 * directories, never an unrecorded one that the last delete would leave behind.
 */
export function makeStateDir(stateDir: string): string[] {
  const missing = missingDirs(stateDir);
  if (missing.length === 0) return missing;
  const top = missing[0];
  removeStaleTemps(top);
  const tmp = tempPath(top);
  const inner = path.join(tmp, path.relative(top, stateDir));
  try {
    fs.mkdirSync(inner, { recursive: true, mode: 0o755 });
    crashPoint();
    fs.writeFileSync(path.join(inner, DIRS_FILE), `${JSON.stringify(missing, null, 2)}\n`, { mode: 0o600 });
    crashPoint();
    fs.renameSync(tmp, top);
    crashPoint();
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    const code = (e as NodeJS.ErrnoException).code;
    // Someone else created `top` meanwhile: start again from what is missing now.
    if (code === "EEXIST" || code === "ENOTEMPTY") return makeStateDir(stateDir);
    throw new HostError(`cannot create ${top}: ${describe(e)}`);
  }
  return missing;
}

/** Records directories someone else (npm) created for kilo-fleet, so the last delete removes them if empty. */
export function recordDirs(stateDir: string, dirs: string[]): void {
  makeStateDir(stateDir);
  addDirsRecord(stateDir, dirs);
}

/**
 * `mkdir -p` that records the directories it creates in the state dir, so the last delete removes them.
 * The record is written first: a crash in between leaves a recorded directory that does not exist (the
 * delete skips it), never an unrecorded one.
 */
export function mkdirsRecorded(stateDir: string, dir: string, mode = 0o755): string[] {
  // A directory that cannot be made (a read-only ~/.config) fails before anything is written.
  const outermost = missingDirs(dir)[0];
  if (outermost !== undefined) {
    try {
      fs.accessSync(path.dirname(outermost), fs.constants.W_OK);
    } catch (e) {
      throw new HostError(`cannot create ${outermost}: ${describe(e)}`);
    }
  }
  // The state dir (where the record goes) may be new too: it is recorded with the rest.
  makeStateDir(stateDir);
  const missing = missingDirs(dir);
  if (missing.length === 0) return missing;
  addDirsRecord(stateDir, missing);
  mkdirs(dir, mode);
  return missing;
}

/**
 * Makes sure `dir` exists and is writable before anything else is written: an existing directory is
 * checked first (so a read-only one fails before kilo-fleet writes even its own state), a missing one
 * is created (recorded).
 */
export function ensureWritableDir(stateDir: string, dir: string, mode = 0o755): void {
  if (fs.existsSync(dir)) {
    try {
      fs.accessSync(dir, fs.constants.W_OK);
    } catch {
      throw new HostError(`cannot write ${dir}: permission denied`);
    }
  }
  mkdirsRecorded(stateDir, dir, mode);
}

/**
 * Called at the end of every delete: when no step's state is left, removes each directory kilo-fleet
 * created that is now empty (deepest first), then the state dir. The state dir's own chain (the state
 * dir and the parents kilo-fleet created for it) goes last and at once: renamed to a temp name, then
 * removed, so a crash never leaves it without the record that says it is kilo-fleet's.
 */
export function cleanupDirs(stateDir: string): void {
  const ancestors: string[] = [];
  for (let d = path.resolve(stateDir); path.dirname(d) !== d; d = path.dirname(d)) ancestors.push(d);
  // A temp name a crashed cleanup (or state dir creation) left beside the chain.
  for (const d of ancestors) removeStaleTemps(d);
  if (STEP_STATE_FILES.some((f) => fs.existsSync(path.join(stateDir, f)))) return;
  const file = path.join(stateDir, DIRS_FILE);
  removeStaleTemps(file);
  const dirs = (readJson<string[]>(file) ?? []).map((d) => path.resolve(d));
  const chain = new Set([path.resolve(stateDir), ...dirs.filter((d) => ancestors.includes(d))]);
  for (const d of dirs.filter((x) => !chain.has(x)).sort((a, b) => b.length - a.length)) {
    try {
      fs.rmdirSync(d);
      crashPoint();
    } catch {
      // not empty (someone else's files) or already gone: leave it
    }
  }
  // The outermost directory of the chain that holds nothing but the chain and the record.
  let top: string | undefined;
  for (const d of [...chain].sort((a, b) => b.length - a.length)) {
    let names: string[];
    try {
      names = fs.readdirSync(d);
    } catch {
      break;
    }
    const inner = d === path.resolve(stateDir) ? [DIRS_FILE] : [path.basename(top ?? "")];
    if (!names.every((n) => inner.includes(n)) || (top !== undefined && path.dirname(top) !== d)) break;
    top = d;
  }
  if (top === undefined) {
    removeFile(file);
    return;
  }
  const tmp = tempPath(top);
  try {
    fs.renameSync(top, tmp);
    crashPoint();
    fs.rmSync(tmp, { recursive: true, force: true });
    crashPoint();
  } catch {
    // someone else's files appeared meanwhile: leave it
  }
}

/** All of stdin (a secret: the key, a token): read here, never from argv or the environment. */
export function readStdin(what: string): string {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(65536);
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EAGAIN") {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
        continue;
      }
      if (code === "EOF") break;
      throw new HostError(`cannot read ${what} from stdin: ${code}`);
    }
    if (n === 0) break;
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * Stdin holding several secrets, one a line (the step's own, then the proxy's credentials): exactly `count`
 * lines, the last newline optional. Errors name `what`, never a value.
 */
export function splitStdinLines(text: string, count: number, what: string): string[] {
  const body = text.endsWith("\n") ? text.slice(0, -1) : text;
  const lines = body.split("\n");
  if (lines.length !== count) throw new HostError(`stdin must hold ${what}, one a line; nothing was changed`);
  return lines;
}
