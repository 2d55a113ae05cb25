/**
 * The host scripts: pure functions, settings in, POSIX `sh` text out. Each step of a KiloHost is one
 * `HostScript`, run by a `@pulumi/command` Command (`local.Command` via `/bin/sh -c`, `remote.Command`
 * via `remoteCommandLine`).
 *
 * CONTRACT (bodies are filled in by the host-scripts work, issue 3; the smoke step by issue 5).
 */
import type { ResolvedHost, Settings } from "../settings";

/** One step's scripts. `update` defaults to `create` (scripts are idempotent). */
export interface HostScript {
  create: string;
  update?: string;
  delete?: string;
}

const notYet = (what: string): never => {
  throw new Error(`${what}: not implemented yet (issue 3/5)`);
};

/** Finds node >= 18 and npm on the host, or fails with one line naming what is missing. */
export function preflightScript(_settings: Settings, _host: ResolvedHost): HostScript {
  return notYet("preflightScript");
}
/** Installs @kilocode/cli at the host's pinned version under ~/.local; prints the installed version. */
export function installScript(_settings: Settings, _host: ResolvedHost): HostScript {
  return notYet("installScript");
}
/** Merges the managed keys into kilo.jsonc (delete strips them). */
export function configScript(_settings: Settings, _host: ResolvedHost): HostScript {
  return notYet("configScript");
}
/** Writes the env file from the key on stdin (exactly the key, optionally one trailing newline) and the rc blocks. */
export function envScript(_settings: Settings, _host: ResolvedHost): HostScript {
  return notYet("envScript");
}
/** Wraps a script for remote.Command: the remote user's login shell (bash, zsh, fish...) must run it as `sh`. */
export function remoteCommandLine(_script: string): string {
  return notYet("remoteCommandLine");
}
export { SMOKE_PROMPT, smokeScript } from "./smoke";
