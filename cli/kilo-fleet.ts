#!/usr/bin/env node
/**
 * The offline kilo-fleet CLI: checks stack files and shows the kilo.jsonc a host would get, with the
 * same parser `pulumi up` uses, but no Pulumi engine and no secrets.
 *
 *   npm run kilo-fleet -- validate [--stack NAME | --file PATH ...] [--lock PATH]
 *   npm run kilo-fleet -- render (--stack NAME | --file PATH) [--host NAME]
 *   npm run kilo-fleet -- hostkeys (--stack NAME | --file PATH) [--json]
 *   npm run kilo-fleet -- models --base-url URL [--key-env VAR] [--json] [--timeout SECONDS]
 *   npm run kilo-fleet -- lock [--stack NAME | --file PATH ...] [--registry URL] [--lock PATH]
 *   npm run kilo-fleet -- doctor (--stack NAME | --file PATH) [--host NAME ...] [--json] [--key-env VAR] ...
 *
 * `doctor` (cli/doctor.ts) checks every host of a stack against it, read-only, and has its own exit codes.
 *
 * `lock` records, for every kilo version the stacks pin (fleet-wide and per host), each platform package's
 * tarball and sha512 from the registry's metadata in stacks/kilo-fleet.lock.json (deployer/kiloLock.ts).
 * With no --stack/--file it locks every stack and drops versions no stack pins any more; with some, it adds
 * theirs and keeps the rest. The registry: --registry, else the one npmRegistry the stacks set, else npmjs.
 * `validate` refuses a pinned version missing from the lock (`latest` is allowed, with a warning).
 *
 * `models` and `hostkeys` are the commands that go online. `models` asks a pool's `/v1/models` (no tokens spent) with
 * the key from an environment variable, and prints the `kilo-fleet:models` settings for it. `hostkeys` runs
 * `ssh-keyscan` against each SSH host of the stack and prints the `hostKey` line to pin, with each key's
 * fingerprint to compare out of band.
 *
 * Exit codes: 0 fine, 1 a stack is invalid or unreadable (or the pool check failed; hostkeys: a host did not
 * answer, or its pinned key is not among those it offered), 2 the command line
 * is wrong.
 */
