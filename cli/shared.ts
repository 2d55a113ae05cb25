/**
 * What every kilo-fleet command shares: the exit codes, argument parsing (node:util `parseArgs` over one
 * options table per command, `--help` from it), the `--stack`/`--file` lookup, and reading a stack file
 * into the one resolved form.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { API_KEYS_KEY, apiKeyHostNames, FLEET_KEY } from "../deployer/apiKeys";
import { type HostSpec, warningText } from "../deployer/hostSpec";
import type { KiloLock } from "../deployer/kiloLock";
import { type ResolveOptions, resolveHosts } from "../deployer/resolveHosts";
import { CONFIG_NAMESPACE, formatErrors } from "../deployer/settings";
import { type Project, readStackConfig, StackFileError } from "./stackFile";

/** Every command's exit codes. */
export const EXIT = {
  /** Everything checked is as it should be. */
  ok: 0,
  /** A problem was found: an invalid stack, a drifted host, a host key that differs, a failed pool check. */
  problem: 1,
  /** The command line is wrong (unknown option, missing value, no such stack). */
  usage: 2,
  /** Something could not be checked: a host did not answer or could not run the check. */
  unchecked: 3,
} as const;

/** A wrong command line: exits EXIT.usage with the message and the usage. */
export class UsageError extends Error {}

/** One option of a command. */
export interface OptionSpec {
  type: "string" | "boolean";
  /** May be given more than once. */
  multiple?: true;
  /** The value's placeholder in the help (`NAME`). */
  value?: string;
  description: string;
}

/** A command: its name, what it does, and its options table. */
export interface CommandSpec {
  name: string;
  summary: string;
  /** The synopsis after `kilo-fleet <name>`. */
  synopsis: string;
  /** Whether it talks to hosts, a pool or a registry (the rest only read files). */
  online: boolean;
  options: Record<string, OptionSpec>;
}

/** The values of a command line, by option name; `help` when --help was given. */
export type ParsedOptions = Record<string, string | boolean | string[] | undefined>;

/** `--key`, `--api-key`: a key on the command line lands in shell history and every user's `ps`. */
const KEY_FLAG = /^--(api-?)?key(=|$)/;

/** Parses `argv` (after the command name) against the command's options table. */
export function parseCommandLine(command: CommandSpec, argv: string[]): ParsedOptions {
  const refused = argv.find((a) => KEY_FLAG.test(a));
  if (refused !== undefined) {
    // Never read the value, never echo it.
    throw new UsageError(
      `${refused.split("=")[0]} is refused: a key on the command line lands in shell history and in every user's process list (ps); export it in an environment variable and name that with --key-env VAR`,
    );
  }
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {
    help: { type: "boolean" },
  };
  for (const [name, o] of Object.entries(command.options)) {
    options[name] = { type: o.type, ...(o.multiple ? { multiple: true } : {}) };
  }
  let values: ParsedOptions;
  try {
    values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as ParsedOptions;
  } catch (e) {
    throw new UsageError(parseArgsMessage(e as Error & { code?: string }, command));
  }
  for (const [name, v] of Object.entries(values)) {
    for (const one of Array.isArray(v) ? v : [v]) {
      if (one === "") throw new UsageError(`--${name} needs a value`);
    }
  }
  return values;
}

/** node:util's parse errors in the CLI's words. */
function parseArgsMessage(e: Error & { code?: string }, command: CommandSpec): string {
  const flag = /'(-[^'\s]*)/.exec(e.message)?.[1]?.replace(/^(--[^=]+).*/, "$1");
  if (e.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && flag !== undefined) {
    const owners = COMMAND_OWNERS[flag.slice(2)];
    return owners && !owners.includes(command.name)
      ? `${flag} is only for ${owners.join(", ").replace(/, ([^,]*)$/, " and $1")}`
      : `unknown argument "${flag}"`;
  }
  if (e.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && flag !== undefined) {
    return command.options[flag.slice(2)]?.type === "boolean" ? `${flag} takes no value` : `${flag} needs a value`;
  }
  if (e.code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") return `unexpected argument: ${e.message.split("'")[1] ?? ""}`;
  return e.message;
}

/** Which commands take each option (filled by `registerCommands`), for "--host is only for render". */
const COMMAND_OWNERS: Record<string, string[]> = {};

/** Records the commands' options tables, so an option given to the wrong command says which takes it. */
export function registerCommands(commands: readonly CommandSpec[]): void {
  for (const c of commands) {
    for (const o of Object.keys(c.options)) COMMAND_OWNERS[o] = [...(COMMAND_OWNERS[o] ?? []), c.name];
  }
}

