/** The one settings table (deployer/settingsDocs.ts): KiloHostArgs' doc comments come from it and the schema. */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { argDocComment, defaultSentence, renderArgDocs, SETTING_DOCS } from "../deployer/settingsDocs";
import { KILO_HOST_PATH, renderedKiloHost } from "../scripts/render-docs";

describe("KiloHostArgs' doc comments", () => {
  it("are the table's descriptions with the schema's defaults (npm run docs rewrites them)", () => {
    const source = readFileSync(KILO_HOST_PATH, "utf8");
    expect(renderedKiloHost(source)).toBe(source);
  });

  it("notice a stale comment", () => {
    const source = readFileSync(KILO_HOST_PATH, "utf8");
    const stale = source.replace("SSH port. Default: 22.", "SSH port. Default: 2222.");
    expect(stale).not.toBe(source);
    expect(renderArgDocs(stale)).toBe(renderArgDocs(source));
  });

  it("take each default from the schema, nested ones included", () => {
    expect(defaultSentence("ssh.port")).toBe("Default: 22.");
    expect(defaultSentence("ssh.connectAttempts")).toBe("Default: 3.");
    expect(defaultSentence("smokeCheck")).toBe('Default: {"enabled":true,"timeoutSeconds":180,"level":"kilo-run"}.');
    expect(defaultSentence("smokeCheck.level")).toBe('Default: "kilo-run".');
    expect(defaultSentence("poolerBaseUrl")).toBe("Required; no default.");
    expect(defaultSentence("ssh.host")).toBe("Required; no default.");
    expect(defaultSentence("compactionThresholdPercent")).toBe("Default: 75.");
  });

  it("refuse an argument the table does not document", () => {
    expect(() => argDocComment("noSuchArgument", "  ")).toThrow(/no entry for the KiloHost argument noSuchArgument/);
    expect(Object.keys(SETTING_DOCS)).toContain("ssh.hostKey");
  });
});