import { existsSync, readdirSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { API_KEYS_KEY, apiKeyErrors, FLEET_KEY } from "../deployer/apiKeys";
import {
  hostKeyLine,
  keyTypeName,
  mapLimit,
  pinCommand,
  pinnedKeyMatches,
  preferredHostKey,
  type ScanResult,
  scanHostKeys,
  sshKeyFingerprint,
} from "../deployer/hostKeys";
import { renderKiloConfig, renderKiloConfigText } from "../deployer/kiloConfig";
import {
  DEFAULT_REGISTRY,
  emptyLock,
  fetchLockEntries,
  type KiloLock,
  LOCK_FILE_NAME,
  LockError,
  lockFilePath,
  lockProblems,
  mergeChecked,
  onlyVersions,
  pinnedVersions,
  readLockFile,
  writeLockFile,
} from "../deployer/kiloLock";
import { checkPoolerBaseUrl } from "../deployer/poolerUrl";
import {
  CONFIG_NAMESPACE,
  formatErrors,
  parseSettings,
  resolveHost,
  type Settings,
  type SettingsError,
} from "../deployer/settings";
import { checkPool } from "../host/poolCheck";
import { DOCTOR_USAGE, doctor } from "./doctor";
import { kiloModelsFromPool, renderModelsJson, renderModelsYaml } from "./poolModels";
import { findProjectDir, loadProject, type Project, readStackConfig, StackFileError } from "./stackFile";

const USAGE = `usage: kilo-fleet validate [--stack NAME | --file PATH ...]
       kilo-fleet render (--stack NAME | --file PATH) [--host NAME]
       kilo-fleet hostkeys (--stack NAME | --file PATH) [--json]
       kilo-fleet models --base-url URL [--key-env VAR] [--json] [--timeout SECONDS]
       kilo-fleet lock [--stack NAME | --file PATH ...] [--registry URL]
       ${DOCTOR_USAGE}
       (validate and lock: --lock PATH for a lock file other than stacks/${LOCK_FILE_NAME})`;

/** `hostkeys`: seconds per host, and how many hosts are scanned at once. */
const KEYSCAN_TIMEOUT_SECONDS = 5;
const KEYSCAN_PARALLEL = 4;

/** The project: the nearest Pulumi.yaml at or above the working directory, else the repo this CLI is in. */
const PROJECT_DIR = findProjectDir(process.cwd()) ?? resolve(__dirname, "..");

class UsageError extends Error {}

interface Args {
  command: string;
  files: string[];
  host?: string;
  /** The stack name given with --stack (hostkeys puts it in the commands it prints). */
  stack?: string;
  json?: boolean;
  registry?: string;
  lock?: string;
}

function parseArgs(argv: string[], project: Project): Args {
  const [command, ...rest] = argv;
  if (command === undefined) throw new UsageError("no command given");
  if (!["validate", "render", "hostkeys", "lock"].includes(command))
    throw new UsageError(`unknown command "${command}"`);
  const files: string[] = [];
  let host: string | undefined;
  let stack: string | undefined;
  let json = false;
  let registry: string | undefined;
  let lock: string | undefined;
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === "--json") {
      if (command !== "hostkeys") throw new UsageError("--json is only for hostkeys");
      json = true;
      continue;
    }
    const [flag, inline] = rest[i].startsWith("--") ? rest[i].split(/=(.*)/s, 2) : [rest[i], undefined];
    if (!["--stack", "--file", "--host", "--registry", "--lock"].includes(flag)) {
      throw new UsageError(`unknown argument "${rest[i]}"`);
    }
    const value = inline ?? rest[++i];
    if (value === undefined || value === "") throw new UsageError(`${flag} needs a value`);
    if (flag === "--registry") {
      if (command !== "lock") throw new UsageError("--registry is only for lock");
      if (!/^https?:\/\/\S+$/.test(value)) throw new UsageError(`--registry must be an http(s) URL`);
      registry = value;
    } else if (flag === "--lock") {
      if (command !== "validate" && command !== "lock") throw new UsageError("--lock is only for validate and lock");
      lock = resolve(value);
    } else if (flag === "--host") {
      if (command !== "render") throw new UsageError("--host is only for render");
      host = value;
    } else if (flag === "--stack") {
      if (!/^[A-Za-z0-9_.-]+$/.test(value)) throw new UsageError(`"${value}" is not a stack name`);
      const path = join(project.stackConfigDir, `Pulumi.${value}.yaml`);
      if (!existsSync(path)) throw new UsageError(`no stack "${value}" (no ${display(path)})`);
      files.push(path);
      stack = value;
    } else {
      if (!existsSync(value)) throw new UsageError(`no such file: ${value}`);
      files.push(resolve(value));
    }
  }
  if ((command === "render" || command === "hostkeys") && files.length !== 1) {
    throw new UsageError(`${command} needs exactly one --stack or --file`);
  }
  return { command, files, host, stack, json, registry, lock };
}

function display(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel === "" || rel.startsWith("..") ? path : rel;
}

/** Every `stacks/Pulumi.*.yaml`, sorted. */
function allStackFiles(project: Project): string[] {
  if (!existsSync(project.stackConfigDir)) return [];
  return readdirSync(project.stackConfigDir)
    .filter((f) => /^Pulumi\..+\.ya?ml$/.test(f))
    .sort()
    .map((f) => join(project.stackConfigDir, f));
}

type Loaded =
  | { ok: true; settings: Settings; warnings: string[] }
  | { ok: false; errors: string[]; warnings: string[] };

/** Reads and parses one stack file; every problem comes back as a `key: reason` line. */
function load(path: string, project: Project): Loaded {
  let stack: ReturnType<typeof readStackConfig>;
  try {
    stack = readStackConfig(path, project);
  } catch (e) {
    if (e instanceof StackFileError || (e as NodeJS.ErrnoException).code !== undefined) {
      return { ok: false, errors: [(e as Error).message], warnings: [] };
    }
    throw e;
  }
  const result = parseSettings(stack.raw);
  const warnings = [...result.warnings];
  for (const key of project.required) {
    if (!(key in stack.raw)) {
      const name = key.slice(key.indexOf(":") + 1);
      warnings.push(`${key}: not set; pulumi up needs it first: pulumi config set --secret ${name} …`);
    }
  }
  // Per-host keys (deployer/apiKeys.ts): entries naming no host are errors; a host without any key is a
  // warning here (a stack is often checked before its secrets are set) and an error at pulumi up.
  const keys = apiKeyErrors(
    hostNames(stack.raw),
    stack.raw[`${CONFIG_NAMESPACE}:${API_KEYS_KEY}`],
    `${CONFIG_NAMESPACE}:${FLEET_KEY}` in stack.raw,
  );
  for (const m of keys.missing) warnings.push(`${m.key}: ${m.message} (pulumi up refuses the stack until then)`);
  const errors: SettingsError[] = [...stack.errors, ...(result.ok ? [] : result.errors), ...keys.entries];
  if (errors.length > 0 || !result.ok) return { ok: false, errors: formatErrors(errors).split("\n"), warnings };
  return { ok: true, settings: result.settings, warnings };
}

