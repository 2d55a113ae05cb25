/**
 * Where kilo-fleet's records are, and their move from where an earlier version kept them
 * (`$XDG_STATE_HOME/kilo-fleet`) to the fixed place (common/hostPaths.ts STATE_DIR_IN_HOME).
 * host/kilo-package.sh `kf_migrate` does the same in sh. See docs/design.md "Records".
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { HostLayout } from "../common/hostPaths";
import { DIRS_FILE, HostError, makeStateDir, readIfExists, STEP_STATE_FILES, writeFileAtomic } from "./fsUtil";

/** The package install's record (host/kilo-package.sh): `root`, `link`, `version` and `dir` lines. */
export const PACKAGE_RECORD = "kilo-package";
/** Every file a records dir may hold. */
export const RECORD_FILES = [...STEP_STATE_FILES, PACKAGE_RECORD, DIRS_FILE] as const;

const isDir = (d: string) => {
  try {
    return fs.lstatSync(d).isDirectory();
  } catch {
    return false;
  }
};
const holdsRecords = (d: string) => isDir(d) && RECORD_FILES.some((f) => fs.existsSync(path.join(d, f)));

/**
 * The records dir to read (read-only callers: the check): the fixed place, or an earlier version's
 * XDG_STATE_HOME place while only that one holds records (the next locked step moves them).
 */
export function recordsDir(layout: HostLayout): string {
  const old = layout.xdgStateDir;
  return old !== undefined && !holdsRecords(layout.stateDir) && holdsRecords(old) ? old : layout.stateDir;
}

function dirsList(file: string): string[] {
  const text = readIfExists(file);
  if (text === undefined) return [];
  try {
    const v = JSON.parse(text);
    return Array.isArray(v) ? v.filter((d): d is string => typeof d === "string") : [];
  } catch {
    throw new HostError(`kilo-fleet's state file ${file} is corrupt; remove it and deploy again`);
  }
}

const writeDirs = (file: string, dirs: string[]) =>
  writeFileAtomic(file, `${JSON.stringify([...new Set(dirs)], null, 2)}\n`, 0o600);

const packageLines = (text: string | undefined) => (text ?? "").split("\n").filter((l) => l !== "");

/** Moves one file (rename, or copy then unlink across file systems). */
function moveFile(from: string, to: string): void {
  try {
    fs.renameSync(from, to);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EXDEV") throw new HostError(`cannot move ${from} to ${to}`);
    writeFileAtomic(to, fs.readFileSync(from, "utf8"), 0o600);
    fs.unlinkSync(from);
  }
}

/**
 * Moves the records an earlier version kept at `$XDG_STATE_HOME/kilo-fleet` to the fixed place, under the
 * lock, before a step reads them. The fixed place's new directories are recorded in every record that can
 * remove them (dirs.json, the package record); the old place and the parents kilo-fleet made for it go
 * once empty. A step record at both places (both kept: kilo-fleet cannot tell which is right) is left
 * where it is, with a warning, and the check names it. Returns the lines to print.
 */
export function migrateRecords(layout: HostLayout): string[] {
  const old = layout.xdgStateDir;
  if (old === undefined || !holdsRecords(old)) return [];
  const to = layout.stateDir;
  const oldDirs = [
    ...dirsList(path.join(old, DIRS_FILE)),
    ...packageLines(readIfExists(path.join(old, PACKAGE_RECORD)))
      .filter((l) => l.startsWith("dir "))
      .map((l) => l.slice(4)),
  ];
  const made = makeStateDir(to);
  const lines: string[] = [];
  for (const name of RECORD_FILES) {
    const from = path.join(old, name);
    const dest = path.join(to, name);
    const text = readIfExists(from);
    if (text === undefined) continue;
    if (name === DIRS_FILE) {
      writeDirs(dest, [...dirsList(dest), ...dirsList(from), ...made]);
      fs.unlinkSync(from);
    } else if (name === PACKAGE_RECORD) {
      const have = packageLines(text);
      const more = [...packageLines(readIfExists(dest)), ...made.map((d) => `dir ${d}`)];
      const all = [...have, ...more.filter((l) => !have.includes(l))];
      // Its mode as the package install's sh made it.
      writeFileAtomic(dest, `${all.join("\n")}\n`, fs.statSync(from).mode & 0o777);
      fs.unlinkSync(from);
    } else if (!fs.existsSync(dest)) {
      moveFile(from, dest);
    } else if (readIfExists(dest) === text) {
      fs.unlinkSync(from);
    } else {
      lines.push(
        `kilo-fleet: warning: ${from} and ${dest} are both kilo-fleet records; the one at ${to} is used, the other is left for you to check and remove`,
      );
    }
  }
  // The old place, then each parent kilo-fleet made for it, while empty; they leave the records with it.
  const gone: string[] = [];
  for (let d = old; oldDirs.includes(d) || d === old; d = path.dirname(d)) {
    try {
      fs.rmdirSync(d);
    } catch {
      break;
    }
    gone.push(d);
  }
  if (gone.length > 0) dropDirs(to, gone);
  return [`kilo-fleet: moved its records from ${old} to ${to}`, ...lines];
}

/** Removes `gone` from the records' lists of directories kilo-fleet made. */
function dropDirs(dir: string, gone: string[]): void {
  const dirsFile = path.join(dir, DIRS_FILE);
  if (fs.existsSync(dirsFile))
    writeDirs(
      dirsFile,
      dirsList(dirsFile).filter((d) => !gone.includes(d)),
    );
  const pkg = path.join(dir, PACKAGE_RECORD);
  const text = readIfExists(pkg);
  if (text === undefined) return;
  const kept = packageLines(text).filter((l) => !gone.some((d) => l === `dir ${d}`));
  writeFileAtomic(pkg, `${kept.join("\n")}\n`, fs.statSync(pkg).mode & 0o777);
}
