import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { configReference, REFERENCE_END, REFERENCE_START, spliceConfigReference } from "../cli/configReference";
import { settingsSchema } from "../deployer/settings";
import { SETTING_DOCS } from "../deployer/settingsDocs";
import { CONFIG_DOC_PATH, renderedConfigDoc } from "../scripts/render-docs";

const ROOT = join(__dirname, "..");
const README_PATH = join(ROOT, "README.md");
const README = readFileSync(README_PATH, "utf8");
const CONFIG_DOC = readFileSync(CONFIG_DOC_PATH, "utf8");

/** Every Markdown file a reader is sent to: the README, docs/ and bench/README.md. */
const DOC_FILES = [
  README_PATH,
  ...readdirSync(join(ROOT, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => join(ROOT, "docs", f)),
  join(ROOT, "bench", "README.md"),
];

/** Linked from the README but written on another branch (the CLI work); drop once it has landed. */
const LANDING_ELSEWHERE = new Set(["docs/cli.md"]);

/** GitHub's anchor for a heading: lower case, punctuation but `-` and `_` dropped, spaces to `-`. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

/** The anchors a Markdown file defines: its headings' slugs and its `<a id="…">`s. */
function anchors(text: string): Set<string> {
  const out = new Set<string>();
  let fenced = false;
  for (const line of text.split("\n")) {
    if (line.startsWith("```")) fenced = !fenced;
    else if (!fenced && /^#{1,6} /.test(line)) out.add(slug(line.replace(/^#+ /, "")));
  }
  for (const m of text.matchAll(/<a id="([^"]+)"><\/a>/g)) out.add(m[1]);
  return out;
}

/** The relative links of a Markdown file (outside code), as `{ target, fragment }`. */
function relativeLinks(text: string): { target: string; fragment?: string }[] {
  const prose = text.replace(/```[\s\S]*?```/g, "").replace(/`[^`\n]*`/g, "");
  const out: { target: string; fragment?: string }[] = [];
  for (const m of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
    const href = m[1];
    if (/^[a-z]+:/.test(href)) continue;
    const [target, fragment] = href.split("#");
    out.push({ target, fragment });
  }
  return out;
}

describe("docs/configuration.md", () => {
  it("holds the current generated config reference (run `npm run docs` to refresh it)", () => {
    expect(CONFIG_DOC).toContain(REFERENCE_START);
    expect(CONFIG_DOC).toContain(REFERENCE_END);
    expect(renderedConfigDoc(CONFIG_DOC)).toBe(CONFIG_DOC);
  });

  it("names every schema key in the reference, with the schema's defaults", () => {
    const reference = configReference();
    for (const key of Object.keys(settingsSchema.shape)) expect(reference).toContain(`| \`${key}\` |`);
    expect(reference).toContain('| `kiloVersion` | string | `"7.7.7"` |');
    expect(reference).toContain("| `compactionThresholdPercent` | integer or null | `75` |");
    expect(reference).toContain('"context": 272000');
    for (const key of Object.keys(settingsSchema.shape)) expect(SETTING_DOCS[key]?.rule, key).toBeDefined();
  });

  it("notices a stale copy", () => {
    const stale = CONFIG_DOC.replace('`"7.7.7"`', '`"7.7.6"`');
    expect(stale).not.toBe(CONFIG_DOC);
    expect(renderedConfigDoc(stale)).not.toBe(stale);
    expect(spliceConfigReference(stale)).toContain('`"7.7.7"`');
  });

  it("refuses a file without the markers, naming it", () => {
    expect(() => renderedConfigDoc("# Configuration\n")).toThrow(/docs\/configuration\.md has no/);
  });
});

describe("README", () => {
  it("documents the set-up commands, the test command CI runs, and the commands", () => {
    for (const text of [
      "npm ci",
      "pulumi login --local",
      "pulumi stack select dev --create",
      "pulumi config set --secret codexPoolerApiKey",
      "pulumi up",
      "npm test",
      "npm run kilo-fleet -- validate",
    ]) {
      expect(README).toContain(text);
    }
    for (const command of ["validate", "render", "hostkeys", "models", "lock", "doctor"]) {
      expect(README).toMatch(new RegExp(`^\\| \`${command}\` +\\|`, "m"));
    }
    const ci = readFileSync(join(ROOT, ".ci", "run"), "utf8");
    expect(ci.split("\n")).toContain("npm test");
  });

  it("is short enough to read in five minutes: at most 15 KB, no line over 200 characters", () => {
    expect(Buffer.byteLength(README)).toBeLessThanOrEqual(15_000);
    const long = README.split("\n").filter((line) => line.length > 200);
    expect(long).toEqual([]);
  });

  it("links to every file of docs/ and to the benchmark figures", () => {
    const linked = new Set(relativeLinks(README).map((l) => l.target));
    for (const file of DOC_FILES.filter((f) => f !== README_PATH)) expect(linked).toContain(relative(ROOT, file));
  });
});

describe("links between the docs", () => {
  it("every relative link names a file that exists, and every #anchor a heading in it", () => {
    const broken: string[] = [];
    for (const file of DOC_FILES) {
      const text = readFileSync(file, "utf8");
      for (const { target, fragment } of relativeLinks(text)) {
        const path = target === "" ? file : resolve(dirname(file), target);
        const name = relative(ROOT, path);
        if (LANDING_ELSEWHERE.has(name)) continue;
        if (!existsSync(path)) {
          broken.push(`${relative(ROOT, file)}: ${target} does not exist`);
          continue;
        }
        if (fragment && path.endsWith(".md") && !anchors(readFileSync(path, "utf8")).has(fragment)) {
          broken.push(`${relative(ROOT, file)}: ${name} has no #${fragment}`);
        }
      }
    }
    expect(broken).toEqual([]);
  });

  it("finds a broken link (the check can fail)", () => {
    expect(relativeLinks("see [x](docs/nowhere.md#a) and `[y](z.md)`")).toEqual([
      { target: "docs/nowhere.md", fragment: "a" },
    ]);
    expect(anchors("# How it works on a host\n```\n# not a heading\n```\n").has("how-it-works-on-a-host")).toBe(true);
    expect(anchors("```\n# not a heading\n```\n").has("not-a-heading")).toBe(false);
    expect(slug("Drift: kilo-fleet doctor")).toBe("drift-kilo-fleet-doctor");
  });
});
