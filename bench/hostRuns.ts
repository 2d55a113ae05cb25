/**
 * The host-side measurements: the real host steps (the host tool's subcommands, run by the short commands
 * deployer/hostSteps.ts builds, through harness/hostHome.ts `deployScripts`) run the way local.Command runs
 * them (`/bin/sh -c <command>`, stdin piped) on temporary HOMEs that got the tool first (`shipTool`), the
 * real kilo against the stand-in pooler, and du-style disk usage. Every step's outcome is read from its
 * `kilo-fleet-result` line (common/result.ts), never from its prose.
 */
import { spawn } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join, relative } from "node:path";
import { parseResult } from "../common/result";
import {
  type Built,
  deployScripts,
  makeHome,
  runLocal,
  scriptEnv,
  shipTool,
  USER_BASHRC,
  USER_PROFILE,
} from "../harness/hostHome";
import { kiloEnvironment, SMOKE_PROMPT, smokeConfigCopy } from "../host/smoke";

export interface Host {
  root: string;
  home: string;
  tmp: string;
}

/** What a step left in the state: its stdout and stderr as the provider keeps them (one trailing newline off). */
export interface StepOutput {
  stdout: string;
  stderr: string;
}

const providerTrim = (s: string) => s.replace(/\n$/, "");
const output = (r: { stdout: string; stderr: string }): StepOutput => ({
  stdout: providerTrim(r.stdout),
  stderr: providerTrim(r.stderr),
});

/**
 * A fresh temporary HOME holding a user's own ~/.bashrc and ~/.profile, with its own TMPDIR, and the host
 * tool shipped into it by the tool step's own command (every other step needs it). The tool step's
 * output is returned with it.
 */
export function freshHome(): { host: Host; tool: StepOutput } {
  const host = makeHome({ files: { ".bashrc": USER_BASHRC, ".profile": USER_PROFILE } });
  try {
    return { host, tool: output(shipTool(hostEnv(host))) };
  } catch (e) {
    rmSync(host.root, { recursive: true, force: true });
    throw e;
  }
}

/**
 * The environment a host step gets: this process's, with HOME and TMPDIR pointed at the temporary host,
 * and without what `npm run` adds (npm_config_*, npm_package_*, ...), which `pulumi up` would not pass on.
 */
export function hostEnv(h: Host): NodeJS.ProcessEnv {
  const drop = Object.keys(process.env).filter((k) => /^npm_/i.test(k));
  return scriptEnv(h.home, h.tmp, Object.fromEntries(drop.map((k) => [k, undefined])));
}

const seconds = (startedMs: number) => (performance.now() - startedMs) / 1000;

/**
 * Runs the install step's create once (synchronously, like the tests' runLocal) and returns its wall time
 * and output. `expect` says whether npm must have run ("cold": the result says `changed`) or been skipped
 * ("warm": not `changed`); anything else throws, so a figure never comes from a run that did something else.
 */
export function timeInstall(
  b: Built,
  h: Host,
  expect: "cold" | "warm",
): { seconds: number; output: StepOutput; method: string } {
  const command = deployScripts(b).install.create;
  const started = performance.now();
  const r = runLocal(command, hostEnv(h));
  const s = seconds(started);
  const result = parseResult(r.stdout, "install");
  if (r.code !== 0 || result?.kiloVersion !== b.spec.kiloVersion || result.changed !== (expect === "cold")) {
    throw new Error(
      `install (${expect}) did not do what was measured: exit ${r.code}, stdout ${JSON.stringify(r.stdout.slice(-400))}, stderr ${JSON.stringify(r.stderr.slice(-400))}`,
    );
  }
  return { seconds: s, output: output(r), method: result.method };
}

/**
 * Runs the real config and env steps (the key on the env step's stdin) on `h`; throws if either fails or
 * prints no result. Their outputs, by step.
 */
export function configure(b: Built, h: Host, key: string): { config: StepOutput; env: StepOutput } {
  const steps = deployScripts(b);
  const run = <S extends "config" | "env">(step: S, command: string, stdin: string): StepOutput => {
    const r = runLocal(command, hostEnv(h), stdin);
    if (r.code !== 0 || !parseResult(r.stdout, step)) {
      throw new Error(`${step} step failed: exit ${r.code}, ${r.stderr.trim().slice(-400)}`);
    }
    return output(r);
  };
  return { config: run("config", steps.config.create, ""), env: run("env", steps.env.create, key) };
}

interface Spawned {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** `/bin/sh -c <script> sh <args...>`, asynchronously (the stand-in pooler runs in this process). */
function runSh(script: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<Spawned> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn("/bin/sh", ["-c", script, "sh", ...args], { env, cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr, seconds: seconds(started) }));
  });
}

