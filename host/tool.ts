/**
 * kilo-fleet's host tool: everything a step does on a host. Bundled by esbuild into one CommonJS file
 * behind a POSIX sh header (header.sh: finds node), shipped once per host to
 * `~/.local/share/kilo-fleet/tool-<sha256 prefix>.cjs`, and run by every step as
 *
 *   /bin/sh <tool> <subcommand> '<json>'
 *
 * (common/stepArgs.ts: one JSON argument of the step's own settings; `check -` reads it from stdin instead,
 * see `parseArgv`). Every subcommand prints lines for
 * people, then one `kilo-fleet-result {json}` line (common/result.ts); a failure is one `kilo-fleet: …`
 * line on stderr (the smoke check's: `smoke check failed on <host>: …`) and exit 1. Nothing here prints
 * the key. Every subcommand but the smoke check runs holding the HOME's lock (lock.ts), so two deploys of
 * one host never interleave their read-modify-writes; the smoke check only reads what they wrote.
 */
import * as os from "node:os";
import * as path from "node:path";
import { type HostLayout, hostLayout } from "../common/hostPaths";
import { KILO_CONFIG_SCHEMA_URL, managedKeyPaths } from "../common/kiloConfigMerge";
import { formatResult, type StepResult } from "../common/result";
import { SHELL_RC_FILES } from "../common/shells";
import { decodeStepArg, type StepArgs, SUBCOMMANDS, type Subcommand } from "../common/stepArgs";
import { runViaSudo } from "./become";
import { checkPaths, runCheck } from "./check";
import { configApply, configDelete } from "./configFile";
import { cleanupDirs, HostError, readStdin } from "./fsUtil";
import { installApply, installDelete } from "./install";
import { withHostLock } from "./lock";
import { managedConfigDir, policyApply, policyDelete } from "./policy";
import { migrateRecords } from "./records";
import { envApply, envDelete, envSweep } from "./shellEnv";
import { runSmokeCheck } from "./smoke";

/** What a subcommand printed: lines for people (warnings go to stderr), then its result. */
export interface StepOutput {
  lines: string[];
  result: StepResult;
}

function configPaths(layout: HostLayout) {
  return {
    home: layout.home,
    configFile: layout.configFile,
    backupFile: layout.backupFile,
    stateDir: layout.stateDir,
    systemDir: managedConfigDir(process.env),
  };
}

function envPaths(layout: HostLayout) {
  return {
    home: layout.home,
    configDir: layout.configDir,
    envFile: layout.envFile,
    fishEnvFile: layout.fishEnvFile,
    binDir: layout.binDir,
    stateDir: layout.stateDir,
    rcFiles: SHELL_RC_FILES,
  };
}

/** A delete's output, after it swept what a failed env step left (shellEnv.ts envSweep). */
function withEnvSweep(layout: HostLayout, out: StepOutput): StepOutput {
  const swept = envSweep(envPaths(layout));
  return swept.length > 0 ? { ...out, lines: [...out.lines, ...swept] } : out;
}

/** The locked subcommands: file work on HOME. */
function runLocked<S extends Exclude<Subcommand, "smoke" | "check" | "policy-apply" | "policy-delete">>(
  sub: S,
  args: StepArgs[S],
  layout: HostLayout,
): StepOutput {
  switch (sub) {
    case "install":
      return installApply(layout, args as StepArgs["install"]);
    case "install-delete": {
      const out = withEnvSweep(layout, installDelete(layout));
      cleanupDirs(layout.stateDir);
      return out;
    }
    case "config-apply": {
      // `$schema` first, as the deployer rendered it (it leaves the constant out of the step's argument).
      const managed = { $schema: KILO_CONFIG_SCHEMA_URL, ...(args as StepArgs["config-apply"]).managed };
      return configApply(configPaths(layout), managed, managedKeyPaths(managed));
    }
    case "config-delete": {
      const out = withEnvSweep(layout, configDelete(configPaths(layout)));
      cleanupDirs(layout.stateDir);
      return out;
    }
    case "env-apply": {
      const a = args as StepArgs["env-apply"];
      return envApply(envPaths(layout), {
        apiKeyEnvVar: a.var,
        pinned: a.pinned,
        shells: a.shells === "default" ? "default" : a.shells.join(","),
        ...(a.caCertificates !== undefined ? { caCertificates: a.caCertificates } : {}),
        policy: { telemetryOff: a.telemetryOff === true, shareOff: a.shareOff === true },
        ...(a.proxy !== undefined ? { proxy: a.proxy } : {}),
      });
    }
    case "env-delete": {
      const out = envDelete(envPaths(layout));
      cleanupDirs(layout.stateDir);
      return out;
    }
    default:
      throw new HostError(`unknown subcommand ${sub}`);
  }
}

/**
 * The policy step, as root: the managed dir's own lock, not HOME's (under sudo HOME may be root's or the
 * user's, depending on sudoers). A non-root user goes through `sudo -n` with `become: sudo`, and is refused without it.
 * The test override of the managed dir (KILO_FLEET_TEST_SYSTEM_DIR) runs as the user, never through sudo.
 */
