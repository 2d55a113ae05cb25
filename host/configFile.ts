/**
 * The config step on the host: runs the same merge code the unit tests cover (kiloConfigMerge.ts) on the
 * user's kilo.jsonc, keeping kilo-fleet's own record of what it manages in the state dir.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { parse as parseJsonc } from "jsonc-parser";
import { tildePath } from "../common/hostPaths";
import {
  type KeyPath,
  KiloConfigParseError,
  mergeKiloConfig,
  stripKiloConfig,
  valueAt,
} from "../common/kiloConfigMerge";
import type { ConfigResult, DeleteResult } from "../common/result";
import { ensureWritableDir, HostError, readIfExists, readJson, removeFile, writeFileAtomic, writeJson } from "./fsUtil";
import { POLICY_FILE_HEADER } from "./policy";

export interface ConfigState {
  /** The key paths kilo-fleet wrote last time (stale ones are removed on the next merge). */
  paths: KeyPath[];
  /** kilo-fleet created kilo.jsonc (so delete may remove it once nothing of the user's is left). */
  createdFile: boolean;
  /** kilo-fleet copied the user's pre-existing file to the backup path. */
  backup: boolean;
  /** The kilo.jsonc written (absolute): delete acts on it, wherever the environment says now. */
  configFile?: string;
  /** Its backup's path (absolute). */
  backupFile?: string;
}

export interface ConfigPaths {
  home: string;
  configFile: string;
  backupFile: string;
  stateDir: string;
  /** Where kilo's system-wide config lives (`/etc/kilo`); a parameter for tests. */
  systemDir: string;
}

const stateFile = (p: ConfigPaths) => path.join(p.stateDir, "config.json");

/** Runs a merge/strip; invalid JSONC becomes one line naming the file, line and column. */
function onText<T>(file: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof KiloConfigParseError) {
      throw new HostError(
        `${file} is not valid JSONC (line ${e.line}, column ${e.column}: ${e.reason}); left it untouched, fix it and deploy again`,
      );
    }
    throw e;
  }
}

/** The files kilo merges over kilo.jsonc (measured with kilo 7.7.7), that exist. */
export function overridingFiles(p: ConfigPaths): string[] {
  const dir = path.dirname(p.configFile);
  const files = [path.join(dir, "opencode.json"), path.join(dir, "opencode.jsonc")].filter((f) => fs.existsSync(f));
  for (const d of [path.join(p.home, ".kilocode"), path.join(p.home, ".kilo"), p.systemDir]) {
    let names: string[] = [];
    try {
      names = fs.readdirSync(d).sort();
    } catch {
      continue;
    }
    for (const n of names) {
      if (/\.jsonc?$/.test(n) && fs.statSync(path.join(d, n), { throwIfNoEntry: false })?.isFile()) {
        files.push(path.join(d, n));
      }
    }
  }
  return files;
}

/** One warning line per file and managed key that a file kilo applies over kilo.jsonc sets. */
export function overrideWarnings(p: ConfigPaths, paths: readonly KeyPath[]): { file: string; line: string }[] {
  const lines: { file: string; line: string }[] = [];
  for (const file of overridingFiles(p)) {
    let value: unknown;
    try {
      const text = fs.readFileSync(file, "utf8");
      // kilo-fleet's own policy wins on purpose (and doctor checks it against the stack's policy).
      if (text.startsWith(`${POLICY_FILE_HEADER}\n`)) continue;
      value = parseJsonc(text, [], { allowTrailingComma: true });
    } catch {
      continue;
    }
    for (const kp of paths) {
      if (kp[0] === "$schema") continue;
      if (valueAt(value, kp) !== undefined) {
        lines.push({
          file,
          line: `kilo-fleet: warning: ${file} sets "${kp.join(".")}", and kilo applies that file over kilo.jsonc, so kilo-fleet's value is ignored`,
        });
      }
    }
  }
  return lines;
}

/**
 * The backup's mode: the original's (a hand-made kilo.jsonc may hold literal keys, so a 0600 file stays
 * 0600), or 0600 when it cannot be read.
 */
export function backupMode(configFile: string): number {
  try {
    return fs.statSync(configFile).mode & 0o777;
  } catch {
    return 0o600;
  }
}

/** The paths the state recorded (a record from before paths were recorded: this layout's). */
function recordedPaths(p: ConfigPaths, state: ConfigState | undefined): ConfigPaths {
  return state?.configFile === undefined
    ? p
    : { ...p, configFile: state.configFile, backupFile: state.backupFile ?? `${state.configFile}.kilo-fleet-backup` };
}

