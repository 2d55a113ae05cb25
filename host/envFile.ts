/** The env files' text and the key's validation: pure (unit-tested, bundled into the host tool). */
import { shQuote } from "../common/shellQuote";
import { fishWord } from "./rcBlock";

export const ENV_FILE_HEADER =
  "# kilo-fleet: the Codex Pooler API key for kilo. Written by kilo-fleet (Pulumi); do not edit, it is rewritten on every deploy.";

/**
 * The key as it arrives on stdin: exactly the key, optionally followed by one newline. Errors never
 * contain the key.
 */
export function parseKeyFromStdin(input: string): string {
  const key = input.endsWith("\n") ? input.slice(0, -1) : input;
  if (key === "") throw new Error("no API key on stdin (the env step reads the key from stdin only)");
  if (/[\u0000-\u001f\u007f-\u009f]/.test(key)) {
    throw new Error("the API key on stdin must be one line without control characters (nothing was written)");
  }
  // An HTTP header carries bytes: kilo and the pool checks could not send a key with other characters.
  if (/[^\u0000-\u00ff]/.test(key)) {
    throw new Error(
      "the API key on stdin has characters an HTTP header cannot carry (beyond Latin-1); nothing was written",
    );
  }
  return key;
}

/** What a policy adds to the env file: what kilo reads only from the user's side, never the managed dir. */
export interface PolicyEnv {
  telemetryOff?: boolean;
  shareOff?: boolean;
}

/** The variables the env files export, in order. */
export function envVars(
  apiKeyEnvVar: string,
  key: string,
  pinned: boolean,
  policy: PolicyEnv = {},
): [string, string][] {
  const vars: [string, string][] = [[apiKeyEnvVar, key]];
  // Kilo's self-update runs `npm install -g @kilocode/cli@latest` without the prefix: keep a pinned host pinned.
  if (pinned) vars.push(["KILO_DISABLE_AUTOUPDATE", "1"]);
  // kilo 7.7.7: telemetry is on unless KILO_TELEMETRY_LEVEL is "all"… or set to anything else, which turns it off.
  if (policy.telemetryOff) vars.push(["KILO_TELEMETRY_LEVEL", "off"]);
  if (policy.shareOff) vars.push(["KILO_DISABLE_SHARE", "1"]);
  return vars;
}

/** The variable the env file sets to the CA file (`kilo-fleet:caCertificates`): kilo (Bun) and node add it to their roots. */
export const CA_ENV_VAR = "NODE_EXTRA_CA_CERTS";

/** The env file's line for the CA file: `[NODE_EXTRA_CA_CERTS, <file>]`, or none without one. */
export function caEnvVars(caFile: string | undefined): [string, string][] {
  return caFile === undefined ? [] : [[CA_ENV_VAR, caFile]];
}

/** What the env files hold besides the key: the env step's settings that become variables. */
export interface EnvFileSettings {
  apiKeyEnvVar: string;
  pinned: boolean;
  policy?: PolicyEnv;
  /** The CA file the env step writes (absolute), with `kilo-fleet:caCertificates`. */
  caFile?: string;
  /** The proxy's variables (common/proxy.ts `proxyEnvVars`, its credentials decided). */
  proxyVars?: [string, string][];
}

/**
 * Every variable the env files export, in order: the one list the env step writes and the check (doctor)
 * expects.
 */
export function envFileVars(key: string, s: EnvFileSettings): [string, string][] {
  return [...envVars(s.apiKeyEnvVar, key, s.pinned, s.policy), ...caEnvVars(s.caFile), ...(s.proxyVars ?? [])];
}

export function renderShEnvFile(vars: [string, string][]): string {
  return [ENV_FILE_HEADER, ...vars.map(([k, v]) => `export ${k}=${shQuote(v)}`), ""].join("\n");
}

export function renderFishEnvFile(vars: [string, string][]): string {
  return [ENV_FILE_HEADER, ...vars.map(([k, v]) => `set -gx ${k} ${fishWord(v)}`), ""].join("\n");
}
