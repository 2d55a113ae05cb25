import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  configReference,
  KEY_DOCS,
  REFERENCE_END,
  REFERENCE_START,
  spliceConfigReference,
} from "../cli/configReference";
import { settingsSchema } from "../deployer/settings";
import { renderedReadme } from "../scripts/render-docs";

const README = readFileSync(join(__dirname, "..", "README.md"), "utf8");

describe("README", () => {
  it("holds the current generated config reference (run `npm run docs` to refresh it)", () => {
    expect(README).toContain(REFERENCE_START);
    expect(README).toContain(REFERENCE_END);
    expect(renderedReadme(README)).toBe(README);
  });

  it("names every schema key in the reference, with the schema's defaults", () => {
    const reference = configReference();
    for (const key of Object.keys(settingsSchema.shape)) expect(reference).toContain(`| \`${key}\` |`);
    expect(reference).toContain('| `kiloVersion` | string | `"7.7.7"` |');
    expect(reference).toContain("| `compactionThresholdPercent` | integer or null | `75` |");
    expect(reference).toContain('"context": 272000');
    expect(Object.keys(KEY_DOCS).sort()).toEqual(Object.keys(settingsSchema.shape).sort());
  });

  it("notices a stale copy", () => {
    const stale = README.replace('`"7.7.7"`', '`"7.7.6"`');
    expect(stale).not.toBe(README);
    expect(renderedReadme(stale)).not.toBe(stale);
    expect(spliceConfigReference(stale)).toContain('`"7.7.7"`');
  });

  it("documents the setup commands, the test command and the sections still to fill", () => {
    for (const text of [
      "npm ci",
      "pulumi login --local",
      "pulumi stack select dev --create",
      "pulumi config set --secret codexPoolerApiKey",
      "pulumi up",
      "npm test",
      "npm run kilo-fleet -- validate",
      "## How it works on a host",
      "## Rotating the key",
      "## Smoke check",
      "## Benchmarks",
    ]) {
      expect(README).toContain(text);
    }
  });
});
