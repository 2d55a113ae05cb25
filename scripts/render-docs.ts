/**
 * `npm run docs`: rewrites the README's generated config reference from the settings schema, then
 * formats the README with Biome (the tree's one formatter), so `npm run lint` and the README test agree.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spliceConfigReference } from "../cli/configReference";

const ROOT = join(__dirname, "..");
export const README_PATH = join(ROOT, "README.md");

/** `readme` with the current config reference, as Biome formats it. */
export function renderedReadme(readme: string): string {
  return execFileSync(join(ROOT, "node_modules", ".bin", "biome"), ["format", "--stdin-file-path=README.md"], {
    input: spliceConfigReference(readme),
    encoding: "utf8",
  });
}

if (process.argv[1]?.endsWith("render-docs.ts")) {
  const before = readFileSync(README_PATH, "utf8");
  const after = renderedReadme(before);
  if (after !== before) writeFileSync(README_PATH, after);
  process.stdout.write(`README.md: config reference ${after === before ? "already current" : "rewritten"}\n`);
}
