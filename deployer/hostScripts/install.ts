/**
 * The install step: `npm install -g prefix="$HOME/.local" @kilocode/cli@<version>` (user level, no sudo),
 * skipped when the installed package.json already has the pinned version. npm's download cache is a temp
 * dir removed afterwards. Delete uninstalls only what kilo-fleet installed.
 *
 * "latest": the script asks the registry (`npm view @kilocode/cli@latest version`, one metadata request)
 * and skips when that version is installed; when the registry cannot be asked, it installs.
 */
import { KILO_BIN, KILO_PACKAGE_JSON, NPM_PREFIX, STATE_DIR } from "../../common/hostPaths";
import type { ResolvedHost, Settings } from "../settings";
import { shQuote } from "../../common/shellQuote";
import type { HostScript } from "./index";
import { prelude, script } from "./prelude";
import { embedTool } from "./tool";

export const KILO_PACKAGE = "@kilocode/cli";

/** The last stdout line of a successful install (and of a skipped one). */
export const INSTALLED_LINE = /^kilo-fleet: kilo (\S+) installed at (.+)$/;

/** Reads the version and path from the install step's stdout (its last matching line). */
export function parseInstallOutput(stdout: string): { version: string; bin: string } | undefined {
  const lines = stdout.split("\n").filter((l) => INSTALLED_LINE.test(l));
  const m = lines.length > 0 ? INSTALLED_LINE.exec(lines[lines.length - 1]) : null;
  return m ? { version: m[1], bin: m[2] } : undefined;
}

const READ_VERSION_JS =
  'try{const v=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).version;if(typeof v==="string")process.stdout.write(v)}catch(e){}';

function common(settings: Settings, host: ResolvedHost): string {
  return `${prelude(host.name)}
kf_require_node
kf_version=${shQuote(host.kiloVersion)}
kf_registry=${shQuote(settings.npmRegistry ?? "")}
kf_prefix="${NPM_PREFIX}"
kf_pkg="${KILO_PACKAGE_JSON}"
kf_bin="${KILO_BIN}"
kf_state_dir="${STATE_DIR}"
kf_mktemp
${embedTool()}
kf_tool() { "$KF_NODE" "$kf_tool" "$@"; }
kf_installed_version() { "$KF_NODE" -e ${shQuote(READ_VERSION_JS)} "$kf_pkg" 2>/dev/null </dev/null; }
# One line out of npm's log: its error code and first message line.
kf_npm_error() {
  kf_code=$(sed -n 's/^npm error code //p' "$kf_tmp/npm.log" | head -n 1)
  kf_msg=$(sed -n 's/^npm error //p' "$kf_tmp/npm.log" | grep -v -e '^[[:space:]]' -e '^code ' -e '^syscall ' -e '^errno ' -e '^A complete log' -e '^[{}]' -e '^$' | head -n 1)
  [ -n "$kf_msg" ] || kf_msg=$(grep -v '^[[:space:]]*$' "$kf_tmp/npm.log" | tail -n 1)
  printf '%s%s' "\${kf_code:+$kf_code: }" "$kf_msg" | tr -d '\\r' | cut -c 1-400
}
if [ -n "$kf_registry" ]; then set -- --registry "$kf_registry"; else set --; fi`;
}

export function installScript(settings: Settings, host: ResolvedHost): HostScript {
  const create = script(
    common(settings, host),
    `kf_want=$kf_version
if [ "$kf_version" = latest ]; then
  kf_want=$("$KF_NPM" view "${KILO_PACKAGE}@latest" version --cache "$kf_tmp/npm-cache" --no-update-notifier "$@" 2>/dev/null </dev/null | tail -n 1) || kf_want=
fi
kf_have=$(kf_installed_version) || kf_have=
if [ -n "$kf_want" ] && [ "$kf_have" = "$kf_want" ] && [ -x "$kf_bin" ]; then
  printf 'kilo-fleet: kilo %s is already installed at %s; npm not run\\n' "$kf_have" "$kf_prefix"
  kf_state=$(kf_tool install-state-get state-dir="$kf_state_dir") || exit 1
  [ -n "$kf_state" ] || kf_tool install-state state-dir="$kf_state_dir" set=preexisting || exit 1
else
  # The directories npm will create: recorded after success (removed again by the last delete), and
  # removed right away when npm fails, so a failed install leaves nothing behind.
  kf_new_dirs=
  for kf_d in "$kf_prefix" "$kf_prefix/lib" "$kf_prefix/lib/node_modules" "$kf_prefix/lib/node_modules/@kilocode" "$kf_prefix/bin"; do
    [ -d "$kf_d" ] || kf_new_dirs="$kf_d
$kf_new_dirs"
  done
  # --ignore-scripts: kilo's postinstall only hard-links the platform binary (its launcher finds the
  # platform package by itself) and runs \`kilo --version\`, which makes kilo's cache, data and state
  # directories in HOME; with it off, an install adds nothing outside the prefix and no package code runs.
  if ! "$KF_NPM" install -g --prefix "$kf_prefix" --cache "$kf_tmp/npm-cache" --ignore-scripts --no-audit --no-fund --no-update-notifier "$@" "${KILO_PACKAGE}@$kf_version" >"$kf_tmp/npm.log" 2>&1 </dev/null; then
    kf_err=$(kf_npm_error)
    printf '%s' "$kf_new_dirs" | while IFS= read -r kf_d; do [ -z "$kf_d" ] || rmdir "$kf_d" 2>/dev/null || :; done
    kf_die "npm install ${KILO_PACKAGE}@$kf_version failed on $kf_host ($kf_err)"
  fi
  printf '%s' "$kf_new_dirs" | while IFS= read -r kf_d; do [ -z "$kf_d" ] || kf_tool record-dir state-dir="$kf_state_dir" dir="$kf_d" || exit 1; done || exit 1
  kf_have=$(kf_installed_version) || kf_have=
  [ -n "$kf_have" ] && [ -x "$kf_bin" ] || kf_die "npm install ${KILO_PACKAGE}@$kf_version on $kf_host left no kilo at $kf_bin"
  kf_tool install-state state-dir="$kf_state_dir" set=installed || exit 1
fi
printf 'kilo-fleet: kilo %s installed at %s\\n' "$kf_have" "$kf_bin"`,
  );
  const del = script(
    common(settings, host),
    `kf_state=$(kf_tool install-state-get state-dir="$kf_state_dir") || exit 1
if [ "$kf_state" = installed ]; then
  if [ -d "$kf_prefix/lib/node_modules/${KILO_PACKAGE}" ]; then
    "$KF_NPM" uninstall -g --prefix "$kf_prefix" --cache "$kf_tmp/npm-cache" --no-audit --no-fund --no-update-notifier "$@" "${KILO_PACKAGE}" >"$kf_tmp/npm.log" 2>&1 </dev/null ||
      kf_die "npm uninstall ${KILO_PACKAGE} failed on $kf_host ($(kf_npm_error))"
  fi
  printf 'kilo-fleet: uninstalled kilo from %s\\n' "$kf_prefix"
else
  printf 'kilo-fleet: left kilo in place at %s (kilo-fleet did not install it)\\n' "$kf_prefix"
fi
kf_tool install-state state-dir="$kf_state_dir" set=forget || exit 1`,
  );
  return { create, delete: del };
}
