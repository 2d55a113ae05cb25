import { parse as parseJsonc } from "jsonc-parser";
import { describe, expect, it } from "vitest";
import {
  HEADER_PREFIX,
  type KeyPath,
  KiloConfigParseError,
  mergeKiloConfig,
  stripKiloConfig,
} from "../common/kiloConfigMerge";
import { type KiloConfig, managedKeyPaths, renderKiloConfig, renderKiloConfigText } from "../deployer/kiloConfig";
import { resolveHosts } from "../deployer/resolveHosts";

function managedConfig(extra: Record<string, unknown> = {}): KiloConfig {
  const raw: Record<string, unknown> = { "kilo-fleet:poolerBaseUrl": "http://localhost:4000/v1" };
  for (const [k, v] of Object.entries(extra)) raw[`kilo-fleet:${k}`] = v;
  const r = resolveHosts({ stack: raw });
  if (r.errors.length > 0) throw new Error(JSON.stringify(r.errors));
  return renderKiloConfig(r.specs[0]);
}

const CONFIG = managedConfig();
const PATHS = managedKeyPaths(CONFIG);
const merge = (text: string | undefined, previous: readonly KeyPath[] = []) =>
  mergeKiloConfig(text, CONFIG, PATHS, previous);

/** A user's own file: comments of both kinds, a trailing comment, another provider, kilo's permission. */
const USER_FILE = `// my kilo settings
{
  /* sharing off at work */
  "share": "disabled", // keep this
  "provider": {
    "local-llm": {
      "options": { "baseURL": "http://localhost:11434/v1" }
    }
  },
  "permission": {
    "bash": "ask"
  }
}
`;

