/**
 * Where kilo-fleet puts things on a host, as `sh` expressions evaluated there (so `$HOME` and
 * `XDG_CONFIG_HOME` are the host user's). Shared by every host script, the component's outputs and tests.
 * Each expression is meant to be used inside double quotes: `"${KILO_CONFIG_FILE}"`.
 */

/** Kilo's config directory; kilo honours XDG_CONFIG_HOME. */
export const KILO_CONFIG_DIR = "${XDG_CONFIG_HOME:-$HOME/.config}/kilo";
/** The kilo.jsonc kilo-fleet merges into. */
export const KILO_CONFIG_FILE = `${KILO_CONFIG_DIR}/kilo.jsonc`;
/** The one-time copy of a kilo.jsonc that existed before kilo-fleet first wrote it. */
export const KILO_CONFIG_BACKUP = `${KILO_CONFIG_FILE}.kilo-fleet-backup`;
/** The 0600 env file exporting the API key (POSIX sh syntax); sourced by the rc blocks and the smoke check. */
export const ENV_FILE = `${KILO_CONFIG_DIR}/codex-pooler.env`;
/** The same variables in fish syntax (written only when fish is among the host's shells). */
export const FISH_ENV_FILE = `${KILO_CONFIG_DIR}/codex-pooler.env.fish`;
/** kilo-fleet's own state on the host (what it created, which keys it manages): one JSON file per step. */
export const STATE_DIR = "${XDG_STATE_HOME:-$HOME/.local/state}/kilo-fleet";
/** Config step state: managed key paths, whether kilo-fleet created kilo.jsonc, whether it took a backup. */
export const STATE_FILE = `${STATE_DIR}/config.json`;
/** Env step state: which rc files got a block, which it created, the config dir's mode before. */
export const SHELL_STATE_FILE = `${STATE_DIR}/shell.json`;
/** Install step state: `installed` (kilo-fleet ran npm install, so delete uninstalls) or `preexisting`. */
export const INSTALL_STATE_FILE = `${STATE_DIR}/install`;
/** User-level npm prefix: kilo lands in `$NPM_PREFIX/bin/kilo`, no sudo. */
export const NPM_PREFIX = "$HOME/.local";
export const KILO_BIN = `${NPM_PREFIX}/bin/kilo`;
/** The installed CLI's package.json: the install step reads its version instead of running `kilo --version`. */
export const KILO_PACKAGE_JSON = `${NPM_PREFIX}/lib/node_modules/@kilocode/cli/package.json`;
/** The directory the rc blocks put on PATH (npm's `bin` under NPM_PREFIX). */
export const LOCAL_BIN = `${NPM_PREFIX}/bin`;
