/**
 * The install step on the host for `install.method: npm`: `npm install -g --prefix ~/.local
 * @kilocode/cli@<version>` (user level, no sudo), with a throw-away cache and `--ignore-scripts`, skipped
 * when the pin is in place; the registry token only from stdin; the delete removes only a kilo kilo-fleet
 * installed. Why each choice: docs/design.md, "install.method npm"; the CA bundle: docs/security.md.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { HostLayout } from "../common/hostPaths";
import type { DeleteResult, InstallResult } from "../common/result";
import type { InstallArgs } from "../common/stepArgs";
import { checkCaPem, npmCaBundle } from "./caFile";
import { HostError, mkdirsRecorded, readIfExists, readStdin, recordDirs, removeFile, writeFileAtomic } from "./fsUtil";

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
  userconfig?: string;
}

function npmFlags(o: NpmOpts): string[] {
  return [
    "--cache",
    o.cache,
    ...(o.cafile ? ["--cafile", o.cafile] : []),
    ...(o.userconfig ? ["--userconfig", o.userconfig] : []),
  ];
}

/** The npmrc line authenticating `registry` (npmjs when absent) with `token`. */
export function npmrcAuthLine(registry: string | undefined, token: string): string {
  const u = new URL(registry ?? "https://registry.npmjs.org/");
  const p = u.pathname.endsWith("/") ? u.pathname : `${u.pathname}/`;
  return `//${u.host}${p}:_authToken=${token}`;
}

/** The token from stdin: one line, one optional trailing newline (it is never quoted in a message). */
function readToken(): string {
  const text = readStdin("the npm token");
  const t = text.endsWith("\n") ? text.slice(0, -1) : text;
  if (t === "" || /[\u0000-\u001f\u007f]/.test(t)) {
    throw new HostError("the npm token on stdin must be one non-empty line (kilo-fleet:npmToken)");
  }
  return t;
}

function npm(
  command: string[],
  target: string,
  registry: string | undefined,
  o: NpmOpts,
): { ok: boolean; log: string } {
  const r = spawnSync(
    npmPath(),
    [
      ...command,
      ...npmFlags(o),
      "--no-audit",
      "--no-fund",
      "--no-update-notifier",
      ...(registry ? ["--registry", registry] : []),
      target,
    ],
    { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 * 1024 * 1024 },
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

function withTempDir<T>(f: (dir: string) => T): T {
  const dir = fs.mkdtempSync(path.join(process.env.TMPDIR || os.tmpdir(), "kilo-fleet."));
  try {
    return f(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
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
    if (args.tokenOnStdin) {
      o.userconfig = path.join(tmp, "npmrc");
      fs.writeFileSync(o.userconfig, `${npmrcAuthLine(registry, readToken())}\n`, { mode: 0o600, flag: "wx" });
    }
    let want: string | undefined = version;
    if (version === "latest") {
      const r = spawnSync(
        npmPath(),
        ["view", `${KILO_PACKAGE}@latest`, "version", ...npmFlags(o), "--no-update-notifier"].concat(
          registry ? ["--registry", registry] : [],
        ),
        { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] },
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
      throw new HostError(`npm install ${spec} failed on ${args.host} (${npmErrorSummary(r.log)})`);
    }
    if (newDirs.length > 0) recordDirs(layout.stateDir, newDirs);
    const installed = installedVersion(layout);
    if (installed === undefined || !isExecutable(layout.kiloBin)) {
      throw new HostError(`npm install ${spec} on ${args.host} left no kilo at ${layout.kiloBin}`);
    }
    writeState(layout, "installed");
    return {
      lines: [`kilo-fleet: kilo ${installed} installed at ${layout.kiloBin}`],
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
