/**
 * The organisation's policy as kilo's managed config: `<dir>/kilo.jsonc` in the administrator's directory
 * (`/etc/kilo`, macOS `/Library/Application Support/kilo`), which kilo merges over the user's and the
 * project's config. Root-owned, file 0644, directory 0755, written atomically under the directory's lock.
 * The record `<dir>/.kilo-fleet-policy.json` (0600) says what the step created and holds the bytes of a
 * managed file that was there before, which the delete puts back. Why: docs/policy.md.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { parse as parseJsonc } from "jsonc-parser";
import { renderPolicyFile } from "../common/policyFile";
import type { DeleteResult, PolicyResult } from "../common/result";
import { crashPoint, HostError, readIfExists, removeFile, removeStaleTemps, writeFileAtomic } from "./fsUtil";
import { LOCK_NAME, withHostLock } from "./lock";

export { POLICY_FILE_HEADER, renderPolicyFile } from "../common/policyFile";

/** The managed files kilo reads from the managed dir (kilo 7.7.7). */
export const MANAGED_FILE_NAMES = ["kilo.jsonc", "kilo.json", "opencode.jsonc", "opencode.json"] as const;
/** The one kilo-fleet writes. */
export const POLICY_FILE_NAME = "kilo.jsonc";
export const POLICY_RECORD_NAME = ".kilo-fleet-policy.json";

/** kilo's managed config dir on this platform; `KILO_FLEET_TEST_SYSTEM_DIR` stands in for it in tests. */
export function managedConfigDir(env: NodeJS.ProcessEnv, platform: string = process.platform): string {
  if (env.KILO_FLEET_TEST_SYSTEM_DIR) return env.KILO_FLEET_TEST_SYSTEM_DIR;
  return platform === "darwin" ? "/Library/Application Support/kilo" : "/etc/kilo";
}

/** What the record holds. */
interface PolicyRecord {
  file: string;
  /** kilo-fleet created the managed dir: the delete removes it once empty. */
  createdDir: boolean;
  /** The managed file that was there before kilo-fleet's, byte for byte. */
  previous: { base64: string; mode: number; uid: number; gid: number } | null;
}

const isRoot = () => process.getuid?.() === 0;

function readRecord(file: string): PolicyRecord | undefined {
  const text = readIfExists(file);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as PolicyRecord;
  } catch {
    throw new HostError(`kilo-fleet's record ${file} is corrupt; remove it and deploy again`);
  }
}

const writeRecord = (file: string, record: PolicyRecord) =>
  writeFileAtomic(file, `${JSON.stringify(record, null, 2)}\n`, 0o600);

/**
 * Creates `dir` (0755) with the record already inside: built under a temp name beside it, then renamed,
 * so a created managed dir always says it is kilo-fleet's. False when someone else made it meanwhile.
 */
function createDirWithRecord(dir: string): boolean {
  removeStaleTemps(dir);
  const tmp = path.join(path.dirname(dir), `.${path.basename(dir)}.kilo-fleet-tmp-${process.pid}`);
  const file = path.join(dir, POLICY_FILE_NAME);
  try {
    fs.mkdirSync(tmp, { mode: 0o755 });
    crashPoint();
    // sudo keeps the user's umask: 0755 whatever it is, or users could not read the policy.
    fs.chmodSync(tmp, 0o755);
    writeRecord(path.join(tmp, POLICY_RECORD_NAME), { file, createdDir: true, previous: null });
    fs.renameSync(tmp, dir);
    crashPoint();
    return true;
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EEXIST" || code === "ENOTEMPTY") return false;
    if (e instanceof HostError) throw e;
    throw new HostError(`cannot create ${dir}: ${code ?? (e as Error).message}`);
  }
}

/** The files kilo reads from the managed dir besides kilo-fleet's that set one of `keys` (top level). */
export function otherManagedFiles(dir: string, keys: string[]): { file: string; keys: string[] }[] {
  const out: { file: string; keys: string[] }[] = [];
  for (const name of MANAGED_FILE_NAMES) {
    if (name === POLICY_FILE_NAME) continue;
    const file = path.join(dir, name);
    let text: string | undefined;
    try {
      text = readIfExists(file);
    } catch {
      continue;
    }
    if (text === undefined) continue;
    const value = parseJsonc(text, [], { allowTrailingComma: true }) as unknown;
    const set =
      value !== null && typeof value === "object" && !Array.isArray(value)
        ? keys.filter((k) => k in (value as Record<string, unknown>))
        : [];
    out.push({ file, keys: set });
  }
  return out;
}

