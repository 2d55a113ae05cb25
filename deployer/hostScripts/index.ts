/**
 * The host scripts: pure functions, settings in, POSIX `sh` text out. Each step of a KiloHost is one
 * `HostScript`, run by a `@pulumi/command` Command (`local.Command` via `/bin/sh -c`, `remote.Command`
 * via `remoteCommandLine`).
 *
 * What each step prints (stdout; failures are one `kilo-fleet: ...` line on stderr and exit 1):
 *   preflight  `kilo-fleet: node <v> at <path>, npm <v> at <path> on <host>`
 *   install    last line `kilo-fleet: kilo <version> installed at <path>` (parseInstallOutput reads it)
 *   config     `kilo-fleet: <kilo.jsonc> created|updated|already up to date (kilo-fleet manages: ...)`;
 *              warnings on stderr, one per file and key that kilo applies over kilo.jsonc
 *   env        `kilo-fleet: <VAR> written to <env file> (mode 0600); shell blocks: ...` (key on stdin)
 * Each is idempotent: running it again leaves the same bytes.
 */

/** One step's scripts. `update` defaults to `create` (scripts are idempotent). */
export interface HostScript {
  create: string;
  update?: string;
  delete?: string;
}

export { configScript } from "./config";
export { envScript } from "./env";
export { INSTALLED_LINE, installScript, KILO_PACKAGE, parseInstallOutput } from "./install";
export { preflightScript } from "./preflight";
export { remoteCommandLine } from "./remote";
export { smokeScript } from "./smoke";
