/**
 * Where kilo-fleet puts things on a host. `hostLayout` gives the absolute paths from the host user's
 * environment (run by the host tool); `DISPLAY_PATHS` are the same places as a person writes them, for
 * the deployer's outputs and docs. kilo honours XDG_CONFIG_HOME; kilo-fleet's own records stay at one
 * place in HOME whatever the environment says. An empty variable counts as unset, as `${VAR:-default}`
 * does in sh.
 */
import * as path from "node:path";

/**
 * The host tool's directory, relative to HOME. Fixed (not XDG_DATA_HOME): an SSH host's copy of the tool
 * is written over SFTP, which expands no variables.
 */
export const TOOL_DIR_IN_HOME = ".local/share/kilo-fleet";

/**
 * kilo-fleet's records, relative to HOME. Fixed (not XDG_STATE_HOME): a step must find what an earlier one
 * wrote even when the environment changed in between (host/kilo-package.sh uses the same place).
 */
export const STATE_DIR_IN_HOME = ".local/state/kilo-fleet";

/** The tool file's name for a build id (the first 12 hex digits of its sha256). */
export const toolFileName = (id: string): string => `tool-${id}.cjs`;

export interface HostLayout {
  home: string;
  /** kilo's config directory. */
  configDir: string;
  /** The kilo.jsonc kilo-fleet merges into. */
  configFile: string;
  /** The one-time copy of a kilo.jsonc that existed before kilo-fleet first wrote it. */
  backupFile: string;
  /** The 0600 env file exporting the key (POSIX sh syntax); sourced by the rc blocks and the smoke check. */
  envFile: string;
  /** The same variables in fish syntax (only when fish is among the host's shells). */
  fishEnvFile: string;
  /** kilo-fleet's own records of what it created: one JSON file per step. */
  stateDir: string;
  /** `$XDG_STATE_HOME/kilo-fleet` when that is another place: where an earlier version kept the records. */
  xdgStateDir?: string;
  /** User-level npm prefix: kilo lands in `<prefix>/bin/kilo`, no sudo. */
  npmPrefix: string;
  /** The directory the rc blocks put on PATH. */
  binDir: string;
  kiloBin: string;
  /** The npm-installed CLI's package.json (its version, without running kilo). */
  kiloPackageJson: string;
  /** The host tool's directory. */
  toolDir: string;
  /** Where the smoke check makes its scratch directory (the user's own cache dir, never a shared /tmp). */
  cacheDir: string;
}

const orDefault = (value: string | undefined, fallback: string) => (value ? value : fallback);

export function hostLayout(env: NodeJS.ProcessEnv, home: string): HostLayout {
  const configDir = path.join(orDefault(env.XDG_CONFIG_HOME, path.join(home, ".config")), "kilo");
  const configFile = path.join(configDir, "kilo.jsonc");
  const npmPrefix = path.join(home, ".local");
  const stateDir = path.join(home, STATE_DIR_IN_HOME);
  const xdgState = env.XDG_STATE_HOME && path.isAbsolute(env.XDG_STATE_HOME) ? env.XDG_STATE_HOME : undefined;
  const xdgStateDir = xdgState !== undefined ? path.join(path.resolve(xdgState), "kilo-fleet") : undefined;
  return {
    home,
    configDir,
    configFile,
    backupFile: `${configFile}.kilo-fleet-backup`,
    envFile: path.join(configDir, "codex-pooler.env"),
    fishEnvFile: path.join(configDir, "codex-pooler.env.fish"),
    stateDir,
    ...(xdgStateDir !== undefined && xdgStateDir !== stateDir ? { xdgStateDir } : {}),
    npmPrefix,
    binDir: path.join(npmPrefix, "bin"),
    kiloBin: path.join(npmPrefix, "bin", "kilo"),
    kiloPackageJson: path.join(npmPrefix, "lib", "node_modules", "@kilocode", "cli", "package.json"),
    toolDir: path.join(home, TOOL_DIR_IN_HOME),
    cacheDir: path.join(orDefault(env.XDG_CACHE_HOME, path.join(home, ".cache")), "kilo-fleet"),
  };
}

/** `file` as a person writes it: `~/…` when it is under `home`, else as it is. */
export function tildePath(home: string, file: string): string {
  return file.startsWith(`${home}/`) ? `~${file.slice(home.length)}` : file;
}

/** The same places as a person writes them (`~` is the host user's HOME), for outputs and messages. */
export const DISPLAY_PATHS = {
  configFile: "~/.config/kilo/kilo.jsonc",
  envFile: "~/.config/kilo/codex-pooler.env",
  kiloBin: "~/.local/bin/kilo",
  toolDir: `~/${TOOL_DIR_IN_HOME}`,
} as const;
