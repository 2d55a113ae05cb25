/**
 * The env step on the host: writes the env file(s) from the key on stdin and the managed block in each
 * configured shell's startup file; delete removes both, restoring every startup file byte for byte.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { tildePath } from "../common/hostPaths";
import type { DeleteResult, EnvResult } from "../common/result";
import { applyCaFile, type CaState, caEnvVars, checkCaPem, deleteCaFile, refuseSymlink } from "./caFile";
import { ENV_FILE_HEADER, envVars, parseKeyFromStdin, renderFishEnvFile, renderShEnvFile } from "./envFile";
import {
  crashPoint,
  ensureWritableDir,
  HostError,
  mkdirsRecorded,
  readIfExists,
  readJson,
  readStdin,
  removeFile,
  resolveTarget,
  writeFileAtomic,
  writeJson,
} from "./fsUtil";
import { homeWord, type RcInsertion, removeRcBlock, renderRcBlock, upsertRcBlock } from "./rcBlock";

/** Shell name → startup file relative to HOME (settings.ts SHELL_RC_FILES, passed in by the script). */
export type RcFiles = Record<string, string>;

export interface ShellState extends CaState {
  /** rc file (absolute, as configured under HOME) → how the block went in. */
  rc: Record<string, RcInsertion>;
  /** The config dir's mode before kilo-fleet tightened it to 0700 (restored on delete). */
  configDirMode?: number;
}

export interface EnvPaths {
  home: string;
  configDir: string;
  envFile: string;
  fishEnvFile: string;
  binDir: string;
  stateDir: string;
  rcFiles: RcFiles;
}

const stateFile = (p: EnvPaths) => path.join(p.stateDir, "shell.json");
const rcPath = (p: EnvPaths, shell: string) => path.join(p.home, p.rcFiles[shell]);

/** `default`: the shells whose rc file exists (fish: whose ~/.config/fish exists), plus sh. */
export function resolveShells(p: EnvPaths, spec: string): string[] {
  const names = Object.keys(p.rcFiles);
  if (spec !== "default") {
    return spec.split(",").map((s) => {
      if (!names.includes(s)) throw new HostError(`unknown shell "${s}"`);
      return s;
    });
  }
  return names.filter((s) => {
    if (s === "sh") return true;
    if (s === "fish") return fs.existsSync(path.join(p.home, ".config", "fish"));
    return fs.existsSync(rcPath(p, s));
  });
}

/** bash: top of ~/.bashrc, before a distribution's "not interactive: return" line; the rest at the end. */
const placement = (shell: string) => (shell === "bash" ? "top" : "bottom");

/**
 * Whether `file` is an env file kilo-fleet wrote (a regular file starting with its header): such a file
 * holds a key, wherever a symlink made it land.
 */
function isKiloFleetEnvFile(file: string): boolean {
  let fd: number | undefined;
  try {
    if (!fs.lstatSync(file).isFile()) return false;
    fd = fs.openSync(file, "r");
    const buf = Buffer.alloc(ENV_FILE_HEADER.length);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, n).toString("utf8") === ENV_FILE_HEADER;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Removes an env file. A symlink there (kilo-fleet refuses to write through one, but one may have been
 * put there since, or by a version that wrote through it) is unlinked, and the file it points to is
 * removed too when it is a kilo-fleet env file, since that one holds a key; anything else it points to is
 * not kilo-fleet's and is left alone. Returns the paths removed.
 */
export function removeEnvFile(file: string): string[] {
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(file);
  } catch {
    return [];
  }
  const removed: string[] = [];
  if (st.isSymbolicLink()) {
    let target: string | undefined;
    try {
      target = fs.realpathSync(file);
    } catch {
      // dangling: only the link is there
    }
    if (target !== undefined && isKiloFleetEnvFile(target) && removeFile(target)) removed.push(target);
  }
  if (removeFile(file)) removed.push(file);
  return removed;
}

/**
 * The warning when kilo's config dir resolves outside HOME (a symlink into a dotfiles repository, or an
 * XDG_CONFIG_HOME elsewhere): the env file holding the key lands there.
 */
export function configDirWarning(p: EnvPaths): string | undefined {
  let real: string;
  let home: string;
  try {
    real = fs.realpathSync(p.configDir);
    home = fs.realpathSync(p.home);
  } catch {
    return undefined;
  }
  if (real === home || real.startsWith(`${home}${path.sep}`)) return undefined;
  return `kilo-fleet: warning: ${p.configDir} resolves to ${real}, outside ${p.home}: the env file holding the API key is written there (if that is a dotfiles repository, keep ${path.basename(p.envFile)} out of version control)`;
}

