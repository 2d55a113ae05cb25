import { parse as parseJsonc } from "jsonc-parser";
import { describe, expect, it } from "vitest";
import { HEADER_PREFIX } from "../common/kiloConfigMerge";
import { managedKeyPaths, renderKiloConfig, renderKiloConfigText } from "../deployer/kiloConfig";
import { resolveHosts } from "../deployer/resolveHosts";
import { formatErrors, parseSettings, type Settings } from "../deployer/settings";

/** The seed's example kilo.jsonc (docs/codex-pooler.md, point 3), written out by hand, in its key order. */
const SEED_EXAMPLE = {
  $schema: "https://app.kilo.ai/config.json",
  model: "codex-pooler/gpt-5.5",
  enabled_providers: ["codex-pooler"],
  provider: {
    "codex-pooler": {
      options: {
        apiKey: "{env:CODEX_POOLER_API_KEY}",
        baseURL: "http://localhost:4000/v1",
      },
      models: {
        "gpt-5.5": {
          name: "GPT-5.5 via Codex Pooler",
          tool_call: true,
          reasoning: true,
          temperature: false,
          attachment: true,
          modalities: { input: ["text", "image"], output: ["text"] },
          limit: { context: 272000, input: 228000, output: 64000 },
        },
      },
    },
  },
  compaction: { threshold_percent: 75 },
};

function _settingsOf(extra: Record<string, unknown> = {}): Settings {
  const raw: Record<string, unknown> = { "kilo-fleet:poolerBaseUrl": "http://localhost:4000/v1" };
  for (const [k, v] of Object.entries(extra)) raw[`kilo-fleet:${k}`] = v;
  const r = parseSettings(raw);
  if (!r.ok) throw new Error(formatErrors(r.errors));
  return r.settings;
}

function render(extra: Record<string, unknown> = {}, hostIndex = 0) {
  const raw: Record<string, unknown> = { "kilo-fleet:poolerBaseUrl": "http://localhost:4000/v1" };
  for (const [k, v] of Object.entries(extra)) raw[`kilo-fleet:${k}`] = v;
  const r = resolveHosts({ stack: raw });
  if (r.errors.length > 0) throw new Error(formatErrors(r.errors));
  return renderKiloConfig(r.specs[hostIndex]);
}

/** JSON text keeps key order, so equal text means equal keys, values and order. */
const ordered = (v: unknown) => JSON.stringify(v, null, 2);

describe("renderKiloConfig", () => {
  it("with only poolerBaseUrl set, is the seed example plus autoupdate: false (7.7.7 is pinned)", () => {
    expect(ordered(render())).toBe(ordered({ ...SEED_EXAMPLE, autoupdate: false }));
  });

  it('with kiloVersion "latest", is exactly the seed example', () => {
    expect(ordered(render({ kiloVersion: "latest" }))).toBe(ordered(SEED_EXAMPLE));
  });

  it("is deterministic: same settings, same output, whatever the input key order", () => {
    const a = render({ kiloSettings: { share: "disabled", autoshare: false }, permission: { bash: "allow" } });
    const b = render({ permission: { bash: "allow" }, kiloSettings: { autoshare: false, share: "disabled" } });
    expect(ordered(a)).toBe(ordered(b));
    expect(ordered(render())).toBe(ordered(render()));
  });

  it("does not share objects with the settings (the caller may mutate either)", () => {
    const spec = resolveHosts({ stack: { "kilo-fleet:poolerBaseUrl": "http://localhost:4000/v1" } }).specs[0];
    const config = renderKiloConfig(spec);
    (config.provider as Record<string, { models: Record<string, { name: string }> }>)["codex-pooler"].models[
      "gpt-5.5"
    ].name = "x";
    expect(spec.models["gpt-5.5"].name).toBe("GPT-5.5 via Codex Pooler");
  });

  it("applies a host's model and kiloVersion overrides", () => {
    const models = {
      "gpt-5.5": SEED_EXAMPLE.provider["codex-pooler"].models["gpt-5.5"],
      "gpt-5.4-mini": { name: "Mini", limit: { context: 100000, output: 16000 } },
    };
    const hosts = [
      { name: "pinned", local: true },
      { name: "edge", local: true, model: "gpt-5.4-mini", kiloVersion: "latest" },
    ];
    const pinned = render({ models, hosts }, 0);
    const edge = render({ models, hosts }, 1);
    expect(pinned.model).toBe("codex-pooler/gpt-5.5");
    expect(pinned.autoupdate).toBe(false);
    expect(edge.model).toBe("codex-pooler/gpt-5.4-mini");
    expect("autoupdate" in edge).toBe(false);
    // Every host gets the whole models map: switching models in kilo must keep working.
    expect(Object.keys((edge.provider as Record<string, { models: object }>)["codex-pooler"].models)).toEqual([
      "gpt-5.5",
      "gpt-5.4-mini",
    ]);
  });

  it("uses providerId and apiKeyEnvVar, and never the key itself", () => {
    const config = render({ providerId: "pool", apiKeyEnvVar: "POOL_KEY", codexPoolerApiKey: "sk-very-secret" });
    expect(config.model).toBe("pool/gpt-5.5");
    expect(config.enabled_providers).toEqual(["pool"]);
    expect((config.provider as Record<string, { options: object }>).pool.options).toEqual({
      apiKey: "{env:POOL_KEY}",
      baseURL: "http://localhost:4000/v1",
    });
    expect(JSON.stringify(config)).not.toContain("sk-very-secret");
  });

  it("adds permission (object form) after the managed keys", () => {
    const config = render({ permission: { bash: "ask", edit: "allow" } });
    expect(config.permission).toEqual({ bash: "ask", edit: "allow" });
    expect(Object.keys(config).slice(-1)).toEqual(["permission"]);
  });

  it("merges kiloSettings last, keys sorted", () => {
    const config = render({ kiloSettings: { share: "disabled", autoshare: false } });
    expect(Object.keys(config).slice(-2)).toEqual(["autoshare", "share"]);
    expect(config.share).toBe("disabled");
  });

  it("compactionThresholdPercent null omits compaction; a number sets it", () => {
    expect("compaction" in render({ compactionThresholdPercent: null })).toBe(false);
    expect(render({ compactionThresholdPercent: 60 }).compaction).toEqual({ threshold_percent: 60 });
  });
});

describe("managedKeyPaths", () => {
  it("owns the top-level keys it writes, and under provider only its own provider", () => {
    expect(managedKeyPaths(render({ permission: { bash: "allow" }, kiloSettings: { share: "disabled" } }))).toEqual([
      ["$schema"],
      ["model"],
      ["enabled_providers"],
      ["provider", "codex-pooler"],
      ["compaction"],
      ["autoupdate"],
      ["permission"],
      ["share"],
    ]);
  });
});

describe("renderKiloConfigText", () => {
  it("is a header comment naming the owned keys, then the config as JSONC", () => {
    const config = render();
    const text = renderKiloConfigText(config);
    const lines = text.split("\n");
    expect(lines[0]).toMatch(new RegExp(`^${HEADER_PREFIX} this file is managed by kilo-fleet`));
    expect(text).toContain("$schema, model, enabled_providers, provider.codex-pooler, compaction, autoupdate");
    expect(lines[3]).toBe("{");
    expect(ordered(parseJsonc(text))).toBe(ordered(config));
    expect(text.endsWith("}\n")).toBe(true);
  });

  it("is the same text every time", () => {
    expect(renderKiloConfigText(render())).toBe(renderKiloConfigText(render()));
  });
});
