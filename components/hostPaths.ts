/**
 * Where kilo-fleet puts things on a host, as `sh` expressions evaluated there (so `$HOME` and
 * `XDG_CONFIG_HOME` are the host user's). Shared by every host script, the component's outputs and tests.
 */

/** Kilo's config directory; kilo honours XDG_CONFIG_HOME. */
export const KILO_CONFIG_DIR = "${XDG_CONFIG_HOME:-$HOME/.config}/kilo";
/** The kilo.jsonc kilo-fleet merges into. */
export const KILO_CONFIG_FILE = `${KILO_CONFIG_DIR}/kilo.jsonc`;
/** The 0600 env file exporting the API key; sourced by the rc blocks and the smoke check. */
export const ENV_FILE = `${KILO_CONFIG_DIR}/codex-pooler.env`;
/** kilo-fleet's own record of what it manages on this host (managed key paths, whether it created files). */
export const STATE_FILE = `${KILO_CONFIG_DIR}/.kilo-fleet-state.json`;
/** User-level npm prefix: kilo lands in `$NPM_PREFIX/bin/kilo`, no sudo. */
export const NPM_PREFIX = "$HOME/.local";
export const KILO_BIN = `${NPM_PREFIX}/bin/kilo`;
