/**
 * The shared head of every host script: strict-ish POSIX sh, one-line failures, a temp dir removed on
 * exit, and the node/npm finder (node >= 18 and npm, even when the non-interactive PATH lacks them).
 *
 * Shell functions and variables it defines (all prefixed `kf_`):
 *   kf_die MSG        prints `kilo-fleet: MSG` on stderr, exits 1
 *   kf_mktemp         creates "$kf_tmp" (removed on exit, also on HUP/INT/TERM)
 *   kf_require_node   finds node >= 18 and npm or dies with `node >= 18 and npm are required on <host>: ...`;
 *                     sets KF_NODE, KF_NPM, kf_node_version and puts node's directory first on PATH
 */
import { shQuote } from "../../common/shellQuote";

/** Where the finder looks after PATH, in order (nvm: the newest installed version >= 18, after these). */
export const NODE_SEARCH_DIRS = [
  "$HOME/.local/bin",
  "$HOME/.volta/bin",
  "${FNM_DIR:-$HOME/.local/share/fnm}/aliases/default/bin",
  "$HOME/.fnm/aliases/default/bin",
  "$HOME/Library/Application Support/fnm/aliases/default/bin",
  "$HOME/.asdf/shims",
  "$HOME/.local/share/mise/shims",
  "/usr/local/bin",
  "/opt/homebrew/bin",
];

export function prelude(hostName: string): string {
  return `set -u
kf_host=${shQuote(hostName)}
kf_tmp=
kf_die() { printf 'kilo-fleet: %s\\n' "$*" >&2; exit 1; }
kf_cleanup() { if [ -n "$kf_tmp" ]; then rm -rf "$kf_tmp"; kf_tmp=; fi; }
trap kf_cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
kf_mktemp() {
  kf_tmp=$(mktemp -d "\${TMPDIR:-/tmp}/kilo-fleet.XXXXXX" 2>/dev/null) || kf_tmp=
  [ -n "$kf_tmp" ] || kf_die "cannot create a temporary directory in \${TMPDIR:-/tmp} on $kf_host"
}
kf_reason=
kf_check_node_dir() {
  [ -n "$1" ] && [ -f "$1/node" ] && [ -x "$1/node" ] || return 1
  kf_v=$("$1/node" -p 'process.versions.node' 2>/dev/null </dev/null) || kf_v=
  if [ -z "$kf_v" ]; then
    [ -n "$kf_reason" ] || kf_reason="$1/node does not run"
    return 1
  fi
  kf_major=\${kf_v%%.*}
  case $kf_major in '' | *[!0-9]*) kf_major=0 ;; esac
  if [ "$kf_major" -lt 18 ]; then
    [ -n "$kf_reason" ] || kf_reason="node $kf_v at $1/node is older than 18"
    return 1
  fi
  if [ -f "$1/npm" ] && [ -x "$1/npm" ]; then
    kf_n="$1/npm"
  else
    kf_n=$(command -v npm 2>/dev/null) || kf_n=
    case $kf_n in
    /*) ;;
    *)
      [ -n "$kf_reason" ] || kf_reason="npm not found (node $kf_v is at $1/node, with no npm beside it or on PATH)"
      return 1
      ;;
    esac
  fi
  kf_node_dir=$1
  kf_node_version=$kf_v
  KF_NPM=$kf_n
  return 0
}
kf_find_node() {
  kf_node_dir=
  kf_p=$(command -v node 2>/dev/null) || kf_p=
  case $kf_p in */*) kf_check_node_dir "\${kf_p%/*}" && return 0 ;; esac
  for kf_d in ${NODE_SEARCH_DIRS.map((d) => `"${d}"`).join(" ")}; do
    kf_check_node_dir "$kf_d" && return 0
  done
  kf_found=
  for kf_d in "\${NVM_DIR:-$HOME/.nvm}"/versions/node/v*/bin; do
    kf_check_node_dir "$kf_d" && kf_found=1
  done
  [ -n "$kf_found" ]
}
kf_require_node() {
  kf_find_node || kf_die "node >= 18 and npm are required on $kf_host: \${kf_reason:-no node found on PATH ($PATH) nor in ~/.local/bin, volta, fnm, nvm, asdf, mise, /usr/local/bin or /opt/homebrew/bin}"
  KF_NODE="$kf_node_dir/node"
  case ":$PATH:" in *":$kf_node_dir:"*) ;; *) PATH="$kf_node_dir:$PATH"; export PATH ;; esac
}`;
}

/** The largest script text a single argument can carry (Linux MAX_ARG_STRLEN is 128 KiB with the NUL). */
export const MAX_SCRIPT_BYTES = 128 * 1024 - 1;

/** Joins script parts and checks the result fits in one `sh -c` argument. */
export function script(...parts: string[]): string {
  const text = `${parts.join("\n")}\n`;
  if (text.includes("\0")) throw new Error("kilo-fleet: a host script cannot contain a NUL byte");
  const size = Buffer.byteLength(text);
  if (size > MAX_SCRIPT_BYTES) {
    throw new Error(`kilo-fleet: a host script is ${size} bytes, over the ${MAX_SCRIPT_BYTES}-byte argument limit`);
  }
  return text;
}
