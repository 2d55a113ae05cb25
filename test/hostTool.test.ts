import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
/**
 * Pure parts of the host tool: the rc block (replaced in place, never duplicated, exact removal), the
 * env files, the key's validation, and the bundle embedded in the scripts (deterministic, portable).
 */
import { describe, expect, test } from "vitest";
import { toolStepCommands } from "../deployer/hostSteps";
import { hostToolArtifact, packageFunctions, toolBundle, toolHeader } from "../deployer/hostTool";
import { ENV_FILE_HEADER, envVars, parseKeyFromStdin, renderFishEnvFile, renderShEnvFile } from "../host/envFile";
import {
  BLOCK_END,
  BLOCK_START,
  findBlock,
  homeWord,
  removeRcBlock,
  renderRcBlock,
  upsertRcBlock,
} from "../host/rcBlock";

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
    for (const bad of ["", "\n", "a\nb", "a\n\n", "a\r\n", "a\tb", "a\u0085b", "key-✓", "key-\u{1F511}"]) {
      expect(() => parseKeyFromStdin(bad)).toThrow();
    }
    // Latin-1 is what a header can carry: kept as it is.
    expect(parseKeyFromStdin("key-é\n")).toBe("key-é");
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

describe("the host tool artifact", () => {
  test("is deterministic, ASCII, small, free of this machine's paths, and a valid sh and CommonJS file at once", () => {
    const a = hostToolArtifact();
    expect(toolHeader() + toolBundle()).toBe(a.text);
    expect(a.id).toBe(a.sha256.slice(0, 12));
    expect(a.file.endsWith(`/tool-${a.id}.cjs`)).toBe(true);
    expect(readFileSync(a.file, "utf8")).toBe(a.text);
    expect(a.pathInHome).toBe(`.local/share/kilo-fleet/tool-${a.id}.cjs`);
    expect(a.text).toMatch(/^[\x09\x0a\x20-\x7e]*$/);
    // The bundle (~105 KB with the policy step, its sudo re-run and checks, and the proxy's CONNECT client), plus
    // ~32 KB of sh: the header with host/kilo-package.sh's functions embedded. Shipped once per host, not in state.
    expect(a.text.length).toBeLessThan(150_000);
    expect(a.text).not.toContain(process.cwd());
    expect(a.text).not.toContain("/work/");
    expect(a.text).not.toContain("zod"); // the settings schema stays on the Pulumi side
    // The header is a comment to JavaScript, and nothing in it ends the comment early.
    const header = toolHeader().split("\n");
    expect(header[0]).toBe('":" /*');
    expect(header.slice(1, -2).join("\n")).not.toContain("*/");
    // Both parsers accept it: sh -n the header (sh never reads past it: it execs or exits), node --check the whole.
    expect(spawnSync("sh", ["-n"], { input: toolHeader() }).status).toBe(0);
    expect(spawnSync(process.execPath, ["--check", a.file], { encoding: "utf8" }).status).toBe(0);
  });

  test("embeds host/kilo-package.sh's functions (not its command dispatch) in the header, globs and `##*/` rewritten", () => {
    const header = toolHeader();
    const script = readFileSync(join(__dirname, "..", "host", "kilo-package.sh"), "utf8");
    expect(header).toContain(packageFunctions());
    expect(packageFunctions()).toMatch(/^set -u\n/);
    for (const fn of ["kf_platform", "kf_install", "kf_uninstall", "kf_lock_take", "kf_sha512_hex"]) {
      expect(header).toContain(`\n${fn}() {`);
    }
    // The script's own command dispatch stays out: the header routes install-package itself.
    expect(script).toContain("  uninstall) kf_uninstall ;;");
    expect(header).not.toContain("  uninstall) kf_uninstall ;;");
    expect(header).not.toContain("#!/bin/sh");
    expect(script).not.toContain("*/");
    // The dispatch of the sh-only subcommands comes before any JavaScript runtime is looked for.
    expect(header.indexOf("install-package)")).toBeGreaterThan(0);
    expect(header.indexOf("install-package)")).toBeLessThan(header.indexOf("kf_find_node() {"));
  });

  test("the tool step is small: an SSH host's is `/bin/sh -c '<script>'` with no quote or backslash inside", () => {
    const id = hostToolArtifact().id;
    const ssh = toolStepCommands(id, { kind: "ssh" }, "2026-11-26 it's");
    for (const line of [ssh.create, ssh.delete ?? ""]) {
      const m = /^\/bin\/sh -c '([^'\\]*)'$/.exec(line);
      expect(m, line).not.toBeNull();
      expect(line.length).toBeLessThan(300);
    }
    // The delete names this build's file; the create is the same for every build (the trigger names it).
    expect(ssh.delete).toContain(id);
    expect(ssh.create).not.toContain(id);
    const local = toolStepCommands(id, { kind: "local", source: "/x/tool.cjs" });
    expect(local.create.length + (local.delete ?? "").length).toBeLessThan(600);
  });

  test("run with an unknown subcommand or a bad argument, it says so in one line and exits 1", () => {
    const a = hostToolArtifact();
    for (const [args, message] of [
      [["nope"], /^kilo-fleet: usage: sh <tool> <install\|/],
      [["config-apply", "{not json"], /^kilo-fleet: config-apply: the argument is not valid JSON\n$/],
      [["config-apply", "[1]"], /^kilo-fleet: config-apply: the argument must be a JSON object\n$/],
      [["config-apply", "{}", "extra"], /^kilo-fleet: config-apply: takes one JSON argument, got 2\n$/],
    ] as const) {
      const r = spawnSync("/bin/sh", [a.file, ...args], { encoding: "utf8" });
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe("");
    }
  });
});