export function configApply(
  p: ConfigPaths,
  managed: Record<string, unknown>,
  paths: KeyPath[],
): { lines: string[]; result: ConfigResult } {
  let state = readJson<ConfigState>(stateFile(p));
  // kilo.jsonc moved (XDG_CONFIG_HOME changed): what kilo-fleet wrote at the old place goes first.
  const moved: string[] = [];
  if (state !== undefined && recordedPaths(p, state).configFile !== p.configFile) {
    moved.push(...configDeleteLines(recordedPaths(p, state)));
    state = undefined;
  }
  const existing = readIfExists(p.configFile);
  const merged = onText(p.configFile, () => mergeKiloConfig(existing, managed, paths, state?.paths ?? []));

  const createdFile = existing === undefined ? true : (state?.createdFile ?? false);
  let backup = state?.backup ?? false;
  ensureWritableDir(p.stateDir, path.dirname(p.configFile), 0o700);
  // The backup is taken before any state records it, and adopted when it is already there and equal to
  // the untouched file (a run killed between the two; found by test/reliability/crash.hook.test.ts:
  // without this, the state said "no backup" for good and delete stripped the user's file instead of
  // restoring it).
  if (existing !== undefined && !createdFile && !backup) {
    const onDisk = readIfExists(p.backupFile);
    if (onDisk === undefined) writeFileAtomic(p.backupFile, existing, backupMode(p.configFile));
    if (onDisk === undefined || onDisk === existing) backup = true;
  }
  // Record the union of old and new paths (and the backup) before kilo.jsonc changes: a crash before the
  // final state still strips them all.
  const union = [...new Map([...(state?.paths ?? []), ...paths].map((k) => [JSON.stringify(k), k])).values()];
  const where = { configFile: p.configFile, backupFile: p.backupFile };
  writeJson(stateFile(p), { paths: union, createdFile, backup, ...where } satisfies ConfigState);

  const changed = merged !== existing;
  if (changed) writeFileAtomic(p.configFile, merged);
  writeJson(stateFile(p), { paths, createdFile, backup, ...where } satisfies ConfigState);
  const warnings = overrideWarnings(p, paths);
  const status = changed ? (existing === undefined ? "created" : "updated") : "unchanged";
  const shown = tildePath(p.home, p.configFile);
  const overriddenBy = [...new Set(warnings.map((w) => w.file))];
  return {
    // What it did is the result line's; the state keeps every line a step prints, so none repeats it.
    lines: [...moved, ...warnings.map((w) => w.line)],
    result: {
      step: "config",
      configPath: shown,
      status,
      ...(overriddenBy.length > 0 ? { overriddenBy } : {}),
    },
  };
}

/** Strips the recorded keys (the delete takes no settings: what kilo-fleet wrote is in its state). */
export function configDelete(p: ConfigPaths): { lines: string[]; result: DeleteResult } {
  const lines = configDeleteLines(p);
  return {
    lines,
    result: { step: "config-delete", outcome: lines.map((l) => l.replace(/^kilo-fleet: /, "")).join("; ") },
  };
}

function configDeleteLines(layout: ConfigPaths): string[] {
  const state = readJson<ConfigState>(stateFile(layout));
  // The recorded kilo.jsonc, not whatever the environment names now.
  const p = recordedPaths(layout, state);
  const all = state?.paths ?? [];
  const existing = readIfExists(p.configFile);
  const out: string[] = [];
  const backupText = state?.backup ? readIfExists(p.backupFile) : undefined;
  // kilo.jsonc equal to the backup is the user's own file, already restored (a delete killed after the
  // restore; found by test/reliability/crash.hook.test.ts): strip nothing from it, drop the backup.
  if (existing !== undefined && !state?.createdFile && readIfExists(p.backupFile) === existing) {
    removeFile(stateFile(p));
    removeFile(p.backupFile);
    return [`kilo-fleet: restored ${p.configFile} from its backup (it was unchanged apart from kilo-fleet's keys)`];
  }
  // No state: kilo-fleet never changed kilo.jsonc (the state is written before kilo.jsonc is), or an
  // earlier delete finished (a re-run after a crash, found by test/reliability/crash.hook.test.ts). Either
  // way the keys in it are the user's own: stripping them would change the user's file.
  if (state === undefined) {
    return [`kilo-fleet: nothing recorded for ${p.configFile}; left it untouched`];
  }
  if (existing !== undefined) {
    const createdFile = state?.createdFile ?? false;
    const stripped = onText(p.configFile, () => stripKiloConfig(existing, all, createdFile));
    const backupStripped =
      backupText === undefined ? undefined : onText(p.backupFile, () => stripKiloConfig(backupText, all, false).text);
    if (createdFile && !stripped.userContentLeft) {
      removeFile(p.configFile);
      out.push(`kilo-fleet: removed ${p.configFile} (kilo-fleet created it; nothing of yours was in it)`);
    } else if (backupText !== undefined && backupStripped === stripped.text) {
      // Nothing of the user's changed since the backup: put their file back exactly, managed keys included.
      // The state goes before the backup: a crash in between leaves kilo.jsonc equal to its backup (see above).
      writeFileAtomic(p.configFile, backupText);
      removeFile(stateFile(p));
      removeFile(p.backupFile);
      out.push(`kilo-fleet: restored ${p.configFile} from its backup (it was unchanged apart from kilo-fleet's keys)`);
    } else {
      if (stripped.text !== existing) writeFileAtomic(p.configFile, stripped.text);
      out.push(`kilo-fleet: removed kilo-fleet's keys from ${p.configFile}; the rest is kept`);
    }
  }
  if (backupText !== undefined && fs.existsSync(p.backupFile)) {
    if (readIfExists(p.configFile) === backupText) removeFile(p.backupFile);
    else out.push(`kilo-fleet: kept the backup of your original kilo.jsonc at ${p.backupFile}`);
  }
  removeFile(stateFile(p));
  return out;
}

export { HostError };
