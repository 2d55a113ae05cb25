#!/usr/bin/env node
/**
 * The kilo-fleet CLI: `validate`, `render` and `lock` read stack files with the resolver `pulumi up` uses
 * (deployer/resolveHosts.ts) and never decrypt a secret; `models`, `hostkeys`, `lock` and `doctor` go online
 * (a pool, SSH hosts, the npm registry). Every command has `--help`; the exit codes are `EXIT` (cli/shared.ts,
 * docs/cli.md).
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { renderPolicyFile } from "../common/policyFile";
import { renderKiloConfig, renderKiloConfigText } from "../deployer/kiloConfig";
import {
  DEFAULT_REGISTRY,
  emptyLock,
  findProjectDir,
  fleetLockPath,
  type KiloLock,
  LockError,
  onlyVersions,
  readLockFile,
  writeLockFile,
} from "../deployer/kiloLock";
import { checkPoolerBaseUrl } from "../deployer/poolerUrl";
import { checkPool } from "../host/poolCheck";
import { DOCTOR_COMMAND, doctor } from "./doctor";
import {
  hostKeyLine,
  keyTypeName,
  mapLimit,
  pinCommand,
  pinnedKeyMatches,
  preferredHostKey,
  type ScanResult,
  scanHostKeys,
  scanHostKeysVia,
  sshKeyFingerprint,
} from "./hostKeys";
import { fetchLockEntries, mergeChecked } from "./lockRegistry";
import { kiloModelsFromPool, renderModelsJson, renderModelsYaml } from "./poolModels";
import {
  allStackFiles,
  type CommandSpec,
  commandHelp,
  display,
  EXIT,
  exitCodeHelp,
  loadStack,
  oneStackFile,
  type ParsedOptions,
  parseCommandLine,
  registerCommands,
  stackFiles,
  UsageError,
} from "./shared";
import { loadProject, type Project } from "./stackFile";

const STACK_OPTIONS = {
  stack: { type: "string", multiple: true, value: "NAME", description: "the stack stacks/Pulumi.NAME.yaml" },
  file: { type: "string", multiple: true, value: "PATH", description: "a stack file by path" },
} as const;
const LOCK_OPTION = {
  lock: {
    type: "string",
    value: "PATH",
    description: "the lock file (default: $KILO_FLEET_LOCK_FILE, else stacks/kilo-fleet.lock.json)",
  },
} as const;

/** Every command and its options table. */
export const COMMANDS: readonly CommandSpec[] = [
  {
    name: "validate",
    synopsis: "[--stack NAME | --file PATH ...]",
    summary: "Check stack files (every stack when none is named) as pulumi up will, pinned versions against the lock",
    online: false,
    options: { ...STACK_OPTIONS, ...LOCK_OPTION },
  },
  {
    name: "render",
    synopsis: "(--stack NAME | --file PATH) [--host NAME] [--policy]",
    summary: "Print the kilo.jsonc a host of the stack gets (--policy: its managed config, the policy)",
    online: false,
    options: {
      ...STACK_OPTIONS,
      host: { type: "string", value: "NAME", description: "the host (of a fleet)" },
      policy: { type: "boolean", description: "the managed config the policy step writes (/etc/kilo/kilo.jsonc)" },
    },
  },
  {
    name: "hostkeys",
    synopsis: "(--stack NAME | --file PATH) [--identity FILE] [--json]",
    summary: "Scan each SSH host's keys (ssh-keyscan) and print the hostKey to pin, with fingerprints to compare",
    online: true,
    options: {
      ...STACK_OPTIONS,
      identity: {
        type: "string",
        value: "FILE",
        description: "the SSH private key for the jump hosts (ssh.proxy; default: your agent)",
      },
      json: { type: "boolean", description: "one JSON document" },
    },
  },
  {
    name: "models",
    synopsis: "--base-url URL [--key-env VAR] [--json] [--timeout SECONDS]",
    summary: "Ask a pool's /v1/models (no tokens spent) and print the kilo-fleet:models settings for it",
    online: true,
    options: {
      "base-url": { type: "string", value: "URL", description: "the pool's /v1 base URL" },
      "key-env": { type: "string", value: "VAR", description: "the variable holding the key (CODEX_POOLER_API_KEY)" },
      json: { type: "boolean", description: "JSON instead of stack YAML" },
      timeout: { type: "string", value: "SECONDS", description: "seconds to wait for the pool, 1-600 (10)" },
    },
  },
  {
    name: "lock",
    synopsis: "[--stack NAME | --file PATH ...] [--registry URL]",
    summary: "Record each pinned kilo version's platform packages (sha512) from the registry in the lock file",
    online: true,
    options: {
      ...STACK_OPTIONS,
      registry: { type: "string", value: "URL", description: "the registry (default: the stacks' npmRegistry)" },
      ...LOCK_OPTION,
    },
  },
  DOCTOR_COMMAND,
];
registerCommands(COMMANDS);

