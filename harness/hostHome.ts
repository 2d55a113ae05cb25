/**
 * Local host-script runs for tests: a temporary HOME that already holds a user's own startup files and
 * kilo.jsonc, a runner that executes a script the way local.Command does (`/bin/sh -c <script>`, stdin
 * piped), snapshots of every file under HOME (bytes and mode) and the settings the scripts are built from.
 */
import { spawnSync } from "node:child_process";
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { HostSpec } from "../deployer/hostSpec";
import { hostStepCommands, toolStepCommands } from "../deployer/hostSteps";
import { hostToolArtifact } from "../deployer/hostTool";
import { resolveHosts } from "../deployer/resolveHosts";
import { parseSettings, type Settings } from "../deployer/settings";
import { ensureKilo } from "./kilo";
import { type Run, runScriptSync, spawnScript } from "./runScript";

export type { Run };

export interface Built {
  settings: Settings;
  /** The host's resolved spec, as the component gets it. */
  spec: HostSpec;
}

/** Settings as a stack would give them (`kilo-fleet:` keys), resolved for the first host. */
export function buildSettings(extra: Record<string, unknown> = {}, hostExtra: Record<string, unknown> = {}): Built {
  const raw = {
    "kilo-fleet:poolerBaseUrl": "http://localhost:4000/v1",
    "kilo-fleet:hosts": [{ name: "test-host", local: true, ...hostExtra }],
    ...Object.fromEntries(Object.entries(extra).map(([k, v]) => [`kilo-fleet:${k}`, v])),
  };
  const r = parseSettings(raw);
  const resolved = resolveHosts({ stack: raw });
  if (!r.ok || resolved.errors.length > 0) {
    throw new Error(resolved.errors.map((e) => `${e.key}: ${e.message}`).join("\n"));
  }
  return { settings: r.settings, spec: resolved.specs[0] };
}

/**
 * The steps' commands for built settings, exactly as the component builds them for a local host (`kind`
 * "ssh": as for an SSH host, whose tool step does not copy the file: see `shipToolOverSsh`).
 */
export function deployScripts(b: Built, kind: "local" | "ssh" = "local") {
  return hostStepCommands(b.spec.name, b.spec, hostToolArtifact(), kind);
}

/** Puts the host tool into HOME the way a local host's tool step does (its create), so step commands run. */
export function shipTool(env: NodeJS.ProcessEnv): Run {
  const tool = hostToolArtifact();
  const r = runLocal(toolStepCommands(tool.id, { kind: "local", source: tool.file }).create, env);
  if (r.code !== 0) throw new Error(`shipping the host tool failed: ${r.stderr}`);
  return r;
}

/** Files other programs write into HOME when the shells and kilo start (not kilo-fleet's, not the user's). */
export function isForeignFile(rel: string): boolean {
  return (
    /^(\.cache|\.local\/share(?!\/kilo-fleet)|\.local\/state\/kilo)(\/|$)/.test(rel) ||
    rel === ".local/state" ||
    /(^|\/)\.(bash|zsh)_history$/.test(rel) ||
    rel === ".config/fish/fish_variables" ||
    rel === ".config/kilo/.gitignore" ||
    rel === ".config/kilo/.bash-permission-migrated"
  );
}

/** A random test key (never a real-looking one). */
export function testKey(): string {
  return `test-key-${Math.random().toString(36).slice(2, 12)}`;
}

export const USER_BASHRC = `# ~/.bashrc: a user's own, Debian style
case $- in
    *i*) ;;
      *) return;;
esac
HISTSIZE=1000
alias ll='ls -alF'
`;
/** No trailing newline on purpose: the block must not change the last line. */
export const USER_PROFILE = `# ~/.profile of the user\nexport EDITOR=vi`;
export const USER_ZSHRC = "# my zshrc\nsetopt no_beep\n";
export const USER_KILO_JSONC = `// my own kilo settings
{
  "share": "disabled", // keep this
  "model": "someone/else", /* mine until kilo-fleet takes it */
  "provider": { "my-local": { "options": { "baseURL": "http://127.0.0.1:1234/v1" } } }
}
`;

