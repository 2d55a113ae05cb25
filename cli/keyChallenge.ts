/**
 * The deployer's side of `doctor --key-env` (common/keyProof.ts): a fresh nonce per host for its stdin, and
 * the verdict from the host's answer, compared here with the HMAC keyed with the key of --key-env.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { keyProof } from "../common/keyProof";
import { type CheckFinding, type CheckResult, parseResult } from "../common/result";

/** A fresh nonce (32 random bytes, hex): one per host and run. */
export function newChallenge(): string {
  return randomBytes(32).toString("hex");
}

/** `same` when the host's proof is the one `key` gives for `nonce`; `absent` when the host has no key. */
export function keyVerdict(key: string, nonce: string, proof: string | undefined): NonNullable<CheckResult["key"]> {
  if (proof === undefined) return "absent";
  const want = Buffer.from(keyProof(key, nonce), "hex");
  const got = Buffer.from(proof, "hex");
  return got.length === want.length && timingSafeEqual(got, want) ? "same" : "different";
}

/** What a host's report needs from the challenge: its status, drift and key. */
interface Settled {
  status: string;
  drift: CheckFinding[];
  key?: CheckResult["key"];
}

/**
 * The report with the key's verdict (and, when different, the `key` finding) from the check's output
 * `stdout`; unchanged without a challenge or when the check gave no result.
 */
export function settleKey<R extends Settled>(report: R, stdout: string, key?: string, nonce?: string): R {
  if (key === undefined || nonce === undefined) return report;
  const result = parseResult(stdout, "check");
  if (result === undefined || (report.status !== "ok" && report.status !== "drifted")) return report;
  const verdict = keyVerdict(key, nonce, result.keyProof?.hmac);
  if (verdict !== "different") return { ...report, key: verdict };
  const file = result.keyProof?.file;
  const finding: CheckFinding = {
    item: "key",
    what: `the key in ${file ?? "the env file"} is not the one compared`,
    ...(file !== undefined ? { file } : {}),
  };
  return { ...report, key: verdict, status: "drifted", drift: [...report.drift, finding] };
}