/** The raw `hosts` value (JSON text, or the default), decoded; undefined when it is not JSON. */
function rawHosts(raw: Record<string, string>): unknown {
  const text = raw[`${CONFIG_NAMESPACE}:hosts`];
  if (text === undefined) return [{ name: "local", local: true }];
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The host names of a stack, read from its raw config (so they are known even when other keys are invalid). */
function hostNames(raw: Record<string, string>): string[] {
  const hosts = rawHosts(raw);
  if (!Array.isArray(hosts)) return [];
  return hosts.flatMap((h) => (h !== null && typeof h === "object" && typeof h.name === "string" ? [h.name] : []));
}

/** The lock file (or its problem, as an error line for every stack). */
function loadLock(lockPath: string): { lock?: KiloLock; error?: string } {
  try {
    return { lock: readLockFile(lockPath) };
  } catch (e) {
    if (e instanceof LockError) return { error: e.message };
    throw e;
  }
}

/** Adds an error for each pinned version the lock lacks. */
function checkLock(loaded: Loaded, lockPath: string, lock: { lock?: KiloLock; error?: string }): Loaded {
  if (!loaded.ok) return loaded;
  const problems = lock.error
    ? [lock.error]
    : formatErrors(lockProblems(lock.lock, pinnedVersions(loaded.settings), display(lockPath))).split("\n");
  const errors = problems.filter((l) => l !== "");
  return errors.length === 0 ? loaded : { ok: false, errors, warnings: loaded.warnings };
}

function validate(files: string[], project: Project, lockPath: string): number {
  const targets = files.length > 0 ? files : allStackFiles(project);
  if (targets.length === 0) {
    process.stderr.write(`no stack files in ${display(project.stackConfigDir)}\n`);
    return 1;
  }
  const lock = loadLock(lockPath);
  let failed = 0;
  for (const path of targets) {
    const loaded = checkLock(load(path, project), lockPath, lock);
    for (const w of loaded.warnings) process.stderr.write(`${display(path)}: warning: ${w}\n`);
    if (loaded.ok) {
      const n = loaded.settings.hosts.length;
      process.stdout.write(`${display(path)}: valid (${n} host${n === 1 ? "" : "s"})\n`);
    } else {
      failed++;
      const n = loaded.errors.length;
      process.stderr.write(`${display(path)}: ${n} error${n === 1 ? "" : "s"}\n`);
      for (const line of loaded.errors) process.stderr.write(`  ${line}\n`);
    }
  }
  return failed > 0 ? 1 : 0;
}

function render(path: string, hostName: string | undefined, project: Project): number {
  const loaded = load(path, project);
  for (const w of loaded.warnings) process.stderr.write(`${display(path)}: warning: ${w}\n`);
  if (!loaded.ok) {
    process.stderr.write(`${display(path)}: invalid, nothing rendered\n`);
    for (const line of loaded.errors) process.stderr.write(`  ${line}\n`);
    return 1;
  }
  const { settings } = loaded;
  const names = settings.hosts.map((h) => h.name).join(", ");
  if (hostName === undefined && settings.hosts.length > 1) {
    throw new UsageError(`${display(path)} has ${settings.hosts.length} hosts; pick one with --host (${names})`);
  }
  const host = hostName === undefined ? settings.hosts[0] : settings.hosts.find((h) => h.name === hostName);
  if (!host) throw new UsageError(`no host "${hostName}" in ${display(path)} (hosts: ${names})`);
  process.stdout.write(renderKiloConfigText(renderKiloConfig(settings, resolveHost(settings, host))));
  return 0;
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
}

/** `hostkeys`: scan each SSH host of the stack, print what to pin and the fingerprints to compare. */
async function hostkeys(path: string, stackName: string | undefined, json: boolean, project: Project): Promise<number> {
  let raw: Record<string, string>;
  try {
    raw = readStackConfig(path, project).raw;
  } catch (e) {
    if (e instanceof StackFileError || (e as NodeJS.ErrnoException).code !== undefined) {
      process.stderr.write(`${(e as Error).message}\n`);
      return 1;
    }
    throw e;
  }
  const hosts = rawHosts(raw);
  if (!Array.isArray(hosts)) {
    process.stderr.write(`${display(path)}: ${CONFIG_NAMESPACE}:hosts is not a list; run validate\n`);
    return 1;
  }
  const targets = hosts.flatMap((h: unknown, index) => {
    const r = h as { name?: unknown; ssh?: { host?: unknown; port?: unknown; hostKey?: unknown } } | null;
    if (r === null || typeof r !== "object" || r.ssh === null || typeof r.ssh !== "object") return [];
    if (typeof r.ssh.host !== "string") return [];
    return [
      {
        index,
        name: typeof r.name === "string" ? r.name : `hosts[${index}]`,
        host: r.ssh.host,
        port: typeof r.ssh.port === "number" ? r.ssh.port : 22,
        pinnedKey: typeof r.ssh.hostKey === "string" ? r.ssh.hostKey : undefined,
      },
    ];
  });
  if (targets.length === 0) {
    if (json) process.stdout.write("[]\n");
    else process.stdout.write(`${display(path)}: no SSH hosts\n`);
    return 0;
  }
  const scans: ScanResult[] = await mapLimit(targets, KEYSCAN_PARALLEL, (t) =>
    scanHostKeys(t, { timeoutSeconds: KEYSCAN_TIMEOUT_SECONDS }),
  );
  const reports: HostKeysReport[] = targets.map((t, i) => {
    const scan = scans[i];
    const base = { name: t.name, index: t.index, host: t.host, port: t.port };
    if (!scan.ok) return { ...base, pinned: t.pinnedKey ? "unknown" : "absent", keys: [], error: scan.reason };
    const best = preferredHostKey(scan.keys);
    return {
      ...base,
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
    }
    process.stderr.write(
      "Compare each fingerprint with the server's own before pinning it (on the server: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), over a channel an attacker on this network cannot answer.\n",
    );
  }
  return reports.some((r) => r.error !== undefined || r.pinned === "differs") ? 1 : 0;
}

interface ModelsArgs {
  baseUrl: string;
  keyEnv: string;
  json: boolean;
  timeoutMs: number;
}

function parseModelsArgs(rest: string[]): ModelsArgs {
  let baseUrl: string | undefined;
  let keyEnv = "CODEX_POOLER_API_KEY";
  let json = false;
  let timeoutMs = 10_000;
  for (let i = 0; i < rest.length; i++) {
    const [flag, inline] = rest[i].startsWith("--") ? rest[i].split(/=(.*)/s, 2) : [rest[i], undefined];
    if (/^--(api-?)?key$/.test(flag)) {
      // Never read the value, never echo it.
      throw new UsageError(
        `${flag} is refused: a key on the command line lands in shell history and in every user's process list (ps); export it in an environment variable and name that with --key-env VAR (default CODEX_POOLER_API_KEY)`,
      );
    }
    if (flag === "--json") {
      if (inline !== undefined) throw new UsageError("--json takes no value");
      json = true;
      continue;
    }
    if (!["--base-url", "--key-env", "--timeout"].includes(flag)) throw new UsageError(`unknown argument "${flag}"`);
    const value = inline ?? rest[++i];
    if (value === undefined || value === "") throw new UsageError(`${flag} needs a value`);
    if (flag === "--base-url") {
      const problem = checkPoolerBaseUrl(value);
      if (problem) throw new UsageError(`--base-url ${problem}`);
      baseUrl = value;
    } else if (flag === "--key-env") {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(value)) throw new UsageError(`--key-env "${value}" is not a variable name`);
      keyEnv = value;
    } else {
      const seconds = Number(value);
      if (!Number.isInteger(seconds) || seconds < 1 || seconds > 600) {
        throw new UsageError("--timeout must be whole seconds, 1-600");
      }
      timeoutMs = seconds * 1000;
    }
  }
  if (baseUrl === undefined) throw new UsageError("models needs --base-url (the pool's /v1 base)");
  return { baseUrl, keyEnv, json, timeoutMs };
}

/** `kilo-fleet models`: the pool's models for this key, as stack settings. The key is never printed. */
async function models(rest: string[]): Promise<number> {
  const args = parseModelsArgs(rest);
  const apiKey = process.env[args.keyEnv] ?? "";
  if (apiKey === "") {
    throw new UsageError(
      `$${args.keyEnv} is not set: export the Pool API key in it (or name another variable with --key-env)`,
    );
  }
  const result = await checkPool({
    baseUrl: args.baseUrl,
    apiKey,
    timeoutMs: args.timeoutMs,
    keySetting: `$${args.keyEnv}`,
  });
  if (!result.ok) {
    process.stderr.write(`kilo-fleet models: ${result.reason}\n`);
    return 1;
  }
  if (result.models.length === 0) {
    process.stderr.write(
      `kilo-fleet models: the pool at ${args.baseUrl} lists no model for this API key — allow models for it in the pool\n`,
    );
    return 1;
  }
  const block = kiloModelsFromPool(result.models);
  for (const w of block.warnings) process.stderr.write(`kilo-fleet models: warning: ${w}\n`);
  if (result.readiness === "unknown") {
    process.stderr.write(
      `kilo-fleet models: warning: no /readyz beside ${args.baseUrl} — is this a Codex Pooler (or does a proxy route /v1 only)?\n`,
    );
  }
  process.stdout.write(args.json ? renderModelsJson(block) : renderModelsYaml(block, args.baseUrl.replace(/\/+$/, "")));
  return 0;
}

/**
 * `lock`: fetches each pinned version's platform entries and writes the lock. Exit 0 written (or already
 * up to date), 1 a stack is invalid or the registry cannot be read (the lock file is then not touched).
 */
async function lock(files: string[], project: Project, lockPath: string, registryFlag?: string): Promise<number> {
  const all = allStackFiles(project);
  const targets = files.length > 0 ? files : all;
  if (targets.length === 0) {
    process.stderr.write(`no stack files in ${display(project.stackConfigDir)}\n`);
    return 1;
  }
  const versions = new Set<string>();
  const registries = new Set<string>();
  let failed = 0;
  for (const path of targets) {
    const loaded = load(path, project);
    if (!loaded.ok) {
      failed++;
      process.stderr.write(`${display(path)}: invalid, its versions are not locked\n`);
      for (const line of loaded.errors) process.stderr.write(`  ${line}\n`);
      continue;
    }
    for (const p of pinnedVersions(loaded.settings)) if (p.version !== "latest") versions.add(p.version);
    if (loaded.settings.npmRegistry) registries.add(loaded.settings.npmRegistry);
  }
  if (failed > 0) return 1;
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
    return 1;
  }
  // Every stack selected: versions no stack pins any more leave the lock.
  let next = files.length > 0 ? current : onlyVersions(current, versions);
  try {
    for (const version of [...versions].sort()) {
      const { entries, missing } = await fetchLockEntries(version, registry);
      next = mergeChecked(next, version, entries);
      process.stdout.write(
        `kilo ${version}: ${Object.keys(entries).length} platform${Object.keys(entries).length === 1 ? "" : "s"} (${Object.keys(entries).join(", ")})\n`,
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
    return 1;
  }
  writeLockFile(lockPath, next);
  const n = Object.keys(next.kilo).length;
  process.stdout.write(`${display(lockPath)}: ${n} kilo version${n === 1 ? "" : "s"} locked from ${registry}\n`);
  return 0;
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === "help" || argv[0] === "--help" || argv[0] === "-h") {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  try {
    if (argv[0] === "models") return await models(argv.slice(1));
    if (argv[0] === "doctor") {
      return await doctor(argv.slice(1), {
        env: process.env,
        stdout: (t) => process.stdout.write(t),
        stderr: (t) => process.stderr.write(t),
        stderrIsTTY: process.stderr.isTTY === true,
        projectDir: PROJECT_DIR,
      });
    }
    const project = loadProject(PROJECT_DIR);
    const args = parseArgs(argv, project);
    const lockPath = args.lock ?? lockFilePath(project.stackConfigDir);
    if (args.command === "lock") return await lock(args.files, project, lockPath, args.registry);
    if (args.command === "hostkeys") return await hostkeys(args.files[0], args.stack, args.json === true, project);
    return args.command === "validate"
      ? validate(args.files, project, lockPath)
      : render(args.files[0], args.host, project);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`kilo-fleet: ${e.message}\n${USAGE}\n`);
    return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`${(e as Error).stack ?? e}\n`);
    process.exitCode = 1;
  },
);
