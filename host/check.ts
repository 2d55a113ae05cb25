/**
 * The `check` subcommand (what `kilo-fleet doctor` runs on every host): compares the host with what the
 * stack expects and reports each difference. Read-only, always: it writes nothing, creates nothing (not
 * even a directory), and takes no lock; a deploy still holding the HOME's lock makes the result `busy`.
 * doctor runs it as `sh <tool> check -`: stdin's first line is the argument (encoded as on a command line,
 * which it may outgrow), then, with compareKey, the nonce's line (`check '<json>'` still takes it as an argument,
 * the nonce then all of stdin). What it looks at: docs/operations.md, "Drift: kilo-fleet doctor".
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { type ParseError, parse as parseJsonc } from "jsonc-parser";
import { fileDigest } from "../common/digest";
import { type HostLayout, STATE_DIR_IN_HOME, tildePath } from "../common/hostPaths";
import { keyProof, NONCE_PATTERN } from "../common/keyProof";
import {
  isJsonObject,
  type KeyPath,
  KILO_CONFIG_SCHEMA_URL,
  managedKeyPaths,
  valueAt,
} from "../common/kiloConfigMerge";
import { proxyEnvVars } from "../common/proxy";
import type { CheckFinding, CheckResult } from "../common/result";
import { SHELL_RC_FILES } from "../common/shells";
import type { CheckArgs } from "../common/stepArgs";
import { caFilePath } from "./caFile";
import { overrideWarnings } from "./configFile";
import { envFileVars, renderFishEnvFile, renderShEnvFile } from "./envFile";
import { HostError, readIfExists, readStdin, resolveTarget } from "./fsUtil";
import { LOCK_NAME } from "./lock";
import { managedConfigDir, otherManagedFiles, POLICY_FILE_NAME, renderPolicyFile } from "./policy";
import { findBlock, homeWord, renderRcBlock } from "./rcBlock";
import { RECORD_FILES, recordsDir } from "./records";
import { resolveShells } from "./shellEnv";

/** How long the check waits for a running deploy's lock to go before reading anyway (`busy`). */
const LOCK_WAIT_MS = 5_000;
/** JSON text longer than this is cut in a finding. */
const MAX_VALUE = 80;
/** At most this many differing leaves are named per managed key. */
const MAX_LEAVES = 3;

/** Variables that make kilo read another config over (or instead of) kilo.jsonc. */
export const OVERRIDE_VARS = ["KILO_CONFIG", "KILO_CONFIG_CONTENT", "KILO_CONFIG_DIR"] as const;

/** Startup files scanned for the override variables (relative to HOME), besides those kilo-fleet manages. */
const STARTUP_FILES = [
  ".bash_profile",
  ".bash_login",
  ".bashrc",
  ".profile",
  ".zshenv",
  ".zprofile",
  ".zshrc",
  ".zlogin",
  ".config/fish/config.fish",
];

export interface CheckPaths {
  layout: HostLayout;
  /** kilo's system-wide config dir (`/etc/kilo`, macOS `/Library/Application Support/kilo`). */
  systemDir: string;
  /** kilo-fleet's package-layout kilo dir (`${XDG_DATA_HOME:-~/.local/share}/kilo-fleet/kilo`). */
  packageDir: string;
  /** The environment the check runs in (for the override variables). */
  env: NodeJS.ProcessEnv;
}

export function checkPaths(layout: HostLayout, env: NodeJS.ProcessEnv): CheckPaths {
  const dataHome = env.XDG_DATA_HOME ? env.XDG_DATA_HOME : path.join(layout.home, ".local", "share");
  return {
    // The records are read where they are: an earlier version's XDG_STATE_HOME place until a step moves them.
    layout: { ...layout, stateDir: recordsDir(layout) },
    systemDir: managedConfigDir(env),
    packageDir: path.join(dataHome, "kilo-fleet", "kilo"),
    env,
  };
}

/** JSON text with object keys sorted (so key order does not count as a difference). */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x) =>
    isJsonObject(x)
      ? Object.fromEntries(
          Object.keys(x as object)
            .sort()
            .map((k) => [k, (x as Record<string, unknown>)[k]]),
        )
      : x,
  );
}

