/**
 * The host-side measurements: the real host scripts (deployer/hostScripts) run the way local.Command
 * runs them (`/bin/sh -c <script>`, stdin piped) on temporary HOMEs, the real kilo against the stand-in
 * pooler, and du-style disk usage.
 */
import { spawn } from "node:child_process";
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join, relative } from "node:path";
import { configScript, envScript, installScript, parseInstallOutput } from "../deployer/hostScripts";
import { parseSmokeOutput, SMOKE_PROMPT, smokeScript } from "../deployer/hostScripts/smoke";
import type { ResolvedHost, Settings } from "../deployer/settings";
import { makeHome, runLocal, scriptEnv, USER_BASHRC, USER_PROFILE } from "../harness/hostHome";

export interface Host {
  root: string;
  home: string;
  tmp: string;
}

/** A fresh temporary HOME holding a user's own ~/.bashrc and ~/.profile, with its own TMPDIR. */
export function freshHome(): Host {
  return makeHome({ files: { ".bashrc": USER_BASHRC, ".profile": USER_PROFILE } });
}

/**
 * The environment a host script gets: this process's, with HOME and TMPDIR pointed at the temporary
 * host, and without what `npm run` adds (npm_config_*, npm_package_*, ...), which `pulumi up` would not
 * pass on.
 */
export function hostEnv(h: Host): NodeJS.ProcessEnv {
  const drop = Object.keys(process.env).filter((k) => /^npm_/i.test(k));
  return scriptEnv(h.home, h.tmp, Object.fromEntries(drop.map((k) => [k, undefined])));
}

const seconds = (startedMs: number) => (performance.now() - startedMs) / 1000;

/**
 * Runs the install step's create script once (synchronously, like the tests' runLocal) and returns its
 * wall time. `expect` says whether npm must have run ("cold") or been skipped ("warm"); anything else
 * throws, so a figure never comes from a run that did something else.
 */
export function timeInstall(settings: Settings, host: ResolvedHost, h: Host, expect: "cold" | "warm"): number {
  const script = installScript(settings, host).create;
  const started = performance.now();
  const r = runLocal(script, hostEnv(h));
  const s = seconds(started);
  const installed = parseInstallOutput(r.stdout);
  const skipped = r.stdout.includes("npm not run");
  if (r.code !== 0 || installed?.version !== host.kiloVersion || skipped !== (expect === "warm")) {
    throw new Error(
      `install (${expect}) did not do what was measured: exit ${r.code}, stdout ${JSON.stringify(r.stdout.slice(-400))}, stderr ${JSON.stringify(r.stderr.slice(-400))}`,
    );
  }
  return s;
}

/** Runs the real config and env steps (key on the env step's stdin) on `h`; throws if either fails. */
export function configure(settings: Settings, host: ResolvedHost, h: Host, key: string): void {
  for (const [step, script, stdin] of [
    ["config", configScript(settings, host).create, ""],
    ["env", envScript(settings, host).create, key],
  ] as const) {
    const r = runLocal(script, hostEnv(h), stdin);
    if (r.code !== 0) throw new Error(`${step} step failed: ${r.stderr.trim()}`);
  }
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

/** The smoke step's script on `h`; its wall time. Throws unless it passed. */
export async function timeSmoke(settings: Settings, host: ResolvedHost, h: Host): Promise<number> {
  const r = await runSh(smokeScript(settings, host).create, [], hostEnv(h), h.home);
  if (r.code !== 0 || !parseSmokeOutput(r.stdout)) {
    throw new Error(`smoke check did not pass: exit ${r.code}, ${r.stderr.trim().slice(-400)}`);
  }
  return r.seconds;
}

/** The environment the smoke script gives kilo (deployer/hostScripts/smoke.ts), for a scratch dir. */
export function smokeKiloEnv(scratch: string): Record<string, string> {
  return {
    KILO_DISABLE_MODELS_FETCH: "1",
    KILO_TELEMETRY_LEVEL: "off",
    KILO_SESSION_RETRY_LIMIT: "1",
    XDG_DATA_HOME: join(scratch, "data"),
    XDG_STATE_HOME: join(scratch, "state"),
    TMPDIR: join(scratch, "tmp"),
  };
}

/**
 * The seed command by hand, as a user on `h` would type it in a new shell: the env file the deploy
 * wrote sourced (what the rc blocks do), a fresh temp directory, then
 * `kilo run --model <provider>/<model> --pure --auto --format json --dir "$PWD" '<prompt>'` with the
 * kilo the install put in ~/.local/bin. With `smokeEnv`, kilo also gets the environment the smoke
 * script gives it (no models fetch, no telemetry, one retry, data/state/TMPDIR in the scratch dir), so
 * the difference to the smoke check is the check's own work. Its wall time; throws unless kilo wrote
 * kilo-ok.txt and said `kilo ok`. The temp directory is removed afterwards.
 */
export async function timeBareRun(
  settings: Settings,
  host: ResolvedHost,
  h: Host,
  opts: { smokeEnv?: boolean } = {},
): Promise<number> {
  const scratch = mkdtempSync(join(h.tmp, "bare-"));
  try {
    const dir = join(scratch, "work");
    mkdirSync(dir);
    const env = hostEnv(h);
    if (opts.smokeEnv) {
      mkdirSync(join(scratch, "tmp"));
      Object.assign(env, smokeKiloEnv(scratch));
    }
    const model = `${settings.providerId}/${host.model}`;
    const script =
      '. "$HOME/.config/kilo/codex-pooler.env" && cd "$1" && exec "$HOME/.local/bin/kilo" run --model "$2" --pure --auto --format json --dir "$PWD" "$3"';
    const r = await runSh(script, [dir, model, SMOKE_PROMPT], env, h.home);
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

/** The platform package npm installed under `prefix` (`@kilocode/cli-<platform>-<arch>[-variant]`), relative to `prefix`. */
export function findPlatformPackage(prefix: string): string | undefined {
  return listTree(prefix).find((r) => /(^|\/)node_modules\/@kilocode\/cli-[^/]+$/.test(r));
}