export function envApply(
  p: EnvPaths,
  opts: { apiKeyEnvVar: string; pinned: boolean; shells: string; caCertificates?: string },
): { lines: string[]; result: EnvResult } {
  // Validate everything before touching a file.
  const key = wrap(() => parseKeyFromStdin(readStdin("the API key")));
  const shells = resolveShells(p, opts.shells);
  const state: ShellState = readJson<ShellState>(stateFile(p)) ?? { rc: {} };
  // Never write the key through a symlink: it would land wherever the link points (and delete would
  // remove only the link).
  refuseSymlink(p.envFile, "the API key");
  if (shells.includes("fish")) refuseSymlink(p.fishEnvFile, "the API key");
  if (opts.caCertificates !== undefined) checkCaPem(opts.caCertificates);

  // The config dir: 0700 (the env file holds a secret). Remember a looser mode to restore it on delete.
  ensureWritableDir(p.stateDir, p.configDir, 0o700);
  const mode = fs.statSync(p.configDir).mode & 0o7777;
  if (mode !== 0o700) {
    if (state.configDirMode === undefined) state.configDirMode = mode;
    writeJson(stateFile(p), state);
    fs.chmodSync(p.configDir, 0o700);
    crashPoint();
  }

  const warning = configDirWarning(p);
  const caFile = applyCaFile(p.configDir, state, stateFile(p), opts.caCertificates);
  const vars = [...envVars(opts.apiKeyEnvVar, key, opts.pinned), ...caEnvVars(caFile)];
  const envText = renderShEnvFile(vars);
  const envChanged = readIfExists(p.envFile) !== envText;
  writeFileAtomic(p.envFile, envText, 0o600);
  if (shells.includes("fish")) writeFileAtomic(p.fishEnvFile, renderFishEnvFile(vars), 0o600);
  else removeEnvFile(p.fishEnvFile);

  const report: string[] = [];
  for (const shell of Object.keys(p.rcFiles)) {
    const file = rcPath(p, shell);
    const before = readIfExists(resolveTarget(file));
    let after: string | null | undefined;
    if (shells.includes(shell)) {
      const syntax = shell === "fish" ? "fish" : "sh";
      const block = renderRcBlock(
        syntax,
        homeWord(shell === "fish" ? p.fishEnvFile : p.envFile, p.home, syntax),
        homeWord(p.binDir, p.home, syntax),
      );
      const up = wrap(() => upsertRcBlock(before, block, placement(shell), state.rc[file], file));
      after = up.text;
      state.rc[file] = up.insertion;
      // Record how the block goes in before writing it, so a crash in between cannot lose the record.
      writeJson(stateFile(p), state);
      if (before === undefined) mkdirsRecorded(p.stateDir, path.dirname(file));
    } else if (before !== undefined) {
      after = wrap(() => removeRcBlock(before, state.rc[file], file));
      if (after === undefined) {
        // No block (a run killed after removing it, before updating the state): drop the stale record.
        delete state.rc[file];
        continue;
      }
    } else {
      delete state.rc[file];
      continue;
    }
    if (after === before) {
      report.push(`${shell} ${tildePath(p.home, file)} (unchanged)`);
      continue;
    }
    if (after === null) removeFile(file);
    else writeFileAtomic(file, after);
    if (!shells.includes(shell)) {
      delete state.rc[file];
      writeJson(stateFile(p), state);
      report.push(`${shell} ${tildePath(p.home, file)} (block removed)`);
    } else report.push(`${shell} ${tildePath(p.home, file)} (${before === undefined ? "created" : "updated"})`);
  }
  writeJson(stateFile(p), state);
  return {
    // No line for people: the env step logs nothing (it handles the key), and its stdout is kept in the
    // state, encrypted; the result says where things went.
    lines: warning ? [warning] : [],
    result: {
      step: "env",
      envFilePath: tildePath(p.home, p.envFile),
      rcFiles: shells.map((s) => tildePath(p.home, rcPath(p, s))),
      changed: envChanged,
    },
  };
}

export function envDelete(p: EnvPaths): { lines: string[]; result: DeleteResult } {
  const state: ShellState = readJson<ShellState>(stateFile(p)) ?? { rc: {} };
  const report: string[] = [];
  const files = new Set([...Object.keys(p.rcFiles).map((s) => rcPath(p, s)), ...Object.keys(state.rc)]);
  for (const file of files) {
    const before = readIfExists(resolveTarget(file));
    if (before === undefined) continue;
    const after = wrap(() => removeRcBlock(before, state.rc[file], file));
    if (after === undefined) continue;
    if (after === null) removeFile(file);
    else writeFileAtomic(file, after);
    report.push(tildePath(p.home, file));
  }
  const removed = [p.envFile, p.fishEnvFile].flatMap((f) => removeEnvFile(f)).map((f) => tildePath(p.home, f));
  const ca = deleteCaFile(state);
  if (ca !== undefined) removed.push(tildePath(p.home, ca));
  if (state.configDirMode !== undefined && fs.existsSync(p.configDir)) {
    fs.chmodSync(p.configDir, state.configDirMode);
    crashPoint();
  }
  removeFile(stateFile(p));
  const outcome = `removed ${removed.length > 0 ? removed.join(", ") : "no env file"}; blocks removed from ${report.length > 0 ? report.join(", ") : "no startup file"}`;
  return { lines: [`kilo-fleet: ${outcome}`], result: { step: "env-delete", outcome } };
}

function wrap<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new HostError((e as Error).message);
  }
}
