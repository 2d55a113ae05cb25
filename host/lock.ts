/**
 * One host-tool run at a time per HOME. Two stacks that share a host may deploy it at the same moment,
 * and every step is a read-modify-write of kilo.jsonc, the rc files and kilo-fleet's state files: without
 * a lock, one run's state could record the other run's file (test/reliability/concurrency.test.ts).
 *
 * Portable (POSIX, no flock(1), which macOS lacks): the lock is the directory `$HOME/.kilo-fleet.lock`.
 * - Taking it: a temp directory holding `owner` (`<pid> <hostname>`) is renamed to the lock's name;
 *   rename(2) of a directory onto an existing non-empty one fails, so exactly one run gets it, and a lock
 *   never exists without its owner.
 * - Stale rule: a lock whose owner ran on this host name and whose pid is no longer running (or is a
 *   zombie, see fsUtil `isRunning`) was left by a killed run. To break it, a contender makes `<lock>/break` (mkdir is atomic: one breaker at a time),
 *   checks the owner is still that dead pid, and renames the lock away (atomic) and removes it. A `break`
 *   directory older than 30 s is a breaker's own leftover and is ignored.
 * - Releasing: rename away, then remove. A run on another host name (a shared network HOME) is waited for.
 * - It waits up to 60 s (the tool's steps take well under a second), then fails with one line naming
 *   the lock. A HOME that cannot be written at all runs unlocked (every write would fail there anyway).
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { crashPoint, HostError, isRunning, removeStaleTemps } from "./fsUtil";

export const LOCK_NAME = ".kilo-fleet.lock";
const WAIT_MS = 60_000;
const BREAK_STALE_MS = 30_000;

const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function readOwner(lock: string): { pid: number; host: string } | undefined {
  try {
    const [pid, host] = fs.readFileSync(path.join(lock, "owner"), "utf8").trim().split(" ");
    return /^[1-9]\d*$/.test(pid) ? { pid: Number(pid), host: host ?? "" } : undefined;
  } catch {
    return undefined;
  }
}

/** Renames `dir` to a unique temp name beside it and removes it (atomic as far as others can see). */
function removeAtomically(dir: string): boolean {
  const gone = path.join(path.dirname(dir), `.${path.basename(dir)}.kilo-fleet-tmp-${process.pid}`);
  try {
    fs.renameSync(dir, gone);
  } catch {
    return false;
  }
  crashPoint();
  fs.rmSync(gone, { recursive: true, force: true });
  crashPoint();
  return true;
}

/** Breaks `lock` if its owner is dead (see the stale rule above). */
function breakIfStale(lock: string): void {
  const owner = readOwner(lock);
  if (owner && (owner.host !== os.hostname() || isRunning(owner.pid))) return;
  const breaker = path.join(lock, "break");
  try {
    fs.mkdirSync(breaker);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") return;
    try {
      // Another breaker is at work, or died at work long ago.
      if (Date.now() - fs.statSync(breaker).mtimeMs < BREAK_STALE_MS) return;
      fs.utimesSync(breaker, new Date(), new Date());
    } catch {
      return;
    }
  }
  crashPoint();
  const again = readOwner(lock);
  if (again?.pid === owner?.pid && again?.host === owner?.host) removeAtomically(lock);
  else fs.rmSync(breaker, { recursive: true, force: true });
}

/** Runs `f` holding the HOME's lock. */
export function withHostLock<T>(home: string, f: () => T): T {
  const lock = path.join(home, LOCK_NAME);
  removeStaleTemps(lock);
  const tmp = path.join(home, `.${LOCK_NAME}.kilo-fleet-tmp-${process.pid}`);
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    try {
      fs.mkdirSync(tmp, { mode: 0o700 });
      crashPoint();
      fs.writeFileSync(path.join(tmp, "owner"), `${process.pid} ${os.hostname()}\n`);
      crashPoint();
    } catch (e) {
      fs.rmSync(tmp, { recursive: true, force: true });
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EACCES" || code === "EPERM" || code === "EROFS") return f();
      throw new HostError(`cannot create the lock ${lock}: ${code ?? (e as Error).message}`);
    }
    try {
      fs.renameSync(tmp, lock);
      crashPoint();
      break;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      fs.rmSync(tmp, { recursive: true, force: true });
      if (code !== "EEXIST" && code !== "ENOTEMPTY" && code !== "EISDIR") {
        throw new HostError(`cannot create the lock ${lock}: ${code ?? (e as Error).message}`);
      }
    }
    breakIfStale(lock);
    if (Date.now() > deadline) {
      const owner = readOwner(lock);
      throw new HostError(
        `another kilo-fleet run holds ${lock}${owner ? ` (pid ${owner.pid} on ${owner.host})` : ""} for over ${WAIT_MS / 1000} s; if none is running, remove that directory and deploy again`,
      );
    }
    sleep(10 + Math.floor(Math.random() * 40));
  }
  try {
    return f();
  } finally {
    removeAtomically(lock);
  }
}