const USAGE = `usage: ${COMMANDS.map((c) => `kilo-fleet ${c.name} ${c.synopsis}`).join("\n       ")}
       kilo-fleet COMMAND --help
${exitCodeHelp()}`;

/** `hostkeys`: seconds per host, and how many hosts are scanned at once. */
const KEYSCAN_TIMEOUT_SECONDS = 5;
const KEYSCAN_PARALLEL = 4;

/** The project: the nearest Pulumi.yaml at or above the working directory, else the repo this CLI is in. */
const PROJECT_DIR = findProjectDir(process.cwd()) ?? resolve(__dirname, "..");

function validate(values: ParsedOptions, project: Project): number {
  const files = stackFiles(values, project);
  const targets = files.length > 0 ? files : allStackFiles(project);
  if (targets.length === 0) {
    process.stderr.write(`no stack files in ${display(project.stackConfigDir)}\n`);
    return EXIT.problem;
  }
  const lockPath = fleetLockPath(process.env, values.lock as string | undefined);
  let failed = 0;
  for (const path of targets) {
    const loaded = loadStack(path, project, { lockFile: { path: lockPath, shown: display(lockPath) } });
    for (const w of loaded.warnings) process.stderr.write(`${display(path)}: warning: ${w}\n`);
    if (loaded.errors.length === 0) {
      const n = loaded.specs.length;
      process.stdout.write(`${display(path)}: valid (${n} host${n === 1 ? "" : "s"})\n`);
    } else {
      failed++;
      const n = loaded.errors.length;
      process.stderr.write(`${display(path)}: ${n} error${n === 1 ? "" : "s"}\n`);
      for (const line of loaded.errors) process.stderr.write(`  ${line}\n`);
    }
  }
  return failed > 0 ? EXIT.problem : EXIT.ok;
}

function render(values: ParsedOptions, project: Project): number {
  const path = oneStackFile("render", values, project);
  const loaded = loadStack(path, project);
  for (const w of loaded.warnings) process.stderr.write(`${display(path)}: warning: ${w}\n`);
  if (loaded.errors.length > 0) {
    process.stderr.write(`${display(path)}: invalid, nothing rendered\n`);
    for (const line of loaded.errors) process.stderr.write(`  ${line}\n`);
    return EXIT.problem;
  }
  const { specs } = loaded;
  const hostName = values.host as string | undefined;
  const names = specs.map((s) => s.name).join(", ");
  if (hostName === undefined && specs.length > 1) {
    throw new UsageError(`${display(path)} has ${specs.length} hosts; pick one with --host (${names})`);
  }
  const spec = hostName === undefined ? specs[0] : specs.find((s) => s.name === hostName);
  if (!spec) throw new UsageError(`no host "${hostName}" in ${display(path)} (hosts: ${names})`);
  if (values.policy) {
    if (spec.policy === undefined) {
      process.stderr.write(`${display(path)}: host "${spec.name}" has no policy (kilo-fleet:policy)\n`);
      return EXIT.problem;
    }
    process.stdout.write(renderPolicyFile(spec.policy));
    return EXIT.ok;
  }
  process.stdout.write(renderKiloConfigText(renderKiloConfig(spec)));
  return EXIT.ok;
}

interface HostKeysReport {
  name: string;
  index: number;
  host: string;
  port: number;
  /** `absent`, or whether the pinned `hostKey` is among the keys the server offered. */
  pinned: "absent" | "matches" | "differs" | "unknown";
  keys: { type: string; hostKey: string; fingerprint: string }[];
  /** The command pinning the preferred key, when the scan found one. */
  command?: string;
  /** Why the scan failed, when it did. */
  error?: string;
  /** The jump host (ssh.proxy) the host was scanned through: its own keys, scanned directly. */
  jump?: { host: string; port: number; pinned: string; keys: { type: string; hostKey: string; fingerprint: string }[] };
}

