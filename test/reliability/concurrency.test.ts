/**
 * Concurrency (issue 6): two stacks that share a host deploy it at once. The host tool is shipped first
 * (both stacks build the same tool, so they share its file). Each round, stack X and stack Y each run
 * their config then env step command (`/bin/sh <tool> config-apply '<json>'`, then env-apply) on the same
 * HOME, the second starting after a random (seeded) delay, so the two read-modify-write the same files at
 * overlapping moments; the tool's per-HOME lock must serialise them. After every round: every rc file
 * holds exactly one block and is otherwise the user's own; the env files are whole and hold one key (the
 * same one in the sh and fish files); kilo.jsonc parses and holds exactly one of the two managed sets, the
 * one kilo-fleet's state records; nothing half-written is left. At the end, one stack's env and config
 * deletes, then its tool step's delete, give back the user's HOME byte for byte (which a state record from
 * the other writer would break).
 */
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { parse as parseJsonc } from "jsonc-parser";
import { afterAll, describe, expect, it } from "vitest";
import { valueAt } from "../../common/kiloConfigMerge";
import { managedKeyPaths } from "../../deployer/kiloConfig";
import {
  buildSettings,
  deployScripts,
  makeHome,
  scriptEnv,
  shipTool,
  snapshot,
  USER_BASHRC,
  USER_KILO_JSONC,
  USER_PROFILE,
  USER_ZSHRC,
} from "../../harness/hostHome";
import { isLitter, prng, runScript, snapshotDiff, suiteSeed } from "../../harness/reliability";
import { envVars, renderFishEnvFile, renderShEnvFile } from "../../host/envFile";
import { BLOCK_END, BLOCK_START, removeRcBlock } from "../../host/rcBlock";

const ROUNDS = 16;
const KEY_X = "test-key-stack-x-51c0aa";
const KEY_Y = "test-key-stack-y-e93b12";

const X = buildSettings({ kiloVersion: "7.7.7", permission: { bash: "allow" }, kiloSettings: { snapshot: false } });
const Y = buildSettings({
  kiloVersion: "latest",
  poolerBaseUrl: "https://pooler-y.example.com/v1",
  model: "gpt-y",
  models: { "gpt-y": { name: "Y", limit: { context: 100000, output: 8000 } } },
  compactionThresholdPercent: 50,
  kiloSettings: { username: "stack-y" },
});
const stacks = [
  { name: "X", b: X, key: KEY_X, ...deployScripts(X) },
  { name: "Y", b: Y, key: KEY_Y, ...deployScripts(Y) },
];

const USER_FILES: Record<string, string> = {
  ".bashrc": USER_BASHRC,
  ".profile": USER_PROFILE,
  ".zshrc": USER_ZSHRC,
  ".config/kilo/kilo.jsonc": USER_KILO_JSONC,
  ".config/fish/config.fish": "# my fish config\n",
};
const RC_FILES: Record<string, string | undefined> = {
  ".bashrc": USER_BASHRC,
  ".profile": USER_PROFILE,
  ".zshrc": USER_ZSHRC,
  ".config/fish/conf.d/kilo-fleet.fish": undefined,
};

const h = makeHome({ files: USER_FILES, tool: false });
afterAll(() => rmSync(h.root, { recursive: true, force: true }));
const env = scriptEnv(h.home, h.tmp);

