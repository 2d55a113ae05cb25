/**
 * Which names `apiKeyEnvVar` may not take: variables that change how shells, dynamic loaders or language
 * runtimes behave (the env file exports the key under this name in every login shell of the host), and
 * the names kilo-fleet or kilo set themselves.
 */

/** Exact names (compared case-insensitively: zsh ties `path` to `PATH`). */
const BEHAVIOUR_NAMES = [
  "PATH",
  "HOME",
  "SHELL",
  "IFS",
  "ENV",
  "BASH_ENV",
  "CDPATH",
  "FPATH",
  "ZDOTDIR",
  "PS1",
  "PS2",
  "PS4",
  "PROMPT_COMMAND",
  "SHELLOPTS",
  "BASHOPTS",
  "GLOBIGNORE",
  "HISTFILE",
  "USER",
  "LOGNAME",
  "TERM",
  "LANG",
  "TZ",
  "TMPDIR",
  "PWD",
  "OLDPWD",
  "MAIL",
  "MANPATH",
  "PERL5LIB",
  "PERL5OPT",
  "RUBYOPT",
  "RUBYLIB",
  "JAVA_TOOL_OPTIONS",
  "_JAVA_OPTIONS",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
  "SSH_AUTH_SOCK",
];
/** Prefixes of shells', loaders' and runtimes' own variables. */
const BEHAVIOUR_PREFIXES = ["LD_", "DYLD_", "NODE_", "BUN_", "PYTHON", "LC_", "NPM_CONFIG_", "GIT_"];
/** Prefixes of the variables kilo-fleet's env file or kilo itself set or read. */
const OWN_PREFIXES = ["KILO_", "XDG_", "OPENCODE"];

/** Why `name` cannot hold the API key, or undefined when it can. */
export function reservedEnvVarReason(name: string): string | undefined {
  const upper = name.toUpperCase();
  if (BEHAVIOUR_NAMES.includes(upper) || BEHAVIOUR_PREFIXES.some((p) => upper.startsWith(p))) {
    return `"${name}" changes how shells, loaders or runtimes behave, and the env file exports it in every login shell of the host; pick a name of your own (e.g. CODEX_POOLER_API_KEY)`;
  }
  const own = OWN_PREFIXES.find((p) => upper.startsWith(p));
  if (own !== undefined) {
    return `"${name}" is a name kilo-fleet or kilo sets or reads itself (${own}*); pick a name of your own (e.g. CODEX_POOLER_API_KEY)`;
  }
  return undefined;
}
