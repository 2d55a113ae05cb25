/**
 * The offline kilo-fleet CLI: checks stack files and shows the kilo.jsonc a host would get, with the
 * same parser `pulumi up` uses, but no Pulumi engine and no secrets.
 *
 *   npm run kilo-fleet -- validate [--stack NAME | --file PATH ...]
 *   npm run kilo-fleet -- render (--stack NAME | --file PATH) [--host NAME]
 *   npm run kilo-fleet -- hostkeys (--stack NAME | --file PATH) [--json]
 *
 * `hostkeys` is the one command that touches the network: it runs `ssh-keyscan` against each SSH host
 * of the stack and prints the `hostKey` line to pin, with each key's fingerprint to compare out of band.
 *
 * Exit codes: 0 fine, 1 a stack is invalid or unreadable (hostkeys: a host did not answer, or its
 * pinned key is not among those it offered), 2 the command line is wrong.
 */
import { existsSync, readdirSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { renderKiloConfig, renderKiloConfigText } from "../components/kiloConfig";
import {
  CONFIG_NAMESPACE,
  formatErrors,
  parseSettings,
  resolveHost,
  type Settings,
  type SettingsError,
} from "../components/settings";
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
import { loadProject, type Project, readStackConfig, StackFileError } from "./stackFile";

const USAGE = `usage: kilo-fleet validate [--stack NAME | --file PATH ...]
       kilo-fleet render (--stack NAME | --file PATH) [--host NAME]
       kilo-fleet hostkeys (--stack NAME | --file PATH) [--json]`;

/** `hostkeys`: seconds per host, and how many hosts are scanned at once. */
const KEYSCAN_TIMEOUT_SECONDS = 5;
const KEYSCAN_PARALLEL = 4;

/** The project this CLI belongs to: the directory above cli/. */
const PROJECT_DIR = resolve(__dirname, "..");

class UsageError extends Error {}

interface Args {
  command: string;
  files: string[];
  host?: string;
  /** The stack name given with --stack (hostkeys puts it in the commands it prints). */
  stack?: string;
  json?: boolean;
}

function parseArgs(argv: string[], project: Project): Args {
  const [command, ...rest] = argv;
  if (command === undefined) throw new UsageError("no command given");
  if (!["validate", "render", "hostkeys"].includes(command)) throw new UsageError(`unknown command "${command}"`);
  const files: string[] = [];
  let host: string | undefined;
  let stack: string | undefined;
  let json = false;
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === "--json") {
      if (command !== "hostkeys") throw new UsageError("--json is only for hostkeys");
      json = true;
      continue;
    }
    const [flag, inline] = rest[i].startsWith("--") ? rest[i].split(/=(.*)/s, 2) : [rest[i], undefined];
    if (!["--stack", "--file", "--host"].includes(flag)) throw new UsageError(`unknown argument "${rest[i]}"`);
    const value = inline ?? rest[++i];
    if (value === undefined || value === "") throw new UsageError(`${flag} needs a value`);
    if (flag === "--host") {
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
  return { command, files, host, stack, json };
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

function validate(files: string[], project: Project): number {
  const targets = files.length > 0 ? files : allStackFiles(project);
  if (targets.length === 0) {
    process.stderr.write(`no stack files in ${display(project.stackConfigDir)}\n`);
    return 1;
  }
  let failed = 0;
  for (const path of targets) {
    const loaded = load(path, project);
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

async function main(argv: string[]): Promise<number> {
  if (argv[0] === "help" || argv[0] === "--help" || argv[0] === "-h") {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const project = loadProject(PROJECT_DIR);
  try {
    const args = parseArgs(argv, project);
    if (args.command === "hostkeys") return await hostkeys(args.files[0], args.stack, args.json === true, project);
    return args.command === "validate" ? validate(args.files, project) : render(args.files[0], args.host, project);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`kilo-fleet: ${e.message}\n${USAGE}\n`);
    return 2;
  }
}

void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
