/**
 * The env step on the host: writes the env file(s) from the key on stdin and the managed block in each
 * configured shell's startup file; delete removes both, restoring every startup file byte for byte.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { tildePath } from "../common/hostPaths";
import { parseProxyCredentials, proxyEnvVars } from "../common/proxy";
import type { DeleteResult, EnvResult } from "../common/result";
import type { ProxyArgs } from "../common/stepArgs";
import { applyCaFile, type CaState, checkCaPem, deleteCaFile, refuseSymlink } from "./caFile";
import {
  ENV_FILE_HEADER,
  envFileVars,
  type PolicyEnv,
  parseKeyFromStdin,
  renderFishEnvFile,
  renderShEnvFile,
} from "./envFile";
import {
  crashPoint,
  ensureWritableDir,
  HostError,
  mkdirsRecorded,
  readIfExists,
  readJson,
  readStdin,
  removeFile,
  removeStaleTemps,
  resolveTarget,
  splitStdinLines,
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
  /** The config dir (absolute) when the env files were written; `configDirMode` is its mode. */
  configDir?: string;
  /** The env files written (absolute): delete removes these, wherever the environment says now. */
  envFiles?: string[];
  /** An apply finished (a record without it, of this version, is a failed create's: other deletes sweep it). */
  applied?: boolean;
  /** The record's version (2: records envFiles and applied). */
  v?: number;
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
  // A killed write's temp file beside it holds a key too.
  removeStaleTemps(file);
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

/** One startup file's change, computed (and checked) before the key is written. */
interface RcPlan {
  shell: string;
  file: string;
  before: string | undefined;
  after: string | null | undefined;
  insertion?: RcInsertion;
}

/** The startup files' new text, computed before anything is written: a half block fails here. */
function planRcFiles(p: EnvPaths, shells: string[], state: ShellState): RcPlan[] {
  const plans: RcPlan[] = [];
  for (const shell of Object.keys(p.rcFiles)) {
    const file = rcPath(p, shell);
    const target = resolveTarget(file);
    const before = wrap(() => readIfExists(target));
    if (shells.includes(shell)) {
      const syntax = shell === "fish" ? "fish" : "sh";
      const block = renderRcBlock(
        syntax,
        homeWord(shell === "fish" ? p.fishEnvFile : p.envFile, p.home, syntax),
        homeWord(p.binDir, p.home, syntax),
      );
      const up = wrap(() => upsertRcBlock(before, block, placement(shell), state.rc[file], file));
      plans.push({ shell, file, before, after: up.text, insertion: up.insertion });
    } else if (before !== undefined) {
      plans.push({ shell, file, before, after: wrap(() => removeRcBlock(before, state.rc[file], file)) });
    } else plans.push({ shell, file, before, after: undefined });
  }
  for (const plan of plans) {
    if (plan.after === undefined || plan.after === plan.before) continue;
    // A file kilo-fleet must change but cannot (a read-only link into a home-manager store): said now.
    const target = resolveTarget(plan.file);
    const dir = path.dirname(target);
    try {
      fs.accessSync(fs.existsSync(dir) ? dir : p.home, fs.constants.W_OK);
      if (plan.before !== undefined) fs.accessSync(target, fs.constants.W_OK);
    } catch {
      throw new HostError(`cannot write ${target}: permission denied; nothing was written`);
    }
  }
  return plans;
}

/**
 * The env files kilo-fleet recorded: `envFiles`, or (a record from before they were recorded) the paths
 * of this layout. Absolute.
 */
function recordedEnvFiles(p: EnvPaths, state: ShellState | undefined): string[] {
  return state?.envFiles ?? [p.envFile, p.fishEnvFile];
}

export function envApply(
  p: EnvPaths,
  opts: {
    apiKeyEnvVar: string;
    pinned: boolean;
    shells: string;
    caCertificates?: string;
    policy?: PolicyEnv;
    proxy?: ProxyArgs;
  },
): { lines: string[]; result: EnvResult } {
  // Validate everything before touching a file: the key, the shells, every startup file's new text.
  // stdin: the key's line, then (proxy.authOnStdin) the proxy credentials' line.
  const input = readStdin("the API key");
  const [keyLine, credLine] = opts.proxy?.authOnStdin
    ? splitStdinLines(input, 2, "the API key, then the proxy credentials (kilo-fleet:proxyCredentials)")
    : [input];
  const key = wrap(() => parseKeyFromStdin(keyLine));
  const proxyVars = opts.proxy
    ? wrap(() =>
        proxyEnvVars(opts.proxy as ProxyArgs, credLine === undefined ? undefined : parseProxyCredentials(credLine)),
      )
    : [];
  const shells = resolveShells(p, opts.shells);
  const state: ShellState = readJson<ShellState>(stateFile(p)) ?? { rc: {} };
  // Never write the key through a symlink: it would land wherever the link points (and delete would
  // remove only the link).
  refuseSymlink(p.envFile, "the API key");
  if (shells.includes("fish")) refuseSymlink(p.fishEnvFile, "the API key");
  if (opts.caCertificates !== undefined) checkCaPem(opts.caCertificates);
  const plans = planRcFiles(p, shells, state);
  const envFiles = shells.includes("fish") ? [p.envFile, p.fishEnvFile] : [p.envFile];
  const previous = new Map(envFiles.map((f) => [f, isKiloFleetEnvFile(f) ? readIfExists(f) : undefined]));
  try {
    return applyPlanned(p, opts, key, proxyVars, shells, state, plans, envFiles);
  } catch (e) {
    // A failed run leaves no key it wrote: each env file is put back as it was (removed when it was not there).
    for (const [file, text] of previous) {
      try {
        if (text === undefined) {
          if (isKiloFleetEnvFile(file)) removeFile(file);
        } else writeFileAtomic(file, text, 0o600);
      } catch {
        // the error below says what failed
      }
    }
    throw e;
  }
}

