/**
 * The crash-injection scenarios: each is one config or env step command (create or delete: `/bin/sh
 * <tool> config-apply '<json>'` etc., as the component builds them) with the HOME it starts from ("old")
 * and the HOME a complete run leaves ("new"). The HOME has the host tool shipped (`shipTool`, as the tool
 * step does) before anything is saved, so old and new both hold it. Both are built for real, once, at one
 * fixed HOME path (kilo-fleet's state records absolute paths), and saved with `cp -a`; each trial restores
 * the "old" copy at that path, crashes the command, checks every file, re-runs the command and checks the
 * result is exactly "new".
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  buildSettings,
  deployScripts,
  type Entry,
  makeHome,
  runLocal,
  scriptEnv,
  shipTool,
  snapshot,
  USER_BASHRC,
  USER_KILO_JSONC,
  USER_PROFILE,
  USER_ZSHRC,
} from "./hostHome";

export const KEY_A = "test-key-crash-old-4d1c9e";
export const KEY_B = "test-key-crash-new-b7a203";

/** Deployment A: the defaults, pinned. */
const A = buildSettings({ kiloVersion: "7.7.7" });
/** Deployment B: another model, pooler, permission, extra keys, unpinned, an explicit shell list (drops sh). */
const B = buildSettings(
  {
    kiloVersion: "latest",
    poolerBaseUrl: "https://pooler.example.com/v1",
    model: "gpt-5.5-mini",
    models: {
      "gpt-5.5": { limit: { context: 272000, output: 64000 } },
      "gpt-5.5-mini": { name: "mini", limit: { context: 128000, output: 16000 } },
    },
    permission: { bash: "ask" },
    kiloSettings: { share: "disabled" },
    compactionThresholdPercent: null,
  },
  { shells: ["bash", "zsh", "fish"] },
);
export const scriptsA = deployScripts(A);
export const scriptsB = deployScripts(B);

export interface Scenario {
  name: string;
  /** The step command (a local.Command's script: run by `/bin/sh -c`). */
  script: string;
  /** The step whose result its last stdout line carries (common/result.ts). */
  step: "config" | "env" | "config-delete" | "env-delete";
  stdin: string;
  old: Map<string, Entry>;
  neu: Map<string, Entry>;
  oldDir: string;
}

export interface Lab {
  root: string;
  /** The fixed HOME every trial runs at. */
  home: string;
  tmp: string;
  env: NodeJS.ProcessEnv;
  scenarios: Scenario[];
  /** Restores a saved HOME at the fixed path. */
  restore(dir: string): void;
  cleanup(): void;
}

const USER_FILES = {
  ".bashrc": USER_BASHRC,
  ".profile": USER_PROFILE,
  ".zshrc": USER_ZSHRC,
  ".config/kilo/kilo.jsonc": USER_KILO_JSONC,
  ".config/fish/config.fish": "# my fish config\nset -g fish_greeting\n",
};

function need(command: string | undefined): string {
  if (!command) throw new Error("building the crash scenarios: a step has no delete command");
  return command;
}

/** Builds the scenarios' old/new HOMEs for real. */
export function buildLab(): Lab {
  const h = makeHome({ files: USER_FILES, tool: false });
  const saved = mkdtempSync(join(tmpdir(), "kilo-fleet-crash-saved-"));
  const env = scriptEnv(h.home, h.tmp);
  let n = 0;
  const save = (): { dir: string; snap: Map<string, Entry> } => {
    const dir = join(saved, String(n++));
    execFileSync("cp", ["-a", h.home, dir]);
    return { dir, snap: snapshot(h.home) };
  };
  const restore = (dir: string) => {
    rmSync(h.home, { recursive: true, force: true });
    execFileSync("cp", ["-a", dir, h.home]);
    rmSync(h.tmp, { recursive: true, force: true });
    mkdirSync(h.tmp);
  };
  const run = (script: string, stdin = "") => {
    const r = runLocal(script, env, stdin);
    if (r.code !== 0) throw new Error(`building the crash scenarios: a step failed: ${r.stderr}`);
  };
  // The tool step runs first on every host: every scenario's HOME holds the tool.
  shipTool(env);
  const scenarios: Scenario[] = [];
  const step = (name: string, which: Scenario["step"], script: string, stdin = "") => {
    const before = save();
    run(script, stdin);
    const after = save();
    scenarios.push({ name, step: which, script, stdin, old: before.snap, neu: after.snap, oldDir: before.dir });
  };
  // First deploy of B on the user's own files.
  step("first deploy: config", "config", scriptsB.config.create);
  step("first deploy: env", "env", scriptsB.env.create, `${KEY_B}\n`);
  // Destroy it again.
  step("destroy: env", "env-delete", need(scriptsB.env.delete));
  step("destroy: config", "config-delete", need(scriptsB.config.delete));
  // Deploy A, then redeploy as B: changed settings, rotated key, a shell dropped and one added.
  run(scriptsA.config.create);
  run(scriptsA.env.create, `${KEY_A}\n`);
  step("redeploy: config", "config", scriptsB.config.create);
  step("redeploy: env (rotation)", "env", scriptsB.env.create, `${KEY_B}\n`);
  return {
    root: h.root,
    home: h.home,
    tmp: h.tmp,
    env,
    scenarios,
    restore,
    cleanup: () => {
      rmSync(h.root, { recursive: true, force: true });
      rmSync(saved, { recursive: true, force: true });
    },
  };
}
