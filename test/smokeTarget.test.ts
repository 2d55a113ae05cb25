/** What the smoke check reads from the deployed kilo.jsonc (host/smokeTarget.ts): pure, text in. */
import { describe, expect, test } from "vitest";
import { renderKiloConfig } from "../deployer/kiloConfig";
import { buildSettings } from "../harness/hostHome";
import { smokeTarget } from "../host/smokeTarget";

const FILE = "/home/dev/.config/kilo/kilo.jsonc";

describe("smokeTarget", () => {
  test("the rendered config gives the spec's model, base URL, key variable and limits", () => {
    const b = buildSettings({ apiKeyEnvVar: "TEAM_POOL_KEY", poolerBaseUrl: "https://pool.example.com/v1" });
    const t = smokeTarget(JSON.stringify(renderKiloConfig(b.spec)), FILE);
    expect(t).toEqual({
      model: `${b.spec.providerId}/${b.spec.model}`,
      baseUrl: "https://pool.example.com/v1",
      keyVar: "TEAM_POOL_KEY",
      models: Object.fromEntries(Object.entries(b.spec.models).map(([id, m]) => [id, { limit: m.limit }])),
      // kilo's context arithmetic uses it (the smoke check's context warning).
      compaction: { thresholdPercent: 75 },
    });
  });

  test("JSONC as kilo rewrites it (comments, trailing commas, keys of its own); a model id with a slash", () => {
    const text = `// kilo-fleet manages some keys
{
  "$schema": "https://app.kilo.ai/config.json",
  "model": "pool/openai/gpt-5", // the provider is before the first slash
  "permission": { "bash": "ask" },
  "provider": {
    "pool": {
      "options": { "apiKey": "{env:POOL_KEY}", "baseURL": "http://localhost:4000/v1", },
      "models": { "openai/gpt-5": { "limit": { "context": 1000, "output": 10, "note": "x" } }, "bare": {} },
    },
  },
}`;
    expect(smokeTarget(text, FILE)).toEqual({
      model: "pool/openai/gpt-5",
      baseUrl: "http://localhost:4000/v1",
      keyVar: "POOL_KEY",
      models: { "openai/gpt-5": { limit: { context: 1000, output: 10 } }, bare: { limit: {} } },
    });
  });

  test("kilo.jsonc's compaction (reserved, threshold_percent) is read: kilo's context arithmetic uses it", () => {
    const config = (compaction: unknown) =>
      JSON.stringify({
        model: "p/m",
        compaction,
        provider: { p: { options: { baseURL: "http://x/v1", apiKey: "{env:K}" }, models: { m: {} } } },
      });
    expect(smokeTarget(config({ reserved: 30000, threshold_percent: 80, auto: true }), FILE).compaction).toEqual({
      reserved: 30000,
      thresholdPercent: 80,
    });
    expect(smokeTarget(config({}), FILE).compaction).toEqual({});
    expect(smokeTarget(config(undefined), FILE).compaction).toBeUndefined();
  });

  test.each([
    ["[]", "is not a JSON object"],
    ['{"model":"gpt-5.5"}', 'has no "model" of the form "<provider>/<model>"'],
    ['{"model":"p/"}', 'has no "model" of the form "<provider>/<model>"'],
    ['{"model":"p/m","provider":{}}', 'defines no provider "p"'],
    ['{"model":"p/m","provider":{"p":{"options":{"apiKey":"{env:K}"}}}}', "has no provider.p.options.baseURL"],
    [
      '{"model":"p/m","provider":{"p":{"options":{"baseURL":"http://x/v1","apiKey":"sk-literal-0123456789"}}}}',
      'has no provider.p.options.apiKey of the form "{env:VAR}"',
    ],
  ])("%s: one line naming the file and what is missing", (text, what) => {
    expect(() => smokeTarget(text, FILE)).toThrow(`${FILE} ${what}`);
    try {
      smokeTarget(text, FILE);
    } catch (e) {
      expect((e as Error).message).not.toContain("sk-literal");
    }
  });
});
