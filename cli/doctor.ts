/**
 * `kilo-fleet doctor`: is every host of a stack still what the stack says? Runs the host tool's read-only
 * `check` subcommand (host/check.ts) on each host, in parallel with a bound, and reports per host
 * `ok`, `drifted: what` or `unreachable: why` (`error: why` when the host answered but could not be
 * checked, e.g. no node there).
 *
 *   npm run kilo-fleet -- doctor (--stack NAME | --file PATH) [--host NAME ...] [--json]
 *        [--identity FILE] [--key-env VAR] [--parallel N] [--timeout SECONDS]
 *
 * Reads the stack as `validate` and `render` do (never decrypting anything). A local host runs the tool
 * here; an SSH host is reached with the system `ssh` client: BatchMode, StrictHostKeyChecking=yes, the
 * stack's `ssh.hostKey` pinned through a temporary known-hosts file (without one: the operator's
 * known_hosts, still strict), ConnectTimeout, the operator's agent or `--identity FILE`; no secret of the
 * stack file is used. The tool that runs is the current build's: the deployed copy
 * (`~/.local/share/kilo-fleet/tool-<id>.cjs`) when the host has it, otherwise the build's file, sent over
 * the session's stdin into a `mktemp` file in the host's TMPDIR that is removed when the check ends. It
 * changes nothing on any host.
 *
 * `--key-env VAR`: also compare the host's key with the one in $VAR, by challenge (keyChallenge.ts): the
 * host gets a fresh nonce on the check's stdin and answers with an HMAC of it keyed with its own key; the
 * comparison happens here, and the key never leaves this machine.
 *
 * Output: a table (one line per host), progress on stderr when it is a terminal; `--json`: one JSON
 * document. Exit 0 every host matches, 1 some host drifted, 2 some host was unreachable or could not be
 * checked, or the stack is invalid, or the command line is wrong.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { TOOL_DIR_IN_HOME, toolFileName } from "../common/hostPaths";
import { type CheckFinding, type CheckResult, parseResult } from "../common/result";
import { type CheckArgs, encodeStepArg } from "../common/stepArgs";
import { fleetLockPath } from "../deployer/fleet";
import { hostSpec } from "../deployer/hostSpec";
import { envShells } from "../deployer/hostSteps";
import { type HostToolArtifact, hostToolArtifact } from "../deployer/hostTool";
import { renderKiloConfig } from "../deployer/kiloConfig";
import { type KiloLock, lockedIntegrity, readLockFile } from "../deployer/kiloLock";
import { remoteCommandLine } from "../deployer/remoteCommandLine";
import { formatErrors, parseSettings, resolveHost, type Settings } from "../deployer/settings";
import { newChallenge, settleKey } from "./keyChallenge";
import { loadProject, type Project, readStackConfig } from "./stackFile";

export const DOCTOR_USAGE =
  "kilo-fleet doctor (--stack NAME | --file PATH) [--host NAME ...] [--json] [--identity FILE] [--key-env VAR] [--parallel N] [--timeout SECONDS]";

/** The default bound on hosts checked at once. */
export const DEFAULT_PARALLEL = 8;
/** ssh's ConnectTimeout (seconds). */
export const CONNECT_TIMEOUT_SECONDS = 10;
/** The whole check of one host, connection included (seconds). */
export const DEFAULT_TIMEOUT_SECONDS = 60;

/** The markers the SSH wrapper prints before the check runs (see `sshScript`). */
const SEND_TOOL = "kilo-fleet-doctor: send-tool";
const HAVE_TOOL = "kilo-fleet-doctor: have-tool";

export class DoctorUsageError extends Error {}

/** One host to check. */
export interface DoctorTarget {
  name: string;
  kind: "local" | "ssh";
  /** `connectTimeoutSeconds`: the stack's `ssh.connectTimeoutSeconds` for this host (ssh's ConnectTimeout). */
  ssh?: { host: string; user: string; port: number; hostKey?: string; connectTimeoutSeconds?: number };
  /** The check's argument (compareKey included). */
  args: CheckArgs;
  /** A local host's environment (its HOME), over `CheckOptions.env` (tests and the bench: many HOMEs). */
  env?: NodeJS.ProcessEnv;
}

