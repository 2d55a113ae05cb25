/**
 * The install step on the host for `install.method: npm`: `npm install -g --prefix ~/.local
 * @kilocode/cli@<version>` (user level, no sudo), with a throw-away cache and `--ignore-scripts`, skipped
 * when the pin is in place; the registry token only from stdin, and to npm only on its stdin (never a file,
 * so a `kill -9` leaves no copy); the delete removes only a kilo kilo-fleet
 * installed. Why each choice: docs/design.md, "install.method npm"; the CA bundle: docs/security.md.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { HostLayout } from "../common/hostPaths";
import { parseProxyCredentials, proxyUrlWithCredentials, shownProxy } from "../common/proxy";
import type { DeleteResult, InstallResult } from "../common/result";
import type { InstallArgs, ProxyArgs } from "../common/stepArgs";
import { checkCaPem, npmCaBundle } from "./caFile";
import {
  HostError,
  isRunning,
  mkdirsRecorded,
  readIfExists,
  readStdin,
  recordDirs,
  removeFile,
  splitStdinLines,
  writeFileAtomic,
} from "./fsUtil";

export const KILO_PACKAGE = "@kilocode/cli";

/** `installed` (kilo-fleet ran npm install, so delete uninstalls) or `preexisting`. */
type InstallState = "installed" | "preexisting";

const stateFile = (layout: HostLayout) => path.join(layout.stateDir, "install");

function readState(layout: HostLayout): InstallState | undefined {
  const v = readIfExists(stateFile(layout))?.trim();
  return v === "installed" || v === "preexisting" ? v : undefined;
}

function writeState(layout: HostLayout, state: InstallState): void {
  mkdirsRecorded(layout.stateDir, layout.stateDir);
  writeFileAtomic(stateFile(layout), `${state}\n`, 0o600);
}

function installedVersion(layout: HostLayout): string | undefined {
  try {
    const v = (JSON.parse(fs.readFileSync(layout.kiloPackageJson, "utf8")) as { version?: unknown }).version;
    return typeof v === "string" ? v : undefined;
  } catch {
    return undefined;
  }
}

const isExecutable = (file: string) => {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
};

function npmPath(): string {
  const npm = process.env.KILO_FLEET_NPM;
  if (!npm) throw new HostError("npm was not found by the tool's header (KILO_FLEET_NPM is not set)");
  return npm;
}

/**
 * Runs `npm <command...> --cache <cache> <npm's quiet flags> [--registry R] <target>` (the package last, as
 * a person types it); returns its exit status and combined log.
 */
/** npm's options for one install: the throw-away cache, and the CA bundle and npmrc when set. */
interface NpmOpts {
  cache: string;
  cafile?: string;
  /** kilo-fleet:proxy without credentials: npm's flags (with credentials the proxy goes in the npmrc). */
  proxyFlags?: string[];
  /** The npmrc's text (the token's line), given to npm on its stdin. */
  npmrc?: string;
}

/** What npm reads its user config from when the npmrc goes on its stdin (Linux and macOS both have it). */
const STDIN_NPMRC = "/dev/stdin";

function npmFlags(o: NpmOpts): string[] {
  return [
    "--cache",
    o.cache,
    ...(o.cafile ? ["--cafile", o.cafile] : []),
    ...(o.proxyFlags ?? []),
    ...(o.npmrc !== undefined ? ["--userconfig", STDIN_NPMRC] : []),
  ];
}

/** The npmrc line authenticating `registry` (npmjs when absent) with `token`. */
export function npmrcAuthLine(registry: string | undefined, token: string): string {
  const u = new URL(registry ?? "https://registry.npmjs.org/");
  const p = u.pathname.endsWith("/") ? u.pathname : `${u.pathname}/`;
  return `//${u.host}${p}:_authToken=${token}`;
}

/** The token from a stdin line (it is never quoted in a message). */
function checkToken(t: string): string {
  if (t === "" || /[\u0000-\u001f\u007f]/.test(t)) {
    throw new HostError("the npm token on stdin must be one non-empty line (kilo-fleet:npmToken)");
  }
  return t;
}

/**
 * The proxy npm goes through: npm sends every request through one proxy (`https-proxy` when set, else
 * `proxy`, whatever the URL's scheme), so the one for the registry's scheme (npmjs when absent: https).
 */
export function npmProxyUrl(proxy: ProxyArgs, registry: string | undefined): string {
  return registry !== undefined && /^http:/i.test(registry) ? (proxy.http ?? proxy.https) : proxy.https;
}

/**
 * npm's proxy settings for kilo-fleet:proxy (`https-proxy` and `proxy` both the one for the registry's scheme):
 * as npmrc lines when there are credentials (the npmrc goes on npm's stdin, never its command line), as
 * flags otherwise. The credentials are percent-encoded, so npmrc's `${VAR}` expansion cannot touch them.
 */