function applyPlanned(
  p: EnvPaths,
  opts: { apiKeyEnvVar: string; pinned: boolean; caCertificates?: string; policy?: PolicyEnv },
  key: string,
  proxyVars: [string, string][],
  shells: string[],
  state: ShellState,
  plans: RcPlan[],
  envFiles: string[],
): { lines: string[]; result: EnvResult } {
  state.v = 2;
  // The config dir moved (XDG_CONFIG_HOME changed): the old one gets its mode back.
  if (state.configDir !== undefined && state.configDir !== p.configDir) {
    if (state.configDirMode !== undefined && fs.existsSync(state.configDir)) {
      fs.chmodSync(state.configDir, state.configDirMode);
    }
    delete state.configDirMode;
  }
  state.configDir = p.configDir;
  // The config dir: 0700 (the env file holds a secret). Remember a looser mode to restore it on delete.
  ensureWritableDir(p.stateDir, p.configDir, 0o700);
  const mode = fs.statSync(p.configDir).mode & 0o7777;
  if (mode !== 0o700 && state.configDirMode === undefined) state.configDirMode = mode;
  // Every env file this run writes is recorded before it is written, with the old ones (until removed).
  const old = state.envFiles ?? [p.envFile, p.fishEnvFile].filter((f) => isKiloFleetEnvFile(f));
  state.envFiles = [...new Set([...old, ...envFiles])];
  writeJson(stateFile(p), state);
  if (mode !== 0o700) {
    fs.chmodSync(p.configDir, 0o700);
    crashPoint();
  }

  const warning = configDirWarning(p);
  const caFile = applyCaFile(p.configDir, state, stateFile(p), opts.caCertificates);
  const vars = envFileVars(key, {
    apiKeyEnvVar: opts.apiKeyEnvVar,
    pinned: opts.pinned,
    policy: opts.policy,
    caFile,
    proxyVars,
  });
  const envText = renderShEnvFile(vars);
  const envChanged = readIfExists(p.envFile) !== envText;
  writeFileAtomic(p.envFile, envText, 0o600);
  if (shells.includes("fish")) writeFileAtomic(p.fishEnvFile, renderFishEnvFile(vars), 0o600);
  // What an earlier run wrote elsewhere (a moved config dir) or no longer needs (fish): the key lives in one place.
  for (const f of state.envFiles.filter((x) => !envFiles.includes(x))) removeEnvFile(f);
  state.envFiles = envFiles;
  writeJson(stateFile(p), state);

  const report: string[] = [];
  for (const { shell, file, before, after, insertion } of plans) {
    if (after === undefined) {
      // No block (a run killed after removing it, before updating the state): drop the stale record.
      delete state.rc[file];
      continue;
    }
    if (insertion) {
      state.rc[file] = insertion;
      // Record how the block goes in before writing it, so a crash in between cannot lose the record.
      writeJson(stateFile(p), state);
      if (before === undefined) mkdirsRecorded(p.stateDir, path.dirname(file));
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
  state.applied = true;
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
  // A record of this version lists every startup file before its block goes in: only those are touched.
  const files = new Set([
    ...(state.v === undefined ? Object.keys(p.rcFiles).map((s) => rcPath(p, s)) : []),
    ...Object.keys(state.rc),
  ]);
  for (const file of files) {
    const before = readIfExists(resolveTarget(file));
    if (before === undefined) continue;
    const after = wrap(() => removeRcBlock(before, state.rc[file], file));
    if (after === undefined) continue;
    if (after === null) removeFile(file);
    else writeFileAtomic(file, after);
    report.push(tildePath(p.home, file));
  }
  // The recorded env files; at this layout's paths only a kilo-fleet env file (one a killed run left).
  const here = [p.envFile, p.fishEnvFile].filter((f) => isKiloFleetEnvFile(f));
  const removed = [...new Set([...recordedEnvFiles(p, state), ...here])]
    .flatMap((f) => removeEnvFile(f))
    .map((f) => tildePath(p.home, f));
  const ca = deleteCaFile(state);
  if (ca !== undefined) removed.push(tildePath(p.home, ca));
  const configDir = state.configDir ?? p.configDir;
  if (state.configDirMode !== undefined && fs.existsSync(configDir)) {
    fs.chmodSync(configDir, state.configDirMode);
    crashPoint();
  }
  removeFile(stateFile(p));
  const outcome = `removed ${removed.length > 0 ? removed.join(", ") : "no env file"}; blocks removed from ${report.length > 0 ? report.join(", ") : "no startup file"}`;
  return { lines: [`kilo-fleet: ${outcome}`], result: { step: "env-delete", outcome } };
}

/**
 * Run by the other steps' deletes: what an env step left that no env step will delete (a create that
 * failed or was killed: Pulumi recorded nothing, so its delete never runs). A finished env step's state
 * (`applied`, or a record from before that flag) is the env step's own, left alone. Returns the lines.
 */
export function envSweep(p: EnvPaths): string[] {
  const state = readJson<ShellState>(stateFile(p));
  if (state !== undefined && (state.applied || state.v === undefined)) return [];
  if (state === undefined) {
    const removed = [p.envFile, p.fishEnvFile].filter((f) => isKiloFleetEnvFile(f) && removeFile(f));
    return removed.map((f) => `kilo-fleet: removed ${tildePath(p.home, f)} (a failed env step's, holding a key)`);
  }
  return envDelete(p).lines.map((l) => l.replace(/^kilo-fleet: /, "kilo-fleet: (a failed env step's) "));
}

function wrap<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new HostError((e as Error).message);
  }
}