export type HostStatus = "ok" | "drifted" | "unreachable" | "error";

export interface HostReport {
  host: string;
  kind: "local" | "ssh";
  status: HostStatus;
  /** unreachable/error: why, one line. */
  reason?: string;
  drift: CheckFinding[];
  kilo?: CheckResult["kilo"];
  key?: CheckResult["key"];
  busy?: boolean;
  /** Which tool ran: the host's deployed copy, or the build's (local: in place; SSH: sent for this run). */
  tool?: "deployed" | "sent";
  seconds: number;
}

export interface CheckOptions {
  tool: Pick<HostToolArtifact, "id" | "file" | "text">;
  /** The key to compare (sent on stdin), when --key-env was given. */
  key?: string;
  /** `--identity FILE`. */
  identity?: string;
  /** Local hosts run with this environment (HOME decides where). Default: this process's. */
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** The ssh client (tests may point at another). */
  sshBinary?: string;
}

interface Exec {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  sentTool?: boolean;
}

/**
 * The check's argument for one host of a stack. `lock`: the lock `pulumi up` uses (deployer/fleet.ts
 * `fleetLockPath`); a package-method host pinned to a locked version is checked against it.
 */
export function checkArgsFor(
  settings: Settings,
  host: Settings["hosts"][number],
  compareKey: boolean,
  lock: KiloLock | undefined = readLockFile(fleetLockPath()),
): CheckArgs {
  const spec = hostSpec(settings, host);
  const locked =
    spec.install.method === "package" && spec.kiloVersion !== "latest" && lock?.kilo[spec.kiloVersion]
      ? lockedIntegrity(lock, spec.kiloVersion)
      : undefined;
  return {
    host: host.name,
    version: spec.kiloVersion,
    managed: renderKiloConfig(spec, spec),
    var: spec.apiKeyEnvVar,
    shells: envShells(spec),
    compareKey,
    ...(locked ? { locked } : {}),
  };
}

/** Runs argv with `stdin` written; `onStdoutLine(first line)` may write more and must end stdin. */
function execute(
  argv: string[],
  opts: {
    env: NodeJS.ProcessEnv;
    cwd?: string;
    stdin: string;
    timeoutMs: number;
    /** Called with the first stdout line; returns what to write before ending stdin. */
    afterFirstLine?: (line: string) => string | undefined;
  },
): Promise<Exec> {
  return new Promise((resolvePromise) => {
    const child = spawn(argv[0], argv.slice(1), { env: opts.env, cwd: opts.cwd, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    let firstLineSeen = opts.afterFirstLine === undefined;
    let sentTool = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, opts.timeoutMs);
    child.stdin.on("error", () => {});
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (d: string) => {
      stdout += d;
      if (!firstLineSeen && stdout.includes("\n")) {
        firstLineSeen = true;
        const more = opts.afterFirstLine?.(stdout.slice(0, stdout.indexOf("\n")));
        if (more !== undefined) sentTool = true;
        child.stdin.end(more ?? "");
      }
    });
    child.stderr.on("data", (d: string) => {
      stderr += d;
    });
    child.on("error", (e) => {
      clearTimeout(timer);
      resolvePromise({ code: null, stdout, stderr: `${stderr}${e.message}\n`, timedOut, sentTool });
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr, timedOut, sentTool });
    });
    if (firstLineSeen) child.stdin.end(opts.stdin);
    else child.stdin.write(opts.stdin);
  });
}

/**
 * The script an SSH host runs (through `remoteCommandLine`, so any login shell hands it to /bin/sh):
 * reads the nonce line (empty without --key-env; `read` takes it byte by byte, nothing more), says whether
 * it has the current tool, and if not receives it on the rest of stdin into a mktemp file removed on exit.
 */