const same = (a: unknown, b: unknown) => canonical(a) === canonical(b);

/** A value as short JSON text (`(absent)` for undefined). */
export function shortJson(v: unknown): string {
  if (v === undefined) return "(absent)";
  const text = JSON.stringify(v);
  return text.length > MAX_VALUE ? `${text.slice(0, MAX_VALUE - 1)}…` : text;
}

/** The leaf paths under `at` where `found` differs from `expected` (objects compared key by key). */
function leafDiffs(expected: unknown, found: unknown, at: string[], out: { path: string[]; e: unknown; f: unknown }[]) {
  if (isJsonObject(expected) && isJsonObject(found)) {
    const keys = [...new Set([...Object.keys(expected), ...Object.keys(found)])].sort();
    for (const k of keys) {
      if (!same(expected[k], found[k])) leafDiffs(expected[k], found[k], [...at, k], out);
    }
    return;
  }
  out.push({ path: at, e: expected, f: found });
}

function checkKilo(p: CheckPaths, args: CheckArgs): { kilo: CheckResult["kilo"]; drift: CheckFinding[] } {
  const { layout } = p;
  const bin = layout.kiloBin;
  let target: string | undefined;
  let layoutName: CheckResult["kilo"]["layout"] = "other";
  try {
    const st = fs.lstatSync(bin);
    if (st.isSymbolicLink()) {
      target = path.resolve(path.dirname(bin), fs.readlinkSync(bin));
      if (target.startsWith(`${path.join(layout.npmPrefix, "lib", "node_modules")}/`)) layoutName = "npm";
      else if (target.startsWith(`${p.packageDir}/`)) layoutName = "package";
    }
  } catch {
    layoutName = "missing";
  }
  let runnable = false;
  try {
    fs.accessSync(bin, fs.constants.X_OK);
    runnable = fs.statSync(bin).isFile();
  } catch {
    runnable = false;
  }
  if (!runnable) {
    return {
      kilo: { layout: "missing" },
      drift: [
        {
          item: "kilo",
          what: `not installed: no runnable kilo at ${tildePath(layout.home, bin)}${layoutName !== "missing" ? " (a dangling or non-executable link)" : ""}`,
          file: tildePath(layout.home, bin),
        },
      ],
    };
  }
  // The version: the package.json of the package the link points into (walking up from its bin dir).
  let version: string | undefined;
  const candidates: string[] = [];
  if (target !== undefined) {
    for (let d = path.dirname(target), i = 0; i < 4 && path.dirname(d) !== d; d = path.dirname(d), i++) {
      candidates.push(path.join(d, "package.json"));
    }
  }
  candidates.push(layout.kiloPackageJson);
  for (const file of candidates) {
    try {
      const pkg = JSON.parse(fs.readFileSync(file, "utf8")) as { name?: unknown; version?: unknown };
      if (typeof pkg.name === "string" && pkg.name.startsWith("@kilocode/cli") && typeof pkg.version === "string") {
        version = pkg.version;
        break;
      }
    } catch {
      // not this one
    }
  }
  const kilo = { ...(version !== undefined ? { version } : {}), layout: layoutName };
  if (args.version === "latest") return { kilo, drift: [] };
  if (version === undefined) {
    return {
      kilo,
      drift: [{ item: "kilo", what: `version unknown (no @kilocode/cli package.json found), pinned ${args.version}` }],
    };
  }
  if (version !== args.version) {
    return {
      kilo,
      drift: [
        { item: "kilo", what: `${version} installed, pinned ${args.version}`, expected: args.version, found: version },
      ],
    };
  }
  return { kilo, drift: layoutName === "package" && args.locked ? lockDrift(layout, args.version, args.locked) : [] };
}

/**
 * The package install's record (`version <v> <platform> <integrity>` lines) against the lock: the tarball's
 * integrity was checked before it was unpacked, so the record says which package this is.
 */