/** Writes the policy file (twice = once, byte for byte). */
export function policyApply(dir: string, policy: Record<string, unknown>): { lines: string[]; result: PolicyResult } {
  const file = path.join(dir, POLICY_FILE_NAME);
  const recordFile = path.join(dir, POLICY_RECORD_NAME);
  if (!fs.existsSync(dir) && !fs.existsSync(path.dirname(dir))) {
    throw new HostError(`cannot create ${dir}: ${path.dirname(dir)} does not exist`);
  }
  if (!fs.existsSync(dir)) createDirWithRecord(dir);
  const st = fs.statSync(dir);
  if (!st.isDirectory()) throw new HostError(`${dir} is not a directory; nothing was written`);
  if ((st.mode & 0o005) !== 0o005) {
    throw new HostError(
      `${dir} is mode ${(st.mode & 0o777).toString(8).padStart(4, "0")}: other users could not read the policy in it; make it 0755 and deploy again (nothing was written)`,
    );
  }
  const text = renderPolicyFile(policy);
  return withHostLock(dir, () => {
    let record = readRecord(recordFile);
    let lst: fs.Stats | undefined;
    try {
      lst = fs.lstatSync(file);
    } catch {
      lst = undefined;
    }
    if (lst?.isSymbolicLink()) {
      throw new HostError(`refusing to write the policy through a symlink: ${file} is one; nothing was written`);
    }
    if (record === undefined) {
      // First deploy: keep whatever managed file is there, to put it back on delete. Recorded first.
      const previous =
        lst === undefined
          ? null
          : {
              base64: fs.readFileSync(file).toString("base64"),
              mode: lst.mode & 0o7777,
              uid: lst.uid,
              gid: lst.gid,
            };
      record = { file, createdDir: false, previous };
      writeRecord(recordFile, record);
    }
    const existing = lst === undefined ? undefined : fs.readFileSync(file, "utf8");
    const right =
      existing === text && lst !== undefined && (lst.mode & 0o7777) === 0o644 && (!isRoot() || lst.uid === 0);
    if (!right) writeFileAtomic(file, text, 0o644);
    const status = existing === undefined ? "created" : existing === text ? "unchanged" : "updated";
    const lines = [`kilo-fleet: ${file} ${status === "unchanged" ? "already up to date" : status} (the policy)`];
    if (record.previous) lines.push(`kilo-fleet: the managed file that was at ${file} is kept; a delete puts it back`);
    for (const o of otherManagedFiles(dir, Object.keys(policy))) {
      if (o.keys.length > 0) {
        lines.push(
          `kilo-fleet: warning: ${o.file} is a managed file too and sets ${o.keys.join(", ")}: kilo may take those from it instead of the policy`,
        );
      }
    }
    return { lines, result: { step: "policy", path: file, status, ...(record.previous ? { replaced: true } : {}) } };
  });
}

/** Removes kilo-fleet's policy file, or puts back the one that was there before, byte for byte. */
export function policyDelete(dir: string): { lines: string[]; result: DeleteResult } {
  const recordFile = path.join(dir, POLICY_RECORD_NAME);
  const done = (line: string): { lines: string[]; result: DeleteResult } => ({
    lines: [`kilo-fleet: ${line}`],
    result: { step: "policy-delete", outcome: line },
  });
  // What a killed run left beside the managed dir (a directory being created or removed).
  removeStaleTemps(dir);
  if (!fs.existsSync(dir)) return done(`nothing recorded in ${dir}; left it untouched`);
  // Taken even with no record: a run killed before it let go of the lock left it there (broken here).
  return done(
    withHostLock(dir, () => {
      const record = readRecord(recordFile);
      if (record === undefined) return `nothing recorded in ${dir}; left it untouched`;
      const what = restoreOrRemove(record);
      if (record.createdDir && removeOwnDir(dir)) return `${what}; removed ${dir}`;
      removeFile(recordFile);
      return what;
    }),
  );
}

/**
 * Removes the managed dir kilo-fleet created, when nothing but its record and lock is left in it: renamed
 * to a temp name with the record inside, then removed, so a crash never leaves it without the record that
 * says it is kilo-fleet's (the next run removes the temp name). False when someone else's files are in it.
 */
function removeOwnDir(dir: string): boolean {
  removeStaleTemps(path.join(dir, POLICY_RECORD_NAME));
  const ours = (n: string) => n === POLICY_RECORD_NAME || n === LOCK_NAME || n.startsWith(`.${LOCK_NAME}.`);
  if (!fs.readdirSync(dir).every(ours)) return false;
  const tmp = path.join(path.dirname(dir), `.${path.basename(dir)}.kilo-fleet-tmp-${process.pid}`);
  try {
    fs.renameSync(dir, tmp);
  } catch {
    return false;
  }
  crashPoint();
  fs.rmSync(tmp, { recursive: true, force: true });
  crashPoint();
  return true;
}

/** Puts back the managed file that was there before kilo-fleet's, or removes kilo-fleet's. */
function restoreOrRemove(record: PolicyRecord): string {
  if (record.previous) {
    const p = record.previous;
    writeFileAtomic(record.file, Buffer.from(p.base64, "base64"), p.mode);
    if (isRoot()) fs.chownSync(record.file, p.uid, p.gid);
    return `put back the managed file that was at ${record.file}`;
  }
  return removeFile(record.file) ? `removed ${record.file}` : `${record.file} was already gone`;
}
