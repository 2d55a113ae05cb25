":" /*
# kilo-fleet's host tool: this one file is both a POSIX sh script and a CommonJS program. sh runs this
# header; JavaScript skips it as a comment. Usage (what every step's command is):
#   /bin/sh <this file> <subcommand> '<argument>'
# install-package and install-package-delete (install.method package) run here, in sh, with the functions
# of host/kilo-package.sh (embedded below at build time): no JavaScript runtime is needed to install kilo.
# Every other subcommand runs the same file as JavaScript: on node >= 18 when the host has one, otherwise on
# the installed kilo itself (a Bun executable: BUN_BE_BUN=1 makes it run a script as Bun). `install`
# (install.method npm) needs node and npm.
# The header may contain no star followed by a slash (it would end the comment early); the build checks.
set -u
kf_die() { printf 'kilo-fleet: %s\n' "$*" >&2; exit 1; }
#@kilo-package.sh@
# install-package's argument: words separated by spaces, `<version> <registry or -> [option...] <platform>=<integrity>...`
# (common/stepArgs.ts encodeInstallPackageArg); each tarball's URL is the registry's, as npm derives it.
kf_install_package() {
  set -f
  # shellcheck disable=SC2086
  set -- $1
  set +f
  [ $# -ge 2 ] || kf_die "install-package: the argument must be '<version> <registry or -> [<platform>=<sha512>...]'"
  kf_iv=$1
  kf_ir=$2
  shift 2
  [ "$kf_ir" != - ] || kf_ir=
  kf_base=${kf_ir:-https://registry.npmjs.org}
  kf_base=${kf_base%/}
  kf_il=
  kf_option_words "$@"
  shift "$kf_pn"
  for kf_w in "$@"; do
    kf_ip=${kf_w%%=*}
    kf_il="$kf_il$kf_ip $kf_base/@kilocode/cli-$kf_ip/-/cli-$kf_ip-$kf_iv.tgz ${kf_w#*=}
"
  done
  # A kilo that install.method npm installed (the tool's npm record says so) goes first: its delete needs
  # node and npm, which a host that used that method has.
  kf_paths
  kf_npm_state=
  { read -r kf_npm_state <"$(kf_record_file install)"; } 2>/dev/null || kf_npm_state=
  if [ "$kf_npm_state" = installed ]; then
    kf_log "removing the kilo install.method npm installed"
    /bin/sh "$0" install-delete '{"host":"-"}' >/dev/null || exit 1
  fi
  # A kilo the user installed with npm, at this very version: kept, and left alone by the delete (as
  # install.method npm does), instead of refused.
  kf_npm_pkg=$kf_home/.local/lib/node_modules/@kilocode/cli/package.json
  if [ "$kf_iv" != latest ] && [ -f "$kf_npm_pkg" ] && [ -e "$kf_link" ] && ! kf_link_is_ours "$kf_kilo_dir" &&
    [ "$(kf_json_field "$kf_npm_pkg" version)" = "$kf_iv" ]; then
    printf 'kilo-fleet: kilo %s is already installed at %s (by npm, not by kilo-fleet); left as it is\n' "$kf_iv" "$kf_link"
    printf 'kilo-fleet-result {"step":"install","kiloVersion":%s,"bin":%s,"method":"preexisting","changed":false}\n' \
      "$(kf_json_str "$kf_iv")" "$(kf_json_str "$kf_link")"
    return 0
  fi
  kf_install "$kf_iv" "$kf_ir" "$kf_il"
}
# Percent-encodes $1 (a URL's userinfo part): everything but unreserved characters, byte by byte.
kf_urlenc() {
  printf '%s' "$1" | LC_ALL=C awk 'BEGIN { for (i = 1; i < 256; i++) ord[sprintf("%c", i)] = i; ORS = "" }
    { for (i = 1; i <= length($0); i++) { c = substr($0, i, 1); if (c ~ /^[A-Za-z0-9._~-]$/) print c; else printf "%%%02X", ord[c] } }'
}
# install-package's option words before the platforms: the proxy's (--proxy=URL [--http-proxy=URL]
# [--no-proxy=LIST] [--proxy-auth]), through which the download (curl or wget) goes, by the variables both read;
# and --ca=DER,DER (kilo-fleet:caCertificates, each certificate's DER in base64: kf_ca_ders), which kf_download trusts
# when the host's own CAs refuse. kf_pn: how many words they were. The proxy's credentials (`user:password`) are
# stdin's line, never an argument.
kf_option_words() {
  kf_pn=0
  kf_px=
  kf_phx=
  kf_pno=
  kf_pauth=
  for kf_w in "$@"; do
    case $kf_w in
    --proxy=*) kf_px=${kf_w#--proxy=} ;;
    --http-proxy=*) kf_phx=${kf_w#--http-proxy=} ;;
    --no-proxy=*) kf_pno=${kf_w#--no-proxy=} ;;
    --proxy-auth) kf_pauth=1 ;;
    --ca=*) kf_ca_ders=${kf_w#--ca=} ;;
    *) break ;;
    esac
    kf_pn=$((kf_pn + 1))
  done
  [ -n "$kf_px" ] || return 0
  kf_via=" through the proxy ${kf_px} (kilo-fleet:proxy)"
  [ -n "$kf_phx" ] || kf_phx=$kf_px
  if [ -n "$kf_pauth" ]; then
    kf_pa=
    IFS= read -r kf_pa || [ -n "$kf_pa" ] || kf_die "no proxy credentials on stdin (kilo-fleet:proxyCredentials); nothing was changed"
    case $kf_pa in
    ?*:*) ;;
    *) kf_die "the proxy credentials on stdin must be one line user:password (kilo-fleet:proxyCredentials); nothing was changed" ;;
    esac
    kf_pa="$(kf_urlenc "${kf_pa%%:*}"):$(kf_urlenc "${kf_pa#*:}")@"
    kf_px="${kf_px%%://*}://$kf_pa${kf_px#*://}"
    kf_phx="${kf_phx%%://*}://$kf_pa${kf_phx#*://}"
    kf_pa=
  fi
  https_proxy=$kf_px
  HTTPS_PROXY=$kf_px
  http_proxy=$kf_phx
  export https_proxy HTTPS_PROXY http_proxy
  if [ -n "$kf_pno" ]; then
    no_proxy=$kf_pno
    NO_PROXY=$kf_pno
    export no_proxy NO_PROXY
  fi
}
kf_via=
case ${1:-} in
install-package)
  [ $# -eq 2 ] || kf_die "install-package: takes one argument, got $(($# - 1))"
  kf_install_package "$2"
  exit 0
  ;;
install-package-delete)
  kf_uninstall
  exit 0
  ;;
esac
kf_reason=
# `install` (install.method npm) needs npm too.
kf_need_npm=
[ "${1:-}" != install ] || kf_need_npm=1
# node >= 18 in directory $1 (and npm beside it or on PATH: kf_npm, required when kf_need_npm is set).
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
    case $kf_n in /*) ;; *) kf_n= ;; esac
  fi
  if [ -z "$kf_n" ] && [ -n "$kf_need_npm" ]; then
    [ -n "$kf_reason" ] || kf_reason="npm not found (node $kf_v is at $1/node, with no npm beside it or on PATH)"
    return 1
  fi
  kf_node_dir=$1
  kf_npm=$kf_n
  return 0
}
# The non-interactive PATH of an SSH session often lacks a user's node: look where version managers and
# package managers put it, then nvm's newest version.
kf_find_node() {
  kf_p=$(command -v node 2>/dev/null) || kf_p=
  case $kf_p in /*) kf_check_node_dir "${kf_p%[/]*}" && return 0 ;; esac
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
kf_npm=
if kf_find_node; then
  case ":$PATH:" in *":$kf_node_dir:"*) ;; *) PATH="$kf_node_dir:$PATH" ;; esac
  export PATH
  if [ -n "$kf_npm" ]; then
    KILO_FLEET_NPM=$kf_npm
    export KILO_FLEET_NPM
  fi
  if [ -n "$kf_need_npm" ]; then
    # A kilo that install.method package installed goes first (npm would not replace its link).
    kf_paths
    if awk '/^version / { f = 1 } END { exit f ? 0 : 1 }' "$(kf_record_file kilo-package)" 2>/dev/null; then
      kf_log "removing the kilo install.method package installed"
      (kf_uninstall) >/dev/null || exit 1
    fi
  fi
  exec "$kf_node_dir/node" "$0" "$@"
fi
kf_where="no node found on PATH ($PATH) nor in ~/.local/bin, volta, fnm, nvm, asdf, mise, /usr/local/bin or /opt/homebrew/bin"
[ -z "$kf_need_npm" ] || kf_die "node >= 18 and npm are required on this host for install.method npm: ${kf_reason:-$kf_where}"
# No node: the kilo install.method package linked (a Bun executable, not npm's node launcher script).
kf_kilo=$HOME/.local/bin/kilo
kf_first=
if [ -f "$kf_kilo" ] && [ -x "$kf_kilo" ]; then
  { IFS= read -r kf_first <"$kf_kilo"; } 2>/dev/null || :
  case $kf_first in
  '#!'*) ;;
  *)
    # Bun caches the transpiled tool (a file over 50 KB) in ~/.bun unless told not to: HOME stays as it was.
    BUN_BE_BUN=1
    BUN_RUNTIME_TRANSPILER_CACHE_PATH=0
    export BUN_BE_BUN BUN_RUNTIME_TRANSPILER_CACHE_PATH
    exec "$kf_kilo" "$0" "$@"
    ;;
  esac
fi
kf_die "node >= 18 or the kilo that install.method package installs (~/.local/bin/kilo) is required on this host to run this step: ${kf_reason:-$kf_where}"
*/;
