/**
 * The host tool (host/tool.ts), bundled with esbuild at script-build time (memoized) and
 * embedded in the config, env and install scripts as a quoted heredoc that the script writes into its
 * temp dir and runs with the host's node. Deterministic: same sources, same bytes.
 */
import { existsSync } from "node:fs";
import * as path from "node:path";
import { buildSync } from "esbuild";

/** The heredoc delimiter; the build checks no line of the bundle equals it. */
export const TOOL_HEREDOC_END = "KILO_FLEET_TOOL_END";

let bundled: string | undefined;

function entryPoint(): string {
  for (const ext of [".ts", ".js"]) {
    const file = path.join(__dirname, "..", "..", "host", `tool${ext}`);
    if (existsSync(file)) return file;
  }
  throw new Error(
    `kilo-fleet: the host tool's source is missing (looked for ${path.join(__dirname, "..", "..", "host")}/tool.ts)`,
  );
}

/** The bundled tool: minified CommonJS for node >= 18, ASCII only, ending in a newline. */
export function hostToolSource(): string {
  if (bundled !== undefined) return bundled;
  const result = buildSync({
    entryPoints: [entryPoint()],
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
  let text = result.outputFiles[0].text;
  if (!text.endsWith("\n")) text += "\n";
  if (text.split("\n").includes(TOOL_HEREDOC_END))
    throw new Error("kilo-fleet: the host tool contains its heredoc delimiter");
  bundled = text;
  return text;
}

/** Script lines that write the tool to "$kf_tool" (in the prelude's temp dir). */
export function embedTool(): string {
  return [
    'kf_tool="$kf_tmp/kilo-fleet-tool.cjs"',
    `cat >"$kf_tool" <<'${TOOL_HEREDOC_END}' || kf_die "cannot write to the temporary directory $kf_tmp on $kf_host"`,
    hostToolSource() + TOOL_HEREDOC_END,
  ].join("\n");
}