/** What is wrong with the HOME after a round (empty: nothing). */
function problems(): string[] {
  const out: string[] = [];
  for (const [rel, original] of Object.entries(RC_FILES)) {
    const text = readFileSync(join(h.home, rel), "utf8");
    const starts = text.split("\n").filter((l) => l === BLOCK_START).length;
    const ends = text.split("\n").filter((l) => l === BLOCK_END).length;
    if (starts !== 1 || ends !== 1) out.push(`${rel}: ${starts} start and ${ends} end markers`);
    else {
      // Without the block, the user's file is as it was (an added newline aside, for a file without one).
      const rest = removeRcBlock(text, { created: original === undefined, addedNewline: !original?.endsWith("\n") });
      if ((rest === null ? undefined : rest) !== original) out.push(`${rel}: the user's part changed`);
    }
  }
  const kiloDir = join(h.home, ".config/kilo");
  const shEnv = readFileSync(join(kiloDir, "codex-pooler.env"), "utf8");
  const fishEnv = readFileSync(join(kiloDir, "codex-pooler.env.fish"), "utf8");
  const holder = stacks.find(
    (s) => shEnv === renderShEnvFile(envVars("CODEX_POOLER_API_KEY", s.key, s.b.spec.kiloVersion !== "latest")),
  );
  if (!holder) out.push(`the env file is not whole: ${JSON.stringify(shEnv)}`);
  else if (
    fishEnv !== renderFishEnvFile(envVars("CODEX_POOLER_API_KEY", holder.key, holder.b.spec.kiloVersion !== "latest"))
  )
    out.push(`the fish env file does not hold the same key as the sh one (${holder.name})`);

  const jsoncText = readFileSync(join(kiloDir, "kilo.jsonc"), "utf8");
  const errors: { error: number }[] = [];
  const parsed = parseJsonc(jsoncText, errors as never, { allowTrailingComma: true });
  if (errors.length > 0) out.push("kilo.jsonc does not parse");
  const holds = stacks.filter((s) =>
    managedKeyPaths(s.kiloConfig).every((kp) => isDeepStrictEqual(valueAt(parsed, kp), valueAt(s.kiloConfig, kp))),
  );
  if (holds.length !== 1) out.push(`kilo.jsonc holds ${holds.length} complete managed sets`);
  else {
    // kilo-fleet's record of what it manages is the set that is in the file.
    const state = JSON.parse(readFileSync(join(h.home, ".local/state/kilo-fleet/config.json"), "utf8"));
    const paths = managedKeyPaths(holds[0].kiloConfig);
    if (!isDeepStrictEqual(state.paths, paths))
      out.push(`config state records other paths than the file's set (${holds[0].name})`);
    const other = stacks.find((s) => s !== holds[0]);
    for (const k of Object.keys(other?.b.settings.kiloSettings ?? {}))
      if (valueAt(parsed, [k]) !== undefined) out.push(`kilo.jsonc keeps the other stack's ${k}`);
  }
  if ((parsed as Record<string, unknown>)?.share !== "disabled") out.push("the user's own key is gone");
  for (const p of snapshot(h.home).keys()) if (isLitter(p)) out.push(`left behind: ${p}`);
  return out;
}

describe("two stacks deploying the same host at once", () => {
  it(`${ROUNDS} rounds of overlapping config+env runs leave whole files, one block each, one consistent set`, {
    timeout: 120_000,
  }, async () => {
    const seed = suiteSeed("concurrency");
    const rand = prng(seed);
    const pristine = snapshot(h.home);
    // The tool step runs first; both stacks name the same tool file.
    expect(stacks[0].tool).toEqual(stacks[1].tool);
    shipTool(env);
    const started = Date.now();
    const findings: string[] = [];
    let failedRuns = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const delay = Math.floor(rand() * 250);
      const order = rand() < 0.5 ? stacks : [...stacks].reverse();
      const runs = await Promise.all(
        order.map(async (s, i) => {
          if (i === 1) await new Promise((r) => setTimeout(r, delay));
          const c = await runScript(s.config.create, env);
          const e = await runScript(s.env.create, env, { stdin: `${s.key}\n` });
          return [c, e];
        }),
      );
      for (const r of runs.flat()) {
        if (r.code !== 0) {
          failedRuns++;
          findings.push(`round ${round}: a step failed: ${r.stderr.trim()}`);
        }
      }
      for (const p of problems()) findings.push(`round ${round} (delay ${delay} ms): ${p}`);
    }
    // One stack destroys (env, config, then the tool: dependency order): the user's HOME comes back byte
    // for byte.
    for (const del of [stacks[0].env.delete, stacks[0].config.delete, stacks[0].tool.delete]) {
      const d = await runScript(del ?? "exit 3", env);
      if (d.code !== 0) findings.push(`delete failed: ${d.stderr}`);
    }
    for (const d of snapshotDiff(snapshot(h.home), pristine)) findings.push(`after delete: ${d}`);
    console.log(
      `[reliability] concurrency: ${ROUNDS} rounds x 2 stacks (${ROUNDS * 4} step runs, overlapping), ${failedRuns} failed runs, ${findings.length} findings, ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    expect(findings).toEqual([]);
  });
});
