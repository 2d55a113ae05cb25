/**
 * One host-tool run at a time per HOME: the directory lock `$HOME/.kilo-fleet.lock` holding `owner`
 * (`<pid> <hostname>`), taken by an atomic rename, broken when its owner died on this host, waited for up
 * to 60 s. Portable (no flock(1), which macOS lacks). The rules and why: docs/design.md, "Scripts:
 * idempotent, locked, recorded"; proved by test/reliability/concurrency.test.ts.
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
