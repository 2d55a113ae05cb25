/**
 * The config reference in docs/configuration.md, generated: one row per key of the settings schema, from the
 * one settings table (deployer/settingsDocs.ts) with the defaults read from the schema itself, so the docs cannot drift from what `parseSettings` does
 * (`npm run docs` rewrites that copy; test/readme.test.ts fails when they differ).
 */
import { CONFIG_NAMESPACE, settingsSchema } from "../deployer/settings";
import { REQUIRED, SETTING_DOCS, schemaDefaults } from "../deployer/settingsDocs";

export { REQUIRED, schemaDefaults };

/** Defaults longer than this go below the table as JSON blocks instead of into a cell. */
const INLINE_LIMIT = 60;

const cell = (s: string) => s.replaceAll("|", "\\|").replaceAll("\n", " ");

/** The markdown config reference: a table of every key, then the long defaults in full. */
export function configReference(): string {
  const defaults = schemaDefaults();
  const rows: string[] = ["| key | type | default | rule |", "|---|---|---|---|"];
  const blocks: string[] = [];
  for (const key of Object.keys(settingsSchema.shape)) {
    const doc = SETTING_DOCS[key];
    if (doc?.type === undefined || doc.rule === undefined) {
      throw new Error(`configReference: no SETTING_DOCS type and rule for ${key}`);
    }
    const value = defaults[key];
    let shown: string;
    if (doc.referenceDefault) shown = doc.referenceDefault;
    else if (value === REQUIRED) shown = "required";
    else if (value === undefined) shown = "absent";
    else {
      const json = JSON.stringify(value);
      if (json.length <= INLINE_LIMIT) shown = `\`${json}\``;
      else {
        shown = `see [below](#default-${key.toLowerCase()})`;
        blocks.push(
          `<a id="default-${key.toLowerCase()}"></a>Default \`${key}\`:\n\n\`\`\`json\n${JSON.stringify(value, null, 2)}\n\`\`\``,
        );
      }
    }
    rows.push(`| \`${key}\` | ${cell(doc.type)} | ${cell(shown)} | ${cell(doc.rule)} |`);
  }
  const intro = `Every key lives in the \`${CONFIG_NAMESPACE}:\` namespace (\`pulumi config set ${CONFIG_NAMESPACE}:model gpt-5.5\`, or \`--path\` for structured keys). Unknown keys are errors.`;
  return [intro, "", ...rows, ...blocks.flatMap((b) => ["", b])].join("\n");
}

export const REFERENCE_START = "<!-- config-reference:start -->";
export const REFERENCE_END = "<!-- config-reference:end -->";

/** `readme` with the text between the config-reference markers replaced by `configReference()`. */
export function spliceConfigReference(readme: string): string {
  const start = readme.indexOf(REFERENCE_START);
  const end = readme.indexOf(REFERENCE_END);
  if (start === -1 || end < start) {
    throw new Error(`README has no ${REFERENCE_START} … ${REFERENCE_END} block`);
  }
  return `${readme.slice(0, start + REFERENCE_START.length)}\n${configReference()}\n${readme.slice(end)}`;
}
