/**
 * The rendered kilo.jsonc against the REAL kilo (`kilo config check`, @kilocode/cli 7.7.7 from the test
 * cache). Never run `kilo debug config` here: it prints the resolved API key.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mergeKiloConfig } from "../common/kiloConfigMerge";
import { managedKeyPaths, renderKiloConfig, renderKiloConfigText } from "../deployer/kiloConfig";
import { resolveHosts } from "../deployer/resolveHosts";
import { formatErrors } from "../deployer/settings";
import { ensureKilo, type KiloInstall } from "../harness/kilo";

let kilo: KiloInstall;
const scratch: string[] = [];

beforeAll(() => {
  kilo = ensureKilo();
});

afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  scratch.push(dir);
  return dir;
}

interface CheckResult {
  status: number | null;
  output: string;
  /** The file as kilo left it (kilo adds its own keys on first run). */
  fileAfter: string;
}

/**
 * Writes `text` as `<tmp HOME>/.config/kilo/kilo.jsonc` and runs `kilo config check` from a separate temp
 * directory (in HOME itself kilo warns that indexing is disabled and exits 1).
 */
function configCheck(text: string): CheckResult {
  const home = tempDir("kilo-fleet-home-");
  const cwd = tempDir("kilo-fleet-cwd-");
  const file = join(home, ".config", "kilo", "kilo.jsonc");
  mkdirSync(join(home, ".config", "kilo"), { recursive: true });
  writeFileSync(file, text);
  // Only HOME-derived locations: no XDG_*, KILO_* or OPENCODE_* from the developer's environment.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^(XDG_|KILO|OPENCODE)/.test(k)),
  ) as NodeJS.ProcessEnv;
  const run = spawnSync(kilo.bin, ["config", "check"], {
    cwd,
    env: { ...env, HOME: home, NO_COLOR: "1" },
    encoding: "utf8",
    timeout: 120_000,
  });
  return { status: run.status, output: `${run.stdout}${run.stderr}`, fileAfter: readFileSync(file, "utf8") };
}

function renderedText(extra: Record<string, unknown> = {}, hostIndex = 0) {
  const raw: Record<string, unknown> = { "kilo-fleet:poolerBaseUrl": "http://localhost:4000/v1" };
  for (const [k, v] of Object.entries(extra)) raw[`kilo-fleet:${k}`] = v;
  const r = resolveHosts({ stack: raw });
  if (r.errors.length > 0) throw new Error(formatErrors(r.errors));
  const config = renderKiloConfig(r.specs[hostIndex]);
  return { config, text: renderKiloConfigText(config) };
}

function expectAccepted(result: CheckResult) {
  expect(result.output).toContain("No config warnings.");
  expect(result.status).toBe(0);
}

describe("kilo config check (real kilo 7.7.7)", () => {
  it("negative control: a file kilo cannot accept makes it exit non-zero", () => {
    const bad = renderedText().text.replace('"model": "codex-pooler/gpt-5.5"', '"model": 5');
    expect(bad).toContain('"model": 5');
    const result = configCheck(bad);
    expect(result.status).not.toBe(0);
    expect(result.output).not.toContain("No config warnings.");
  });

  it("accepts the default rendered file (the seed example, pinned)", () => {
    expectAccepted(configCheck(renderedText().text));
  });

  it("accepts the unpinned seed example (kiloVersion latest)", () => {
    expectAccepted(configCheck(renderedText({ kiloVersion: "latest" }).text));
  });

  it("accepts a custom models map with a host's model override", () => {
    const models = {
      "gpt-5.5": { name: "GPT-5.5", limit: { context: 272000, input: 228000, output: 64000 } },
      "gpt-5.4-mini": {
        name: "GPT-5.4 mini",
        tool_call: true,
        reasoning: false,
        attachment: false,
        modalities: { input: ["text"], output: ["text"] },
        limit: { context: 128000, output: 16000 },
      },
    };
    const hosts = [{ name: "mini", local: true, model: "gpt-5.4-mini" }];
    const { text } = renderedText({ models, hosts, providerId: "pool", apiKeyEnvVar: "POOL_KEY" });
    expect(text).toContain('"model": "pool/gpt-5.4-mini"');
    expectAccepted(configCheck(text));
  });

  it("accepts a permission object and compaction omitted", () => {
    const { text } = renderedText({ permission: { bash: "ask", edit: "allow" }, compactionThresholdPercent: null });
    expect(text).not.toContain("compaction");
    expectAccepted(configCheck(text));
  });

  it("accepts kiloSettings such as share", () => {
    const { text } = renderedText({ kiloSettings: { share: "disabled" } });
    expect(text).toContain('"share": "disabled"');
    expectAccepted(configCheck(text));
  });

  it("accepts the managed keys merged into a user's commented file, and a re-merge after kilo's own edit changes nothing", () => {
    const user = '// mine\n{\n  "share": "manual", // keep\n  "provider": {\n    "other": { "options": {} }\n  }\n}\n';
    const { config } = renderedText();
    const merged = mergeKiloConfig(user, config, managedKeyPaths(config));
    const result = configCheck(merged);
    expectAccepted(result);
    // kilo writes its own "permission" on first run; kilo-fleet must keep it and stay stable.
    const again = mergeKiloConfig(result.fileAfter, config, managedKeyPaths(config), managedKeyPaths(config));
    expect(again).toBe(result.fileAfter);
  });
});
