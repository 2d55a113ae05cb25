/**
 * Bundles host/ (host/tool.ts and what it imports, by path, with esbuild): deployer/'s one tie to host/.
 *
 * The host tool as an artifact: host/tool.ts bundled deterministically (same sources, same bytes)
 * behind host/header.sh (which embeds host/kilo-package.sh's functions: the package install runs in sh,
 * before any JavaScript runtime is needed), written once to `build/host-tool/tool-<id>.cjs` beside the
 * project (`id` = the first 12 hex digits of its sha256). Each host gets it once, by its own step, at
 * `~/.local/share/kilo-fleet/tool-<id>.cjs`: a new kilo-fleet is a new file, and the steps that name it
 * re-run with it, so a destroy always finds the tool each delete names. The state keeps only the file's
 * path and hash (a FileAsset), never its bytes.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { sha256Hex } from "../common/digest";
import { TOOL_DIR_IN_HOME, toolFileName } from "../common/hostPaths";

export interface HostToolArtifact {
  /** The whole file: sh header, then the bundle. */
  text: string;
  sha256: string;
  /** The first 12 hex digits of sha256 (48 bits: two builds never share a name in practice): the file's name on the host. */
  id: string;
  /** Where it is on this machine (absolute). */
  file: string;
  /**
   * The same, relative to the working directory when it is below it (Pulumi runs a program in its project
   * directory): what a FileAsset records in the state, the same on every machine that deploys the stack.
   */
  assetPath: string;
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

/** The line of host/header.sh that the package install's functions replace. */
const EMBED_LINE = "#@kilo-package.sh@";
/** The line of host/kilo-package.sh after its last function. */
const EMBED_END = "# The host tool's header (host/header.sh) embeds everything above this line";

/** host/kilo-package.sh's functions (from its `set -u` to the line that ends them), for the header. */
export function packageFunctions(): string {
  const lines = readFileSync(source("host/kilo-package.sh"), "utf8").split("\n");
  const start = lines.indexOf("set -u");
  const end = lines.findIndex((l) => l.startsWith(EMBED_END));
  if (start < 0 || end < start) {
    throw new Error("kilo-fleet: host/kilo-package.sh has no `set -u` line or no end-of-functions line");
  }
  return lines.slice(start, end).join("\n").trimEnd();
}

/**
 * The sh header, with host/kilo-package.sh's functions in place of its `#@kilo-package.sh@` line; refuses
 * one that would end the JavaScript comment early.
 */
export function toolHeader(): string {
  const raw = readFileSync(source("host/header.sh"), "utf8");
  if (raw.split("\n").filter((l) => l === EMBED_LINE).length !== 1) {
    throw new Error(`kilo-fleet: host/header.sh must have one ${EMBED_LINE} line`);
  }
  const text = raw.replace(`${EMBED_LINE}\n`, () => `${packageFunctions()}\n`);
  const lines = text.trimEnd().split("\n");
  if (lines[0] !== '":" /*' || lines[lines.length - 1] !== "*/;" || lines.slice(1, -1).join("\n").includes("*/")) {
    throw new Error(
      'kilo-fleet: host/header.sh (with host/kilo-package.sh embedded) must start with `":" /*`, end with `*/;` and contain no other `*/`',
    );
  }
  return `${lines.join("\n")}\n`;
}

/** The bundle: minified CommonJS for node >= 18, ASCII only. esbuild is a build tool: loaded only to build. */
export function toolBundle(): string {
  const { buildSync } = require("esbuild") as typeof import("esbuild");
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
const BUILT = Symbol.for("kilo-fleet.hostToolArtifact");
const slot = globalThis as { [BUILT]?: HostToolArtifact };

/**
 * The tool this process deploys: built once per process (`KILO_FLEET_BUILD_DIR` moves the build dir).
 * `useHostToolArtifact` replaces it, for tests that play a kilo-fleet upgrade between two deploys.
 */
export function hostToolArtifact(): HostToolArtifact {
  slot[BUILT] ??= prebuiltHostTool() ?? writeHostToolArtifact(toolHeader() + toolBundle());
  return slot[BUILT];
}

/** Where `npm run build` puts the release's tool: `dist/host-tool/` beside the compiled deployer/. */
export const PREBUILT_DIR = path.join(ROOT, "host-tool");

/** The tool a built package ships (its id fixed by the release), or undefined from a clone's sources. */
export function prebuiltHostTool(dir = PREBUILT_DIR): HostToolArtifact | undefined {
  if (!existsSync(dir)) return undefined;
  const names = readdirSync(dir).filter((n) => /^tool-[0-9a-f]{12}\.cjs$/.test(n));
  if (names.length !== 1) {
    throw new Error(
      `kilo-fleet: ${dir} must hold exactly one tool-<id>.cjs (found ${names.length}); rebuild the package`,
    );
  }
  const file = path.join(dir, names[0]);
  const artifact = describeHostTool(readFileSync(file, "utf8"), dir);
  if (file !== artifact.file) {
    throw new Error(
      `kilo-fleet: ${file} does not hash to its name (${toolFileName(artifact.id)}); rebuild the package`,
    );
  }
  return artifact;
}

export function useHostToolArtifact(artifact: HostToolArtifact | undefined): void {
  slot[BUILT] = artifact;
}

/**
 * Writes `text` to the build directory when it is not there yet (temp file + rename: a concurrent build
 * never sees half a file) and describes it.
 */
export function writeHostToolArtifact(
  text: string,
  dir = process.env.KILO_FLEET_BUILD_DIR || path.join(ROOT, "build", "host-tool"),
): HostToolArtifact {
  const artifact = describeHostTool(text, dir);
  const file = artifact.file;
  if (!existsSync(file) || readFileSync(file, "utf8") !== text) {
    mkdirSync(dir, { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, text, { mode: 0o644 });
    renameSync(tmp, file);
  }
  return artifact;
}

/** The artifact of the tool `text`, kept in `dir` under its content-addressed name. */
function describeHostTool(text: string, dir: string): HostToolArtifact {
  const sha256 = sha256Hex(text);
  const id = sha256.slice(0, 12);
  const file = path.join(dir, toolFileName(id));
  const rel = path.relative(process.cwd(), file);
  const assetPath = rel.startsWith("..") || path.isAbsolute(rel) ? file : rel;
  return { text, sha256, id, file, assetPath, pathInHome: `${TOOL_DIR_IN_HOME}/${toolFileName(id)}` };
}