describe("mergeKiloConfig", () => {
  it("with no file, writes exactly the rendered text", () => {
    expect(merge(undefined)).toBe(renderKiloConfigText(CONFIG));
    expect(merge("")).toBe(renderKiloConfigText(CONFIG));
  });

  it("sets every managed key and keeps the user's comments and keys byte-for-byte", () => {
    const out = merge(USER_FILE);
    expect(out.startsWith(HEADER_PREFIX)).toBe(true);
    for (const line of USER_FILE.split("\n").slice(0, 7)) expect(out).toContain(line);
    expect(out).toContain('  "share": "disabled", // keep this\n');
    const value = parseJsonc(out) as Record<string, unknown>;
    for (const [key, v] of Object.entries(CONFIG)) {
      if (key !== "provider") expect(value[key]).toEqual(v);
    }
    expect(value.share).toBe("disabled");
  });

  it("keeps other providers under provider, and adds its own beside them", () => {
    const provider = (parseJsonc(merge(USER_FILE)) as { provider: Record<string, unknown> }).provider;
    expect(Object.keys(provider)).toEqual(["local-llm", "codex-pooler"]);
    expect(provider["codex-pooler"]).toEqual((CONFIG.provider as Record<string, unknown>)["codex-pooler"]);
  });

  it("keeps kilo's own permission when permission is not managed", () => {
    expect(PATHS.map((p) => p.join("."))).not.toContain("permission");
    const afterKilo = merge(undefined).replace(/\n}\n$/, ',\n  "permission": {\n    "bash": "allow"\n  }\n}\n');
    expect(merge(afterKilo)).toBe(afterKilo);
    expect((parseJsonc(merge(USER_FILE)) as { permission: unknown }).permission).toEqual({ bash: "ask" });
  });

  it("replaces permission when it is managed", () => {
    const config = managedConfig({ permission: { bash: "allow", edit: "ask" } });
    const out = mergeKiloConfig(USER_FILE, config, managedKeyPaths(config));
    expect((parseJsonc(out) as { permission: unknown }).permission).toEqual({ bash: "allow", edit: "ask" });
  });

  it("removes keys managed last time that are no longer configured", () => {
    const before = mergeKiloConfig(USER_FILE, { ...CONFIG, provider: { "old-pool": { options: {} } }, share2: 1 }, [
      ...PATHS.filter((p) => p[0] !== "provider"),
      ["provider", "old-pool"],
      ["share2"],
    ]);
    const withoutCompaction = managedConfig({ compactionThresholdPercent: null });
    const out = mergeKiloConfig(before, withoutCompaction, managedKeyPaths(withoutCompaction), [
      ...PATHS,
      ["provider", "old-pool"],
      ["share2"],
    ]);
    const value = parseJsonc(out) as Record<string, unknown>;
    expect(value.compaction).toBeUndefined();
    expect(value.share2).toBeUndefined();
    expect(Object.keys(value.provider as object)).toEqual(["local-llm", "codex-pooler"]);
    expect(value.share).toBe("disabled");
  });

  it("drops the provider object when its last managed entry goes", () => {
    const out = mergeKiloConfig(merge(undefined), { model: "x" }, [["model"]], PATHS);
    expect(parseJsonc(out)).toEqual({ model: "x" });
  });

  it.each([
    ["no file", undefined],
    ["the user's file", USER_FILE],
    ["a one-line file", '{"share":"disabled"}'],
    ["a file with a trailing comma", '{\n  "share": "disabled",\n}\n'],
  ])("is idempotent: merge(merge(x)) == merge(x) for %s", (_name, text) => {
    const once = merge(text);
    expect(merge(once, PATHS)).toBe(once);
  });

  it("keeps CRLF line endings everywhere", () => {
    const crlf = USER_FILE.replaceAll("\n", "\r\n");
    const out = merge(crlf);
    expect(out.replaceAll("\r\n", "")).not.toContain("\n");
    expect(merge(out, PATHS)).toBe(out);
    expect(stripKiloConfig(out, PATHS).text).toBe(crlf);
  });

  it("indents with tabs in a tab-indented file", () => {
    const tabbed = '{\n\t"share": "disabled"\n}\n';
    const out = merge(tabbed);
    expect(out).toContain('\n\t"model": "codex-pooler/gpt-5.5"');
    expect(out).toContain('\n\t\t"codex-pooler": {');
    expect(out).not.toMatch(/\n {2}"/);
    expect(stripKiloConfig(out, PATHS).text).toBe(tabbed);
  });

  it("reports invalid JSONC with line and column, counting the header lines", () => {
    const broken = `${merge(undefined)}`.replace(
      '"model": "codex-pooler/gpt-5.5"',
      '"model": "codex-pooler/gpt-5.5" oops',
    );
    const lines = broken.split("\n");
    const line = lines.findIndex((l) => l.includes("oops")) + 1;
    const column = lines[line - 1].indexOf("oops") + 1;
    let error: unknown;
    try {
      merge(broken);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(KiloConfigParseError);
    expect(error).toMatchObject({ line, column });
    expect(String(error)).toContain(`line ${line}, column ${column}`);
  });

  it.each([
    ["an unclosed object", '{\n  "a": 1\n', 3, 1],
    ["a top-level array", "[]", 1, 1],
  ])("refuses %s", (_name, text, line, column) => {
    expect(() => merge(text)).toThrow(KiloConfigParseError);
    try {
      merge(text);
    } catch (e) {
      expect(e).toMatchObject({ line, column });
    }
  });
});

describe("stripKiloConfig", () => {
  it.each([
    ["the user's file", USER_FILE],
    ["a one-line file", '{"share":"disabled"}'],
    ["a file with a trailing comma", '{\n  "share": "disabled",\n}\n'],
    ["a file whose last key has a line comment", '{\n  "share": "disabled" // mine\n}\n'],
    ["an empty object with a comment", "{\n  // nothing yet\n}\n"],
  ])("round-trips %s: strip(merge(x)) gives back the user's original bytes", (_name, text) => {
    const result = stripKiloConfig(merge(text), PATHS);
    expect(result.text).toBe(text);
    expect(result.userContentLeft).toBe(true);
  });

  it("round-trips after kilo-fleet's keys were merged twice, with a changed value in between", () => {
    const first = merge(USER_FILE);
    const changed = managedConfig({ model: "gpt-5.5", compactionThresholdPercent: 50 });
    const second = mergeKiloConfig(first, changed, managedKeyPaths(changed), PATHS);
    expect(stripKiloConfig(second, managedKeyPaths(changed)).text).toBe(USER_FILE);
  });

  it("keeps a comment that precedes a managed key the user had", () => {
    const text = '{\n  "share": "disabled", // keep\n  // my model\n  "model": "mine/x"\n}\n';
    const out = stripKiloConfig(merge(text), PATHS).text;
    expect(out).toBe('{\n  "share": "disabled" // keep\n  // my model\n}\n');
  });

  it("nothing of the user's is left in a file kilo-fleet created", () => {
    expect(stripKiloConfig(merge(undefined), PATHS)).toEqual({ text: "{\n}\n", userContentLeft: false });
  });

  it("kilo's first-run permission does not count when kilo-fleet created the file, and does otherwise", () => {
    const afterKilo = merge(undefined).replace(/\n}\n$/, ',\n  "permission": {\n    "bash": "allow"\n  }\n}\n');
    expect(stripKiloConfig(afterKilo, PATHS, true).userContentLeft).toBe(false);
    expect(stripKiloConfig(afterKilo, PATHS, false).userContentLeft).toBe(true);
  });

  it("a permission the user changed counts even in a file kilo-fleet created", () => {
    const edited = merge(undefined).replace(/\n}\n$/, ',\n  "permission": {\n    "bash": "ask"\n  }\n}\n');
    expect(stripKiloConfig(edited, PATHS, true).userContentLeft).toBe(true);
  });

  it("a user's key or comment counts", () => {
    expect(stripKiloConfig(merge('{\n  "share": "disabled"\n}\n'), PATHS, true).userContentLeft).toBe(true);
    expect(stripKiloConfig(merge("// hi\n{}\n"), PATHS, true).userContentLeft).toBe(true);
  });

  it("refuses invalid JSONC instead of guessing", () => {
    expect(() => stripKiloConfig("{ nope", PATHS)).toThrow(KiloConfigParseError);
  });
});

describe("the header comment", () => {
  it("escapes a key that could end the comment, so the file still parses", () => {
    const config = { ...CONFIG, "a\nb\u2028c": 1 } as KiloConfig;
    const text = mergeKiloConfig(undefined, config, managedKeyPaths(config));
    const header = text.split("\n").filter((l) => l.startsWith(HEADER_PREFIX));
    expect(header).toHaveLength(3);
    expect(header[1]).toContain('"a\\nb\\u2028c"');
    const errors: unknown[] = [];
    expect(parseJsonc(text, errors as never)).toMatchObject({ "a\nb\u2028c": 1 });
    expect(errors).toEqual([]);
  });
});
