/**
 * The smoke check's policy part: kilo's effective configuration, as kilo itself resolves it
 * (`kilo debug config`), against the policy's model, small_model, providers' baseURL, permission and share.
 * `kilo debug config` prints resolved `{env:…}` values, so it runs with an environment that holds no
 * variable of the env file (the key's among them), on a copy of the user's config files, in the check's
 * scratch directory: it prints no key because it is given none, and it changes nothing of the user's.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { isJsonObject } from "../common/kiloConfigMerge";

/** The policy keys the smoke check compares (leaf by leaf: keys the policy does not set stay the user's). */
export const CHECKED_POLICY_KEYS = ["model", "small_model", "provider", "permission", "share", "enabled_providers"];

/** Variables the effective-config run may inherit: nothing that could hold a secret. */
const PASSED = ["PATH", "LANG", "LANGUAGE", "TZ", "USER", "LOGNAME"];

/** The leaves of `policy`'s checked keys that `effective` does not hold (`provider`: only `baseURL` leaves). */
export function policyMismatches(
  policy: Record<string, unknown>,
  effective: unknown,
): { path: string; expected: unknown; found: unknown }[] {
  const out: { path: string; expected: unknown; found: unknown }[] = [];
  const walk = (want: unknown, got: unknown, at: string[]) => {
    if (isJsonObject(want)) {
      for (const [k, v] of Object.entries(want)) walk(v, isJsonObject(got) ? got[k] : undefined, [...at, k]);
      return;
    }
    // Never compared (nor shown): anything under a provider but its baseURL — the apiKey resolves there.
    if (at[0] === "provider" && at[at.length - 1] !== "baseURL") return;
    if (JSON.stringify(want) !== JSON.stringify(got)) out.push({ path: at.join("."), expected: want, found: got });
  };
  for (const k of CHECKED_POLICY_KEYS) {
    if (k in policy) walk(policy[k], isJsonObject(effective) ? effective[k] : undefined, [k]);
  }
  return out;
}

/**
 * Runs `kilo debug config` as the user would get it (the user's config files, copied; the managed dir
 * kilo reads itself) without any of the env file's variables, and returns what it resolved. Throws a
 * message (never kilo's output) when kilo fails.
 */
export function effectiveConfig(opts: {
  kiloBin: string;
  /** The user's kilo config dir: its *.json(c) files are copied. */
  configDir: string;
  /** An empty directory of the check's own. */
  scratch: string;
  inherited: NodeJS.ProcessEnv;
  /** Names that must not reach kilo (the env file's variables). */
  withheld: string[];
  timeoutMs: number;
}): unknown {
  const d = (n: string) => path.join(opts.scratch, n);
  const configCopy = path.join(d("config"), "kilo");
  for (const x of [d("home"), d("work"), d("tmp"), configCopy]) fs.mkdirSync(x, { recursive: true, mode: 0o700 });
  for (const name of fs.existsSync(opts.configDir) ? fs.readdirSync(opts.configDir).sort() : []) {
    const from = path.join(opts.configDir, name);
    if (/\.jsonc?$/.test(name) && fs.statSync(from).isFile()) fs.copyFileSync(from, path.join(configCopy, name));
  }
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(opts.inherited)) {
    if (v !== undefined && (PASSED.includes(k) || k.startsWith("LC_")) && !opts.withheld.includes(k)) env[k] = v;
  }
  Object.assign(env, {
    HOME: d("home"),
    XDG_CONFIG_HOME: d("config"),
    XDG_CACHE_HOME: d("cache"),
    XDG_DATA_HOME: d("data"),
    XDG_STATE_HOME: d("state"),
    TMPDIR: d("tmp"),
    KILO_DISABLE_PROJECT_CONFIG: "1",
    KILO_DISABLE_MODELS_FETCH: "1",
    KILO_DISABLE_AUTOUPDATE: "1",
    KILO_TELEMETRY_LEVEL: "off",
  });
  // Tests stand a directory in for the managed dir (host/policy.ts): kilo is told the same.
  if (opts.inherited.KILO_FLEET_TEST_SYSTEM_DIR)
    env.KILO_TEST_MANAGED_CONFIG_DIR = opts.inherited.KILO_FLEET_TEST_SYSTEM_DIR;
  const r = spawnSync(opts.kiloBin, ["debug", "config"], {
    cwd: d("work"),
    env,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: Math.max(1000, opts.timeoutMs),
    killSignal: "SIGKILL",
    maxBuffer: 16 * 1024 * 1024,
  });
  if (r.error || r.status !== 0) {
    throw new Error(`kilo debug config failed (${r.signal ?? r.status ?? r.error?.message}) while checking the policy`);
  }
  try {
    return JSON.parse(r.stdout) as unknown;
  } catch {
    throw new Error("kilo debug config printed no JSON while checking the policy");
  }
}
