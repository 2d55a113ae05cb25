#!/bin/sh
# kilo-fleet: installs kilo from its per-platform npm package, without Node.js or npm: downloads the
# platform package's tarball, checks it against the lock file's sha512, unpacks it under the user's data dir
# and links ~/.local/bin/kilo to its binary. POSIX sh (dash, bash, busybox ash, macOS sh); it needs curl or
# wget, tar, gzip, one of sha512sum / shasum / openssl, and awk, sed, uname, mkdir, mv, rm, rmdir, ln,
# readlink, ls, env, cat, find, touch, sleep (check-tools says which is missing).
#
#   sh kilo-package.sh platform | check-tools | install <version> <registry-url> <lock-lines> | uninstall
#
# <lock-lines>: one line per platform, `<platform> <tarball-url> <sha512-integrity>`. Progress goes to stderr
# as `[kilo-fleet] ...`; a failure is one `kilo-fleet: ...` line and exit 1 (2 for a wrong command line); the
# last stdout line of a success is a `kilo-fleet-result {json}` line. The host tool (deployer/hostTool.ts)
# embeds this script's functions, from `set -u` to the line that says so, into its sh header.
# Where things go, what is recorded, and the safety rules: docs/design.md, "install.method package".
#
# Test-only inputs (inert when unset; a remote session does not forward them):
#   KILO_FLEET_TEST_UNAME_S, KILO_FLEET_TEST_UNAME_M   replace `uname -s` / `uname -m`
#   KILO_FLEET_TEST_CPUINFO   a file read instead of /proc/cpuinfo
#   KILO_FLEET_TEST_LIBDIR    a directory searched for ld-musl-* instead of /lib
#   KILO_FLEET_TEST_LDD       a file whose text replaces the output of `ldd --version` ("" = no ldd)
#   KILO_FLEET_TEST_SYSCTL    a file of `name: value` lines answering `sysctl -n name` (macOS)

set -u
PATH=${PATH:-/usr/bin:/bin}
# Besides curl|wget, tar, gzip and a sha512 tool, the install uses these (check-tools checks them too).
KF_BASE_TOOLS="awk sed uname mkdir mv rm rmdir ln readlink ls env cat find touch sleep"
# kilo-fleet:caCertificates for the download (the host tool's header sets it from its --ca word).
kf_ca_ders=

kf_log() { printf '[kilo-fleet] %s\n' "$*" >&2; }
kf_fail() {
  printf 'kilo-fleet: %s\n' "$*" >&2
  exit 1
}

# ---------------------------------------------------------------------------------------------------------
# Platform detection

kf_sysctl() {
  if [ -n "${KILO_FLEET_TEST_SYSCTL:-}" ]; then
    awk -v k="$1" 'index($0, k ":") == 1 { v = substr($0, length(k) + 2); sub(/^[ \t]+/, "", v); print v; exit }' \
      "$KILO_FLEET_TEST_SYSCTL" 2>/dev/null
  else
    sysctl -n "$1" 2>/dev/null
  fi
}

kf_is_musl() {
  kf_libdir=${KILO_FLEET_TEST_LIBDIR:-/lib}
  for kf_f in "$kf_libdir"/ld-musl-*; do
    [ -e "$kf_f" ] && return 0
  done
  if [ -n "${KILO_FLEET_TEST_LDD+set}" ]; then
    kf_ldd=$(cat "$KILO_FLEET_TEST_LDD" 2>/dev/null) || kf_ldd=
  else
    kf_ldd=$(ldd --version 2>&1 </dev/null) || :
  fi
  case $kf_ldd in *musl* | *MUSL* | *Musl*) return 0 ;; esac
  return 1
}

kf_linux_avx2() {
  awk '/^flags[ \t]*:/ { for (i = 3; i <= NF; i++) if ($i == "avx2") { found = 1; exit } } END { exit found ? 0 : 1 }' \
    "${KILO_FLEET_TEST_CPUINFO:-/proc/cpuinfo}" 2>/dev/null
}

kf_darwin_avx2() {
  [ "$(kf_sysctl hw.optional.avx2_0)" = 1 ] && return 0
  case $(kf_sysctl machdep.cpu.leaf7_features) in *AVX2*) return 0 ;; esac
  return 1
}

# Prints the platform suffix, or fails naming what kilo has no package for.
kf_platform() {
  kf_os=${KILO_FLEET_TEST_UNAME_S:-$(uname -s)}
  kf_cpu=${KILO_FLEET_TEST_UNAME_M:-$(uname -m)}
  case $kf_cpu in
    x86_64 | amd64 | x64) kf_cpu=x64 ;;
    aarch64 | arm64 | armv8*) kf_cpu=arm64 ;;
    *) kf_fail "kilo has no package for the CPU \"$kf_cpu\" (uname -m); it ships x64 and arm64" ;;
  esac
  case $kf_os in
    Linux)
      kf_p=linux-$kf_cpu
      [ "$kf_cpu" = x64 ] && ! kf_linux_avx2 && kf_p=$kf_p-baseline
      kf_is_musl && kf_p=$kf_p-musl
      ;;
    Darwin)
      # An x64 shell under Rosetta 2 on Apple silicon: the native arm64 build runs there (never baseline).
      [ "$kf_cpu" = x64 ] && [ "$(kf_sysctl sysctl.proc_translated)" = 1 ] && kf_cpu=arm64
      kf_p=darwin-$kf_cpu
      [ "$kf_cpu" = x64 ] && ! kf_darwin_avx2 && kf_p=$kf_p-baseline
      ;;
    *) kf_fail "kilo-fleet's package install supports Linux and macOS, not \"$kf_os\" (uname -s)" ;;
  esac
  printf '%s\n' "$kf_p"
}

# ---------------------------------------------------------------------------------------------------------
# Tools

kf_has() { command -v "$1" >/dev/null 2>&1; }

