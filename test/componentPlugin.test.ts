/**
 * The component plugin (deployer/componentProvider.ts): the schema it serves — every KiloHost input typed,
 * documented, with its default, secrets marked — equals the committed schema.json, and `construct` (what a
 * Python, Go, .NET, Java or YAML program's KiloHost reaches) registers what `new KiloHost(...)` does.
 */
import { readFileSync } from "node:fs";
import * as pulumi from "@pulumi/pulumi";
import { beforeAll, describe, expect, expectTypeOf, it } from "vitest";
import type { z } from "zod";
import { decorateSchema, KiloFleetProvider, SECRET_INPUTS } from "../deployer/componentProvider";
import { KiloHost } from "../deployer/kiloHost";
import type { InstallMethod, KiloHostArgs, SmokeCheckLevel } from "../deployer/kiloHostArgs";
import type { installMethod, smokeCheckLevel } from "../deployer/settings";
import { settingsSchema } from "../deployer/settings";
import { SETTING_DOCS } from "../deployer/settingsDocs";
import { TEST_API_KEY, TEST_SSH_KEY } from "../harness/fakeSecrets";
import { evaluate, unwrapSecrets } from "../harness/pulumiMocks";
import { renderedSchema, SCHEMA_PATH } from "../scripts/render-docs";

const TYPE = "kilo-fleet:index:KiloHost";

interface Prop {
  type?: string;
  $ref?: string;
  description?: string;
  secret?: boolean;
  default?: unknown;
  optional?: boolean;
}
let schema: {
  name: string;
  resources: Record<string, { inputProperties: Record<string, Prop>; requiredInputs: string[] }>;
  types: Record<string, { properties?: Record<string, Prop>; enum?: { value: string }[] }>;
};

beforeAll(async () => {
  schema = JSON.parse(await new KiloFleetProvider().getSchema());
}, 60_000);

describe("the component schema", () => {
  it("is the committed schema.json (npm run docs rewrites it)", async () => {
    expect(await renderedSchema()).toBe(readFileSync(SCHEMA_PATH, "utf8"));
  });

  it("has every KiloHostArgs input, typed and documented; poolerBaseUrl and apiKey required", () => {
    const inputs = schema.resources[TYPE].inputProperties;
    const argKeys: (keyof KiloHostArgs)[] = [
      "poolerBaseUrl",
      "apiKey",
      "ssh",
      "sshPrivateKey",
      "providerId",
      "apiKeyEnvVar",
      "kiloVersion",
      "model",
      "models",
      "compactionThresholdPercent",
      "permission",
      "kiloSettings",
      "smokeCheck",
      "install",
      "kiloLock",
      "npmRegistry",
      "shells",
      "npmToken",
      "caCertificates",
      "reconcile",
      "policy",
      "become",
      "policyEnv",
      "proxy",
      "proxyCredentials",
      "sshJumpPrivateKey",
    ];
    expect(Object.keys(inputs).sort()).toEqual([...argKeys].sort());
    for (const [k, p] of Object.entries(inputs)) {
      expect(p.type ?? p.$ref, k).toBeDefined();
      expect(p.description, k).toContain(SETTING_DOCS[k].description.slice(0, 20));
    }
    expect(schema.resources[TYPE].requiredInputs.sort()).toEqual(["apiKey", "poolerBaseUrl"]);
    for (const t of Object.values(schema.types)) {
      for (const [k, p] of Object.entries(t.properties ?? {})) expect(p.description, k).toBeTruthy();
    }
  });

  it("marks the secrets, and only them", () => {
    const inputs = schema.resources[TYPE].inputProperties;
    expect(Object.keys(inputs).filter((k) => inputs[k].secret)).toEqual([...SECRET_INPUTS]);
    for (const k of SECRET_INPUTS) expect(inputs[k].type).toBe("string");
  });

  it("carries the settings schema's defaults, nested ones included", () => {
    const inputs = schema.resources[TYPE].inputProperties;
    const defaults = settingsSchema.parse({
      poolerBaseUrl: "https://p.example.com/v1",
      hosts: [{ name: "h", local: true }],
    });
    expect(inputs.kiloVersion.default).toBe(defaults.kiloVersion);
    expect(inputs.providerId.default).toBe("codex-pooler");
    expect(inputs.compactionThresholdPercent.default).toBe(75);
    expect(inputs.poolerBaseUrl.default).toBeUndefined();
    const ssh = schema.types["kilo-fleet:index:SshHost"].properties ?? {};
    expect(ssh.port.default).toBe(22);
    expect(ssh.connectAttempts.default).toBe(defaults.ssh.connectAttempts);
    expect(ssh.host.default).toBeUndefined();
    expect(schema.types["kilo-fleet:index:SmokeCheck"].properties?.level.default).toBe("kilo-run");
    expect(schema.types["kilo-fleet:index:Install"].properties?.method.default).toBe("package");
  });

  it("has the settings schema's enums", () => {
    expect(schema.types["kilo-fleet:index:SmokeCheckLevel"].enum?.map((e) => e.value)).toEqual(["kilo-run", "pool"]);
    expect(schema.types["kilo-fleet:index:InstallMethod"].enum?.map((e) => e.value)).toEqual(["package", "npm"]);
    expectTypeOf<SmokeCheckLevel>().toEqualTypeOf<z.infer<typeof smokeCheckLevel>>();
    expectTypeOf<InstallMethod>().toEqualTypeOf<z.infer<typeof installMethod>>();
  });

  it("refuses a schema without a secret input it must mark", () => {
    const broken = JSON.parse(JSON.stringify(schema));
    delete broken.resources[TYPE].inputProperties.npmToken;
    expect(() => decorateSchema(broken)).toThrow(/no KiloHost input npmToken/);
  });
});