/** `hostkeys`: scan each SSH host of the stack, print what to pin and the fingerprints to compare. */
async function hostkeys(values: ParsedOptions, project: Project): Promise<number> {
  const path = oneStackFile("hostkeys", values, project);
  const stackName = (values.stack as string[] | undefined)?.[0];
  const json = values.json === true;
  const identity = values.identity as string | undefined;
  if (identity !== undefined && !existsSync(identity)) throw new UsageError(`--identity: no such file: ${identity}`);
  const loaded = loadStack(path, project, { unpinnedHostKeys: true });
  if (loaded.errors.length > 0) {
    process.stderr.write(`${display(path)}: invalid, no host scanned (run validate)\n`);
    for (const line of loaded.errors) process.stderr.write(`  ${line}\n`);
    return EXIT.problem;
  }
  const targets = loaded.specs.flatMap((spec, index) =>
    spec.ssh
      ? [
          {
            index,
            name: spec.name,
            host: spec.ssh.host as string,
            port: spec.ssh.port as number,
            pinnedKey: spec.ssh.hostKey as string | undefined,
            ...(spec.ssh.proxy !== undefined ? { jump: spec.ssh.proxy } : {}),
          },
        ]
      : [],
  );
  if (targets.length === 0) {
    if (json) process.stdout.write("[]\n");
    else process.stdout.write(`${display(path)}: no SSH hosts\n`);
    return EXIT.ok;
  }
  // Behind a jump host (ssh.proxy): the host is scanned through it, and the jump host itself directly.
  const scans: ScanResult[] = await mapLimit(targets, KEYSCAN_PARALLEL, (t) =>
    t.jump
      ? scanHostKeysVia(t, t.jump, {
          timeoutSeconds: KEYSCAN_TIMEOUT_SECONDS,
          ...(identity !== undefined ? { identity: resolve(identity) } : {}),
        })
      : scanHostKeys(t, { timeoutSeconds: KEYSCAN_TIMEOUT_SECONDS }),
  );
  const jumpScans = await mapLimit(targets, KEYSCAN_PARALLEL, (t) =>
    t.jump ? scanHostKeys(t.jump, { timeoutSeconds: KEYSCAN_TIMEOUT_SECONDS }) : Promise.resolve(undefined),
  );
  const reports: HostKeysReport[] = targets.map((t, i) => {
    const scan = scans[i];
    const base = { name: t.name, index: t.index, host: t.host, port: t.port };
    if (!scan.ok) return { ...base, pinned: t.pinnedKey ? "unknown" : "absent", keys: [], error: scan.reason };
    const best = preferredHostKey(scan.keys);
    const jumpScan = jumpScans[i];
    const jump =
      t.jump && jumpScan
        ? {
            jump: {
              host: t.jump.host,
              port: t.jump.port,
              pinned: jumpScan.ok
                ? pinnedKeyMatches(t.jump.hostKey, jumpScan.keys)
                  ? "matches"
                  : "differs"
                : "unknown",
              keys: jumpScan.ok
                ? jumpScan.keys.map((k) => ({
                    type: k.type,
                    hostKey: hostKeyLine(k),
                    fingerprint: sshKeyFingerprint(k),
                  }))
                : [],
            },
          }
        : {};
    return {
      ...base,
      ...jump,
      pinned: t.pinnedKey === undefined ? "absent" : pinnedKeyMatches(t.pinnedKey, scan.keys) ? "matches" : "differs",
      keys: scan.keys.map((k) => ({ type: k.type, hostKey: hostKeyLine(k), fingerprint: sshKeyFingerprint(k) })),
      ...(best ? { command: pinCommand(t.index, best, stackName) } : {}),
    };
  });
  if (json) process.stdout.write(`${JSON.stringify(reports, null, 2)}\n`);
  else {
    for (const r of reports) {
      const where = `${r.name} (hosts[${r.index}], ${r.host}:${r.port})`;
      if (r.error !== undefined) {
        process.stdout.write(`${where}: unreachable: ${r.error}\n`);
        continue;
      }
      process.stdout.write(`${where}:\n`);
      for (const k of r.keys) process.stdout.write(`  ${keyTypeName(k.type).padEnd(8)} ${k.fingerprint}\n`);
      if (r.pinned === "matches") process.stdout.write("  pinned hostKey: matches a key the server offered\n");
      if (r.pinned === "differs") {
        process.stdout.write(
          "  pinned hostKey: DIFFERS from every key the server offered (a re-installed server, or someone else answering): find out which before changing it\n",
        );
      }
      if (r.command !== undefined) process.stdout.write(`  ${r.command}\n`);
      if (r.jump !== undefined) {
        process.stdout.write(`  through the jump host ${r.jump.host}:${r.jump.port} (ssh.proxy), whose keys are:\n`);
        for (const k of r.jump.keys) process.stdout.write(`    ${keyTypeName(k.type).padEnd(8)} ${k.fingerprint}\n`);
        if (r.jump.pinned === "differs") {
          process.stdout.write("    pinned ssh.proxy.hostKey: DIFFERS from every key the jump host offered\n");
        }
      }
    }
    process.stderr.write(
      "Compare each fingerprint with the server's own before pinning it (on the server: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), over a channel an attacker on this network cannot answer.\n",
    );
  }
  if (reports.some((r) => r.error !== undefined)) return EXIT.unchecked;
  return reports.some((r) => r.pinned === "differs") ? EXIT.problem : EXIT.ok;
}

