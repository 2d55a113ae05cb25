/**
 * The config step: merges the managed keys into kilo.jsonc with the same code the unit tests cover
 * (kiloConfigMerge.ts, bundled into the host tool). Delete strips them again.
 */
import { KILO_CONFIG_BACKUP, KILO_CONFIG_FILE, STATE_DIR } from "../../common/hostPaths";
import { managedKeyPaths, renderKiloConfig } from "../kiloConfig";
import type { ResolvedHost, Settings } from "../settings";
import { shQuote } from "../../common/shellQuote";
import type { HostScript } from "./index";
import { prelude, script } from "./prelude";
import { embedTool } from "./tool";

/**
 * create prints warnings (stderr, one per file and key kilo applies over kilo.jsonc), then
 * `kilo-fleet: <file> created|updated|already up to date (kilo-fleet manages: ...)`.
 * delete prints what it removed; a pre-existing file's backup is removed when the file is back to it.
 */
export function configScript(settings: Settings, host: ResolvedHost): HostScript {
  const managed = renderKiloConfig(settings, host);
  const paths = managedKeyPaths(managed);
  const run = (command: string, extra: string) =>
    script(
      prelude(host.name),
      "kf_require_node",
      "kf_mktemp",
      embedTool(),
      `"$KF_NODE" "$kf_tool" ${command} home="$HOME" config-file="${KILO_CONFIG_FILE}" backup-file="${KILO_CONFIG_BACKUP}" state-dir="${STATE_DIR}" paths=${shQuote(JSON.stringify(paths))}${extra} </dev/null || exit 1`,
    );
  return {
    create: run("config-apply", ` managed=${shQuote(JSON.stringify(managed))}`),
    delete: run("config-delete", ""),
  };
}
