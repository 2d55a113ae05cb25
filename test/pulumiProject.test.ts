/** Pulumi.yaml's `config:` block must agree with the zod schema: same defaults, only real keys. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { REQUIRED, schemaDefaults } from "../cli/configReference";
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

  it("declares a default for every key it declares, equal to the schema's, except the required poolerBaseUrl", () => {
    const declared = Object.entries(project.config);
    expect(declared.length).toBeGreaterThan(2);
    for (const [key, decl] of declared) {
      if (key === "poolerBaseUrl") {
        expect(decl.default).toBeUndefined();
        continue;
      }
      expect(decl.default, key).toEqual(defaults[key]);
    }
  });

  it("does not declare the API keys: codexPoolerApiKey is optional when every host has an apiKeys entry", () => {
    // A declared key without a default is required for every stack (Pulumi refuses `up` without it).
    for (const key of ["codexPoolerApiKey", "apiKeys", "npmToken", "sshPrivateKey"]) {
      expect(project.config[key], key).toBeUndefined();
    }
    expect(defaults.poolerBaseUrl).toBe(REQUIRED);
    expect(defaults.codexPoolerApiKey).toBeUndefined();
  });
});