/** `kilo-fleet models`: the pool's models for this key, as stack settings. The key is never printed. */
async function models(values: ParsedOptions): Promise<number> {
  const baseUrl = values["base-url"] as string | undefined;
  if (baseUrl === undefined) throw new UsageError("models needs --base-url (the pool's /v1 base)");
  const problem = checkPoolerBaseUrl(baseUrl);
  if (problem) throw new UsageError(`--base-url ${problem}`);
  const keyEnv = (values["key-env"] as string | undefined) ?? "CODEX_POOLER_API_KEY";
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(keyEnv)) throw new UsageError(`--key-env "${keyEnv}" is not a variable name`);
  let timeoutMs = 10_000;
  if (values.timeout !== undefined) {
    const seconds = Number(values.timeout);
    if (!Number.isInteger(seconds) || seconds < 1 || seconds > 600) {
      throw new UsageError("--timeout must be whole seconds, 1-600");
    }
    timeoutMs = seconds * 1000;
  }
  const apiKey = process.env[keyEnv] ?? "";
  if (apiKey === "") {
    throw new UsageError(
      `$${keyEnv} is not set: export the Pool API key in it (or name another variable with --key-env)`,
    );
  }
  const result = await checkPool({ baseUrl, apiKey, timeoutMs, keySetting: `$${keyEnv}` });
  if (!result.ok) {
    process.stderr.write(`kilo-fleet models: ${result.reason}\n`);
    return EXIT.problem;
  }
  if (result.models.length === 0) {
    process.stderr.write(
      `kilo-fleet models: the pool at ${baseUrl} lists no model for this API key — allow models for it in the pool\n`,
    );
    return EXIT.problem;
  }
  const block = kiloModelsFromPool(result.models);
  for (const w of block.warnings) process.stderr.write(`kilo-fleet models: warning: ${w}\n`);
  if (result.readiness === "unknown") {
    process.stderr.write(
      `kilo-fleet models: warning: no /readyz beside ${baseUrl} — is this a Codex Pooler (or does a proxy route /v1 only)?\n`,
    );
  }
  process.stdout.write(values.json ? renderModelsJson(block) : renderModelsYaml(block, baseUrl.replace(/\/+$/, "")));
  return EXIT.ok;
}

/**
 * `lock`: fetches each pinned version's platform entries and writes the lock. With no --stack/--file it
 * locks every stack and drops versions no stack pins any more; with some, it adds theirs and keeps the rest.
 * The registry: --registry, else the one npmRegistry the stacks set, else npmjs. The lock file is not
 * touched when a stack is invalid or the registry cannot be read.
 */