function lockDrift(layout: HostLayout, version: string, locked: Record<string, string>): CheckFinding[] {
  const record = readIfExists(path.join(layout.stateDir, "kilo-package")) ?? "";
  const line = record
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .find((f) => f[0] === "version" && f[1] === version);
  if (!line || line.length < 4) {
    return [{ item: "kilo", what: `kilo ${version} has no install record of kilo-fleet's: its package is unverified` }];
  }
  const [, , platform, integrity] = line;
  const want = locked[platform];
  const short = (s: string) => `${s.slice(0, 19)}…`;
  if (want === undefined) {
    return [{ item: "kilo", what: `the lock has no ${platform} package for kilo ${version}` }];
  }
  if (want !== integrity) {
    return [
      {
        item: "kilo",
        what: `kilo ${version} (${platform}) is not the locked package`,
        expected: short(want),
        found: short(integrity),
      },
    ];
  }
  return [];
}

function checkConfig(p: CheckPaths, args: CheckArgs, paths: KeyPath[]): CheckFinding[] {
  const file = tildePath(p.layout.home, p.layout.configFile);
  const text = readIfExists(p.layout.configFile);
  if (text === undefined) return [{ item: "kilo.jsonc", what: `${file} is missing`, file }];
  const errors: ParseError[] = [];
  const found = parseJsonc(text, errors, { allowTrailingComma: true });
  if (errors.length > 0 || !isJsonObject(found)) {
    return [{ item: "kilo.jsonc", what: `${file} is not valid JSONC (kilo ignores or rejects it)`, file }];
  }
  const out: CheckFinding[] = [];
  for (const kp of paths) {
    const e = valueAt(args.managed, kp);
    const f = valueAt(found, kp);
    if (same(e, f)) continue;
    const leaves: { path: string[]; e: unknown; f: unknown }[] = [];
    leafDiffs(e, f, [...kp], leaves);
    const item = kp.length === 1 && kp[0] === "autoupdate" ? "autoupdate" : "kilo.jsonc";
    for (const leaf of leaves.slice(0, MAX_LEAVES)) {
      const at = leaf.path.join(".");
      out.push({
        item,
        what:
          item === "autoupdate"
            ? `${file} sets autoupdate to ${shortJson(leaf.f)} (the pin needs false)`
            : `${at}: expected ${shortJson(leaf.e)}, found ${shortJson(leaf.f)}`,
        path: at,
        expected: shortJson(leaf.e),
        found: shortJson(leaf.f),
        file,
      });
    }
    if (leaves.length > MAX_LEAVES) {
      out.push({
        item,
        what: `${kp.join(".")}: ${leaves.length - MAX_LEAVES} more difference(s)`,
        path: kp.join("."),
        file,
      });
    }
  }
  return out;
}

/** The value of a `'…'` word as shQuote writes it; undefined for anything else. */
function unShQuote(word: string): string | undefined {
  const m = /^'((?:[^']|'\\'')*)'$/.exec(word);
  return m ? m[1].replaceAll("'\\''", "'") : undefined;
}

function fileProblems(
  home: string,
  file: string,
  mode: number,
  what: string,
): { missing: boolean; drift: CheckFinding[] } {
  const shown = tildePath(home, file);
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return { missing: true, drift: [{ item: "env-file", what: `${what} ${shown} is missing`, file: shown }] };
  }
  const out: CheckFinding[] = [];
  const have = st.mode & 0o7777;
  if (have !== mode) {
    out.push({
      item: "env-file",
      what: `${shown} has mode ${have.toString(8).padStart(4, "0")}, expected ${mode.toString(8).padStart(4, "0")}`,
      expected: mode.toString(8).padStart(4, "0"),
      found: have.toString(8).padStart(4, "0"),
      file: shown,
    });
  }
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    out.push({ item: "env-file", what: `${shown} is owned by uid ${st.uid}, not this user (${uid})`, file: shown });
  }
  return { missing: false, drift: out };
}

const policyEnv = (args: CheckArgs) => ({ telemetryOff: args.telemetryOff === true, shareOff: args.shareOff === true });