export function sshScript(toolId: string, toolBytes: number, args: CheckArgs): string {
  const word = encodeStepArg(args);
  if (/['\\]/.test(word)) throw new Error("kilo-fleet: an encoded check argument holds a quote or backslash");
  return [
    "set -u",
    "IFS= read -r kf_nonce || kf_nonce=",
    `kf_t="$HOME/${TOOL_DIR_IN_HOME}/${toolFileName(toolId)}"`,
    'if [ -f "$kf_t" ]; then',
    `  printf '%s\\n' '${HAVE_TOOL}'`,
    "else",
    '  kf_tmp=$(mktemp "${TMPDIR:-/tmp}/kilo-fleet-doctor.XXXXXX") || exit 1',
    "  trap 'rm -f \"$kf_tmp\"' EXIT",
    "  trap 'exit 1' HUP INT TERM",
    `  printf '%s\\n' '${SEND_TOOL}'`,
    '  cat >"$kf_tmp" || exit 1',
    `  if [ "$(wc -c <"$kf_tmp" | tr -d ' ')" != ${toolBytes} ]; then echo 'kilo-fleet: the tool did not arrive whole' >&2; exit 1; fi`,
    "  kf_t=$kf_tmp",
    "fi",
    args.compareKey
      ? `printf '%s\\n' "$kf_nonce" | /bin/sh "$kf_t" check '${word}'`
      : `/bin/sh "$kf_t" check '${word}' </dev/null`,
    "kf_rc=$?",
    "exit $kf_rc",
    "",
  ].join("\n");
}

/** A known_hosts line for a pinned key (`[host]:port` unless port 22). */
export function knownHostsLine(host: string, port: number, hostKey: string): string {
  const [type, key] = hostKey.trim().split(/\s+/);
  return `${port === 22 ? host : `[${host}]:${port}`} ${type} ${key}\n`;
}

/** ssh's failure (exit 255) as one reason. */
export function sshReason(stderr: string, pinned: boolean, target: { host: string; port: number }): string {
  const lines = stderr
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "" && !/^@+$/.test(l) && !l.startsWith("@"));
  const text = lines.join(" ");
  if (
    /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|host key .* (differs|mismatch)/i.test(text)
  ) {
    return pinned
      ? "host key verification failed: the host's key is not the pinned ssh.hostKey"
      : "host key verification failed: the host key is not in your known_hosts (pin it with ssh.hostKey)";
  }
  if (/No .* host key is known/i.test(text)) return "host key verification failed: no known host key";
  if (/Connection refused/i.test(text)) return `connection refused (${target.host} port ${target.port})`;
  if (/timed out/i.test(text)) return `connection timed out (${target.host} port ${target.port})`;
  if (/Could not resolve hostname/i.test(text)) return `cannot resolve ${target.host}`;
  if (/Permission denied/i.test(text)) return `authentication failed (${lines[lines.length - 1]})`;
  return (lines[lines.length - 1] ?? "ssh failed").slice(0, 300);
}

/** The report from a finished run. */
function report(target: DoctorTarget, run: Exec, started: number, tool: HostReport["tool"]): HostReport {
  const base = { host: target.name, kind: target.kind, seconds: (Date.now() - started) / 1000 };
  const lastErr = run.stderr
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.startsWith("kilo-fleet:"))
    .pop();
  if (run.timedOut) {
    return {
      ...base,
      status: target.kind === "ssh" ? "unreachable" : "error",
      reason: `no answer within ${Math.round((Date.now() - started) / 1000)} s`,
      drift: [],
    };
  }
  if (target.kind === "ssh" && run.code === 255 && !run.stdout.includes(HAVE_TOOL) && !run.stdout.includes(SEND_TOOL)) {
    const pinned = target.ssh?.hostKey !== undefined;
    return {
      ...base,
      status: "unreachable",
      reason: sshReason(run.stderr, pinned, target.ssh ?? { host: "?", port: 22 }),
      drift: [],
    };
  }
  const result = parseResult(run.stdout, "check");
  if (run.code !== 0 || result === undefined) {
    return {
      ...base,
      status: "error",
      reason:
        (lastErr ?? run.stderr.trim().split("\n").pop() ?? "").replace(/^kilo-fleet: /, "") ||
        `the check exited ${run.code} without a result`,
      drift: [],
    };
  }
  return {
    ...base,
    status: result.drift.length === 0 ? "ok" : "drifted",
    drift: result.drift,
    kilo: result.kilo,
    ...(result.key !== undefined ? { key: result.key } : {}),
    ...(result.busy ? { busy: true } : {}),
    ...(tool ? { tool } : {}),
  };
}

