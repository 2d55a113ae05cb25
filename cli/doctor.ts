/**
 * `kilo-fleet doctor`: is every host of a stack still what the stack says? Runs the host tool's read-only
 * `check` subcommand (host/check.ts) on each host, in parallel with a bound, and reports per host
 * `ok`, `drifted: what` or `unreachable: why` (`error: why` when the host answered but could not be
 * checked, e.g. no node there).
 *
 * Options: `DOCTOR_COMMAND` below (`doctor --help`).
 *
 * Reads the stack as `validate` and `render` do (never decrypting anything). A local host runs the tool
 * here; an SSH host is reached with the system `ssh` client: BatchMode, StrictHostKeyChecking=yes, the
 * stack's `ssh.hostKey` pinned through a temporary known-hosts file (without one: the operator's
 * known_hosts, still strict), ConnectTimeout, the operator's agent or `--identity FILE` (a jump host, `ssh.proxy`,
 * through a ProxyCommand `ssh -W` as strict, its key pinned in a known-hosts file of its own, cli/sshJump.ts: a
 * failed hop is the host's `unreachable` reason in the hop's own words); no secret of the stack file is used. The tool that runs is the current build's: the deployed copy
 * (`~/.local/share/kilo-fleet/tool-<id>.cjs`) when the host has it, otherwise the build's file, sent over
 * the session's stdin into a `mktemp` file in the host's TMPDIR that is removed when the check ends. The
 * check's argument goes on its stdin (`checkStdin`), never a command line, however large the stack's settings. It
 * changes nothing on any host.
 *
 * `--key-env VAR`: also compare the host's key with the one in $VAR, by challenge (keyChallenge.ts): the
 * host gets a fresh nonce on the check's stdin and answers with an HMAC of it keyed with its own key; the
 * comparison happens here, and the key never leaves this machine.
 *
 * Output: a table (one line per host), progress on stderr when it is a terminal; `--json`: one JSON
 * document. Exit codes (cli/shared.ts `EXIT`): 0 every host matches, 1 some host drifted or the stack is
 * invalid, 2 the command line is wrong, 3 some host was unreachable or could not be checked.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { caFileText } from "../common/caFile";
import { fileDigest } from "../common/digest";
import { TOOL_DIR_IN_HOME, toolFileName } from "../common/hostPaths";
import { type CheckFinding, type CheckResult, parseResult } from "../common/result";
import { type CheckArgs, encodeStepArg } from "../common/stepArgs";
import type { HostSpec } from "../deployer/hostSpec";
import { envShells } from "../deployer/hostSteps";
import { type HostToolArtifact, hostToolArtifact } from "../deployer/hostTool";
import { renderKiloConfig } from "../deployer/kiloConfig";
import { fleetLockPath, type KiloLock, lockedIntegrity, readLockFile } from "../deployer/kiloLock";
import { SSH_CONNECT_DEFAULTS } from "../deployer/settings";
import { newChallenge, settleKey } from "./keyChallenge";
import { remoteCommandLine } from "./remoteCommandLine";
import {
  type CommandSpec,
  commandHelp,
  display,
  EXIT,
  loadStack,
  oneStackFile,
  type ParsedOptions,
  parseCommandLine,
  UsageError,
} from "./shared";
import { type JumpHost, jumpHop, jumpHostName, knownHostsLine } from "./sshJump";
import { loadProject, type Project } from "./stackFile";

/** `doctor`'s options table. */
export const DOCTOR_COMMAND: CommandSpec = {
  name: "doctor",
  synopsis:
    "(--stack NAME | --file PATH) [--host NAME ...] [--json] [--identity FILE] [--key-env VAR] [--parallel N] [--timeout SECONDS]",
  summary: "Check, read-only, that every host of a stack is still what the stack says",
  online: true,
  options: {
    stack: { type: "string", multiple: true, value: "NAME", description: "the stack stacks/Pulumi.NAME.yaml" },
    file: { type: "string", multiple: true, value: "PATH", description: "a stack file by path" },
    host: { type: "string", multiple: true, value: "NAME", description: "check only this host (repeatable)" },
    json: { type: "boolean", description: "one JSON document" },
    identity: { type: "string", value: "FILE", description: "the SSH private key (default: your agent)" },
    "key-env": { type: "string", value: "VAR", description: "also compare each host's key with the one in $VAR" },
    parallel: { type: "string", value: "N", description: "hosts checked at once, 1-256 (8)" },
    timeout: { type: "string", value: "SECONDS", description: "seconds per host, 1-3600 (60)" },
  },
};