function checkEnv(
  p: CheckPaths,
  args: CheckArgs,
  shells: string[],
  nonce: string | undefined,
): { drift: CheckFinding[]; keyProof?: CheckResult["keyProof"] } {
  const { layout } = p;
  const home = layout.home;
  const pinned = args.version !== "latest";
  const envShown = tildePath(home, layout.envFile);
  const envCheck = fileProblems(home, layout.envFile, 0o600, "the env file");
  const drift = envCheck.drift;
  const text = envCheck.missing ? undefined : readIfExists(layout.envFile);
  if (text === undefined) return { drift };
  const dirMode = fs.statSync(layout.configDir).mode & 0o7777;
  if (dirMode !== 0o700) {
    drift.push({
      item: "env-file",
      what: `${tildePath(home, layout.configDir)} has mode ${dirMode.toString(8).padStart(4, "0")}, expected 0700 (it holds the key)`,
      file: tildePath(home, layout.configDir),
    });
  }
  const prefix = `export ${args.var}=`;
  const keyLine = text.split("\n").find((l) => l.startsWith(prefix));
  const value = keyLine === undefined ? undefined : unShQuote(keyLine.slice(prefix.length));
  const proof =
    nonce !== undefined && value !== undefined ? { hmac: keyProof(value, nonce), file: envShown } : undefined;
  if (value === undefined) {
    drift.push({ item: "env-file", what: `${envShown} does not set ${args.var}`, file: envShown });
  } else if (pinned && !text.split("\n").includes("export KILO_DISABLE_AUTOUPDATE='1'")) {
    drift.push({
      item: "autoupdate",
      what: `${envShown} no longer sets KILO_DISABLE_AUTOUPDATE=1 (kilo may update itself away from the pin)`,
      file: envShown,
    });
  } else {
    drift.push(...editedVars(envShown, text, expectedVars(p, args, value, pinned, text), "sh"));
  }
  if (args.caSha256 !== undefined) drift.push(...checkCaFile(p, args.caSha256));
  if (shells.includes("fish")) {
    const fishCheck = fileProblems(home, layout.fishEnvFile, 0o600, "the fish env file");
    drift.push(...fishCheck.drift);
    const fishText = fishCheck.missing ? undefined : readIfExists(layout.fishEnvFile);
    if (fishText !== undefined && value !== undefined) {
      const shown = tildePath(home, layout.fishEnvFile);
      drift.push(...editedVars(shown, fishText, expectedVars(p, args, value, pinned, text), "fish"));
    }
  }
  return { drift, ...(proof !== undefined ? { keyProof: proof } : {}) };
}

/**
 * The CA file the env file names (NODE_EXTRA_CA_CERTS): there, 0644 and the user's (whoever can write it
 * chooses what kilo trusts), and the stack's `caCertificates` (its hash).
 */
function checkCaFile(p: CheckPaths, sha256: string): CheckFinding[] {
  const file = caFilePath(p.layout.configDir);
  const shown = tildePath(p.layout.home, file);
  const { missing, drift } = fileProblems(p.layout.home, file, 0o644, "the CA file");
  if (missing) return drift;
  const text = readIfExists(file);
  if (text !== undefined && fileDigest(text) !== sha256) {
    drift.push({
      item: "env-file",
      what: `${shown} is not the stack's caCertificates (edited, or the setting changed since the deploy)`,
      file: shown,
    });
  }
  return drift;
}

/**
 * The variables the env step writes for `args` (host/envFile.ts `envFileVars`, as the env step calls it),
 * kilo-fleet:proxy's with the credentials the file's own HTTPS_PROXY carries (the check never gets them: it
 * compares everything else).
 */