/** Checks one host. Never throws: a failure is the host's status. */
export async function checkHost(target: DoctorTarget, opts: CheckOptions): Promise<HostReport> {
  const started = Date.now();
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_SECONDS * 1000;
  // The key never leaves here: the host gets a fresh nonce and answers with an HMAC (keyChallenge.ts).
  const nonce = opts.key !== undefined ? newChallenge() : undefined;
  const keyLine = nonce !== undefined ? `${nonce}\n` : "";
  try {
    if (target.kind === "local") {
      const env = target.env ?? opts.env ?? process.env;
      const home = resolve(env.HOME ?? tmpdir());
      const deployed = join(home, TOOL_DIR_IN_HOME, toolFileName(opts.tool.id));
      const toolPath = existsSync(deployed) ? deployed : opts.tool.file;
      const run = await execute(["/bin/sh", toolPath, "check", encodeStepArg(target.args)], {
        env,
        cwd: home,
        stdin: target.args.compareKey ? keyLine : "",
        timeoutMs,
      });
      return settleKey(
        report(target, run, started, toolPath === deployed ? "deployed" : "sent"),
        run.stdout,
        opts.key,
        nonce,
      );
    }
    const ssh = target.ssh;
    if (!ssh) throw new Error(`host ${target.name} has no ssh settings`);
    const dir = mkdtempSync(join(tmpdir(), "kilo-fleet-doctor-"));
    try {
      const known = join(dir, "known_hosts");
      if (ssh.hostKey !== undefined)
        writeFileSync(known, knownHostsLine(ssh.host, ssh.port, ssh.hostKey), { mode: 0o600 });
      const argv = [
        opts.sshBinary ?? "ssh",
        "-T",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "UpdateHostKeys=no",
        "-o",
        "CheckHostIP=no",
        "-o",
        `ConnectTimeout=${ssh.connectTimeoutSeconds ?? CONNECT_TIMEOUT_SECONDS}`,
        "-o",
        "ServerAliveInterval=10",
        "-o",
        "ServerAliveCountMax=3",
        "-o",
        "LogLevel=ERROR",
        ...(ssh.hostKey !== undefined
          ? ["-o", `UserKnownHostsFile=${known}`, "-o", "GlobalKnownHostsFile=/dev/null"]
          : []),
        ...(opts.identity ? ["-i", opts.identity, "-o", "IdentitiesOnly=yes"] : []),
        "-p",
        String(ssh.port),
        "-l",
        ssh.user,
        ssh.host,
        remoteCommandLine(sshScript(opts.tool.id, Buffer.byteLength(opts.tool.text), target.args)),
      ];
      const run = await execute(argv, {
        env: opts.env ?? process.env,
        stdin: target.args.compareKey ? keyLine : "\n",
        timeoutMs,
        afterFirstLine: (line) => (line === SEND_TOOL ? opts.tool.text : undefined),
      });
      return settleKey(report(target, run, started, run.sentTool ? "sent" : "deployed"), run.stdout, opts.key, nonce);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } catch (e) {
    return {
      host: target.name,
      kind: target.kind,
      status: "error",
      reason: (e as Error).message,
      drift: [],
      seconds: (Date.now() - started) / 1000,
    };
  }
}

/** Checks every target, at most `parallel` at once; `onDone` is called as each finishes. Order kept. */
export async function checkHosts(
  targets: DoctorTarget[],
  opts: CheckOptions & { parallel?: number; onDone?: (r: HostReport, done: number) => void },
): Promise<HostReport[]> {
  const out: HostReport[] = new Array(targets.length);
  let next = 0;
  let done = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= targets.length) return;
      out[i] = await checkHost(targets[i], opts);
      done++;
      opts.onDone?.(out[i], done);
    }
  };
  const n = Math.max(1, Math.min(opts.parallel ?? DEFAULT_PARALLEL, targets.length));
  await Promise.all(Array.from({ length: n }, worker));
  return out;
}