/** Registers what `program` registers under mocks, secrets unwrapped, the stack left out. */
async function registered(program: () => unknown) {
  const e = await evaluate(program, { project: "plugin", stack: "dev" });
  if (e.error) throw e.error;
  return e.resources
    .filter((r) => r.type !== "pulumi:pulumi:Stack")
    .map((r) => ({ type: r.type, name: r.name, parent: r.parent, inputs: unwrapSecrets(r.inputs) }));
}

describe("construct (a KiloHost from another language)", () => {
  const inputs = {
    poolerBaseUrl: "https://pooler.example.com/v1",
    apiKey: TEST_API_KEY,
    ssh: { host: "10.0.0.5", user: "alice", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyForTheTest" },
    sshPrivateKey: TEST_SSH_KEY,
    smokeCheck: { level: "pool" as const },
    shells: ["bash"],
  };

  it("registers the same children with the same inputs as new KiloHost(...) in TypeScript", async () => {
    const provider = new KiloFleetProvider();
    const viaConstruct = await registered(() =>
      provider.construct("laptop", TYPE, { ...inputs, apiKey: pulumi.secret(inputs.apiKey) }, {}),
    );
    const viaTs = await registered(() => new KiloHost("laptop", { ...inputs, apiKey: pulumi.secret(inputs.apiKey) }));
    expect(viaConstruct.map((r) => `${r.type} ${r.name}`)).toContain("command:remote:Command laptop-env");
    expect(viaConstruct).toEqual(viaTs);
  });

  for (const [what, bad] of [
    ["a missing required input", { apiKey: "k" }],
    ["a wrong type", { ...inputs, ssh: { ...inputs.ssh, port: "22" } }],
    ["a bad enum value", { ...inputs, smokeCheck: { level: "full" } }],
  ] as const) {
    it(`${what} gets the same key-named error as a TypeScript caller`, async () => {
      const provider = new KiloFleetProvider();
      let fromConstruct: unknown;
      let fromTs: unknown;
      await registered(async () => {
        await provider.construct("laptop", TYPE, bad as Record<string, unknown>, {}).catch((e) => (fromConstruct = e));
      });
      await registered(() => {
        try {
          new KiloHost("laptop", bad as unknown as KiloHostArgs);
        } catch (e) {
          fromTs = e;
        }
      });
      expect(String(fromConstruct)).toMatch(/KiloHost "laptop": invalid arguments:\n {2}\S+: /);
      expect(String(fromConstruct)).toBe(String(fromTs));
    });
  }
});