function expectedVars(p: CheckPaths, args: CheckArgs, key: string, pinned: boolean, text: string): [string, string][] {
  let proxyVars: [string, string][] | undefined;
  if (args.proxy !== undefined) {
    const line = text.split("\n").find((l) => l.startsWith("export HTTPS_PROXY="));
    let credentials: { user: string; password: string } | undefined;
    try {
      const url = line === undefined ? undefined : unShQuote(line.slice("export HTTPS_PROXY=".length));
      const u = url === undefined ? undefined : new URL(url);
      if (u && (u.username || u.password)) {
        credentials = { user: decodeURIComponent(u.username), password: decodeURIComponent(u.password) };
      }
    } catch {
      // not a URL: the comparison reports HTTPS_PROXY as edited
    }
    proxyVars = proxyEnvVars(args.proxy, credentials);
  }
  return envFileVars(key, {
    apiKeyEnvVar: args.var,
    pinned,
    policy: policyEnv(args),
    ...(args.caSha256 !== undefined ? { caFile: caFilePath(p.layout.configDir) } : {}),
    ...(proxyVars !== undefined ? { proxyVars } : {}),
  });
}

/** The name a line of an env file sets (`export NAME=…`, fish `set -gx NAME …`), if it is such a line. */
const ENV_LINE = { sh: /^export ([A-Za-z_][A-Za-z0-9_]*)=/, fish: /^set -gx ([A-Za-z_][A-Za-z0-9_]*) / };

/**
 * How an env file's `text` differs from what the env step writes for `want`: one finding per variable that
 * is not the env step's, missing, or not the env step's at all, by name only (the values hold the key and
 * the proxy's credentials); one for any other edit (a comment, the order).
 */
function editedVars(shown: string, text: string, want: [string, string][], syntax: "sh" | "fish"): CheckFinding[] {
  const render = syntax === "sh" ? renderShEnvFile : renderFishEnvFile;
  const expected = render(want);
  if (text === expected) return [];
  const linesBy = (t: string) => {
    const m = new Map<string, string>();
    for (const l of t.split("\n")) {
      // The last line setting a name is the one the shell keeps.
      const name = ENV_LINE[syntax].exec(l)?.[1];
      if (name !== undefined) m.set(name, l);
    }
    return m;
  };
  const wanted = linesBy(expected);
  const found = linesBy(text);
  const out: CheckFinding[] = [];
  const finding = (name: string, how: string) =>
    out.push({ item: "env-file", what: `${shown} was edited: ${how}`, path: name, file: shown });
  for (const [name, line] of wanted) {
    const there = found.get(name);
    if (there === undefined) finding(name, `it does not set ${name}`);
    else if (there !== line) finding(name, `${name} is not what the env step writes`);
  }
  for (const name of found.keys()) {
    if (!wanted.has(name)) finding(name, `it sets ${name}, which the env step does not write`);
  }
  if (out.length === 0) {
    out.push({ item: "env-file", what: `${shown} was edited (not what the env step writes)`, file: shown });
  }
  return out;
}

function checkRcBlocks(p: CheckPaths, shells: string[]): CheckFinding[] {
  const { layout } = p;
  const home = layout.home;
  const out: CheckFinding[] = [];
  for (const [shell, rel] of Object.entries(SHELL_RC_FILES)) {
    const file = path.join(home, rel);
    const shown = tildePath(home, file);
    const text = readIfExists(resolveTarget(file));
    let found: { start: number; end: number } | undefined;
    try {
      found = text === undefined ? undefined : findBlock(text, shown);
    } catch (e) {
      out.push({ item: "rc-block", what: `${shell}: ${(e as Error).message}`, file: shown });
      continue;
    }
    if (!shells.includes(shell)) {
      if (found) out.push({ item: "rc-block", what: `${shell}: a stale kilo-fleet block in ${shown}`, file: shown });
      continue;
    }
    if (!found) {
      out.push({
        item: "rc-block",
        what: `${shell}: no kilo-fleet block in ${shown}${text === undefined ? " (the file is missing)" : ""}`,
        file: shown,
      });
      continue;
    }
    const syntax = shell === "fish" ? "fish" : "sh";
    const want = renderRcBlock(
      syntax,
      homeWord(shell === "fish" ? layout.fishEnvFile : layout.envFile, home, syntax),
      homeWord(layout.binDir, home, syntax),
    );
    if (text?.slice(found.start, found.end) !== want) {
      out.push({ item: "rc-block", what: `${shell}: the kilo-fleet block in ${shown} was edited`, file: shown });
    }
  }
  return out;
}