/** A used HOME's own files (relative path → text), as makeHome writes them by default. */
export const USER_FILES: Readonly<Record<string, string>> = {
  ".bashrc": USER_BASHRC,
  ".profile": USER_PROFILE,
  ".zshrc": USER_ZSHRC,
  ".config/kilo/kilo.jsonc": USER_KILO_JSONC,
};

/**
 * A temp dir with `home/` (the user's files) and `tmp/` (TMPDIR for the scripts). `tool` (default true):
 * the host tool is already shipped into HOME, as the tool step leaves it, so step commands run.
 */
export function makeHome(opts: { files?: Record<string, string>; kilo?: boolean; tool?: boolean } = {}): {
  root: string;
  home: string;
  tmp: string;
} {
  const root = mkdtempSync(join(tmpdir(), "kilo-fleet-home-"));
  const home = join(root, "home");
  const tmp = join(root, "tmp");
  mkdirSync(home);
  mkdirSync(tmp);
  const files = opts.files ?? USER_FILES;
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(dirname(join(home, rel)), { recursive: true });
    writeFileSync(join(home, rel), text);
  }
  if (opts.kilo) linkCachedKilo(home);
  if (opts.tool ?? true) shipTool(scriptEnv(home, tmp));
  return { root, home, tmp };
}

/** Puts the cached kilo into HOME's npm prefix (~/.local) by symlinks, as if the user had installed it. */
export function linkCachedKilo(home: string): void {
  const kilo = ensureKilo();
  mkdirSync(join(home, ".local", "bin"), { recursive: true });
  mkdirSync(join(home, ".local", "lib", "node_modules", "@kilocode"), { recursive: true });
  symlinkSync(
    join(kilo.prefix, "lib", "node_modules", "@kilocode", "cli"),
    join(home, ".local", "lib", "node_modules", "@kilocode", "cli"),
  );
  symlinkSync("../lib/node_modules/@kilocode/cli/bin/kilo", join(home, ".local", "bin", "kilo"));
}

export function scriptEnv(
  home: string,
  tmp: string,
  extra: Record<string, string | undefined> = {},
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, TMPDIR: tmp, ...extra };
  for (const k of [
    "XDG_CONFIG_HOME",
    "XDG_STATE_HOME",
    "XDG_DATA_HOME",
    "ENV",
    "BASH_ENV",
    "ZDOTDIR",
    "NVM_DIR",
    "FNM_DIR",
  ]) {
    if (!(k in extra)) delete env[k];
  }
  for (const [k, v] of Object.entries(extra)) if (v === undefined) delete env[k];
  return env;
}

/** Runs a command as local.Command does: `/bin/sh -c <command>`, stdin piped (harness/runScript.ts). */
export const runLocal = runScriptSync;
/** Like runLocal, with the child handed back (tests that watch the system while a command runs). */
export const spawnLocal = spawnScript;

export interface Entry {
  type: "file" | "dir" | "link";
  mode: number;
  content?: string;
}

/** Every path under `dir` with its type, mode and content (links: their target; not followed). */
export function snapshot(dir: string, skip: (rel: string) => boolean = () => false): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (skip(r)) continue;
      const st = lstatSync(join(dir, r));
      const mode = st.mode & 0o7777;
      if (st.isSymbolicLink()) out.set(r, { type: "link", mode: 0, content: readlinkSync(join(dir, r)) });
      else if (st.isDirectory()) {
        out.set(r, { type: "dir", mode });
        walk(r);
      } else out.set(r, { type: "file", mode, content: readFileSync(join(dir, r), "latin1") });
    }
  };
  walk("");
  return out;
}

export function snapshotObject(m: Map<string, Entry>): Record<string, Entry> {
  return Object.fromEntries(m);
}

/** The files under `dir` whose bytes contain `needle`. */
export function filesContaining(dir: string, needle: string): string[] {
  return [...snapshot(dir)].filter(([, e]) => e.type === "file" && e.content?.includes(needle)).map(([p]) => p);
}

/** Runs a shell command line (e.g. `bash -ic '...'`) the way a user's fresh shell would. */
export function shellOut(argv: string[], env: NodeJS.ProcessEnv): Run {
  const r = spawnSync(argv[0], argv.slice(1), { env, encoding: "utf8", cwd: env.HOME, timeout: 60_000, input: "" });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
