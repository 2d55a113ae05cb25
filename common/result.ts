/**
 * The one result protocol between the host tool and the deployer: every step's last stdout line (but the
 * tool step's, which prints nothing: its trigger names the tool) is
 *
 *   kilo-fleet-result {"step":"config",...}
 *
 * written by `formatResult` on the host and read by `parseResult` on the deployer (the component's outputs
 * come from it). Lines before it are for people (Pulumi's log); nothing parses them. A result never holds
 * a secret: the env step's stdout stays secret anyway, and only the fields below leave it.
 */

export const RESULT_PREFIX = "kilo-fleet-result ";

export interface InstallResult {
  step: "install";
  /** The kilo version now installed. */
  kiloVersion: string;
  /** The kilo executable. */
  bin: string;
  /** How kilo got there: `npm`, `package`, or `preexisting` (a kilo at the pin that kilo-fleet found). */
  method: "npm" | "package" | "preexisting";
  /** The platform package installed (`linux-x64`, …): install.method package only. */
  platform?: string;
  /** Whether this run changed anything. */
  changed: boolean;
}

export interface ConfigResult {
  step: "config";
  /** kilo.jsonc on the host (`~/…` under HOME). */
  configPath: string;
  status: "created" | "updated" | "unchanged";
  /** Files kilo applies over kilo.jsonc that set a managed key (also printed as warnings); absent: none. */
  overriddenBy?: string[];
}

export interface EnvResult {
  step: "env";
  /** The 0600 env file holding the key (the path, never the key). */
  envFilePath: string;
  /** The startup files that have the managed block. */
  rcFiles: string[];
  /** Whether the env file changed (a rotation changes it). */
  changed: boolean;
}

export interface SmokeResult {
  step: "smoke";
  /** Always true: a failing smoke check fails the step instead. */
  pass: true;
  /** `kilo-run` (the seed's tool-using `kilo run`) or `pool` (the pool checks only). */
  level: "kilo-run" | "pool";
  /** The kilo version the check ran (`kilo-run`), or the installed one. */
  kiloVersion: string;
  /** How long the check took. */
  seconds: number;
  /** Settings the pool says are too large (e.g. a `limit.context` over the pool's `context_length`). */
  warnings?: string[];
}

/** The policy step: kilo's managed config file. */
export interface PolicyResult {
  step: "policy";
  /** The managed file (absolute: it is not under HOME). */
  path: string;
  status: "created" | "updated" | "unchanged";
  /** A managed file kilo-fleet did not write was there: it is kept in the record and put back by the delete. */
  replaced?: boolean;
}

/** What a delete did, for the log (deletes have no outputs). */
export interface DeleteResult {
  step: "install-delete" | "config-delete" | "env-delete" | "policy-delete";
  /** One short phrase, e.g. "restored from backup". */
  outcome: string;
}

/** One thing on a host that is not what the stack says (the `check` subcommand, `kilo-fleet doctor`). */
export interface CheckFinding {
  /**
   * `kilo` (missing, or not the pinned version), `kilo.jsonc` (a managed key differs, or the file is missing
   * or unreadable), `env-file` (missing, mode, owner, content), `key` (the host's key is not the one compared),
   * `rc-block` (a shell's block missing, edited or stale), `override` (a file or variable kilo applies over
   * kilo.jsonc), `autoupdate` (kilo may update itself away from the pin), `records` (kilo-fleet's own
   * records are still where an earlier version kept them, under XDG_STATE_HOME), `policy` (the managed config
   * is not the stack's policy, or something lets kilo bypass it).
   */
  item: "kilo" | "kilo.jsonc" | "env-file" | "key" | "rc-block" | "override" | "autoupdate" | "records" | "policy";
  /** One short line for people (never a secret; values truncated). */
  what: string;
  /**
   * kilo.jsonc: the differing key path, and the JSON text expected and found (truncated; absent: "(absent)").
   * env-file: the variable edited, missing or added (never its value).
   */
  path?: string;
  expected?: string;
  found?: string;
  /** The file concerned, `~/`-relative when under HOME. */
  file?: string;
}

/** The read-only drift check. Never changes anything; exit 0 even when something drifted. */
export interface CheckResult {
  step: "check";
  kilo: {
    /** The installed version (absent: none found). */
    version?: string;
    /** How it is laid out: npm (`~/.local/lib/node_modules`), package (kilo-fleet's per-version dir), other, missing. */
    layout: "npm" | "package" | "other" | "missing";
  };
  /**
   * Whether the host's key equals the one compared (`absent`: no env file or key line). Set by the deployer
   * from `keyProof` (the host never sees the key it is compared with).
   */
  key?: "same" | "different" | "absent";
  /**
   * With compareKey: the host's answer to the nonce on stdin, HMAC-SHA256 keyed with its key
   * (common/keyProof.ts), and the env file it read the key from; absent when there is no key.
   */
  keyProof?: { hmac: string; file: string };
  /** A deploy held the HOME's lock while the check read it: what it saw may be mid-change. */
  busy?: boolean;
  /** Empty: the host matches the stack. */
  drift: CheckFinding[];
}

export type StepResult =
  | InstallResult
  | ConfigResult
  | EnvResult
  | SmokeResult
  | PolicyResult
  | DeleteResult
  | CheckResult;
export type StepName = StepResult["step"];

/** The result line (no newline). JSON keeps it one line: JSON.stringify escapes every control character. */
export function formatResult(result: StepResult): string {
  return RESULT_PREFIX + JSON.stringify(result);
}

/**
 * The result of `step` from a step's stdout: its last line that starts with the prefix. Undefined when
 * there is none, it is not JSON, or it is another step's.
 */
export function parseResult<S extends StepName>(stdout: string, step: S): Extract<StepResult, { step: S }> | undefined {
  const lines = stdout.split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i].replace(/\r$/, "");
    if (!line.startsWith(RESULT_PREFIX)) continue;
    try {
      const value = JSON.parse(line.slice(RESULT_PREFIX.length)) as { step?: unknown };
      if (value !== null && typeof value === "object" && value.step === step) {
        return value as Extract<StepResult, { step: S }>;
      }
    } catch {
      // Not a result line after all.
    }
    return undefined;
  }
  return undefined;
}