/** The smoke step's command on `h`; its wall time and output. Throws unless it passed. */
export async function timeSmoke(b: Built, h: Host): Promise<{ seconds: number; output: StepOutput }> {
  const smoke = deployScripts(b).smoke;
  if (!smoke) throw new Error("the smoke check is disabled in the bench's settings");
  const r = await runSh(smoke.create, [], hostEnv(h), h.home);
  if (r.code !== 0 || parseResult(r.stdout, "smoke")?.pass !== true) {
    throw new Error(`smoke check did not pass: exit ${r.code}, ${r.stderr.trim().slice(-400)}`);
  }
  return { seconds: r.seconds, output: output(r) };
}

/**
 * The seed command by hand, as a user on `h` would type it in a new shell: the env file the deploy
 * wrote sourced (what the rc blocks do), a fresh temp directory, then
 * `kilo run --model <provider>/<model> --pure --auto --format json --dir "$PWD" '<prompt>'` with the
 * kilo the install put in ~/.local/bin. With `smokeEnv`, kilo also gets the environment the smoke check
 * gives it (host/smoke.ts `kiloEnvironment`: allowlisted variables, a HOME of its own, the config files
 * copied through `smokeConfigCopy`, no models fetch, no telemetry, one retry, cache/data/state/TMPDIR in the
 * scratch dir), so the difference to the
 * smoke check is the check's own work. Its wall time; throws unless kilo wrote kilo-ok.txt and said
 * `kilo ok`. The temp directory is removed afterwards.
 */
export async function timeBareRun(b: Built, h: Host, opts: { smokeEnv?: boolean } = {}): Promise<number> {
  const scratch = mkdtempSync(join(h.tmp, "bare-"));
  try {
    const dir = join(scratch, "work");
    mkdirSync(dir);
    let env = hostEnv(h);
    if (opts.smokeEnv) {
      const configDir = join(h.home, ".config", "kilo");
      const copy = join(scratch, "config", "kilo");
      for (const d of [join(scratch, "tmp"), join(scratch, "home"), copy]) mkdirSync(d, { recursive: true });
      for (const name of existsSync(configDir) ? readdirSync(configDir) : []) {
        if (/\.jsonc?$/.test(name) && lstatSync(join(configDir, name)).isFile()) {
          writeFileSync(join(copy, name), smokeConfigCopy(readFileSync(join(configDir, name), "utf8")), {
            mode: 0o600,
          });
        }
      }
      // The env file is sourced by the command below, as the check loads it.
      env = kiloEnvironment(env, new Map(), scratch);
    }
    const model = `${b.spec.providerId}/${b.spec.model}`;
    // Absolute paths: the smoke check's environment may move HOME into its scratch directory.
    const script = '. "$4" && cd "$1" && exec "$5" run --model "$2" --pure --auto --format json --dir "$PWD" "$3"';
    const envFile = join(h.home, ".config", "kilo", "codex-pooler.env");
    const kilo = join(h.home, ".local", "bin", "kilo");
    const r = await runSh(script, [dir, model, SMOKE_PROMPT, envFile, kilo], env, h.home);
    let file = "";
    try {
      file = readFileSync(join(dir, "kilo-ok.txt"), "utf8");
    } catch {
      // Checked below.
    }
    if (r.code !== 0 || file.trimEnd() !== "kilo ok" || !r.stdout.includes('"kilo ok"')) {
      throw new Error(
        `bare kilo run did not pass: exit ${r.code}, file ${JSON.stringify(file)}, ${r.stderr.slice(-400)}`,
      );
    }
    return r.seconds;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

export interface Usage {
  /** Allocated bytes (st_blocks × 512), each inode once: what `du` reports. */
  bytes: number;
  /** Apparent size, each inode once: `du --apparent-size`. */
  apparentBytes: number;
}

/** Every path under `dir` (relative, not following links), the directory itself excluded. */
export function listTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (abs: string) => {
    for (const e of readdirSync(abs, { withFileTypes: true })) {
      const p = join(abs, e.name);
      out.push(relative(dir, p));
      if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

/** du over `paths` (absolute): allocated and apparent bytes, hard-linked inodes counted once. */
export function diskUsage(paths: Iterable<string>): Usage {
  const seen = new Set<string>();
  let bytes = 0;
  let apparentBytes = 0;
  for (const p of paths) {
    const st = lstatSync(p);
    const id = `${st.dev}:${st.ino}`;
    if (seen.has(id)) continue;
    seen.add(id);
    bytes += st.blocks * 512;
    apparentBytes += st.size;
  }
  return { bytes, apparentBytes };
}

/** du of a whole directory tree, the directory itself included. */
export function treeUsage(dir: string): Usage {
  return diskUsage([dir, ...listTree(dir).map((r) => join(dir, r))]);
}

/**
 * kilo's platform package under HOME, relative to it: npm's `…/node_modules/@kilocode/cli-<platform>` or the
 * package method's `.local/share/kilo-fleet/kilo/<version>/<platform>`.
 */
export function findPlatformPackage(home: string): string | undefined {
  return listTree(home).find(
    (r) =>
      /(^|\/)node_modules\/@kilocode\/cli-[^/]+$/.test(r) || /^\.local\/share\/kilo-fleet\/kilo\/[^/]+\/[^/]+$/.test(r),
  );
}