/** A command's `--help`: synopsis, summary, options. */
export function commandHelp(command: CommandSpec): string {
  const rows = Object.entries(command.options).map(([name, o]) => [
    `--${name}${o.value ? ` ${o.value}` : ""}${o.multiple ? " ..." : ""}`,
    o.description,
  ]);
  rows.push(["--help", "print this help"]);
  const width = Math.max(...rows.map((r) => r[0].length));
  return [
    `usage: kilo-fleet ${command.name} ${command.synopsis}`,
    "",
    `${command.summary}${command.online ? " (goes online)" : " (offline: reads files only)"}`,
    "",
    ...rows.map(([l, d]) => `  ${l.padEnd(width)}  ${d}`),
    "",
    exitCodeHelp(),
    "",
  ].join("\n");
}

/** The exit-code table in words. */
export function exitCodeHelp(): string {
  return `exit codes: ${EXIT.ok} ok, ${EXIT.problem} a problem was found, ${EXIT.usage} the command line is wrong, ${EXIT.unchecked} something could not be checked`;
}

/** `path` relative to the working directory when it is below it. */
export function display(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel === "" || rel.startsWith("..") ? path : rel;
}

/** The stack files `--stack NAME ...` and `--file PATH ...` name, in that order. */
export function stackFiles(values: ParsedOptions, project: Project): string[] {
  const files: string[] = [];
  for (const name of (values.stack as string[] | undefined) ?? []) files.push(stackFileOf(name, project));
  for (const path of (values.file as string[] | undefined) ?? []) {
    if (!existsSync(path)) throw new UsageError(`no such file: ${path}`);
    files.push(resolve(path));
  }
  return files;
}

/** `stacks/Pulumi.<name>.yaml` of the project; a usage error when there is none. */
export function stackFileOf(name: string, project: Project): string {
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new UsageError(`"${name}" is not a stack name`);
  const path = join(project.stackConfigDir, `Pulumi.${name}.yaml`);
  if (!existsSync(path)) throw new UsageError(`no stack "${name}" (no ${display(path)})`);
  return path;
}

/** Exactly one stack file from --stack/--file, for commands that work on one. */
export function oneStackFile(command: string, values: ParsedOptions, project: Project): string {
  const files = stackFiles(values, project);
  if (files.length !== 1) throw new UsageError(`${command} needs exactly one --stack or --file`);
  return files[0];
}

/** Every `stacks/Pulumi.*.yaml`, sorted. */
export function allStackFiles(project: Project): string[] {
  if (!existsSync(project.stackConfigDir)) return [];
  return readdirSync(project.stackConfigDir)
    .filter((f) => /^Pulumi\..+\.ya?ml$/.test(f))
    .sort()
    .map((f) => join(project.stackConfigDir, f));
}

/** A stack file, resolved: its specs, or every problem as a `key: reason` line; its warnings as lines. */
export interface LoadedStack {
  specs: HostSpec[];
  errors: string[];
  warnings: string[];
  lock?: KiloLock;
}

/**
 * Reads one stack file as `pulumi up` would get it and resolves it (deployer/resolveHosts.ts), never decrypting
 * anything. A host without an API key is a warning here (a stack is often checked before its secrets are set).
 */
export function loadStack(
  path: string,
  project: Project,
  options: Pick<ResolveOptions, "lockFile" | "unpinnedHostKeys"> = {},
): LoadedStack {
  let stack: ReturnType<typeof readStackConfig>;
  try {
    stack = readStackConfig(path, project);
  } catch (e) {
    if (e instanceof StackFileError || (e as NodeJS.ErrnoException).code !== undefined) {
      return { specs: [], errors: [(e as Error).message], warnings: [] };
    }
    throw e;
  }
  const resolved = resolveHosts(
    { stack: stack.raw },
    {
      ...options,
      secrets: {
        fleetKey: `${CONFIG_NAMESPACE}:${FLEET_KEY}` in stack.raw,
        apiKeyHosts: apiKeyHostNames(stack.raw[`${CONFIG_NAMESPACE}:${API_KEYS_KEY}`]),
        missingKey: "warning",
      },
    },
  );
  const warnings = resolved.warnings.map(warningText);
  for (const key of project.required) {
    if (!(key in stack.raw)) {
      const name = key.slice(key.indexOf(":") + 1);
      warnings.push(`${key}: not set; pulumi up needs it first: pulumi config set --secret ${name} …`);
    }
  }
  const errors = [...stack.errors, ...resolved.errors];
  return {
    specs: errors.length > 0 ? [] : resolved.specs,
    errors: errors.length > 0 ? formatErrors(errors).split("\n") : [],
    warnings,
    ...(resolved.lock !== undefined ? { lock: resolved.lock } : {}),
  };
}

/** A file's text; "" when there is none. */
export function readIfAny(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** The last non-empty line of `text`, trimmed. */
export function lastLine(text: string): string | undefined {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "")
    .pop();
}
