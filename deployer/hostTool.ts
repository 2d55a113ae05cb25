/**
 * The host tool as an artifact: host/tool.ts bundled by esbuild (deterministic: same sources, same bytes)
 * behind host/header.sh, written once to `build/host-tool/tool-<id>.cjs` beside the project (`id` = the
 * first 16 hex digits of its sha256). Each host gets it once, by its own step, at
 * `~/.local/share/kilo-fleet/tool-<id>.cjs`: a new kilo-fleet is a new file, and the steps that name it
 * re-run with it, so a destroy always finds the tool each delete names. The state keeps only the
 * file's path and hash (a FileAsset), never its bytes.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { buildSync } from "esbuild";
import { TOOL_DIR_IN_HOME, toolFileName } from "../common/hostPaths";

export interface HostToolArtifact {
  /** The whole file: sh header, then the bundle. */
  text: string;
  sha256: string;
  /** The first 16 hex digits of sha256: the file's name on the host. */
  id: string;
  /** Where it is on this machine (absolute). */
  file: string;
  /** Its path on the host relative to HOME. */
  pathInHome: string;
}

/** The repository root (deployer/ is one level down, whether run from .ts sources or compiled). */
const ROOT = path.join(__dirname, "..");

function source(rel: string): string {
  for (const candidate of [path.join(ROOT, rel), path.join(ROOT, rel.replace(/\.ts$/, ".js"))]) {
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(`kilo-fleet: the host tool's source is missing (looked for ${path.join(ROOT, rel)})`);
}

/** The sh header; refuses one that would end the JavaScript comment early. */
export function toolHeader(): string {
  const text = readFileSync(source("host/header.sh"), "utf8");
  const lines = text.trimEnd().split("\n");
  if (lines[0] !== '":" /*' || lines[lines.length - 1] !== "*/;" || lines.slice(1, -1).join("\n").includes("*/")) {
    throw new Error('kilo-fleet: host/header.sh must start with `":" /*`, end with `*/;` and contain no other `*/`');
  }
  return `${lines.join("\n")}\n`;
}

/** The bundle: minified CommonJS for node >= 18, ASCII only. */
export function toolBundle(): string {
  const result = buildSync({
    entryPoints: [source("host/tool.ts")],
    bundle: true,
    minify: true,
    platform: "node",
    target: "node18",
    format: "cjs",
    // jsonc-parser's UMD "main" requires its parts dynamically; its ES module build bundles cleanly.
    mainFields: ["module", "main"],
    charset: "ascii",
    legalComments: "none",
    write: false,
    logLevel: "silent",
  });
  const text = result.outputFiles[0].text;
  return text.endsWith("\n") ? text : `${text}\n`;
}

/** Held process-wide (not per module instance: a test harness may load the program more than once). */
const slot = globalThis as { [BUILT]?: HostToolArtifact };
const BUILT = Symbol.for("kilo-fleet.hostToolArtifact");

/**
 * The tool this process deploys: built once per process (`KILO_FLEET_BUILD_DIR` moves the build dir).
 * `useHostToolArtifact` replaces it, for tests that play a kilo-fleet upgrade between two deploys.
 */
export function hostToolArtifact(): HostToolArtifact {
  slot[BUILT] ??= writeHostToolArtifact(toolHeader() + toolBundle());
  return slot[BUILT];
}

export function useHostToolArtifact(artifact: HostToolArtifact | undefined): void {
  slot[BUILT] = artifact;
}

/**
 * Writes `text` to the build directory when it is not there yet (temp file + rename: a concurrent build
 * never sees half a file) and describes it.
 */
export function writeHostToolArtifact(text: string): HostToolArtifact {
  const sha256 = createHash("sha256").update(text, "utf8").digest("hex");
  const id = sha256.slice(0, 16);
  const dir = process.env.KILO_FLEET_BUILD_DIR || path.join(ROOT, "build", "host-tool");
  const file = path.join(dir, toolFileName(id));
  if (!existsSync(file) || readFileSync(file, "utf8") !== text) {
    mkdirSync(dir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, text, { mode: 0o644 });
    renameSync(tmp, file);
  }
  return { text, sha256, id, file, pathInHome: `${TOOL_DIR_IN_HOME}/${toolFileName(id)}` };
}
