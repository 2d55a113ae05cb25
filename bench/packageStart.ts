/**
 * The package's figures: the tarball's size, and how long a program takes to register its first resource when
 * Pulumi loads it (run.js, ts-node) — KiloHost from the installed package, from the repo's sources, and a bare
 * component of `@pulumi/pulumi` alone (the floor) — interleaved, in fresh processes.
 */
import { statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadProgram, packAndInstall, writeLoader } from "../harness/packageProbe";

export type StartSource = "installed" | "sources" | "sdk";

export interface PackageSamples {
  tarballBytes: number;
  /** Milliseconds from process start to the first registered resource, per run. */
  startMs: Record<StartSource, number[]>;
}

const KILO_HOST_ARGS = '{ poolerBaseUrl: "https://pooler.example.com/v1", apiKey: pulumi.secret("bench-key") }';

const PROGRAMS: Record<StartSource, string> = {
  installed: `import * as pulumi from "@pulumi/pulumi";\nimport { KiloHost } from "kilo-fleet";\nnew KiloHost("laptop", ${KILO_HOST_ARGS});\n`,
  sources: `import * as pulumi from "@pulumi/pulumi";\nimport { KiloHost } from "./index";\nnew KiloHost("laptop", ${KILO_HOST_ARGS});\n`,
  sdk: `import * as pulumi from "@pulumi/pulumi";\nnew pulumi.ComponentResource("bench:index:Floor", "laptop", {});\n`,
};

/**
 * `root`: a scratch directory; `sources`: a copy of the repo's program (node_modules linked), where the
 * sources program runs as `pulumi up` in a clone would, with the repo's tsconfig.
 */
export function measurePackage(runs: number, root: string, sources: string): PackageSamples {
  const { tarball, dir: installed } = packAndInstall(root);
  writeLoader(sources);
  const dirs: Record<StartSource, string> = { installed, sources, sdk: installed };
  for (const [source, text] of Object.entries(PROGRAMS))
    writeFileSync(join(dirs[source as StartSource], `start-${source}.ts`), text);
  const startMs: Record<StartSource, number[]> = { installed: [], sources: [], sdk: [] };
  // One unmeasured load of each first (disk cache), then the runs interleaved.
  for (let i = -1; i < runs; i++) {
    for (const source of Object.keys(PROGRAMS) as StartSource[]) {
      const loaded = loadProgram(dirs[source], `start-${source}.ts`);
      if (loaded.error || loaded.milliseconds.firstResource === undefined) {
        throw new Error(`the ${source} program registered nothing: ${loaded.error ?? "no resource"}`);
      }
      if (i >= 0) startMs[source].push(loaded.milliseconds.firstResource);
    }
  }
  return { tarballBytes: statSync(tarball).size, startMs };
}