# Prints what is missing ("" when nothing).
kf_missing_tools() {
  kf_m=
  kf_has curl || kf_has wget || kf_m="$kf_m, curl or wget"
  kf_has tar || kf_m="$kf_m, tar"
  kf_has gzip || kf_m="$kf_m, gzip"
  kf_has sha512sum || kf_has shasum || kf_has openssl || kf_m="$kf_m, sha512sum or shasum or openssl"
  for kf_t in $KF_BASE_TOOLS; do
    kf_has "$kf_t" || kf_m="$kf_m, $kf_t"
  done
  printf '%s' "${kf_m#, }"
}

kf_check_tools() {
  kf_m=$(kf_missing_tools)
  [ -z "$kf_m" ] || kf_fail "missing on this host: $kf_m (needed to install kilo from its package; install them, or use install.method npm)"
}

# Downloads $1 to $2 with curl or wget (both honour http_proxy/https_proxy/no_proxy: the header's
# kf_option_words sets them from kilo-fleet:proxy, and kf_via names it in failures); the reason goes to $3.
# When the host's CAs refuse the server's certificate and the stack has kilo-fleet:caCertificates (kf_ca_ders),
# once more trusting those instead ($2.ca.pem): a TLS-inspecting proxy's CA, or a private registry's. kf_tls_hint
# then says what to set.
kf_download() {
  kf_dl_tls=0
  kf_fetch "$1" "$2" "$3" "" && return 0
  kf_tls_refused $? || return 1
  kf_dl_tls=1
  [ -n "$kf_ca_ders" ] || return 1
  kf_dl_tls=2
  kf_ca_pem >"$2.ca.pem" || return 1
  kf_fetch "$1" "$2" "$3" "$2.ca.pem" && return 0
  kf_tls_refused $? || kf_dl_tls=0
  return 1
}

# $4: a CA file to trust instead of the host's, or "".
kf_fetch() {
  kf_f_url=$1 kf_f_out=$2 kf_f_err=$3 kf_f_ca=$4
  if kf_has curl; then
    set -- -fsSL --connect-timeout 30 --speed-limit 1 --speed-time 120 --retry 2
    [ -z "$kf_f_ca" ] || set -- "$@" --cacert "$kf_f_ca"
    curl "$@" -o "$kf_f_out" "$kf_f_url" 2>"$kf_f_err" </dev/null
    return
  fi
  # BusyBox wget has no -t (GNU wget retries 20 times by default), nor --ca-certificate.
  set -- -q -T 60
  case $(wget --version 2>/dev/null </dev/null) in
    *'GNU Wget'*)
      set -- "$@" -t 3
      [ -z "$kf_f_ca" ] || set -- "$@" --ca-certificate="$kf_f_ca"
      ;;
  esac
  wget "$@" -O "$kf_f_out" "$kf_f_url" 2>"$kf_f_err" </dev/null
  kf_rc=$?
  # wget -q says nothing: its exit status does (GNU wget's meanings).
  if [ "$kf_rc" != 0 ] && ! [ -s "$kf_f_err" ]; then
    case $kf_rc in
      4) kf_m="network failure" ;;
      5) kf_m="SSL verification failure" ;;
      6) kf_m="authentication failure" ;;
      8) kf_m="the server answered with an error" ;;
      *) kf_m="failed" ;;
    esac
    printf 'wget: exit %s (%s)\n' "$kf_rc" "$kf_m" >"$kf_f_err"
  fi
  return "$kf_rc"
}

# Whether exit status $1 of kf_fetch means the server's certificate was not trusted: curl 60 (51 before
# curl 7.62) or GNU wget 5.
kf_tls_refused() {
  if kf_has curl; then
    [ "$1" = 60 ] || [ "$1" = 51 ]
  else
    [ "$1" = 5 ]
  fi
}

# kf_ca_ders as PEM: each DER's base64 in lines of 64, between BEGIN and END CERTIFICATE lines.
kf_ca_pem() {
  printf '%s\n' "$kf_ca_ders" | awk -F, '{
    for (i = 1; i <= NF; i++) {
      print "-----BEGIN CERTIFICATE-----"
      for (j = 1; j <= length($i); j += 64) print substr($i, j, 64)
      print "-----END CERTIFICATE-----"
    }
  }'
}

# What a failed kf_download adds to its one line about the certificate ("" when that was not the problem).
kf_tls_hint() {
  case ${kf_dl_tls:-0} in
    1) printf '; the host does not trust its certificate: set kilo-fleet:caCertificates to the CA that signs it (a TLS-inspecting proxy'"'"'s, or the registry'"'"'s)' ;;
    2) printf '; kilo-fleet:caCertificates does not sign its certificate either' ;;
  esac
}

kf_sha512_hex() {
  if kf_has sha512sum; then
    sha512sum <"$1" | awk '{ print $1 }'
  elif kf_has shasum; then
    shasum -a 512 <"$1" | awk '{ print $1 }'
  else
    openssl dgst -sha512 <"$1" | awk '{ print $NF }'
  fi
}

# Hex (stdin) to base64, the encoding of npm's `sha512-<base64>` integrity.
kf_hex_to_base64() {
  awk '{
    h = tolower($0); n = 0
    for (i = 1; i < length(h); i += 2) b[n++] = (index("0123456789abcdef", substr(h, i, 1)) - 1) * 16 + index("0123456789abcdef", substr(h, i + 1, 1)) - 1
    A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"; out = ""
    for (i = 0; i < n; i += 3) {
      v = b[i] * 65536 + (i + 1 < n ? b[i + 1] * 256 : 0) + (i + 2 < n ? b[i + 2] : 0)
      out = out substr(A, int(v / 262144) % 64 + 1, 1) substr(A, int(v / 4096) % 64 + 1, 1)
      out = out (i + 1 < n ? substr(A, int(v / 64) % 64 + 1, 1) : "=") (i + 2 < n ? substr(A, v % 64 + 1, 1) : "=")
    }
    print out
  }'
}