/** `NAME=` (sh, with or without export) or `set [-flags] NAME` (fish), not in a comment. */
function setsVariable(line: string, name: string): boolean {
  const l = line.trim();
  if (l.startsWith("#")) return false;
  const sh = new RegExp(`(^|[\\s;&|(])((export|declare|typeset|local|readonly)(\\s+-\\w+)*\\s+)?${name}=`);
  const fish = new RegExp(`(^|[\\s;])set(\\s+-[\\w-]+)*\\s+${name}(\\s|;|$)`);
  return sh.test(l) || fish.test(l);
}

/** Where a startup file (those kilo-fleet manages and the usual others) sets one of `names`. */
function startupFilesSetting(home: string, names: readonly string[]): { rel: string; line: number; name: string }[] {
  const files = new Set<string>([...STARTUP_FILES, ...Object.values(SHELL_RC_FILES)]);
  try {
    for (const n of fs.readdirSync(path.join(home, ".config", "fish", "conf.d")).sort()) {
      if (n.endsWith(".fish")) files.add(`.config/fish/conf.d/${n}`);
    }
  } catch {
    // no fish conf.d
  }
  const out: { rel: string; line: number; name: string }[] = [];
  for (const rel of files) {
    const text = readIfExists(resolveTarget(path.join(home, rel)));
    if (text === undefined) continue;
    const lines = text.split("\n");
    for (const name of names) {
      const i = lines.findIndex((l) => setsVariable(l, name));
      if (i !== -1) out.push({ rel, line: i + 1, name });
    }
  }
  return out;
}

/** Variables that let kilo bypass the managed config: its managed dir moved, its permission overlaid. */
export const POLICY_BYPASS_VARS = ["KILO_TEST_MANAGED_CONFIG_DIR", "KILO_PERMISSION"] as const;
const BYPASS_EFFECT: Record<(typeof POLICY_BYPASS_VARS)[number], string> = {
  KILO_TEST_MANAGED_CONFIG_DIR: "kilo reads another managed dir instead of the policy",
  KILO_PERMISSION: "kilo lays it over the policy's permission",
};

/**
 * The managed dir writable by a group or everyone, or not root's: whoever can write it can replace the policy
 * file or add a managed file kilo reads beside it. Nothing when it is not there (the missing file is named).
 */
function managedDirProblems(dir: string): CheckFinding[] {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    return [];
  }
  const mode = st.mode & 0o7777;
  if ((mode & 0o022) === 0 && st.uid === 0) return [];
  return [
    {
      item: "policy",
      what: `${dir} is mode ${mode.toString(8).padStart(4, "0")} owned by uid ${st.uid}, expected owned by root and not group- or world-writable (whoever can write it can replace the policy)`,
      file: dir,
    },
  ];
}

/**
 * The managed config against the stack's policy (its bytes, mode, owner; its directory's mode and owner),
 * another managed file that sets a policy key, and the variables that bypass it, in a startup file or the
 * check's own session.
 */