async function lock(values: ParsedOptions, project: Project): Promise<number> {
  const files = stackFiles(values, project);
  const registryFlag = values.registry as string | undefined;
  if (registryFlag !== undefined && !/^https?:\/\/\S+$/.test(registryFlag)) {
    throw new UsageError("--registry must be an http(s) URL");
  }
  const lockPath = fleetLockPath(process.env, values.lock as string | undefined, { forWriting: true });
  const targets = files.length > 0 ? files : allStackFiles(project);
  if (targets.length === 0) {
    process.stderr.write(`no stack files in ${display(project.stackConfigDir)}\n`);
    return EXIT.problem;
  }
  const versions = new Set<string>();
  const registries = new Set<string>();
  let failed = 0;
  for (const path of targets) {
    const loaded = loadStack(path, project);
    if (loaded.errors.length > 0) {
      failed++;
      process.stderr.write(`${display(path)}: invalid, its versions are not locked\n`);
      for (const line of loaded.errors) process.stderr.write(`  ${line}\n`);
      continue;
    }
    for (const spec of loaded.specs) {
      if (spec.kiloVersion !== "latest") versions.add(spec.kiloVersion);
      if (spec.npmRegistry) registries.add(spec.npmRegistry);
    }
  }
  if (failed > 0) return EXIT.problem;
  if (!registryFlag && registries.size > 1) {
    throw new UsageError(
      `the stacks use different npmRegistry values (${[...registries].join(", ")}); pick one with --registry`,
    );
  }
  const registry = registryFlag ?? [...registries][0] ?? DEFAULT_REGISTRY;
  let current: KiloLock;
  try {
    current = readLockFile(lockPath) ?? emptyLock();
  } catch (e) {
    if (!(e instanceof LockError)) throw e;
    process.stderr.write(`kilo-fleet: ${e.message}\n`);
    return EXIT.problem;
  }
  // Every stack selected: versions no stack pins any more leave the lock.
  let next = files.length > 0 ? current : onlyVersions(current, versions);
  try {
    for (const version of [...versions].sort()) {
      const { entries, missing } = await fetchLockEntries(version, registry);
      next = mergeChecked(next, version, entries);
      const platforms = Object.keys(entries);
      process.stdout.write(
        `kilo ${version}: ${platforms.length} platform${platforms.length === 1 ? "" : "s"} (${platforms.join(", ")})\n`,
      );
      if (missing.length > 0) {
        process.stderr.write(
          `warning: kilo ${version}: ${registry} has no package for ${missing.join(", ")}; hosts of those platforms cannot install ${version} by package until it is locked\n`,
        );
      }
    }
  } catch (e) {
    if (!(e instanceof LockError)) throw e;
    process.stderr.write(`kilo-fleet: ${e.message}; ${display(lockPath)} not changed\n`);
    return EXIT.problem;
  }
  writeLockFile(lockPath, next);
  const n = Object.keys(next.kilo).length;
  process.stdout.write(`${display(lockPath)}: ${n} kilo version${n === 1 ? "" : "s"} locked from ${registry}\n`);
  return EXIT.ok;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(`${USAGE}\n`);
    return EXIT.ok;
  }
  if (name === "doctor") {
    return await doctor(rest, {
      env: process.env,
      stdout: (t) => process.stdout.write(t),
      stderr: (t) => process.stderr.write(t),
      stderrIsTTY: process.stderr.isTTY === true,
      projectDir: PROJECT_DIR,
    });
  }
  try {
    if (name === undefined) throw new UsageError("no command given");
    const command = COMMANDS.find((c) => c.name === name);
    if (command === undefined) throw new UsageError(`unknown command "${name}"`);
    const values = parseCommandLine(command, rest);
    if (values.help) {
      process.stdout.write(commandHelp(command));
      return EXIT.ok;
    }
    if (name === "models") return await models(values);
    const project = loadProject(PROJECT_DIR);
    if (name === "lock") return await lock(values, project);
    if (name === "hostkeys") return await hostkeys(values, project);
    return name === "validate" ? validate(values, project) : render(values, project);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`kilo-fleet: ${e.message}\n${USAGE}\n`);
    return EXIT.usage;
  }
}

// Run as a program only (tests import the commands table).
if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`${(e as Error).stack ?? e}\n`);
      process.exitCode = EXIT.problem;
    },
  );
}
