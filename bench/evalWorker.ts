/**
 * One program evaluation in a fresh process (spawned by bench.ts): kilo-fleet's index.ts under Pulumi
 * mocks through the tests' own path (harness/pulumiMocks.ts `evaluateIndex` + `stackConfig`), for a
 * fleet of N hosts. Writes a JSON result to the file named by its second argument:
 *
 *   { seconds, resources, digests: { <urn>: <sha256 of the inputs, secrets unwrapped, keys sorted> },
 *     inProcess?: { differing, compared } }
 *
 * `seconds` is the wall time of `evaluateIndex` (program import included, process start-up not).
 * With `--twice` it evaluates the same config a second time in the same process (calling
 * deployer/fleet.ts as index.ts does) and counts, with the tests' `diffEvaluations`, the resources
 * added, removed or with differing inputs.
 *
 * Usage: node --import tsx bench/evalWorker.ts <hosts> <out.json> [--twice]
 */
import "./viShim";
import { writeFileSync } from "node:fs";
import { digestInputs, fleetHosts } from "./fleetShape";

async function main(): Promise<void> {
  const [hostsArg, out, flag] = process.argv.slice(2);
  const n = Number(hostsArg);
  if (!Number.isInteger(n) || n < 1 || !out) throw new Error("usage: evalWorker.ts <hosts> <out.json> [--twice]");
  // Imported after the vitest stand-in is in place.
  const mocks = await import("../harness/pulumiMocks");
  const stack = mocks.stackConfig({ hosts: fleetHosts(n) });

  const started = performance.now();
  const e = await mocks.evaluateIndex(stack);
  const seconds = (performance.now() - started) / 1000;
  if (e.error) throw e.error;
  const resources = mocks.programResources(e);

  const digests: Record<string, string> = {};
  for (const r of resources) digests[r.urn] = digestInputs(mocks.unwrapSecrets(r.inputs));

  let inProcess: { differing: number; compared: number } | undefined;
  if (flag === "--twice") {
    const { deployFleet, readStackConfig } = await import("../deployer/fleet");
    const again = await mocks.evaluate(
      () => {
        const { rawConfig, secrets } = readStackConfig();
        return { hosts: deployFleet(rawConfig, secrets).outputs };
      },
      { config: stack.config, secretKeys: stack.secretKeys },
    );
    if (again.error) throw again.error;
    const d = mocks.diffEvaluations(e, again);
    inProcess = {
      differing: d.added.length + d.removed.length + Object.keys(d.changed).length,
      compared: resources.length,
    };
  }
  writeFileSync(out, JSON.stringify({ seconds, resources: resources.length, digests, inProcess }));
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`evalWorker: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
