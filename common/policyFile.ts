/**
 * The policy file's text (kilo's managed `kilo.jsonc`): pure, shared by the host tool, which writes it, and the
 * deployer, which gives the smoke check its hash (so the state holds the policy once, in the policy step).
 */
import { KILO_CONFIG_SCHEMA_URL } from "./kiloConfigMerge";

export const POLICY_FILE_HEADER =
  "// kilo-fleet: the organisation's policy for kilo (it wins over each user's and project's config). Written by kilo-fleet (Pulumi); do not edit, it is rewritten on every deploy.";

/** The managed file's text: the header, then `$schema` (kilo rewrites a file without it) and the policy. */
export function renderPolicyFile(policy: Record<string, unknown>): string {
  return `${POLICY_FILE_HEADER}\n${JSON.stringify({ $schema: KILO_CONFIG_SCHEMA_URL, ...policy }, null, 2)}\n`;
}
