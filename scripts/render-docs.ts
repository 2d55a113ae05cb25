/**
 * `npm run docs`: rewrites the generated config reference in docs/configuration.md and KiloHostArgs' doc
 * comments in deployer/kiloHostArgs.ts from the one settings table (deployer/settingsDocs.ts), then formats them
 * with Biome (the tree's one formatter), so `npm run lint` and the docs tests agree.
 * It also writes schema.json, the component plugin's schema (deployer/componentProvider.ts).
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { REFERENCE_END, REFERENCE_START, spliceConfigReference } from "../cli/configReference";
import { renderArgDocs } from "../deployer/settingsDocs";

const ROOT = join(__dirname, "..");
/** The file that holds the generated config reference, between the config-reference markers. */
export const CONFIG_DOC_PATH = join(ROOT, "docs", "configuration.md");

/** The file whose KiloHost argument doc comments are generated. */
export const KILO_HOST_PATH = join(ROOT, "deployer", "kiloHostArgs.ts");

/** deployer/kiloHostArgs.ts's `source` with the table's argument doc comments, as Biome formats it. */
export function renderedKiloHost(source: string): string {
  return execFileSync(
    join(ROOT, "node_modules", ".bin", "biome"),
    ["format", "--stdin-file-path=deployer/kiloHostArgs.ts"],
    {
      input: renderArgDocs(source),
      encoding: "utf8",
    },
  );
}

/** The component plugin's schema, as committed (the examples are checked against it). */
export const SCHEMA_PATH = join(ROOT, "schema.json");

/** The schema KiloFleetProvider serves, as schema.json holds it. */
export async function renderedSchema(): Promise<string> {
  const { KiloFleetProvider } = await import("../deployer/componentProvider");
  const text = JSON.stringify(JSON.parse(await new KiloFleetProvider().getSchema()), null, 2);
  return execFileSync(join(ROOT, "node_modules", ".bin", "biome"), ["format", "--stdin-file-path=schema.json"], {
    input: text,
    encoding: "utf8",
  });
}

/** `doc` with the current config reference, as Biome formats it. */
export function renderedConfigDoc(doc: string): string {
  const name = relative(ROOT, CONFIG_DOC_PATH);
  if (!doc.includes(REFERENCE_START) || !doc.includes(REFERENCE_END)) {
    throw new Error(`${name} has no ${REFERENCE_START} … ${REFERENCE_END} block`);
  }
  return execFileSync(join(ROOT, "node_modules", ".bin", "biome"), ["format", `--stdin-file-path=${name}`], {
    input: spliceConfigReference(doc),
    encoding: "utf8",
  });
}

if (process.argv[1]?.endsWith("render-docs.ts")) {
  const before = readFileSync(CONFIG_DOC_PATH, "utf8");
  const after = renderedConfigDoc(before);
  if (after !== before) writeFileSync(CONFIG_DOC_PATH, after);
  const name = relative(ROOT, CONFIG_DOC_PATH);
  process.stdout.write(`${name}: config reference ${after === before ? "already current" : "rewritten"}\n`);
  const source = readFileSync(KILO_HOST_PATH, "utf8");
  const rendered = renderedKiloHost(source);
  if (rendered !== source) writeFileSync(KILO_HOST_PATH, rendered);
  process.stdout.write(
    `deployer/kiloHostArgs.ts: argument docs ${rendered === source ? "already current" : "rewritten"}\n`,
  );
  // After the argument docs: the schema's descriptions are read from them.
  void renderedSchema().then((schema) => {
    const old = readFileSync(SCHEMA_PATH, { encoding: "utf8", flag: "a+" });
    if (schema !== old) writeFileSync(SCHEMA_PATH, schema);
    process.stdout.write(`schema.json: ${schema === old ? "already current" : "rewritten"}\n`);
  });
}
