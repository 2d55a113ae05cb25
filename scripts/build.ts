/**
 * `npm run build`: the npm package in dist/ — the compiled JavaScript with types and source maps (tsc), the
 * host tool built once here so its id is the release's (dist/host-tool/), and the shipped lock.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { toolBundle, toolHeader, writeHostToolArtifact } from "../deployer/hostTool";
import { LOCK_FILE_NAME } from "../deployer/kiloLock";

const root = join(__dirname, "..");
const dist = join(root, "dist");

rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", join(root, "tsconfig.build.json")], {
  stdio: "inherit",
});
const tool = writeHostToolArtifact(toolHeader() + toolBundle(), join(dist, "host-tool"));
mkdirSync(join(dist, "stacks"), { recursive: true });
copyFileSync(join(root, "stacks", LOCK_FILE_NAME), join(dist, "stacks", LOCK_FILE_NAME));
chmodSync(join(dist, "cli", "kilo-fleet.js"), 0o755);
process.stdout.write(`dist/: compiled, host tool ${tool.id}, lock ${LOCK_FILE_NAME}\n`);