export const DOCTOR_USAGE = `kilo-fleet doctor ${DOCTOR_COMMAND.synopsis}`;

/** The default bound on hosts checked at once. */
export const DEFAULT_PARALLEL = 8;
/** The whole check of one host, connection included (seconds). */
export const DEFAULT_TIMEOUT_SECONDS = 60;

/** The markers the SSH wrapper prints before the check runs (see `sshScript`). */
const SEND_TOOL = "kilo-fleet-doctor: send-tool";
const HAVE_TOOL = "kilo-fleet-doctor: have-tool";

/** One host to check. */
export interface DoctorTarget {
  name: string;
  kind: "local" | "ssh";
  /** `connectTimeoutSeconds`: the stack's `ssh.connectTimeoutSeconds` for this host (ssh's ConnectTimeout). */
  ssh?: {
    host: string;
    user: string;
    port: number;
    hostKey?: string;
    connectTimeoutSeconds?: number;
    /** The jump host (`ssh.proxy`): reached first, its key pinned in a known-hosts file of its own. */
    proxy?: JumpHost;
  };
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
 * The check's argument for one host. `lock`: the lock `pulumi up` uses (`fleetLockPath`); a package-method
 * host pinned to a locked version is checked against it.
 */
export function checkArgsFor(
  spec: HostSpec,
  compareKey: boolean,
  lock: KiloLock | undefined = readLockFile(fleetLockPath()),
): CheckArgs {
  const locked =
    spec.install.method === "package" && spec.kiloVersion !== "latest" && lock?.kilo[spec.kiloVersion]
      ? lockedIntegrity(lock, spec.kiloVersion)
      : undefined;
  return {
    host: spec.name,
    version: spec.kiloVersion,
    managed: renderKiloConfig(spec),
    var: spec.apiKeyEnvVar,
    shells: envShells(spec),
    compareKey,
    ...(spec.proxy !== undefined ? { proxy: spec.proxy } : {}),
    ...(spec.caCertificates !== undefined ? { caSha256: fileDigest(caFileText(spec.caCertificates)) } : {}),
    ...(locked ? { locked } : {}),
    // With a policy: the managed config against it, its bypasses, and the env file's settings.
    ...(spec.policyEnv?.telemetryOff ? { telemetryOff: true as const } : {}),
    ...(spec.policyEnv?.shareOff ? { shareOff: true as const } : {}),
    ...(spec.policy !== undefined ? { policy: spec.policy } : {}),
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
      // A child of ssh's (a jump host's ProxyCommand) may hold the pipes open past ssh: the deadline is ours.
      child.stdout.destroy();
      child.stderr.destroy();
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
 * What the check reads on stdin (`check -`): the encoded argument's line, then, with compareKey, `keyLine`
 * (the nonce's line). On stdin the argument has no exec-argument limit, nor base64's growth over SSH.
 */
export function checkStdin(args: CheckArgs, keyLine: string): string {
  return `${encodeStepArg(args)}\n${args.compareKey ? keyLine : ""}`;
}

/**
 * The script an SSH host runs (through `remoteCommandLine`, so any login shell hands it to /bin/sh): reads
 * `checkStdin`'s lines (`read` takes them byte by byte, nothing more), says whether it has the current tool,
 * and if not receives it on the rest of stdin into a mktemp file removed on exit; then hands the tool's
 * `check -` those lines through a pipe from the shell's builtin printf (no exec, so no argument limit).
 */
export function sshScript(toolId: string, toolBytes: number, compareKey: boolean): string {
  return [
    "set -u",
    "IFS= read -r kf_arg || { echo 'kilo-fleet: the check argument did not arrive' >&2; exit 1; }",
    ...(compareKey ? ["IFS= read -r kf_nonce || kf_nonce="] : []),
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
    compareKey
      ? `printf '%s\\n' "$kf_arg" "$kf_nonce" | /bin/sh "$kf_t" check -`
      : `printf '%s\\n' "$kf_arg" | /bin/sh "$kf_t" check -`,
    "kf_rc=$?",
    "exit $kf_rc",
    "",
  ].join("\n");
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

/**
 * The report from a finished run. `jumpFailure`: why the hop to the jump host failed, when it did (`JumpHop`); it,
 * not what ssh then says of the host, is the reason the host was not reached.
 */
function report(
  target: DoctorTarget,
  run: Exec,
  started: number,
  tool: HostReport["tool"],
  jumpFailure?: string,
): HostReport {
  const base = { host: target.name, kind: target.kind, seconds: (Date.now() - started) / 1000 };
  const lastErr = run.stderr
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.startsWith("kilo-fleet:"))
    .pop();
  if (run.timedOut) {
    // Behind a jump host, the hop's own words when it had any; else which way the silence came.
    const proxy = target.ssh?.proxy;
    const via = proxy ? ` through ${jumpHostName(proxy)} (it, or the host behind it)` : "";
    return {
      ...base,
      status: target.kind === "ssh" ? "unreachable" : "error",
      reason: jumpFailure ?? `no answer within ${Math.round((Date.now() - started) / 1000)} s${via}`,
      drift: [],
    };
  }
  if (target.kind === "ssh" && run.code === 255 && !run.stdout.includes(HAVE_TOOL) && !run.stdout.includes(SEND_TOOL)) {
    const pinned = target.ssh?.hostKey !== undefined;
    return {
      ...base,
      status: "unreachable",
      reason: jumpFailure ?? sshReason(run.stderr, pinned, target.ssh ?? { host: "?", port: 0 }),
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
      const run = await execute(["/bin/sh", toolPath, "check", "-"], {
        env,
        cwd: home,
        stdin: checkStdin(target.args, keyLine),
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
      const timeout = ssh.connectTimeoutSeconds ?? SSH_CONNECT_DEFAULTS.connectTimeoutSeconds;
      const identity = opts.identity ? ["-i", opts.identity, "-o", "IdentitiesOnly=yes"] : [];
      // `ssh -W` through the jump host, as strict as the hop to the host: its own pinned key, batch mode.
      const hop = ssh.proxy
        ? jumpHop(ssh.proxy, ssh, { dir, timeoutSeconds: timeout, ssh: opts.sshBinary, identity: opts.identity })
        : undefined;
      const argv = [
        opts.sshBinary ?? "ssh",
        "-T",
        ...(hop?.options ?? []),
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "UpdateHostKeys=no",
        "-o",
        "CheckHostIP=no",
        "-o",
        `ConnectTimeout=${timeout}`,
        "-o",
        "ServerAliveInterval=10",
        "-o",
        "ServerAliveCountMax=3",
        "-o",
        "LogLevel=ERROR",
        ...(ssh.hostKey !== undefined
          ? ["-o", `UserKnownHostsFile=${known}`, "-o", "GlobalKnownHostsFile=/dev/null"]
          : []),
        ...identity,
        "-p",
        String(ssh.port),
        "-l",
        ssh.user,
        "--",
        ssh.host,
        remoteCommandLine(sshScript(opts.tool.id, Buffer.byteLength(opts.tool.text), target.args.compareKey)),
      ];
      const run = await execute(argv, {
        env: opts.env ?? process.env,
        stdin: checkStdin(target.args, keyLine),
        timeoutMs,
        afterFirstLine: (line) => (line === SEND_TOOL ? opts.tool.text : undefined),
      });
      const reported = report(target, run, started, run.sentTool ? "sent" : "deployed", hop?.failure());
      return settleKey(reported, run.stdout, opts.key, nonce);
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

/** The run's exit code (cli/shared.ts `EXIT`): a host not checked wins over a drifted one. */
export function exitCode(reports: HostReport[]): number {
  if (reports.some((r) => r.status === "unreachable" || r.status === "error")) return EXIT.unchecked;
  if (reports.some((r) => r.status === "drifted")) return EXIT.problem;
  return EXIT.ok;
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

/** The command line's values, checked. */
function doctorArgs(values: ParsedOptions, project: Project): DoctorArgs {
  if (values.stack === undefined && values.file === undefined) {
    throw new UsageError("doctor needs --stack NAME or --file PATH");
  }
  const file = oneStackFile("doctor", values, project);
  const identity = values.identity as string | undefined;
  if (identity !== undefined && !existsSync(identity)) throw new UsageError(`--identity: no such file: ${identity}`);
  const keyEnv = values["key-env"] as string | undefined;
  if (keyEnv !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(keyEnv)) {
    throw new UsageError(`--key-env "${keyEnv}" is not a variable name`);
  }
  const whole = (name: string, min: number, max: number, fallback: number, message: string) => {
    if (values[name] === undefined) return fallback;
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(message);
    return n;
  };
  return {
    file,
    hosts: (values.host as string[] | undefined) ?? [],
    json: values.json === true,
    ...(identity !== undefined ? { identity: resolve(identity) } : {}),
    ...(keyEnv !== undefined ? { keyEnv } : {}),
    parallel: whole("parallel", 1, 256, DEFAULT_PARALLEL, "--parallel must be 1-256"),
    timeoutMs: whole("timeout", 1, 3600, DEFAULT_TIMEOUT_SECONDS, "--timeout must be whole seconds, 1-3600") * 1000,
  };
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
    const values = parseCommandLine(DOCTOR_COMMAND, argv);
    if (values.help) {
      io.stdout(commandHelp(DOCTOR_COMMAND));
      return EXIT.ok;
    }
    project = loadProject(io.projectDir);
    args = doctorArgs(values, project);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.stderr(`kilo-fleet: ${e.message}\nusage: ${DOCTOR_USAGE}\n`);
    return EXIT.usage;
  }
  let key: string | undefined;
  if (args.keyEnv !== undefined) {
    key = io.env[args.keyEnv] ?? "";
    if (key === "") {
      io.stderr(`kilo-fleet: $${args.keyEnv} is not set: export the key to compare in it\n`);
      return EXIT.usage;
    }
    if (/[\u0000-\u001f\u007f]/.test(key)) {
      io.stderr(`kilo-fleet: $${args.keyEnv} holds a control character or newline; it cannot be a key\n`);
      return EXIT.usage;
    }
  }
  const loaded = loadStack(args.file, project);
  if (loaded.errors.length > 0) {
    io.stderr(`${display(args.file)}: invalid, no host checked\n`);
    for (const line of loaded.errors) io.stderr(`  ${line}\n`);
    return EXIT.problem;
  }
  const names = loaded.specs.map((s) => s.name);
  for (const h of args.hosts) {
    if (!names.includes(h)) {
      io.stderr(`kilo-fleet: no host "${h}" in ${display(args.file)} (hosts: ${names.join(", ")})\n`);
      return EXIT.usage;
    }
  }
  const lock = readLockFile(fleetLockPath(io.env));
  const chosen = loaded.specs.filter((s) => args.hosts.length === 0 || args.hosts.includes(s.name));
  const targets: DoctorTarget[] = chosen.map((spec) => ({
    name: spec.name,
    kind: spec.ssh ? "ssh" : "local",
    ...(spec.ssh
      ? {
          ssh: {
            host: spec.ssh.host as string,
            user: spec.ssh.user as string,
            port: spec.ssh.port as number,
            ...(spec.ssh.hostKey !== undefined ? { hostKey: spec.ssh.hostKey as string } : {}),
            connectTimeoutSeconds: spec.ssh.connectTimeoutSeconds,
            ...(spec.ssh.proxy !== undefined ? { proxy: spec.ssh.proxy } : {}),
          },
        }
      : {}),
    args: checkArgsFor(spec, key !== undefined, lock),
  }));
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