# A JSON string literal (escapes \ " and control characters).
kf_json_str() {
  printf '%s' "$1" | awk 'BEGIN { ORS = ""; print "\"" } {
    if (NR > 1) print "\\n"
    s = $0; gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); gsub(/\t/, "\\t", s); gsub(/\r/, "\\r", s); print s
  } END { print "\"" }'
}

# What went wrong, from the stderr in file $1: curl's own `curl: (N) ...` line, else the last non-empty line;
# at most 300 characters, without CR.
kf_err_line() {
  awk '{ sub(/\r$/, "") } /^curl: \(/ { c = $0 } NF { l = $0 } END { print substr(c != "" ? c : l, 1, 300) }' "$1" 2>/dev/null
}

# ---------------------------------------------------------------------------------------------------------
# Paths

kf_paths() {
  case ${HOME:-} in
    /*) ;;
    *) kf_fail "HOME is not set to an absolute path" ;;
  esac
  kf_home=$HOME
  while [ "${kf_home%/}" != "$kf_home" ] && [ "$kf_home" != / ]; do kf_home=${kf_home%/}; done
  case $kf_home in *'
'*) kf_fail "HOME contains a newline" ;; esac
  kf_data_home=$kf_home/.local/share
  case ${XDG_DATA_HOME:-} in /*) kf_data_home=${XDG_DATA_HOME%/} ;; esac
  kf_kilo_dir=$kf_data_home/kilo-fleet/kilo
  # The records stay at one place whatever the environment says (common/hostPaths.ts STATE_DIR_IN_HOME);
  # an earlier version kept them under XDG_STATE_HOME (kf_migrate moves them).
  kf_state_dir=$kf_home/.local/state/kilo-fleet
  kf_xdg_state_dir=
  case ${XDG_STATE_HOME:-} in /*) kf_xdg_state_dir=${XDG_STATE_HOME%/}/kilo-fleet ;; esac
  [ "$kf_xdg_state_dir" != "$kf_state_dir" ] || kf_xdg_state_dir=
  kf_state=$kf_state_dir/kilo-package
  kf_bin_dir=$kf_home/.local/bin
  kf_link=$kf_bin_dir/kilo
  kf_lock=$kf_home/.kilo-fleet.lock
  kf_tmp=
  kf_locked=0
}

# ---------------------------------------------------------------------------------------------------------
# Processes, temp names, the lock

# Whether pid $1 is running on this host (a zombie is not).
kf_running() {
  if [ -d /proc/1 ]; then
    kf_st=
    { read -r kf_st <"/proc/$1/stat"; } 2>/dev/null || return 1
    case ${kf_st##*) } in Z*) return 1 ;; esac
    return 0
  fi
  if kf_has ps; then
    kf_st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    case $kf_st in '' | Z*) return 1 ;; esac
    return 0
  fi
  kill -0 "$1" 2>/dev/null
}

# Removes temp name $1 (`.<name>.kilo-fleet-tmp-<pid>`) when that pid is not running.
kf_sweep_entry() {
  [ -e "$1" ] || [ -L "$1" ] || return 0
  kf_spid=${1##*.kilo-fleet-tmp-}
  case $kf_spid in '' | *[!0-9]*) return 0 ;; esac
  [ "$kf_spid" != "$$" ] && kf_running "$kf_spid" && return 0
  rm -rf "$1" 2>/dev/null || :
}

# Removes the stale temp names beside path $1.
kf_sweep_beside() {
  [ -d "${1%/*}" ] || return 0
  for kf_sf in "${1%/*}/.${1##*[/]}.kilo-fleet-tmp-"*; do kf_sweep_entry "$kf_sf"; done
}

# Removes every stale temp name the package install can leave: beside each directory it makes, the link
# and the record, and in the kilo dir (downloads, version dirs moved aside).
kf_sweep() {
  for kf_p in "$kf_kilo_dir" "$kf_state_dir" "$kf_bin_dir"; do
    while [ "${#kf_p}" -gt "${#kf_home}" ]; do
      kf_sweep_beside "$kf_p"
      kf_p=${kf_p%/*}
    done
  done
  kf_sweep_beside "$kf_link"
  kf_sweep_beside "$kf_state"
  [ -d "$kf_kilo_dir" ] || return 0
  for kf_e in "$kf_kilo_dir"/.*.kilo-fleet-tmp-*; do kf_sweep_entry "$kf_e"; done
  for kf_vd in "$kf_kilo_dir"/*; do
    [ -d "$kf_vd" ] || continue
    for kf_e in "$kf_vd"/.*.kilo-fleet-tmp-*; do kf_sweep_entry "$kf_e"; done
  done
}

kf_read_owner() {
  kf_o=
  { read -r kf_o <"$kf_lock/owner"; } 2>/dev/null || kf_o=
  printf '%s' "$kf_o"
}

# Breaks the lock when its owner ran on this host and is gone (the stale rule of host/lock.ts).
kf_break_if_stale() {
  kf_owner=$(kf_read_owner)
  if [ -n "$kf_owner" ]; then
    [ "${kf_owner#* }" = "$kf_hostname" ] || return 0
    kf_running "${kf_owner%% *}" && return 0
  fi
  if ! mkdir "$kf_lock/break" 2>/dev/null; then
    [ -d "$kf_lock/break" ] || return 0
    # Another breaker is at work, unless its directory is over a minute old (it died at work).
    [ -n "$(find "$kf_lock/break" -prune -mmin +1 2>/dev/null)" ] || return 0
    touch "$kf_lock/break" 2>/dev/null || return 0
  fi
  if [ "$(kf_read_owner)" = "$kf_owner" ]; then
    kf_gone=$kf_home/..kilo-fleet.lock.kilo-fleet-tmp-$$
    rm -rf "$kf_gone"
    mv "$kf_lock" "$kf_gone" 2>/dev/null </dev/null && rm -rf "$kf_gone"
  else
    rm -rf "$kf_lock/break"
  fi
}

# Waits a moment (fractional sleep is not POSIX: where it fails, a second counts as 20 tries).
kf_sleep() { sleep 0.05 2>/dev/null || { sleep 1 && kf_tries=$((kf_tries + 19)); }; }

kf_lock_take() {
  kf_hostname=$(uname -n)
  kf_sweep_beside "$kf_lock"
  kf_w=$kf_home/..kilo-fleet.lock.kilo-fleet-tmp-$$
  kf_tries=0
  while :; do
    rm -rf "$kf_w"
    if ! mkdir -m 700 "$kf_w" 2>/dev/null; then
      # A HOME that cannot be written at all runs unlocked (every write would fail there anyway).
      [ -w "$kf_home" ] || return 0
      kf_fail "cannot create the lock $kf_lock"
    fi
    # The lock is made inside a temp dir and moved to HOME by name: rename(2) onto an existing non-empty
    # directory fails, so exactly one run gets it (mv onto the lock's own name would move into it instead).
    if mkdir -m 700 "$kf_w/.kilo-fleet.lock" && printf '%s %s\n' "$$" "$kf_hostname" >"$kf_w/.kilo-fleet.lock/owner"; then :; else
      rm -rf "$kf_w"
      kf_fail "cannot create the lock $kf_lock"
    fi
    if mv "$kf_w/.kilo-fleet.lock" "$kf_home/" 2>/dev/null </dev/null; then
      kf_locked=1
      rmdir "$kf_w" 2>/dev/null || rm -rf "$kf_w"
      return 0
    fi
    rm -rf "$kf_w"
    kf_break_if_stale
    kf_tries=$((kf_tries + 1))
    if [ "$kf_tries" -gt 1200 ]; then
      kf_owner=$(kf_read_owner)
      kf_fail "another kilo-fleet run holds $kf_lock${kf_owner:+ (pid ${kf_owner%% *} on ${kf_owner#* })} for over 60 s; if none is running, remove that directory and deploy again"
    fi
    kf_sleep
  done
}

kf_lock_release() {
  [ "$kf_locked" = 1 ] || return 0
  kf_locked=0
  kf_gone=$kf_home/..kilo-fleet.lock.kilo-fleet-tmp-$$
  rm -rf "$kf_gone"
  mv "$kf_lock" "$kf_gone" 2>/dev/null </dev/null && rm -rf "$kf_gone"
}

kf_on_exit() {
  kf_rc=$?
  trap - EXIT
  [ -z "$kf_tmp" ] || rm -rf "$kf_tmp"
  if [ "$kf_rc" != 0 ] && [ "${kf_undo_on_failure:-0}" = 1 ] && [ "$kf_locked" = 1 ]; then
    # A first install that failed: take back the directories it made, so HOME is as before.
    [ -n "$(kf_records version)" ] || kf_remove_all >/dev/null 2>&1 || :
  fi
  kf_lock_release
  exit "$kf_rc"
}

# The start of every run that changes HOME: the exit and signal traps (a signal exits through kf_on_exit,
# which cleans up and releases the lock), then the per-HOME lock, then a sweep of what an interrupted run left.
kf_begin() {
  trap kf_on_exit EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
  kf_lock_take
  kf_migrate
  kf_sweep
}

# ---------------------------------------------------------------------------------------------------------
# The record (state file)

# Prints the record's lines of kind $1 without the kind ("" when none).
kf_records() {
  [ -f "$kf_state" ] || return 0
  awk -v k="$1" 'index($0, k " ") == 1 { print substr($0, length(k) + 2) }' "$kf_state"
}

# Replaces the record with stdin, atomically.
kf_state_write() {
  kf_sw=$kf_state_dir/.kilo-package.kilo-fleet-tmp-$$
  cat >"$kf_sw" && mv -f "$kf_sw" "$kf_state" || {
    rm -f "$kf_sw"
    kf_fail "cannot write $kf_state"
  }
}

# Adds line "$1" to the record (unless there).
kf_state_add() {
  if [ -f "$kf_state" ] && awk -v l="$1" '$0 == l { f = 1 } END { exit f ? 0 : 1 }' "$kf_state"; then return 0; fi
  { [ ! -f "$kf_state" ] || cat "$kf_state"; printf '%s\n' "$1"; } | kf_state_write
}

# Removes the lines starting with "$1" from the record.
kf_state_drop() {
  [ -f "$kf_state" ] || return 0
  awk -v p="$1" 'index($0, p) != 1' "$kf_state" | kf_state_write
}

# The directories `mkdir -p $1` would create, outermost first, one a line.
kf_missing_dirs() {
  kf_d=$1
  kf_out=
  while [ -n "$kf_d" ] && [ ! -d "$kf_d" ]; do
    kf_out="$kf_d
$kf_out"
    kf_d=${kf_d%/*}
  done
  printf '%s' "$kf_out"
}

# Makes the state dir (and its missing parents) with the record inside at once: the chain is built under a
# temp name beside its outermost missing directory and renamed into place, so a directory kilo-fleet made is
# never left without the record that says so.
kf_state_ensure() {
  [ -d "$kf_state_dir" ] && return 0
  kf_missing=$(kf_missing_dirs "$kf_state_dir")
  kf_top=${kf_missing%%'
'*}
  kf_parent=${kf_top%/*}
  [ -w "$kf_parent" ] || kf_fail "cannot create $kf_top: permission denied"
  kf_w=$kf_parent/.${kf_top##*[/]}.kilo-fleet-tmp-$$
  rm -rf "$kf_w"
  kf_inner=$kf_w/${kf_top##*[/]}${kf_state_dir#"$kf_top"}
  mkdir -p "$kf_inner" || kf_fail "cannot create $kf_top"
  {
    printf 'root %s\nlink %s\n' "$kf_kilo_dir" "$kf_link"
    printf '%s\n' "$kf_missing" | awk 'NF { print "dir " $0 }'
  } >"$kf_inner/kilo-package" || kf_fail "cannot write $kf_state"
  if ! mv "$kf_w/${kf_top##*[/]}" "$kf_parent/" 2>/dev/null </dev/null; then
    rm -rf "$kf_w"
    kf_fail "cannot create $kf_top"
  fi
  rmdir "$kf_w" 2>/dev/null || :
}

# `mkdir -p $1`, each new directory recorded first (so a crash leaves a recorded dir that may not exist,
# never an unrecorded one).
kf_mkdirs_recorded() {
  kf_state_ensure
  [ -f "$kf_state" ] || printf 'root %s\nlink %s\n' "$kf_kilo_dir" "$kf_link" | kf_state_write
  kf_missing=$(kf_missing_dirs "$1")
  [ -n "$kf_missing" ] || return 0
  kf_top=${kf_missing%%'
'*}
  [ -w "${kf_top%/*}" ] || kf_fail "cannot create $kf_top: permission denied"
  {
    cat "$kf_state"
    printf '%s\n' "$kf_missing" | awk 'NF { print "dir " $0 }'
  } | kf_state_write
  mkdir -p "$1" 2>/dev/null || kf_fail "cannot create $1"
}

# Record $1 where it is: at the state dir, else where an earlier version kept it (read-only callers).
kf_record_file() {
  if [ ! -f "$kf_state_dir/$1" ] && [ -n "$kf_xdg_state_dir" ] && [ -f "$kf_xdg_state_dir/$1" ]; then
    printf '%s' "$kf_xdg_state_dir/$1"
  else
    printf '%s' "$kf_state_dir/$1"
  fi
}

# The element lines (JSON string literals) of dirs.json $1, the host tool's list of directories it made.
kf_dirs_lines() {
  [ ! -f "$1" ] || awk '{ sub(/^[ \t]+/, ""); sub(/,[ \t]*$/, "") } /^"/ { print }' "$1"
}

# Writes stdin's element lines (deduplicated) as dirs.json $1, atomically, as JSON.stringify(list, null, 2).
kf_dirs_write() {
  kf_dw=${1%/*}/.${1##*[/]}.kilo-fleet-tmp-$$
  (umask 077 && awk 'NF && !seen[$0]++ { l[n++] = $0 } END {
    if (n == 0) { print "[]"; exit }
    print "["; for (i = 0; i < n; i++) print "  " l[i] (i < n - 1 ? "," : ""); print "]"
  }' >"$kf_dw") && mv -f "$kf_dw" "$1" || {
    rm -f "$kf_dw"
    kf_fail "cannot write $1"
  }
}

# Whether directory $1 is in the records' lists of directories kilo-fleet made.
kf_recorded_dir() {
  kf_records dir | awk -v d="$1" '$0 == d { f = 1 } END { exit f ? 0 : 1 }' && return 0
  kf_rj=$(kf_json_str "$1")
  kf_dirs_lines "$kf_state_dir/dirs.json" | awk -v d="$kf_rj" '$0 == d { f = 1 } END { exit f ? 0 : 1 }'
}

# Removes directory $1 from the records' lists of directories kilo-fleet made.
kf_drop_dir() {
  if [ -f "$kf_state" ]; then
    awk -v l="dir $1" '$0 != l' "$kf_state" | kf_state_write
  fi
  [ -f "$kf_state_dir/dirs.json" ] || return 0
  kf_rj=$(kf_json_str "$1")
  kf_dirs_lines "$kf_state_dir/dirs.json" | awk -v d="$kf_rj" '$0 != d' | kf_dirs_write "$kf_state_dir/dirs.json"
}

# Moves the records an earlier version kept under XDG_STATE_HOME to the state dir (host/records.ts does the
# same): the new directories are recorded in each record that can remove them; the old place and the
# parents kilo-fleet made for it go once empty; a step record at both places is left, with a warning.
kf_migrate() {
  kf_mo=$kf_xdg_state_dir
  [ -n "$kf_mo" ] && [ -d "$kf_mo" ] && [ ! -L "$kf_mo" ] || return 0
  kf_mnames=
  for kf_n in config.json shell.json install kilo-package dirs.json; do
    [ ! -f "$kf_mo/$kf_n" ] || kf_mnames="$kf_mnames $kf_n"
  done
  [ -n "$kf_mnames" ] || return 0
  kf_made=$(kf_missing_dirs "$kf_state_dir")
  kf_state_ensure
  for kf_n in $kf_mnames; do
    kf_mf=$kf_mo/$kf_n
    kf_mt=$kf_state_dir/$kf_n
    case $kf_n in
    kilo-package)
      { cat "$kf_mf" && { [ ! -f "$kf_state" ] || cat "$kf_state"; }; } | awk 'NF && !seen[$0]++' | kf_state_write
      rm -f "$kf_mf"
      ;;
    dirs.json) ;;
    *)
      if [ ! -f "$kf_mt" ]; then
        kf_mw=$kf_state_dir/.$kf_n.kilo-fleet-tmp-$$
        (umask 077 && cat "$kf_mf" >"$kf_mw") && mv -f "$kf_mw" "$kf_mt" || {
          rm -f "$kf_mw"
          kf_fail "cannot move $kf_mf to $kf_mt"
        }
        rm -f "$kf_mf"
      elif [ "$(cat "$kf_mf")" = "$(cat "$kf_mt")" ]; then
        rm -f "$kf_mf"
      else
        printf 'kilo-fleet: warning: %s and %s are both kilo-fleet records; the one at %s is used, the other is left for you to check and remove\n' \
          "$kf_mf" "$kf_mt" "$kf_state_dir" >&2
      fi
      ;;
    esac
  done
  # The host tool's list of directories: the old one's and the new place's, when it has records there.
  if [ -f "$kf_mo/dirs.json" ] || { [ -n "$kf_made" ] &&
    { [ -f "$kf_state_dir/config.json" ] || [ -f "$kf_state_dir/shell.json" ] || [ -f "$kf_state_dir/install" ]; }; }; then
    {
      kf_dirs_lines "$kf_state_dir/dirs.json"
      kf_dirs_lines "$kf_mo/dirs.json"
      printf '%s\n' "$kf_made" | while IFS= read -r kf_d; do [ -z "$kf_d" ] || { kf_json_str "$kf_d" && echo; }; done
    } | kf_dirs_write "$kf_state_dir/dirs.json"
    rm -f "$kf_mo/dirs.json"
  fi
  # The old place, then each parent kilo-fleet made for it, while empty.
  kf_md=$kf_mo
  while rmdir "$kf_md" 2>/dev/null; do
    kf_drop_dir "$kf_md"
    kf_md=${kf_md%/*}
    [ -n "$kf_md" ] && kf_recorded_dir "$kf_md" || break
  done
  kf_log "moved its records from $kf_mo to $kf_state_dir"
}

# ---------------------------------------------------------------------------------------------------------
# The link

# Whether the link exists and points into kilo dir $1 (kilo-fleet made it).
kf_link_is_ours() {
  [ -L "$kf_link" ] || return 1
  kf_target=$(readlink "$kf_link") || return 1
  case $kf_target in "$1"/*) return 0 ;; esac
  return 1
}

kf_check_link() {
  if [ -e "$kf_link" ] || [ -L "$kf_link" ]; then
    kf_link_is_ours "$kf_kilo_dir" && return 0
    kf_fail "$kf_link exists and kilo-fleet did not install it (a kilo from npm or by hand?); kilo-fleet will not replace it: remove it (npm: npm uninstall -g --prefix ~/.local @kilocode/cli) or set install.method npm, and deploy again"
  fi
}

kf_link_to() {
  kf_mkdirs_recorded "$kf_bin_dir"
  kf_check_link
  kf_lt=$kf_bin_dir/.kilo.kilo-fleet-tmp-$$
  rm -f "$kf_lt"
  ln -s "$1" "$kf_lt" && mv -f "$kf_lt" "$kf_link" </dev/null || {
    rm -f "$kf_lt"
    kf_fail "cannot link $kf_link to $1"
  }
}

# ---------------------------------------------------------------------------------------------------------
# Removing

# Renames directory $1 away (atomic), then removes it.
kf_remove_dir() {
  [ -e "$1" ] || [ -L "$1" ] || return 0
  kf_g=${1%/*}/.${1##*[/]}.kilo-fleet-tmp-$$
  rm -rf "$kf_g"
  mv "$1" "$kf_g" </dev/null && rm -rf "$kf_g"
}

# Whether directory $1 holds nothing but the names in $2 (space-separated).
kf_only_holds() {
  kf_names=$(ls -A "$1" 2>/dev/null) || return 1
  printf '%s\n' "$kf_names" | awk -v ok=" $2 " 'NF && index(ok, " " $0 " ") == 0 { bad = 1 } END { exit bad ? 1 : 0 }'
}

# Removes everything the record lists, then the record, then the directories kilo-fleet made. Prints
# `changed` when something was removed.
kf_remove_all() {
  [ -f "$kf_state" ] || return 0
  kf_root=$(kf_records root)
  kf_root=${kf_root%%'
'*}
  kf_rlink=$(kf_records link)
  kf_rlink=${kf_rlink%%'
'*}
  [ -n "$kf_root" ] || kf_root=$kf_kilo_dir
  [ -n "$kf_rlink" ] || kf_rlink=$kf_link
  kf_changed=
  if [ -L "$kf_rlink" ]; then
    kf_target=$(readlink "$kf_rlink") || kf_target=
    case $kf_target in "$kf_root"/*) rm -f "$kf_rlink" && kf_changed=1 ;; esac
  fi
  kf_versions=$(kf_records version)
  if [ -n "$kf_versions" ]; then
    printf '%s\n' "$kf_versions" | while read -r kf_v kf_p kf_i; do
      [ -n "$kf_v" ] && [ -n "$kf_p" ] || continue
      kf_remove_dir "$kf_root/$kf_v/$kf_p"
    done
    kf_changed=1
  fi
  kf_state_drop 'version '
  # The directories made, deepest first; those on the state dir's own chain go last, at once.
  kf_dirs=$(kf_records dir | awk '{ d[n++] = $0 } END {
    for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (length(d[j]) > length(d[i])) { t = d[i]; d[i] = d[j]; d[j] = t }
    for (i = 0; i < n; i++) if (!seen[d[i]]++) print d[i]
  }')
  kf_chain=
  kf_p=$kf_state_dir
  while [ "${#kf_p}" -gt 1 ]; do
    kf_chain="$kf_chain$kf_p
"
    kf_p=${kf_p%/*}
  done
  kf_old_ifs=$IFS
  IFS='
'
  set -f
  for kf_d in $kf_dirs; do
    case "
$kf_chain" in *"
$kf_d
"*) continue ;; esac
    rmdir "$kf_d" 2>/dev/null && kf_changed=1
  done
  # The outermost recorded chain directory that holds nothing but the chain (and the record).
  kf_top=
  kf_child=kilo-package
  for kf_d in $kf_chain; do
    case "
$kf_dirs
" in *"
$kf_d
"*) ;; *) break ;; esac
    kf_only_holds "$kf_d" "$kf_child" || break
    kf_top=$kf_d
    kf_child=${kf_d##*[/]}
  done
  IFS=$kf_old_ifs
  set +f
  if [ -n "$kf_top" ]; then
    kf_remove_dir "$kf_top"
  else
    rm -f "$kf_state"
  fi
  [ -z "$kf_changed" ] || echo changed
}

# ---------------------------------------------------------------------------------------------------------
# Commands

kf_result() {
  printf 'kilo-fleet-result {"step":"install","method":"package","kiloVersion":%s,"platform":%s,"bin":%s,"changed":%s}\n' \
    "$(kf_json_str "$1")" "$(kf_json_str "$2")" "$(kf_json_str "$kf_link")" "$3"
}

# Prints the first string value of key $2 in JSON file $1.
kf_json_field() {
  awk -v k="$2" '{ t = t $0 " " } END {
    if (match(t, "\"" k "\"[ \t]*:[ \t]*\"[^\"]*\"")) { s = substr(t, RSTART, RLENGTH); sub(/^[^:]*:[ \t]*"/, "", s); sub(/"$/, "", s); print s }
  }' "$1"
}

kf_install() {
  umask 022
  [ $# -eq 3 ] || {
    printf 'kilo-fleet: usage: kilo-package.sh install <version> <registry-url> <lock-lines>\n' >&2
    exit 2
  }
  kf_version=$1
  kf_registry=$2
  kf_lines=$3
  case $kf_version in
    latest) ;;
    '' | *[!0-9A-Za-z.+-]* | [!0-9]*) kf_fail "\"$kf_version\" is not a kilo version" ;;
  esac
  case $kf_registry in '' | http://* | https://*) ;; *) kf_fail "the registry \"$kf_registry\" is not an http(s) URL" ;; esac
  kf_registry=${kf_registry%/}
  kf_check_tools
  kf_paths
  kf_platform=$(kf_platform) || exit 1
  kf_pkg=@kilocode/cli-$kf_platform
  kf_entry=$(printf '%s\n' "$kf_lines" | awk -v p="$kf_platform" '{ sub(/\r$/, "") } $1 == p { print $2 " " $3; exit }')
  kf_url=${kf_entry% *}
  kf_integrity=${kf_entry#* }
  kf_locked_install=1
  if [ -z "$kf_entry" ]; then
    [ "$kf_version" = latest ] || kf_fail "the lock lines for kilo $kf_version have no entry for platform $kf_platform ($kf_pkg); add it with: npm run kilo-fleet -- lock"
    kf_locked_install=0
  fi

  kf_begin
  kf_check_link
  [ -n "$(kf_records version)" ] || kf_undo_on_failure=1

  if [ "$kf_locked_install" = 0 ]; then
    # `latest`, unlocked: the registry's metadata names the version and its sha512.
    kf_mkdirs_recorded "$kf_kilo_dir"
    kf_tmp=$kf_kilo_dir/.download.kilo-fleet-tmp-$$
    mkdir "$kf_tmp" || kf_fail "cannot create $kf_tmp"
    kf_reg=${kf_registry:-https://registry.npmjs.org}
    kf_download "$kf_reg/@kilocode%2fcli/latest" "$kf_tmp/wrapper.json" "$kf_tmp/err" ||
      kf_fail "cannot ask $kf_reg for the latest @kilocode/cli${kf_via:-} ($(kf_err_line "$kf_tmp/err"))$(kf_tls_hint)"
    kf_version=$(kf_json_field "$kf_tmp/wrapper.json" version)
    case $kf_version in '' | *[!0-9A-Za-z.+-]*) kf_fail "the registry $kf_reg gave no usable latest version of @kilocode/cli" ;; esac
    kf_download "$kf_reg/@kilocode%2fcli-$kf_platform/$kf_version" "$kf_tmp/platform.json" "$kf_tmp/err" ||
      kf_fail "cannot read $kf_pkg@$kf_version from $kf_reg${kf_via:-} ($(kf_err_line "$kf_tmp/err"))$(kf_tls_hint)"
    kf_url=$(kf_json_field "$kf_tmp/platform.json" tarball)
    kf_integrity=$(kf_json_field "$kf_tmp/platform.json" integrity)
  fi
  case $kf_url in http://* | https://*) ;; *) kf_fail "the lock line for $kf_platform has no tarball URL" ;; esac
  kf_want=${kf_integrity#sha512-}
  case $kf_integrity in
    sha512-*) [ "${#kf_want}" -eq 88 ] || kf_fail "the sha512 integrity for $kf_pkg@$kf_version is malformed" ;;
    *) kf_fail "the lock line for $kf_platform has no sha512 integrity (sha512-...)" ;;
  esac
  case $kf_want in *[!A-Za-z0-9+/=]*) kf_fail "the sha512 integrity for $kf_pkg@$kf_version is malformed" ;; esac
  # A mirror registry serves the npmjs tarballs under its own URL (npm does the same rewrite).
  if [ -n "$kf_registry" ]; then
    case $kf_url in https://registry.npmjs.org/*) kf_url=$kf_registry/${kf_url#https://registry.npmjs.org/} ;; esac
  fi

  kf_vdir=$kf_kilo_dir/$kf_version
  kf_target=$kf_vdir/$kf_platform
  kf_bin=$kf_target/bin/kilo
  kf_rec="$kf_version $kf_platform $kf_integrity"
  kf_have=0
  if kf_records version | awk -v l="$kf_rec" '$0 == l { f = 1 } END { exit f ? 0 : 1 }' && [ -x "$kf_bin" ]; then
    kf_have=1
    if [ -L "$kf_link" ] && [ "$(readlink "$kf_link")" = "$kf_bin" ]; then
      kf_result "$kf_version" "$kf_platform" false
      exit 0
    fi
  elif [ -e "$kf_target" ] && ! kf_records version | awk -v p="$kf_version $kf_platform " 'index($0, p) == 1 { f = 1 } END { exit f ? 0 : 1 }'; then
    kf_fail "$kf_target exists but kilo-fleet has no record of installing it; remove it and deploy again"
  fi

  if [ "$kf_have" = 0 ]; then
    kf_mkdirs_recorded "$kf_kilo_dir"
    if [ -z "$kf_tmp" ]; then
      kf_tmp=$kf_kilo_dir/.download.kilo-fleet-tmp-$$
      mkdir "$kf_tmp" || kf_fail "cannot create $kf_tmp"
    fi
    kf_log "downloading $kf_url"
    kf_download "$kf_url" "$kf_tmp/package.tgz" "$kf_tmp/err" ||
      kf_fail "cannot download $kf_pkg@$kf_version from $kf_url${kf_via:-} ($(kf_err_line "$kf_tmp/err"))$(kf_tls_hint); nothing was changed"
    kf_got=$(kf_sha512_hex "$kf_tmp/package.tgz" | kf_hex_to_base64)
    [ "${#kf_got}" -eq 88 ] || kf_fail "cannot compute the sha512 of the downloaded $kf_pkg@$kf_version; nothing was changed"
    [ "$kf_got" = "$kf_want" ] ||
      kf_fail "the downloaded $kf_pkg@$kf_version does not match the lock file's sha512 (lock: $kf_integrity, downloaded: sha512-$kf_got, from $kf_url); nothing was changed"
    mkdir "$kf_tmp/x" && (cd "$kf_tmp/x" && gzip -dc ../package.tgz | tar -xf -) 2>"$kf_tmp/err" ||
      kf_fail "cannot unpack $kf_pkg@$kf_version into $kf_tmp ($(kf_err_line "$kf_tmp/err")); nothing was changed"
    rm -f "$kf_tmp/package.tgz"
    [ -f "$kf_tmp/x/package/bin/kilo" ] || kf_fail "$kf_pkg@$kf_version has no bin/kilo; nothing was changed"
    mv "$kf_tmp/x/package" "$kf_tmp/x/$kf_platform" || kf_fail "cannot rename inside $kf_tmp"
    kf_check_bin="$kf_tmp/x/$kf_platform/bin/kilo"
  else
    kf_check_bin=$kf_bin
    kf_tmp=${kf_tmp:-$kf_kilo_dir/.check.kilo-fleet-tmp-$$}
    mkdir -p "$kf_tmp" || kf_fail "cannot create $kf_tmp"
  fi

  # The package is the version asked for (its package.json; the sha512 already pins the bytes of a locked one).
  kf_out=$(kf_json_field "${kf_check_bin%/bin/kilo}/package.json" version)
  [ "$kf_out" = "$kf_version" ] ||
    kf_fail "$kf_pkg@$kf_version says it is version \"$kf_out\" (its package.json); nothing was changed"
  # The binary must run here (a CPU without AVX2, a musl/glibc mix-up). Started as the Bun it is built on
  # (BUN_BE_BUN=1: the runtime's own --version, ~20 ms, instead of kilo's start-up, which takes seconds and
  # makes kilo's directories), with a throw-away HOME all the same.
  mkdir -p "$kf_tmp/home" || kf_fail "cannot create $kf_tmp/home"
  kf_out=$(cd "$kf_tmp" && env -i PATH="$PATH" HOME="$kf_tmp/home" TMPDIR="$kf_tmp/home" BUN_BE_BUN=1 \
    BUN_RUNTIME_TRANSPILER_CACHE_PATH=0 "$kf_check_bin" --version 2>&1 </dev/null) ||
    kf_fail "$kf_pkg@$kf_version does not run on this host ($(printf '%s\n' "$kf_out" | awk 'NF { l = $0 } END { print substr(l, 1, 300) }')); nothing was changed"

  if [ "$kf_have" = 0 ]; then
    kf_mkdirs_recorded "$kf_vdir"
    kf_old=
    if [ -e "$kf_target" ]; then
      # Ours, with another sha512 (the lock changed): the new one replaces it.
      kf_old=$kf_vdir/.$kf_platform.kilo-fleet-tmp-$$
      rm -rf "$kf_old"
      mv "$kf_target" "$kf_old" </dev/null || kf_fail "cannot move $kf_target aside"
    fi
    kf_state_drop "version $kf_version $kf_platform "
    kf_state_add "version $kf_rec"
    mv "$kf_tmp/x/$kf_platform" "$kf_vdir/" </dev/null 2>"$kf_tmp/err" ||
      kf_fail "cannot move $kf_pkg@$kf_version into $kf_target ($(kf_err_line "$kf_tmp/err"))"
    [ -z "$kf_old" ] || rm -rf "$kf_old"
  fi
  kf_link_to "$kf_bin"
  kf_undo_on_failure=0

  # Earlier versions of this platform that kilo-fleet installed go once the new one is linked.
  kf_prev=$(kf_records version | awk -v v="$kf_version" -v p="$kf_platform" '$1 != v && $2 == p { print $1 }')
  for kf_v in $kf_prev; do
    kf_remove_dir "$kf_kilo_dir/$kf_v/$kf_platform"
    kf_state_drop "version $kf_v $kf_platform "
    kf_records dir | awk -v d="$kf_kilo_dir/$kf_v" '$0 == d { f = 1 } END { exit f ? 0 : 1 }' &&
      rmdir "$kf_kilo_dir/$kf_v" 2>/dev/null || :
  done
  kf_result "$kf_version" "$kf_platform" true
}

kf_uninstall() {
  umask 022
  kf_paths
  kf_begin
  kf_changed=$(kf_remove_all)
  if [ -n "$kf_changed" ]; then
    kf_log "removed the kilo kilo-fleet installed from its package"
    printf 'kilo-fleet-result {"step":"install-delete","outcome":"removed the kilo installed from its package"}\n'
  else
    printf 'kilo-fleet-result {"step":"install-delete","outcome":"no kilo package installed by kilo-fleet"}\n'
  fi
}

# ---------------------------------------------------------------------------------------------------------
# The host tool's header (host/header.sh) embeds everything above this line (without the first line).

case ${1:-} in
  platform) kf_platform ;;
  check-tools) kf_check_tools ;;
  install)
    shift
    kf_install "$@"
    ;;
  uninstall) kf_uninstall ;;
  *)
    printf 'kilo-fleet: usage: kilo-package.sh platform | check-tools | install <version> <registry-url> <lock-lines> | uninstall\n' >&2
    exit 2
    ;;
esac