function checkPolicy(p: CheckPaths, policy: Record<string, unknown>): CheckFinding[] {
  const out: CheckFinding[] = [];
  const file = path.join(p.systemDir, POLICY_FILE_NAME);
  let text: string | undefined;
  try {
    text = readIfExists(file);
  } catch (e) {
    out.push({ item: "policy", what: `${file} cannot be read (${(e as NodeJS.ErrnoException).code})`, file });
  }
  if (text === undefined) {
    if (out.length === 0) out.push({ item: "policy", what: `${file} is missing: the policy is not enforced`, file });
  } else if (text !== renderPolicyFile(policy)) {
    const found = parseJsonc(text, [], { allowTrailingComma: true }) as unknown;
    const diffs: { path: string[]; e: unknown; f: unknown }[] = [];
    leafDiffs({ $schema: KILO_CONFIG_SCHEMA_URL, ...policy }, found, [], diffs);
    for (const d of diffs.slice(0, MAX_LEAVES)) {
      out.push({
        item: "policy",
        what: `${file} differs from the policy at ${d.path.join(".") || "(the whole file)"}`,
        path: d.path.join("."),
        expected: shortJson(d.e),
        found: shortJson(d.f),
        file,
      });
    }
    if (diffs.length === 0) out.push({ item: "policy", what: `${file} was edited (same values, other text)`, file });
  }
  if (text !== undefined) {
    const st = fs.statSync(file);
    if ((st.mode & 0o777) !== 0o644 || st.uid !== 0) {
      out.push({
        item: "policy",
        what: `${file} is mode ${(st.mode & 0o777).toString(8).padStart(4, "0")} owned by uid ${st.uid}, expected 0644 owned by root`,
        file,
      });
    }
  }
  out.push(...managedDirProblems(p.systemDir));
  for (const o of otherManagedFiles(p.systemDir, Object.keys(policy))) {
    if (o.keys.length === 0) continue;
    out.push({
      item: "policy",
      what: `${o.file} is a managed file too and sets ${o.keys.join(", ")}: kilo may take those from it instead of the policy`,
      file: o.file,
    });
  }
  for (const s of startupFilesSetting(p.layout.home, POLICY_BYPASS_VARS)) {
    const name = s.name as (typeof POLICY_BYPASS_VARS)[number];
    out.push({
      item: "policy",
      what: `~/${s.rel} line ${s.line} sets ${name}, so ${BYPASS_EFFECT[name]}`,
      file: `~/${s.rel}`,
    });
  }
  for (const name of POLICY_BYPASS_VARS) {
    if (p.env[name] !== undefined && p.env[name] !== "") {
      out.push({
        item: "policy",
        what: `${name} is set in the environment the check ran in, so ${BYPASS_EFFECT[name]}`,
      });
    }
  }
  return out;
}

function checkOverrides(p: CheckPaths, paths: KeyPath[]): CheckFinding[] {
  const { layout } = p;
  const home = layout.home;
  const out: CheckFinding[] = [];
  const byFile = new Map<string, string[]>();
  const warnings = overrideWarnings(
    {
      home,
      configFile: layout.configFile,
      backupFile: layout.backupFile,
      stateDir: layout.stateDir,
      systemDir: p.systemDir,
    },
    paths,
  );
  for (const w of warnings) {
    const key = /sets "([^"]*)"/.exec(w.line)?.[1] ?? "?";
    byFile.set(w.file, [...(byFile.get(w.file) ?? []), key]);
  }
  for (const [file, keys] of byFile) {
    const shown = tildePath(home, file);
    out.push({
      item: "override",
      what: `${shown} sets ${keys.join(", ")}, and kilo applies it over kilo.jsonc`,
      file: shown,
    });
  }
  for (const s of startupFilesSetting(home, OVERRIDE_VARS)) {
    out.push({
      item: "override",
      what: `~/${s.rel} line ${s.line} sets ${s.name}, so kilo reads another config`,
      file: `~/${s.rel}`,
    });
  }
  for (const name of OVERRIDE_VARS) {
    if (p.env[name] !== undefined && p.env[name] !== "") {
      out.push({ item: "override", what: `${name} is set in the environment the check ran in` });
    }
  }
  return out;
}

/**
 * The config dir kilo-fleet wrote to (its records: config.json's kilo.jsonc, shell.json's config dir) when it
 * is not the one kilo reads now (XDG_CONFIG_HOME set or changed since): one finding per record.
 */
export function movedConfigDir(layout: HostLayout): CheckFinding[] {
  const read = (name: string): Record<string, unknown> | undefined => {
    try {
      const v = JSON.parse(fs.readFileSync(path.join(layout.stateDir, name), "utf8"));
      return isJsonObject(v) ? v : undefined;
    } catch {
      return undefined;
    }
  };
  const now = tildePath(layout.home, layout.configDir);
  const out: CheckFinding[] = [];
  const found = (item: CheckFinding["item"], dir: unknown) => {
    if (typeof dir !== "string" || dir === layout.configDir) return;
    const was = tildePath(layout.home, dir);
    out.push({
      item,
      what: `kilo-fleet wrote to ${was}, but kilo now reads ${now} (XDG_CONFIG_HOME changed): deploy again to move the files`,
      expected: now,
      found: was,
      file: was,
    });
  };
  const config = read("config.json")?.configFile;
  found("kilo.jsonc", typeof config === "string" ? path.dirname(config) : undefined);
  found("env-file", read("shell.json")?.configDir);
  return out;
}

