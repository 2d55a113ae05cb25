/**
 * File primitives for the host tool: atomic writes (temp file beside the target, fsync, rename) and
 * kilo-fleet's state files. Runs on the host, bundled by esbuild: node built-ins only.
 */
import * as fs from "node:fs";
import * as path from "node:path";

/** A failure the tool reports as one `kilo-fleet: ...` line (no stack). */
export class HostError extends Error {}

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

/** `mkdir -p` that returns the directories it created, outermost first. */
export function mkdirs(dir: string, mode = 0o755): string[] {
  const missing: string[] = [];
  for (let d = path.resolve(dir); !fs.existsSync(d); d = path.dirname(d)) {
    missing.unshift(d);
    if (path.dirname(d) === d) break;
  }
  for (const d of missing) {
    try {
      fs.mkdirSync(d, { mode });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw new HostError(`cannot create ${d}: ${describe(e)}`);
    }
  }
  return missing;
}

/**
 * Writes `data` to `target` atomically: a temp file beside it (created exclusively with `mode`), fsync,
 * rename. `mode` undefined keeps an existing file's mode (0644 for a new one). A symlink is written through.
 */
export function writeFileAtomic(target: string, data: string, mode?: number): void {
  const file = resolveTarget(target);
  let finalMode = mode;
  if (finalMode === undefined) {
    try {
      finalMode = fs.statSync(file).mode & 0o7777;
    } catch {
      finalMode = 0o644;
    }
  }
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.kilo-fleet-tmp-${process.pid}`);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, "wx", 0o600);
    fs.writeSync(fd, data);
    fs.fchmodSync(fd, finalMode);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
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
  try {
    fs.unlinkSync(file);
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
const DIRS_FILE = "dirs.json";

/** Records directories someone else (npm) created for kilo-fleet, so the last delete removes them if empty. */
export function recordDirs(stateDir: string, dirs: string[]): void {
  mkdirsRecorded(stateDir, stateDir);
  if (dirs.length === 0) return;
  const file = path.join(stateDir, DIRS_FILE);
  const known = readJson<string[]>(file) ?? [];
  const all = [...new Set([...known, ...dirs.map((d) => path.resolve(d))])];
  writeFileAtomic(file, `${JSON.stringify(all, null, 2)}\n`, 0o600);
}

/** `mkdir -p` that records the directories it created in the state dir, so the last delete removes them. */
export function mkdirsRecorded(stateDir: string, dir: string, mode = 0o755): string[] {
  const created = mkdirs(dir, mode);
  // The state dir (where the record goes) may be new too: it is recorded with the rest.
  const stateCreated = mkdirs(stateDir);
  if (created.length === 0 && stateCreated.length === 0) return created;
  const file = path.join(stateDir, DIRS_FILE);
  const known = readJson<string[]>(file) ?? [];
  const all = [...new Set([...known, ...stateCreated, ...created])];
  writeFileAtomic(file, `${JSON.stringify(all, null, 2)}\n`, 0o600);
  return created;
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
 * created that is now empty (deepest first), then the state dir.
 */
export function cleanupDirs(stateDir: string): void {
  if (STEP_STATE_FILES.some((f) => fs.existsSync(path.join(stateDir, f)))) return;
  const file = path.join(stateDir, DIRS_FILE);
  const dirs = readJson<string[]>(file) ?? [];
  removeFile(file);
  const candidates = [...new Set([...dirs, stateDir])].sort((a, b) => b.length - a.length);
  for (const d of candidates) {
    try {
      fs.rmdirSync(d);
    } catch {
      // not empty (someone else's files) or already gone: leave it
    }
  }
}
