/** Pulumi.yaml's `config:` block must agree with the zod schema: same defaults, only real keys. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { REQUIRED, schemaDefaults } from "../deployer/configReference";
import { settingsSchema } from "../deployer/settings";

const project = parse(readFileSync(join(__dirname, "..", "Pulumi.yaml"), "utf8")) as {
  name: string;
  stackConfigDir: string;
  config: Record<string, { type: string; default?: unknown; secret?: boolean }>;
};
const defaults = schemaDefaults();

describe("Pulumi.yaml", () => {
  it("is the kilo-fleet nodejs project with its stacks in stacks/", () => {
    expect(project).toMatchObject({ name: "kilo-fleet", runtime: "nodejs", stackConfigDir: "stacks" });
  });

  it("declares only keys of the schema, with types Pulumi knows", () => {
    for (const [key, decl] of Object.entries(project.config)) {
      expect(Object.keys(settingsSchema.shape)).toContain(key);
      expect(["string", "integer", "boolean", "array"]).toContain(decl.type);
    }
  });

  it("declares a default for every key it declares, equal to the schema's, except the two required ones", () => {
    const declared = Object.entries(project.config);
    expect(declared.length).toBeGreaterThan(2);
    for (const [key, decl] of declared) {
      if (key === "poolerBaseUrl" || key === "codexPoolerApiKey") {
        expect(decl.default).toBeUndefined();
        continue;
      }
      expect(decl.default, key).toEqual(defaults[key]);
    }
  });

  it("declares the API key secret, without a default (Pulumi forbids one)", () => {
    expect(project.config.codexPoolerApiKey).toEqual(expect.objectContaining({ type: "string", secret: true }));
    expect(defaults.poolerBaseUrl).toBe(REQUIRED);
  });
});
