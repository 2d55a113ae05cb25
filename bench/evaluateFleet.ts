/** The program under Pulumi mocks as index.ts runs it, for the bench's workers (and the tests of bench/). */
import type { runtime } from "@pulumi/pulumi";
import type { Evaluation, MockResult } from "../harness/pulumiMocks";

/** harness/pulumiMocks.ts, imported by the caller (a worker imports it after bench/viShim.ts). */
export type Mocks = typeof import("../harness/pulumiMocks");

/** The program as index.ts runs it, without re-importing index.ts (for a second evaluation in one process). */
export async function evaluateFleet(
  mocks: Mocks,
  stack: { config: Record<string, string>; secretKeys: string[] },
  newResource?: (args: runtime.MockResourceArgs) => MockResult | Promise<MockResult>,
): Promise<Evaluation> {
  const { deployFleet, readStackConfig } = await import("../deployer/fleet");
  const e = await mocks.evaluate(
    () => {
      const { rawConfig, secrets } = readStackConfig();
      const fleet = deployFleet(rawConfig, secrets);
      return { hosts: fleet.outputs, kiloConfig: fleet.kiloConfig };
    },
    { config: stack.config, secretKeys: stack.secretKeys, ...(newResource ? { newResource } : {}) },
  );
  if (e.error) throw e.error;
  return e;
}
