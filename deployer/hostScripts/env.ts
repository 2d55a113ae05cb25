/**
 * The env step: the API key arrives on stdin only (exactly the key, optionally one trailing newline) and
 * goes into the env file; each configured shell's startup file gets the managed block that sources it
 * and puts ~/.local/bin on PATH. The key is never in the script, argv, environment or output.
 *
 * Env file (ENV_FILE, mode 0600, its directory 0700), POSIX sh:
 *   # kilo-fleet: the Codex Pooler API key for kilo. ...
 *   export CODEX_POOLER_API_KEY='<key, sh single-quoted>'
 *   export KILO_DISABLE_AUTOUPDATE=1          (only when the host's kiloVersion is pinned)
 * FISH_ENV_FILE holds the same as `set -gx NAME '<value>'` when fish is among the shells.
 *
 * Blocks: bash at the top of ~/.bashrc (before a distribution's "not interactive: return"), zsh ~/.zshrc,
 * sh ~/.profile and fish ~/.config/fish/conf.d/kilo-fleet.fish at the end. Default shells: those whose
 * rc file exists (fish: ~/.config/fish exists), plus sh. A shell dropped from an explicit list loses its
 * block on the next run. Rotation (same script, new stdin) rewrites only the env file(s).
 */
import { ENV_FILE, FISH_ENV_FILE, KILO_CONFIG_DIR, LOCAL_BIN, STATE_DIR } from "../../common/hostPaths";
import { type ResolvedHost, type Settings, SHELL_RC_FILES } from "../settings";
import { shQuote } from "../../common/shellQuote";
import type { HostScript } from "./index";
import { prelude, script } from "./prelude";
import { embedTool } from "./tool";

export function envScript(settings: Settings, host: ResolvedHost): HostScript {
  const paths = `home="$HOME" config-dir="${KILO_CONFIG_DIR}" env-file="${ENV_FILE}" fish-env-file="${FISH_ENV_FILE}" bin-dir="${LOCAL_BIN}" state-dir="${STATE_DIR}" rc-files=${shQuote(JSON.stringify(SHELL_RC_FILES))}`;
  const head = [prelude(host.name), "kf_require_node", "kf_mktemp", embedTool()];
  const shells = host.shells ? [...new Set(host.shells)].join(",") : "default";
  return {
    // stdin (the key) goes to the tool and nowhere else.
    create: script(
      ...head,
      `"$KF_NODE" "$kf_tool" env-apply ${paths} var=${shQuote(settings.apiKeyEnvVar)} pinned=${host.kiloVersion === "latest" ? "0" : "1"} shells=${shQuote(shells)} || exit 1`,
    ),
    delete: script(...head, `"$KF_NODE" "$kf_tool" env-delete ${paths} </dev/null || exit 1`),
  };
}
