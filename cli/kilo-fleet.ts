/**
 * The offline kilo-fleet CLI: checks stack files and shows the kilo.jsonc a host would get, with the
 * same parser `pulumi up` uses, but no Pulumi engine and no secrets.
 *
 *   npm run kilo-fleet -- validate [--stack NAME | --file PATH ...]
 *   npm run kilo-fleet -- render (--stack NAME | --file PATH) [--host NAME]
 *
 * Exit codes: 0 fine, 1 a stack is invalid or unreadable, 2 the command line is wrong.
 */
import { existsSync, readdirSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { renderKiloConfig, renderKiloConfigText } from "../deployer/kiloConfig";
import { formatErrors, parseSettings, resolveHost, type Settings, type SettingsError } from "../deployer/settings";
import { loadProject, type Project, readStackConfig, StackFileError } from "./stackFile";

const USAGE = `usage: kilo-fleet validate [--stack NAME | --file PATH ...]
       kilo-fleet render (--stack NAME | --file PATH) [--host NAME]`;

/** The project this CLI belongs to: the directory above cli/. */
const PROJECT_DIR = resolve(__dirname, "..");

class UsageError extends Error {}

interface Args {
  command: string;
  files: string[];
  host?: string;
}

function parseArgs(argv: string[], project: Project): Args {
  const [command, ...rest] = argv;
  if (command === undefined) throw new UsageError("no command given");
  if (command !== "validate" && command !== "render") throw new UsageError(`unknown command "${command}"`);
  const files: string[] = [];
  let host: string | undefined;
  for (let i = 0; i < rest.length; i++) {
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
    } else {
      if (!existsSync(value)) throw new UsageError(`no such file: ${value}`);
      files.push(resolve(value));
    }
  }
  if (command === "render" && files.length !== 1) throw new UsageError("render needs exactly one --stack or --file");
  return { command, files, host };
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
  const errors: SettingsError[] = [...stack.errors, ...(result.ok ? [] : result.errors)];
  if (errors.length > 0 || !result.ok) return { ok: false, errors: formatErrors(errors).split("\n"), warnings };
  return { ok: true, settings: result.settings, warnings };
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

function main(argv: string[]): number {
  if (argv[0] === "help" || argv[0] === "--help" || argv[0] === "-h") {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const project = loadProject(PROJECT_DIR);
  try {
    const args = parseArgs(argv, project);
    return args.command === "validate" ? validate(args.files, project) : render(args.files[0], args.host, project);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`kilo-fleet: ${e.message}\n${USAGE}\n`);
    return 2;
  }
}

process.exitCode = main(process.argv.slice(2));
