/**
 * kilo-fleet as its users get it: `npm pack` (which builds dist/), the tarball installed into a fresh Pulumi
 * program directory beside the repo, and that program loaded the way Pulumi's nodejs language host loads it
 * (`@pulumi/pulumi/cmd/run/run.js`: its ts-node, the program's TypeScript), under mocks. Shared by the
 * package tests and the bench.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatResult, type StepResult } from "../common/result";

const REPO = join(__dirname, "..");

export interface PackedProgram {
  /** The tarball `npm pack` wrote. */
  tarball: string;
  /** The program directory, with the tarball and @pulumi/pulumi installed. */
  dir: string;
}

/** What the loader recorded: each registered resource's type, name and raw inputs (secrets wrapped). */
export interface LoadedProgram {
  resources: { type: string; name: string; inputs: Record<string, unknown> }[];
  error?: string;
  /** From the loader's start: to the first resource the program registered (not the stack), and to the end. */
  milliseconds: { firstResource?: number; total: number };
}

function installedVersion(pkg: string): string {
  return (JSON.parse(readFileSync(join(REPO, "node_modules", pkg, "package.json"), "utf8")) as { version: string })
    .version;
}

/** Packs the repo (building dist/) and installs the tarball into a new program directory under `root`. */
export function packAndInstall(root = mkdtempSync(join(tmpdir(), "kilo-fleet-package-"))): PackedProgram {
  const packDir = join(root, "pack");
  mkdirSync(packDir, { recursive: true });
  execFileSync("npm", ["pack", "--silent", "--pack-destination", packDir], {
    cwd: REPO,
    stdio: ["ignore", "ignore", "pipe"],
  });
  const tarball = join(packDir, readdirSync(packDir).find((f) => f.endsWith(".tgz")) as string);
  const dir = join(root, "program");
  mkdirSync(dir);
  writeFileSync(
    join(dir, "package.json"),
    `${JSON.stringify(
      {
        name: "kilo-fleet-probe",
        version: "0.0.0",
        private: true,
        dependencies: {
          "kilo-fleet": `file:${tarball}`,
          "@pulumi/pulumi": installedVersion("@pulumi/pulumi"),
          typescript: installedVersion("typescript"),
        },
      },
      null,
      2,
    )}\n`,
  );
  writeFileSync(
    join(dir, "tsconfig.json"),
    `${JSON.stringify({ compilerOptions: { strict: true, target: "ES2020", module: "commonjs", moduleResolution: "node", skipLibCheck: true } })}\n`,
  );
  writeLoader(dir);
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], {
    cwd: dir,
    stdio: ["ignore", "ignore", "pipe"],
  });
  return { tarball, dir };
}

/** Puts the loader (load.js) in `dir`, a program directory whose node_modules has @pulumi/pulumi. */
export function writeLoader(dir: string): void {
  writeFileSync(join(dir, "load.js"), LOADER);
}

/** The stdout each step prints on a host whose HOME is /home/dev (what the mocks give back). */
export function mockStepStdout(): Record<string, string> {
  const results: StepResult[] = [
    { step: "install", kiloVersion: "7.7.7", bin: "/home/dev/.local/bin/kilo", method: "package", changed: true },
    { step: "config", configPath: "~/.config/kilo/kilo.jsonc", status: "created" },
    { step: "env", envFilePath: "~/.config/kilo/codex-pooler.env", rcFiles: ["~/.profile"], changed: true },
    { step: "smoke", pass: true, level: "kilo-run", kiloVersion: "7.7.7", seconds: 1 },
  ] as StepResult[];
  return Object.fromEntries(results.map((r) => [r.step, formatResult(r)]));
}

/**
 * Runs `program` (a file of `dir`, which has the loader) with run.js's `run`, TypeScript on when it ends in `.ts`, under mocks whose
 * steps print `mockStepStdout()`; `extra`: the stack's config, and the state mocked resources of a type get.
 */
export function loadProgram(
  dir: string,
  program: string,
  extra: { config?: Record<string, string>; secretKeys?: string[]; stateByType?: Record<string, unknown> } = {},
): LoadedProgram {
  const out = join(dir, `loaded-${Date.now()}-${Math.random().toString(16).slice(2)}.json`);
  const r = spawnSync(process.execPath, ["load.js", out, program], {
    cwd: dir,
    encoding: "utf8",
    timeout: 120_000,
    env: {
      ...process.env,
      PULUMI_NODEJS_TYPESCRIPT: program.endsWith(".ts") ? "true" : "false",
      PROBE_STDOUT: JSON.stringify(mockStepStdout()),
      PROBE_STATE_BY_TYPE: JSON.stringify(extra.stateByType ?? {}),
      // How the language host hands a program its stack config.
      PULUMI_CONFIG: JSON.stringify(extra.config ?? {}),
      PULUMI_CONFIG_SECRET_KEYS: JSON.stringify(extra.secretKeys ?? []),
    },
  });
  try {
    return JSON.parse(readFileSync(out, "utf8")) as LoadedProgram;
  } catch {
    throw new Error(`the loader wrote no result (exit ${r.status}, signal ${r.signal}): ${r.stderr.slice(0, 2000)}`);
  }
}

/** The loader, a plain CommonJS file in the program directory (so it resolves the program's own SDK). */
const LOADER = `// Loads a program the way Pulumi's nodejs language host does (cmd/run/run.js), under mocks.
const fs = require("fs");
const Module = require("module");
const started = performance.now();
const [outFile, program] = process.argv.slice(2);
const pulumi = require("@pulumi/pulumi");
const stdout = JSON.parse(process.env.PROBE_STDOUT || "{}");
const stateByType = JSON.parse(process.env.PROBE_STATE_BY_TYPE || "{}");
const resources = [];
let firstResource;
pulumi.runtime.setMocks(
  {
    newResource(a) {
      if (a.type !== "pulumi:pulumi:Stack") firstResource ??= performance.now() - started;
      resources.push({ type: a.type, name: a.name, inputs: a.inputs });
      const role = a.name.slice(a.name.lastIndexOf("-") + 1);
      return { id: a.name + "-id", state: { ...a.inputs, stdout: stdout[role] ?? "", stderr: "", ...stateByType[a.type] } };
    },
    call(a) {
      return a.inputs;
    },
  },
  "probe",
  "dev",
  false,
);
// run.js requires the language host's CLI entry (cmd/run/index.js), which parses argv and dials an engine when
// loaded; run.js reads one constant of it, so that module is stood in for.
const entry = require.resolve("@pulumi/pulumi/cmd/run/index.js");
const stub = new Module(entry);
stub.filename = entry;
stub.loaded = true;
stub.exports = { nodeJSProcessExitedAfterLoggingUserActionableMessage: 32 };
require.cache[entry] = stub;
const { run } = require("@pulumi/pulumi/cmd/run/run.js");
let failed;
const write = (error) =>
  fs.writeFileSync(outFile, JSON.stringify({ resources, error, milliseconds: { firstResource, total: performance.now() - started } }));
run({ _: [program] }, () => {}, (e) => { failed ??= e; }, () => false).then(
  () => write(failed && String(failed.stack || failed)),
  (e) => { write(String(e.stack || e)); process.exitCode = 1; },
);
`;
