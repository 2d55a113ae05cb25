/**
 * What each host-tool subcommand takes: one JSON argument of a step's own settings, written by the
 * deployer into the step's command line and read by the host tool. One type per subcommand, shared.
 *
 * The JSON travels as one single-quoted shell word, parsed alike by sh, bash, dash, zsh and fish (a login
 * shell over SSH) only when it holds no `'` and no `\` (fish gives `\\` and `\'` meaning inside single
 * quotes). `encodeStepArg` therefore percent-escapes exactly `%`, `'` and `\` (JSON.stringify has already
 * escaped every control character, so no newline either) and leaves the rest readable in a preview.
 */

/** The install step: `@kilocode/cli` at `version` under `~/.local`, with npm. */
export interface InstallArgs {
  host: string;
  /** An exact version, or `latest`. */
  version: string;
  /** npm registry URL; absent: npm's configured one. */
  registry?: string;
  /** The registry's auth token arrives on stdin (`kilo-fleet:npmToken`): a temp 0600 npmrc for this install only. */
  tokenOnStdin?: true;
  /** PEM text of `kilo-fleet:caCertificates`: npm's `--cafile` gets node's roots plus these. */
  caCertificates?: string;
  /** `kilo-fleet:reconcile`: ignored by the tool; in the argument so a change re-runs the step in place. */
  reconcile?: string;
}

/** The config step: merge `managed` into kilo.jsonc (the key paths are derived from it on the host). */
export interface ConfigArgs {
  host: string;
  managed: Record<string, unknown>;
  /** `kilo-fleet:reconcile`: ignored by the tool; in the argument so a change re-runs the step in place. */
  reconcile?: string;
}

/** The env step: the key (on stdin) into the env file, and the managed block into each shell's rc file. */
export interface EnvArgs {
  host: string;
  /** The variable name, e.g. CODEX_POOLER_API_KEY. */
  var: string;
  /** Pinned kilo: the env file also sets KILO_DISABLE_AUTOUPDATE=1. */
  pinned: boolean;
  /** Shell names, or "default" (those whose rc file exists, plus sh). */
  shells: string[] | "default";
  /** PEM text of `kilo-fleet:caCertificates` (public; only when set): the CA file and NODE_EXTRA_CA_CERTS. */
  caCertificates?: string;
  /** `kilo-fleet:reconcile`: ignored by the tool; in the argument so a change re-runs the step in place. */
  reconcile?: string;
}

/** The smoke check. */
export interface SmokeArgs {
  host: string;
  /** The pooler's /v1 base URL (as in kilo.jsonc). */
  baseUrl: string;
  /** The variable the env file exports the key as. */
  var: string;
  /** `<provider>/<model>` for `kilo run --model`. */
  model: string;
  timeoutSeconds: number;
  /** `kilo-run`: the pool checks, then the seed's `kilo run`; `pool`: the pool checks only (no tokens). */
  level: "kilo-run" | "pool";
  /** The ids of `kilo-fleet:models` (what the key must be allowed to use) → their context/input limits. */
  models: Record<string, { context?: number; input?: number }>;
  /** `kilo-fleet:reconcile`: ignored by the tool; in the argument so a change re-runs the step in place. */
  reconcile?: string;
}

/** Deletes take the host name only: what to remove comes from the host's own records. */
export interface DeleteArgs {
  host: string;
}

export interface StepArgs {
  install: InstallArgs;
  "install-delete": DeleteArgs;
  "config-apply": ConfigArgs;
  "config-delete": DeleteArgs;
  "env-apply": EnvArgs;
  "env-delete": DeleteArgs;
  smoke: SmokeArgs;
}
export type Subcommand = keyof StepArgs;
export const SUBCOMMANDS: readonly Subcommand[] = [
  "install",
  "install-delete",
  "config-apply",
  "config-delete",
  "env-apply",
  "env-delete",
  "smoke",
];

/** JSON text → one shell-safe word's content (see the module comment). */
export function encodeStepArg(value: unknown): string {
  return JSON.stringify(value).replace(/[%'\\]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The inverse of `encodeStepArg`. Throws on malformed input. */
export function decodeStepArg(text: string): unknown {
  if (/%(?![0-9A-Fa-f]{2})/.test(text)) throw new Error("malformed step argument (a bare %)");
  return JSON.parse(text.replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16))));
}