export function npmProxySettings(
  proxy: ProxyArgs,
  registry: string | undefined,
  credentials?: { user: string; password: string },
): { lines: string[]; flags: string[] } {
  const url = proxyUrlWithCredentials(npmProxyUrl(proxy, registry), credentials);
  const settings: [string, string][] = [
    ["https-proxy", url],
    ["proxy", url],
    ...(proxy.noProxy !== undefined ? [["noproxy", proxy.noProxy] as [string, string]] : []),
  ];
  if (credentials !== undefined) return { lines: settings.map(([k, v]) => `${k}=${v}`), flags: [] };
  return { lines: [], flags: settings.flatMap(([k, v]) => [`--${k}`, v]) };
}

function npm(
  command: string[],
  target: string,
  registry: string | undefined,
  o: NpmOpts,
): { ok: boolean; log: string } {
  const r = spawnNpm(
    [
      ...command,
      ...npmFlags(o),
      "--no-audit",
      "--no-fund",
      "--no-update-notifier",
      ...(registry ? ["--registry", registry] : []),
      target,
    ],
    o,
    "pipe",
  );
  return { ok: r.status === 0, log: `${r.stdout ?? ""}${r.stderr ?? ""}${r.error ? String(r.error.message) : ""}` };
}

/** One line out of npm's log: its error code and first message line. */
export function npmErrorSummary(log: string): string {
  const lines = log.split(/\r?\n/);
  const code = lines.map((l) => /^npm error code (.+)$/.exec(l)?.[1]).find((c) => c !== undefined);
  const skip = /^(\s|code |syscall |errno |A complete log|[{}]|$)/;
  const msg =
    lines.map((l) => /^npm error (.*)$/.exec(l)?.[1]).find((m) => m !== undefined && !skip.test(m)) ??
    lines.filter((l) => l.trim() !== "").pop() ??
    "";
  return `${code ? `${code}: ` : ""}${msg}`.slice(0, 400);
}

/** node's codes for a certificate chain it does not trust (not an expired or misnamed one). */
const UNTRUSTED_CERT_CODES = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "CERT_UNTRUSTED",
]);

/** What a failure's line adds when npm did not trust the registry's certificate (`summary`: npmErrorSummary's). */
export function untrustedHint(summary: string, caCertificates: boolean): string {
  if (!UNTRUSTED_CERT_CODES.has(/^([A-Z_]+):/.exec(summary)?.[1] ?? "")) return "";
  return caCertificates
    ? "; kilo-fleet:caCertificates does not sign its certificate either"
    : "; the host does not trust its certificate: set kilo-fleet:caCertificates to the CA that signs it (a TLS-inspecting proxy's, or the registry's)";
}

/**
 * Runs npm; with an npmrc, behind `cat |`: node hands a child a socket as its stdin, which /dev/stdin cannot
 * open, and `cat` turns it into the pipe npm reads its user config from.
 */
function spawnNpm(args: string[], o: NpmOpts, stderr: "pipe" | "ignore") {
  const opts = { encoding: "utf8" as const, maxBuffer: 64 * 1024 * 1024 };
  if (o.npmrc === undefined) return spawnSync(npmPath(), args, { ...opts, stdio: ["ignore", "pipe", stderr] });
  return spawnSync("/bin/sh", ["-c", 'cat | "$@"', "sh", npmPath(), ...args], {
    ...opts,
    input: o.npmrc,
    stdio: ["pipe", "pipe", stderr],
  });
}

const TEMP_PREFIX = "kilo-fleet.";

/** How old an earlier version's temp dir (`kilo-fleet.XXXXXX`, no pid) must be before it is swept. */
const LEGACY_TEMP_AGE_MS = 3600_000;

/**
 * Removes the temp dirs of earlier runs whose process is gone (a `kill -9` skips the `finally`), and an
 * earlier version's (no pid in the name) that hold an npmrc, once an hour old: that file holds a token.
 */
function sweepTempDirs(parent: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(parent);
  } catch {
    return;
  }
  for (const n of names) {
    const m = /^kilo-fleet\.([1-9]\d*)\.[A-Za-z0-9]{6}$/.exec(n);
    const legacy = /^kilo-fleet\.[A-Za-z0-9]{6}$/.test(n);
    if (!legacy && (!m || Number(m[1]) === process.pid || isRunning(Number(m[1])))) continue;
    try {
      const dir = path.join(parent, n);
      const st = fs.lstatSync(dir);
      if (!st.isDirectory() || st.uid !== process.getuid?.()) continue;
      if (legacy && (!fs.existsSync(path.join(dir, "npmrc")) || Date.now() - st.mtimeMs < LEGACY_TEMP_AGE_MS)) continue;
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort: litter only
    }
  }
}

