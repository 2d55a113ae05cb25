/**
 * Pure parts of the host tool: the rc block (replaced in place, never duplicated, exact removal), the
 * env files, the key's validation, and the bundle embedded in the scripts (deterministic, portable).
 */
import { describe, expect, test } from "vitest";
import {
  ENV_FILE_HEADER,
  envVars,
  parseKeyFromStdin,
  renderFishEnvFile,
  renderShEnvFile,
} from "../host/envFile";
import {
  BLOCK_END,
  BLOCK_START,
  findBlock,
  homeWord,
  removeRcBlock,
  renderRcBlock,
  upsertRcBlock,
} from "../host/rcBlock";
import { hostToolSource, TOOL_HEREDOC_END } from "../deployer/hostScripts/tool";

const block = renderRcBlock("sh", `"$HOME"'/.config/kilo/codex-pooler.env'`, `"$HOME"'/.local/bin'`);

describe("rc block", () => {
  test("insert then remove gives back the exact bytes, for every starting shape", () => {
    for (const text of [undefined, "", "a\n", "a", "a\r\nb\r\n", "\n\n", "x\n# >>> not ours\n"]) {
      for (const placement of ["top", "bottom"] as const) {
        const up = upsertRcBlock(text, block, placement);
        expect(findBlock(up.text)).toBeDefined();
        const back = removeRcBlock(up.text, up.insertion);
        expect(back === null ? undefined : back, JSON.stringify({ text, placement })).toBe(text);
      }
    }
  });

  test("an existing block (even an older version of it) is replaced in place, never duplicated", () => {
    const old = `${BLOCK_START}\nold line\n${BLOCK_END}\n`;
    const text = `before\n${old}after\n`;
    const up = upsertRcBlock(text, block, "bottom");
    expect(up.text).toBe(`before\n${block}after\n`);
    expect(upsertRcBlock(up.text, block, "bottom").text).toBe(up.text);
    expect(up.text.split(BLOCK_START)).toHaveLength(2);
  });

  test("a start marker without an end marker is an error naming the line, not a guess", () => {
    expect(() => upsertRcBlock(`a\n${BLOCK_START}\nb\n`, block, "bottom", undefined, "~/.bashrc")).toThrow(
      /~\/\.bashrc line 2: kilo-fleet block has no end marker/,
    );
  });

  test("paths under HOME follow $HOME; others are quoted as they are", () => {
    expect(homeWord("/home/u/.local/bin", "/home/u", "sh")).toBe(`"$HOME"'/.local/bin'`);
    expect(homeWord("/opt/it's", "/home/u", "sh")).toBe(`'/opt/it'\\''s'`);
    expect(homeWord("/opt/a\\b'c", "/home/u", "fish")).toBe(`'/opt/a\\\\b\\'c'`);
  });
});

describe("env files and the key", () => {
  test("the key: exactly one line, one optional trailing newline", () => {
    expect(parseKeyFromStdin("test-key-1\n")).toBe("test-key-1");
    expect(parseKeyFromStdin("test-key-1")).toBe("test-key-1");
    for (const bad of ["", "\n", "a\nb", "a\n\n", "a\r\n", "a\tb"]) expect(() => parseKeyFromStdin(bad)).toThrow();
    try {
      parseKeyFromStdin("test-key-secret\nx");
    } catch (e) {
      expect(String(e)).not.toContain("test-key-secret");
    }
  });

  test("the env files' exact text", () => {
    const vars = envVars("CODEX_POOLER_API_KEY", "test-key-'x'", true);
    expect(renderShEnvFile(vars)).toBe(
      `${ENV_FILE_HEADER}\nexport CODEX_POOLER_API_KEY='test-key-'\\''x'\\'''\nexport KILO_DISABLE_AUTOUPDATE='1'\n`,
    );
    expect(renderFishEnvFile(envVars("K", "a\\b", false))).toBe(`${ENV_FILE_HEADER}\nset -gx K 'a\\\\b'\n`);
  });
});

describe("the bundled host tool", () => {
  test("is deterministic, ASCII, small, free of this machine's paths, and cannot end its heredoc early", () => {
    const a = hostToolSource();
    expect(hostToolSource()).toBe(a);
    expect(a).toMatch(/^[\x09\x0a\x20-\x7e]*$/);
    expect(a.length).toBeLessThan(40_000);
    expect(a).not.toContain(process.cwd());
    expect(a).not.toContain("/work/");
    expect(a.split("\n")).not.toContain(TOOL_HEREDOC_END);
    expect(a).not.toContain("zod"); // the settings schema stays on the Pulumi side
  });
});
