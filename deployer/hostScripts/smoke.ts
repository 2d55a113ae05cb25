/**
 * The smoke check, the last step of every KiloHost (issue 5): proves the deployed host works the way the
 * Codex Pooler docs describe (shared/codex-pooler-kilo.md, point 10) and fails the deploy with one line a
 * person can act on when it does not.
 *
 * The script (POSIX sh, on the shared prelude: node found as the other steps find it, one temp dir
 * removed on every exit):
 * 1. sources the env file the deploy wrote (the same file the rc blocks source, so this proves that path;
 *    Debian's .bashrc returns early for non-interactive shells, so it is sourced directly);
 * 2. makes a fresh `mktemp -d` directory (never the user's files: `--auto` approves tools) and removes it
 *    on every exit; kilo's config (a copy of the deployed config files), cache, data and state dirs
 *    (session database, logs) and TMPDIR are pointed inside it too, so a check leaves nothing behind:
 *    not kilo's first-run rewrite of kilo.jsonc, not the user's kilo history, and nothing a server echoed
 *    (kilo stores error responses in its session database);
 * 3. runs the embedded node program (smoke-runner.ts), which checks the key variable is non-empty and
 *    exported (kilo silently sends no Authorization header otherwise), checks the pooler answers at the
 *    base URL (short timeout), reads kilo's version, then runs the seed command below in its own process
 *    group under `smokeCheck.timeoutSeconds` and reads kilo's JSON events.
 *
 * Passes only when kilo-ok.txt holds exactly `kilo ok` (one trailing newline tolerated) AND kilo's final
 * text event is `kilo ok`: kilo exits 0 even when no tool ran.
 *
 * Output, success (stdout, last line): `kilo-fleet: smoke ok kilo=<version> seconds=<n.n>` (see
 * `parseSmokeOutput`). Failure (stderr, one line, exit 1): `smoke check failed on <host>: <cause>`.
 * The API key is never printed: every line is redacted, even when the pooler echoes the key.
 */
import { ENV_FILE, KILO_BIN, KILO_CONFIG_DIR } from "../../common/hostPaths";
import type { ResolvedHost, Settings } from "../settings";
import { shQuote } from "../../common/shellQuote";
import type { HostScript } from "./index";
import { prelude, script } from "./prelude";
import { SMOKE_RUNNER_JS } from "./smoke-runner";

/** The seed's smoke prompt (codex-pooler-kilo docs, point 10). Part of what the check proves. */
export const SMOKE_PROMPT =
  "Use your tools to create kilo-ok.txt containing exactly: kilo ok. After the file exists, reply with exactly: kilo ok";

/** The last line of a passing smoke check. */
export const SMOKE_OK_LINE = /^kilo-fleet: smoke ok kilo=(\S+) seconds=(\d+(?:\.\d+)?)$/;

export interface SmokeResult {
  passed: true;
  kiloVersion: string;
  seconds: number;
}

/** Reads a passing check's result from its stdout (the last non-empty line); undefined if it is not one. */
export function parseSmokeOutput(stdout: string): SmokeResult | undefined {
  const last = stdout.trimEnd().split("\n").pop() ?? "";
  const m = SMOKE_OK_LINE.exec(last.trim());
  return m ? { passed: true, kiloVersion: m[1], seconds: Number(m[2]) } : undefined;
}

/** The smoke check of one host. Create only: there is nothing to update or delete on the host. */
export function smokeScript(settings: Settings, host: ResolvedHost): HostScript {
  const model = `${settings.providerId}/${host.model}`;
  const create = script(
    "# kilo-fleet smoke check (issue 5): the seed's kilo command against the pooler, in a scratch directory.",
    prelude(host.name),
    // The same node the other steps found (even off the non-interactive PATH); kilo's launcher needs it on PATH.
    "kf_require_node",
    `host=${shQuote(host.name)}
base_url=${shQuote(settings.poolerBaseUrl)}
key_var=${shQuote(settings.apiKeyEnvVar)}
model=${shQuote(model)}
timeout_s=${shQuote(String(settings.smokeCheck.timeoutSeconds))}
prompt=${shQuote(SMOKE_PROMPT)}
env_file="${ENV_FILE}"
config_dir="${KILO_CONFIG_DIR}"
kilo_bin="${KILO_BIN}"
smoke_js=${shQuote(SMOKE_RUNNER_JS)}

fail() {
  printf 'smoke check failed on %s: %s\\n' "$host" "$1" >&2
  exit 1
}

[ -x "$kilo_bin" ] || fail "kilo is not installed at $kilo_bin"
[ -r "$env_file" ] || fail "the env file $env_file is missing (the env step writes it)"
. "$env_file" || fail "sourcing $env_file failed"

# The scratch directory (removed on every exit by the prelude's trap): kilo works in work/.
kf_mktemp
mkdir "$kf_tmp/work" "$kf_tmp/tmp" "$kf_tmp/config" "$kf_tmp/config/kilo" && cd "$kf_tmp/work" ||
  fail "cannot use the scratch directory $kf_tmp"
# kilo reads a copy of the deployed config files: on its first run kilo rewrites kilo.jsonc (it adds
# "permission") and drops marker files beside it, and a deploy must not change the user's files that way.
for f in "$config_dir"/*.json "$config_dir"/*.jsonc; do
  [ -f "$f" ] || continue
  cp "$f" "$kf_tmp/config/kilo/" || fail "cannot copy $f into the scratch directory"
done
[ -f "$kf_tmp/config/kilo/kilo.jsonc" ] || fail "$config_dir/kilo.jsonc is missing (the config step writes it)"

KILO_DISABLE_MODELS_FETCH=1 KILO_TELEMETRY_LEVEL=off KILO_SESSION_RETRY_LIMIT=1 \\
XDG_CONFIG_HOME="$kf_tmp/config" XDG_CACHE_HOME="$kf_tmp/cache" \\
XDG_DATA_HOME="$kf_tmp/data" XDG_STATE_HOME="$kf_tmp/state" TMPDIR="$kf_tmp/tmp" \\
  "$KF_NODE" -e "$smoke_js" -- "$host" "$base_url" "$key_var" "$timeout_s" "$env_file" \\
  "$kilo_bin" run --model "$model" --pure --auto --format json --dir "$PWD" "$prompt"`,
  );
  return { create };
}