function withTempDir<T>(f: (dir: string) => T): T {
  const parent = process.env.TMPDIR || os.tmpdir();
  sweepTempDirs(parent);
  const dir = fs.mkdtempSync(path.join(parent, `${TEMP_PREFIX}${process.pid}.`));
  try {
    return f(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function parseCredentials(line: string): { user: string; password: string } {
  try {
    return parseProxyCredentials(line);
  } catch (e) {
    throw new HostError((e as Error).message);
  }
}

export function installApply(layout: HostLayout, args: InstallArgs): { lines: string[]; result: InstallResult } {
  const { version, registry } = args;
  const spec = `${KILO_PACKAGE}@${version}`;
  return withTempDir((tmp) => {
    const cache = path.join(tmp, "npm-cache");
    const o: NpmOpts = { cache };
    if (args.caCertificates !== undefined) {
      checkCaPem(args.caCertificates);
      o.cafile = path.join(tmp, "ca-bundle.pem");
      writeFileAtomic(o.cafile, npmCaBundle(args.caCertificates), 0o644);
    }
    // stdin: the token's line, then the proxy credentials' line (each only when the argument says so).
    const secrets = [args.tokenOnStdin && "the npm token", args.proxy?.authOnStdin && "the proxy credentials"];
    const named = secrets.filter((x): x is string => typeof x === "string");
    const lines =
      named.length > 0 ? splitStdinLines(readStdin(named.join(" and ")), named.length, named.join(", then ")) : [];
    const npmrc: string[] = [];
    if (args.tokenOnStdin) npmrc.push(npmrcAuthLine(registry, checkToken(lines.shift() ?? "")));
    if (args.proxy) {
      const credentials = args.proxy.authOnStdin ? parseCredentials(lines.shift() ?? "") : undefined;
      const p = npmProxySettings(args.proxy, registry, credentials);
      npmrc.push(...p.lines);
      o.proxyFlags = p.flags;
    }
    if (npmrc.length > 0) o.npmrc = `${npmrc.join("\n")}\n`;
    let want: string | undefined = version;
    if (version === "latest") {
      const r = spawnNpm(
        ["view", `${KILO_PACKAGE}@latest`, "version", ...npmFlags(o), "--no-update-notifier"].concat(
          registry ? ["--registry", registry] : [],
        ),
        o,
        "ignore",
      );
      want = r.status === 0 ? r.stdout.trim().split("\n").pop() || undefined : undefined;
    }
    const have = installedVersion(layout);
    if (want !== undefined && have === want && isExecutable(layout.kiloBin)) {
      const state = readState(layout) ?? "preexisting";
      if (readState(layout) === undefined) writeState(layout, state);
      return {
        lines: [`kilo-fleet: kilo ${have} is already installed at ${layout.npmPrefix}; npm not run`],
        result: {
          step: "install",
          kiloVersion: have,
          bin: layout.kiloBin,
          method: state === "installed" ? "npm" : "preexisting",
          changed: false,
        },
      };
    }
    // The directories npm will create: recorded after success (the last delete removes them), removed
    // right away when npm fails, so a failed install leaves nothing behind.
    const prefix = layout.npmPrefix;
    const newDirs = [
      prefix,
      path.join(prefix, "lib"),
      path.join(prefix, "lib", "node_modules"),
      path.join(prefix, "lib", "node_modules", "@kilocode"),
      path.join(prefix, "bin"),
    ].filter((d) => !fs.existsSync(d));
    const r = npm(["install", "-g", "--prefix", prefix, "--ignore-scripts"], spec, registry, o);
    if (!r.ok) {
      for (const d of [...newDirs].reverse()) {
        try {
          fs.rmdirSync(d);
        } catch {
          // not empty or gone
        }
      }
      const via = args.proxy
        ? ` through the proxy ${shownProxy(npmProxyUrl(args.proxy, registry))} (kilo-fleet:proxy)`
        : "";
      // A URL's credentials (the proxy's, in npm's messages) are never shown.
      const summary = npmErrorSummary(r.log).replace(/\/\/[^\s/@]*@/g, "//");
      throw new HostError(
        `npm install ${spec} failed on ${args.host}${via} (${summary})${untrustedHint(summary, args.caCertificates !== undefined)}`,
      );
    }
    if (newDirs.length > 0) recordDirs(layout.stateDir, newDirs);
    const installed = installedVersion(layout);
    if (installed === undefined || !isExecutable(layout.kiloBin)) {
      throw new HostError(`npm install ${spec} on ${args.host} left no kilo at ${layout.kiloBin}`);
    }
    writeState(layout, "installed");
    return {
      lines: [],
      result: { step: "install", kiloVersion: installed, bin: layout.kiloBin, method: "npm", changed: true },
    };
  });
}

export function installDelete(layout: HostLayout): { lines: string[]; result: DeleteResult } {
  const state = readState(layout);
  let outcome: string;
  if (state === "installed") {
    if (fs.existsSync(path.join(layout.npmPrefix, "lib", "node_modules", KILO_PACKAGE))) {
      withTempDir((tmp) => {
        const r = npm(["uninstall", "-g", "--prefix", layout.npmPrefix], KILO_PACKAGE, undefined, {
          cache: path.join(tmp, "npm-cache"),
        });
        if (!r.ok) throw new HostError(`npm uninstall ${KILO_PACKAGE} failed (${npmErrorSummary(r.log)})`);
      });
    }
    outcome = `uninstalled kilo from ${layout.npmPrefix}`;
  } else {
    outcome = `left kilo in place at ${layout.npmPrefix} (kilo-fleet did not install it)`;
  }
  removeFile(stateFile(layout));
  return { lines: [`kilo-fleet: ${outcome}`], result: { step: "install-delete", outcome } };
}