/** One line of the table: `ok`, `drifted: …`, `unreachable: …`, `error: …`. */
export function statusLine(r: HostReport): string {
  if (r.status === "ok") return r.busy ? "ok (a deploy was running during the check)" : "ok";
  if (r.status === "drifted") return `drifted: ${r.drift.map((d) => `${d.item}: ${d.what}`).join("; ")}`;
  return `${r.status}: ${r.reason ?? ""}`;
}

export function exitCode(reports: HostReport[]): number {
  if (reports.some((r) => r.status === "unreachable" || r.status === "error")) return 2;
  if (reports.some((r) => r.status === "drifted")) return 1;
  return 0;
}

interface DoctorArgs {
  file: string;
  hosts: string[];
  json: boolean;
  identity?: string;
  keyEnv?: string;
  parallel: number;
  timeoutMs: number;
}

function parseDoctorArgs(rest: string[], project: Project): DoctorArgs {
  let file: string | undefined;
  const hosts: string[] = [];
  let json = false;
  let identity: string | undefined;
  let keyEnv: string | undefined;
  let parallel = DEFAULT_PARALLEL;
  let timeoutMs = DEFAULT_TIMEOUT_SECONDS * 1000;
  for (let i = 0; i < rest.length; i++) {
    const [flag, inline] = rest[i].startsWith("--") ? rest[i].split(/=(.*)/s, 2) : [rest[i], undefined];
    if (/^--(api-?)?key$/.test(flag)) {
      throw new DoctorUsageError(
        `${flag} is refused: a key on the command line lands in shell history and in the process list; export it in an environment variable and name that with --key-env VAR`,
      );
    }
    if (flag === "--json") {
      if (inline !== undefined) throw new DoctorUsageError("--json takes no value");
      json = true;
      continue;
    }
    if (!["--stack", "--file", "--host", "--identity", "--key-env", "--parallel", "--timeout"].includes(flag)) {
      throw new DoctorUsageError(`unknown argument "${rest[i]}"`);
    }
    const value = inline ?? rest[++i];
    if (value === undefined || value === "") throw new DoctorUsageError(`${flag} needs a value`);
    switch (flag) {
      case "--stack": {
        if (file !== undefined) throw new DoctorUsageError("doctor takes one --stack or --file");
        if (!/^[A-Za-z0-9_.-]+$/.test(value)) throw new DoctorUsageError(`"${value}" is not a stack name`);
        const path = join(project.stackConfigDir, `Pulumi.${value}.yaml`);
        if (!existsSync(path)) throw new DoctorUsageError(`no stack "${value}" (no ${display(path)})`);
        file = path;
        break;
      }
      case "--file":
        if (file !== undefined) throw new DoctorUsageError("doctor takes one --stack or --file");
        if (!existsSync(value)) throw new DoctorUsageError(`no such file: ${value}`);
        file = resolve(value);
        break;
      case "--host":
        hosts.push(value);
        break;
      case "--identity":
        if (!existsSync(value)) throw new DoctorUsageError(`--identity: no such file: ${value}`);
        identity = resolve(value);
        break;
      case "--key-env":
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(value)) {
          throw new DoctorUsageError(`--key-env "${value}" is not a variable name`);
        }
        keyEnv = value;
        break;
      case "--parallel": {
        const n = Number(value);
        if (!Number.isInteger(n) || n < 1 || n > 256) throw new DoctorUsageError("--parallel must be 1-256");
        parallel = n;
        break;
      }
      default: {
        const s = Number(value);
        if (!Number.isInteger(s) || s < 1 || s > 3600)
          throw new DoctorUsageError("--timeout must be whole seconds, 1-3600");
        timeoutMs = s * 1000;
      }
    }
  }
  if (file === undefined) throw new DoctorUsageError("doctor needs --stack NAME or --file PATH");
  return { file, hosts, json, identity, keyEnv, parallel, timeoutMs };
}

function display(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel === "" || rel.startsWith("..") ? path : rel;
}

export interface DoctorIo {
  /** The environment: local hosts run in it, --key-env reads from it. */
  env: NodeJS.ProcessEnv;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Progress lines go to stderr only when it is a terminal. */
  stderrIsTTY: boolean;
  projectDir: string;
  /** The tool to run (default: the current build's). */
  tool?: CheckOptions["tool"];
}

