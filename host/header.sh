":" /*
# kilo-fleet's host tool: this one file is both a POSIX sh script and a CommonJS program. sh runs this
# header, which finds a JavaScript runtime and runs the same file with it; JavaScript skips the header as
# a comment. Usage (what every step's command is): /bin/sh <this file> <subcommand> '<json>'
# The header may contain no star followed by a slash (it would end the comment early); the build checks.
set -u
kf_die() { printf 'kilo-fleet: %s\n' "$*" >&2; exit 1; }
kf_reason=
# node >= 18 with npm beside it or on PATH, in directory $1.
kf_check_node_dir() {
  [ -n "$1" ] && [ -f "$1/node" ] && [ -x "$1/node" ] || return 1
  kf_v=$("$1/node" -p 'process.versions.node' 2>/dev/null </dev/null) || kf_v=
  if [ -z "$kf_v" ]; then
    [ -n "$kf_reason" ] || kf_reason="$1/node does not run"
    return 1
  fi
  kf_major=${kf_v%%.*}
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
  kf_npm=$kf_n
  return 0
}
# The non-interactive PATH of an SSH session often lacks a user's node: look where version managers and
# package managers put it, then nvm's newest version.
kf_find_node() {
  kf_p=$(command -v node 2>/dev/null) || kf_p=
  case $kf_p in /*) kf_check_node_dir "${kf_p%/*}" && return 0 ;; esac
  for kf_d in "$HOME/.local/bin" "$HOME/.volta/bin" "${FNM_DIR:-$HOME/.local/share/fnm}/aliases/default/bin" \
    "$HOME/.fnm/aliases/default/bin" "$HOME/Library/Application Support/fnm/aliases/default/bin" \
    "$HOME/.asdf/shims" "$HOME/.local/share/mise/shims" /usr/local/bin /opt/homebrew/bin; do
    kf_check_node_dir "$kf_d" && return 0
  done
  kf_found=
  for kf_d in "${NVM_DIR:-$HOME/.nvm}"/versions/node/v*; do
    kf_check_node_dir "$kf_d/bin" && kf_found=1
  done
  [ -n "$kf_found" ]
}
# The CA certificates kilo-fleet wrote (kilo-fleet:caCertificates): node reads NODE_EXTRA_CA_CERTS only at
# start, so the tool's own https checks (the smoke check's pool checks) trust them too.
kf_ca="${XDG_CONFIG_HOME:-$HOME/.config}/kilo/ca-certificates.pem"
if [ -z "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$kf_ca" ]; then
  NODE_EXTRA_CA_CERTS=$kf_ca
  export NODE_EXTRA_CA_CERTS
fi
kf_node_dir=
if kf_find_node; then
  case ":$PATH:" in *":$kf_node_dir:"*) ;; *) PATH="$kf_node_dir:$PATH" ;; esac
  KILO_FLEET_NPM=$kf_npm
  export PATH KILO_FLEET_NPM
  exec "$kf_node_dir/node" "$0" "$@"
fi
kf_die "node >= 18 and npm are required on this host: ${kf_reason:-no node found on PATH ($PATH) nor in ~/.local/bin, volta, fnm, nvm, asdf, mise, /usr/local/bin or /opt/homebrew/bin}"
*/;