function runPolicy(sub: "policy-apply" | "policy-delete", args: StepArgs["policy-apply"]): void {
  const host = typeof args.host === "string" ? args.host : "?";
  const override = Boolean(process.env.KILO_FLEET_TEST_SYSTEM_DIR);
  if (process.getuid?.() !== 0 && !override) {
    if (args.become !== "sudo") {
      throw new HostError(
        `policy on ${host}: writing kilo's managed config (${managedConfigDir(process.env)}) needs root: set become: sudo for this host, or deploy it as root; nothing was written`,
      );
    }
    process.exitCode = runViaSudo(host, sub, args);
    return;
  }
  const dir = managedConfigDir(process.env);
  if (sub === "policy-delete") {
    print(policyDelete(dir));
    return;
  }
  if (args.policy === null || typeof args.policy !== "object" || Array.isArray(args.policy)) {
    throw new HostError("policy-apply: the argument's policy must be a JSON object");
  }
  print(policyApply(dir, args.policy));
}

/**
 * The subcommand and its decoded argument; one line naming what is wrong otherwise. `check -` (what
 * `kilo-fleet doctor` runs): the argument is stdin's first line, encoded as on a command line, so no
 * exec-argument limit applies to it; `rest` is the stdin after that line (the nonce line, with compareKey).
 */
function parseArgv(argv: string[]): { sub: Subcommand; args: Record<string, unknown>; rest?: string } {
  const [sub, given, ...extra] = argv;
  if (!(SUBCOMMANDS as readonly string[]).includes(sub ?? "")) {
    throw new HostError(`usage: sh <tool> <${SUBCOMMANDS.join("|")}> '<json>' (got ${JSON.stringify(sub ?? "")})`);
  }
  if (extra.length > 0) throw new HostError(`${sub}: takes one JSON argument, got ${argv.length - 1}`);
  let text = given;
  let rest: string | undefined;
  if (sub === "check" && given === "-") {
    const input = readStdin("the check's argument");
    const end = input.indexOf("\n");
    if (end < 0) throw new HostError("check: stdin must start with the argument's line");
    text = input.slice(0, end);
    rest = input.slice(end + 1);
  }
  let args: unknown;
  try {
    args = decodeStepArg(text ?? "{}");
  } catch {
    throw new HostError(`${sub}: the argument is not valid JSON`);
  }
  if (args === null || typeof args !== "object" || Array.isArray(args)) {
    throw new HostError(`${sub}: the argument must be a JSON object`);
  }
  return { sub: sub as Subcommand, args: args as Record<string, unknown>, ...(rest !== undefined ? { rest } : {}) };
}

function print(out: StepOutput): void {
  for (const line of out.lines) {
    (line.startsWith("kilo-fleet: warning:") ? process.stderr : process.stdout).write(`${line}\n`);
  }
  process.stdout.write(`${formatResult(out.result)}\n`);
}

function failLine(e: unknown): string {
  const message = e instanceof HostError ? e.message : `unexpected error: ${(e as Error)?.message ?? String(e)}`;
  return `kilo-fleet: ${message.replace(/\s*\n\s*/g, " ")}\n`;
}

async function main(): Promise<void> {
  // Run by the installed kilo as Bun (header.sh: no node on the host): the kilo this process starts (the
  // smoke check) must be kilo again, not Bun.
  delete process.env.BUN_BE_BUN;
  delete process.env.BUN_RUNTIME_TRANSPILER_CACHE_PATH;
  const { sub, args, rest } = parseArgv(process.argv.slice(2));
  const home = path.resolve(process.env.HOME || os.homedir());
  const layout = hostLayout(process.env, home);
  if (sub === "smoke") {
    // Its own failure lines (`smoke check failed on <host>: …`) and exit code.
    print(await runSmokeCheck(layout, args as unknown as StepArgs["smoke"]));
    return;
  }
  if (sub === "check") {
    // Read-only (kilo-fleet doctor): no lock, no write; see check.ts. `check -`: the nonce follows the argument.
    const readNonce = rest !== undefined ? () => rest : undefined;
    print(runCheck(checkPaths(layout, process.env), args as unknown as StepArgs["check"], readNonce));
    return;
  }
  if (sub === "policy-apply" || sub === "policy-delete") {
    runPolicy(sub, args as unknown as StepArgs["policy-apply"]);
    return;
  }
  // One run at a time per HOME (two stacks sharing a host): see lock.ts.
  // Records an earlier version kept under XDG_STATE_HOME move to the fixed place first (records.ts).
  print(
    withHostLock(home, () => {
      const moved = migrateRecords(layout);
      const out = runLocked(sub, args as never, layout);
      return moved.length > 0 ? { ...out, lines: [...moved, ...out.lines] } : out;
    }),
  );
}

main().catch((e) => {
  process.stderr.write(failLine(e));
  process.exit(1);
});