/**
 * kilo-fleet's records at the place an earlier version kept them (`$XDG_STATE_HOME/kilo-fleet`): the next
 * deploy moves them to the fixed place (records.ts); a record left at both places is named too.
 */
export function movedStateDir(layout: HostLayout): CheckFinding[] {
  const old = layout.xdgStateDir;
  const fixed = path.join(layout.home, STATE_DIR_IN_HOME);
  const has = (dir: string) => RECORD_FILES.some((f) => fs.existsSync(path.join(dir, f)));
  if (old === undefined || !has(old)) return [];
  const was = tildePath(layout.home, old);
  const now = tildePath(layout.home, fixed);
  return [
    {
      item: "records",
      what: has(fixed)
        ? `kilo-fleet's records are in ${now}, and earlier ones are left in ${was}: check them and remove ${was}`
        : `kilo-fleet's records are in ${was}, where an earlier version kept them (XDG_STATE_HOME): deploy again to move them to ${now}`,
      expected: now,
      found: was,
      file: was,
    },
  ];
}

/** Waits (reading only) for a deploy's lock to go; true when it is still held. */
function waitForLock(home: string): boolean {
  const lock = path.join(home, LOCK_NAME);
  const deadline = Date.now() + LOCK_WAIT_MS;
  while (fs.existsSync(lock)) {
    if (Date.now() > deadline) return true;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  }
  return false;
}

/** The check. `readNonce` is how the challenge's nonce is read (stdin in the tool). */
export function runCheck(
  p: CheckPaths,
  args: CheckArgs,
  readNonce: () => string = () => readStdin("the key challenge"),
): { lines: string[]; result: CheckResult } {
  if (typeof args.version !== "string" || !isJsonObject(args.managed) || typeof args.var !== "string") {
    throw new HostError("check: the argument needs version, managed and var");
  }
  let nonce: string | undefined;
  if (args.compareKey) {
    const line = readNonce();
    nonce = line.endsWith("\n") ? line.slice(0, -1) : line;
    if (!NONCE_PATTERN.test(nonce)) throw new HostError("check: stdin must hold the deployer's nonce (64 hex digits)");
  }
  const busy = waitForLock(p.layout.home);
  const paths = managedKeyPaths(args.managed);
  let shells: string[];
  try {
    shells = resolveShells(
      {
        home: p.layout.home,
        configDir: p.layout.configDir,
        envFile: p.layout.envFile,
        fishEnvFile: p.layout.fishEnvFile,
        binDir: p.layout.binDir,
        stateDir: p.layout.stateDir,
        rcFiles: SHELL_RC_FILES,
      },
      args.shells === "default" ? "default" : args.shells.join(","),
    );
  } catch (e) {
    throw new HostError(`check: ${(e as Error).message}`);
  }
  const kilo = checkKilo(p, args);
  const env = checkEnv(p, args, shells, nonce);
  const drift = [
    ...movedStateDir(p.layout),
    ...movedConfigDir(p.layout),
    ...kilo.drift,
    ...checkConfig(p, args, paths),
    ...env.drift,
    ...checkRcBlocks(p, shells),
    ...checkOverrides(p, paths),
    ...(isJsonObject(args.policy) ? checkPolicy(p, args.policy) : []),
  ];
  const lines = [
    drift.length === 0
      ? `kilo-fleet: ${args.host} matches the stack${busy ? " (a deploy was running while it was read)" : ""}`
      : `kilo-fleet: ${args.host} drifted (${drift.length}):`,
    ...drift.map((d) => `  ${d.item}: ${d.what}`),
  ];
  return {
    lines,
    result: {
      step: "check",
      kilo: kilo.kilo,
      ...(env.keyProof !== undefined ? { keyProof: env.keyProof } : {}),
      ...(busy ? { busy } : {}),
      drift,
    },
  };
}