/** `kilo-fleet doctor …` (argv after `doctor`): the exit code. */
export async function doctor(argv: string[], io: DoctorIo): Promise<number> {
  let args: DoctorArgs;
  let project: Project;
  try {
    project = loadProject(io.projectDir);
    args = parseDoctorArgs(argv, project);
  } catch (e) {
    if (!(e instanceof DoctorUsageError)) throw e;
    io.stderr(`kilo-fleet: ${e.message}\nusage: ${DOCTOR_USAGE}\n`);
    return 2;
  }
  let key: string | undefined;
  if (args.keyEnv !== undefined) {
    key = io.env[args.keyEnv] ?? "";
    if (key === "") {
      io.stderr(`kilo-fleet: $${args.keyEnv} is not set: export the key to compare in it\n`);
      return 2;
    }
    if (/[\u0000-\u001f\u007f]/.test(key)) {
      io.stderr(`kilo-fleet: $${args.keyEnv} holds a control character or newline; it cannot be a key\n`);
      return 2;
    }
  }
  let settings: Settings;
  try {
    const stack = readStackConfig(args.file, project);
    const parsed = parseSettings(stack.raw);
    const errors = [...stack.errors, ...(parsed.ok ? [] : parsed.errors)];
    if (!parsed.ok || errors.length > 0) {
      io.stderr(`${display(args.file)}: invalid, no host checked\n`);
      for (const line of formatErrors(errors).split("\n")) io.stderr(`  ${line}\n`);
      return 2;
    }
    settings = parsed.settings;
  } catch (e) {
    io.stderr(`kilo-fleet: ${(e as Error).message}\n`);
    return 2;
  }
  const names = settings.hosts.map((h) => h.name);
  for (const h of args.hosts) {
    if (!names.includes(h)) {
      io.stderr(`kilo-fleet: no host "${h}" in ${display(args.file)} (hosts: ${names.join(", ")})\n`);
      return 2;
    }
  }
  const chosen = settings.hosts.filter((h) => args.hosts.length === 0 || args.hosts.includes(h.name));
  const targets: DoctorTarget[] = chosen.map((h) => {
    const resolved = resolveHost(settings, h);
    return {
      name: h.name,
      kind: resolved.kind,
      ...(resolved.ssh
        ? {
            ssh: {
              host: resolved.ssh.host,
              user: resolved.ssh.user,
              port: resolved.ssh.port,
              ...(resolved.ssh.hostKey !== undefined ? { hostKey: resolved.ssh.hostKey } : {}),
              connectTimeoutSeconds: hostSpec(settings, h).ssh?.connectTimeoutSeconds as number | undefined,
            },
          }
        : {}),
      args: checkArgsFor(settings, h, key !== undefined),
    };
  });
  const tool = io.tool ?? hostToolArtifact();
  const started = Date.now();
  const reports = await checkHosts(targets, {
    tool,
    key,
    identity: args.identity,
    env: io.env,
    timeoutMs: args.timeoutMs,
    parallel: args.parallel,
    onDone: (r, done) => {
      if (io.stderrIsTTY) io.stderr(`\r\x1b[Kdoctor: ${done}/${targets.length} checked (${r.host}: ${r.status})`);
    },
  });
  if (io.stderrIsTTY) io.stderr("\r\x1b[K");
  const counts = { ok: 0, drifted: 0, unreachable: 0, error: 0 };
  for (const r of reports) counts[r.status]++;
  if (args.json) {
    io.stdout(
      `${JSON.stringify(
        {
          stack: display(args.file),
          seconds: (Date.now() - started) / 1000,
          ...counts,
          hosts: reports,
        },
        null,
        2,
      )}\n`,
    );
  } else {
    const width = Math.max(4, ...reports.map((r) => r.host.length));
    io.stdout(`${"HOST".padEnd(width)}  STATUS\n`);
    for (const r of reports) io.stdout(`${r.host.padEnd(width)}  ${statusLine(r)}\n`);
    const parts = Object.entries(counts)
      .filter(([, n]) => n > 0)
      .map(([s, n]) => `${n} ${s}`);
    io.stdout(
      `${reports.length} host${reports.length === 1 ? "" : "s"}: ${parts.join(", ")} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`,
    );
  }
  return exitCode(reports);
}
