/**
 * The smoke check (the tool's `smoke` subcommand): proves the deployed host works the way the Codex Pooler
 * docs describe (docs/codex-pooler.md, point 10) and fails with one line a person can act on when it does
 * not: reads its target from the deployed kilo.jsonc, loads the env file, asks the pool (poolCheck.ts;
 * `level: "pool"` stops there), then runs the seed command with kilo isolated in a scratch directory.
 * The steps, the isolation and what it relies on in kilo 7.7.7's JSON events: docs/design.md, "The smoke check".
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { parse as parseJsonc } from "jsonc-parser";
import { fileDigest } from "../common/digest";
import type { HostLayout } from "../common/hostPaths";
import { isJsonObject } from "../common/kiloConfigMerge";
import { PROXY_SETTING } from "../common/proxy";
import { sanitizeServerText } from "../common/redact";
import type { SmokeResult } from "../common/result";
import type { SmokeArgs } from "../common/stepArgs";
import { isRunning } from "./fsUtil";
import { managedConfigDir, POLICY_FILE_NAME } from "./policy";
import { effectiveConfig, policyMismatches } from "./policyCheck";
import { checkPool, contextLimitWarnings, poolErrorCode, poolErrorReason } from "./poolCheck";
import { type SmokeTarget, smokeTarget } from "./smokeTarget";

/** The seed's smoke prompt (docs/codex-pooler.md, point 10). */
export const SMOKE_PROMPT =
  "Use your tools to create kilo-ok.txt containing exactly: kilo ok. After the file exists, reply with exactly: kilo ok";
const EXPECTED = "kilo ok";
const FILE = "kilo-ok.txt";

/** Variables of the deploy's environment kilo may see (plus LC_*), besides what the check sets. */
const PASSED_VARS = [
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "LANG",
  "LANGUAGE",
  "TZ",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "ALL_PROXY",
  "http_proxy",
  "https_proxy",
  "no_proxy",
  "all_proxy",
  "NODE_EXTRA_CA_CERTS",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
];

/**
 * What the smoke check's kilo may do: its file-writing tools (`edit` covers write, edit and patch in kilo
 * 7.7.7) inside its working directory, and nothing else. Every tool kilo 7.7.7 has is named (so a `"*"`
 * placed earlier in a config by a deep merge cannot re-allow one), `"*"` denies any other, and
 * `external_directory` keeps the write inside `work/`. kilo gets it twice: as the `permission` of its copy
 * of the deployed config, and as KILO_PERMISSION, which kilo merges over every config, managed ones included.
 */
export const SMOKE_PERMISSION: Readonly<Record<string, string>> = {
  "*": "deny",
  bash: "deny",
  read: "deny",
  glob: "deny",
  grep: "deny",
  list: "deny",
  task: "deny",
  webfetch: "deny",
  websearch: "deny",
  codesearch: "deny",
  todowrite: "deny",
  todoread: "deny",
  skill: "deny",
  lsp: "deny",
  question: "deny",
  doom_loop: "deny",
  external_directory: "deny",
  edit: "allow",
};

/** The tools whose use the check expects: kilo's file-writing tool. */
const WRITE_TOOLS = new Set(["write"]);

interface KiloEvent {
  type?: string;
  part?: { tool?: string; text?: string; state?: { status?: string; error?: string } };
  error?: {
    name?: string;
    message?: string;
    data?: { message?: string; statusCode?: number; responseBody?: string };
  };
}

/** The most a failure line's server-text excerpt may hold (the whole line stays short too). */
const QUOTE_CHARS = 160;
const LINE_CHARS = 600;
/** A warning is kilo-fleet's own text around values from the config: room for the limits it names. */
const WARNING_CHARS = 240;

class SmokeFailure extends Error {}

/** Scratch directories are `smoke-<pid of the tool>-XXXXXX`: an earlier run's, whose tool is gone, is swept. */
const SCRATCH_NAME = /^smoke-([1-9]\d*)-[A-Za-z0-9]{6}$/;
/** An earlier version's scratch directory (no pid in its name): swept once this old. */
const LEGACY_SCRATCH_NAME = /^smoke-[A-Za-z0-9]{6}$/;
const LEGACY_SCRATCH_AGE_MS = 24 * 3600_000;

/**
 * The watchdog: a small sh, in a session of its own (a kill of the step's process group spares it), with
 * nothing of the key (no environment beyond PATH, nothing in its argv). It reads the scratch directory and
 * kilo's process group id, then waits on its stdin, which only the tool holds: `done` when the tool cleaned up itself; EOF when the tool died (a
 * SIGKILL to the step's direct child, where /bin/sh is bash and execs down to node): it kills kilo's group
 * and removes the scratch directory.
 */
const WATCHDOG =
  'read -r d || exit 0; read -r g || g=; read -r l || l=; [ "$l" = done ] && exit 0; [ -n "$g" ] && kill -s KILL -- "-$g" 2>/dev/null; case $d in /*/smoke-[1-9]*-??????) rm -rf "$d" 2>/dev/null || { sleep 1; rm -rf "$d"; } ;; esac';

/** The check's own state, cleaned up on every exit. */
class Scratch {
  dir: string | undefined;
  child: ChildProcess | undefined;
  private watchdog: ChildProcess | undefined;
  private made: string[] = [];

  constructor(private readonly parent: string) {}

  create(): string {
    // The parent chain: made 0700 where missing, removed again at the end when empty.
    const missing: string[] = [];
    for (let d = this.parent; !fs.existsSync(d); d = path.dirname(d)) missing.unshift(d);
    for (const d of missing) {
      fs.mkdirSync(d, { mode: 0o700 });
      this.made.unshift(d);
    }
    const st = fs.lstatSync(this.parent);
    if (!st.isDirectory() || st.uid !== process.getuid?.()) {
      throw new SmokeFailure(`${this.parent} is not a directory of this user; remove it and deploy again`);
    }
    if ((st.mode & 0o077) !== 0) fs.chmodSync(this.parent, 0o700);
    this.sweep();
    this.dir = fs.mkdtempSync(path.join(this.parent, `smoke-${process.pid}-`));
    this.watchdog = spawn("/bin/sh", ["-c", WATCHDOG, "kilo-fleet-smoke-watchdog"], {
      detached: true,
      stdio: ["pipe", "ignore", "ignore"],
      env: { PATH: "/usr/bin:/bin" },
    });
    this.watchdog.stdin?.on("error", () => {
      // gone: nothing to tell it
    });
    this.watchdog.unref();
    // A path with a newline would reach it cut: it then only kills (the next run's sweep removes the dir).
    this.watchdog.stdin?.write(`${this.dir.includes("\n") ? "" : this.dir}\n`);
    return this.dir;
  }

  /** Tells the watchdog kilo's process group (kilo was started detached: its pid). */
  watch(child: ChildProcess): void {
    this.child = child;
    if (child.pid !== undefined) this.watchdog?.stdin?.write(`${child.pid}\n`);
  }

  /**
   * Removes earlier runs' scratch directories whose tool is gone (killed before it could clean up), and an
   * earlier version's (`smoke-XXXXXX`, no pid) once a day old: no check runs that long.
   */
  private sweep(): void {
    for (const name of fs.readdirSync(this.parent)) {
      const m = SCRATCH_NAME.exec(name);
      const dir = path.join(this.parent, name);
      if (m && Number(m[1]) !== process.pid && !isRunning(Number(m[1]))) {
        fs.rmSync(dir, { recursive: true, force: true });
      } else if (LEGACY_SCRATCH_NAME.test(name) && Date.now() - fs.lstatSync(dir).mtimeMs > LEGACY_SCRATCH_AGE_MS) {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  }

  cleanup(): void {
    if (this.child?.pid !== undefined) killGroup(this.child.pid, "SIGKILL");
    if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
    if (this.watchdog) {
      this.watchdog.stdin?.end(this.child?.pid !== undefined ? "done\n" : "\ndone\n");
      this.watchdog = undefined;
    }
    for (const d of this.made) {
      try {
        fs.rmdirSync(d);
      } catch {
        break;
      }
    }
    this.made = [];
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/**
 * Every printed byte goes through this: sanitizeServerText (common/redact.ts) removes escape and control
 * characters and the key in every encoding a server could echo it in (prefixes of 8+ characters too), and
 * keeps the text to one short line.
 */
function redactor(key: string, maxChars = QUOTE_CHARS): (text: unknown) => string {
  return (text) => sanitizeServerText(String(text), key, maxChars);
}

/** Sources the env file with /bin/sh and returns the variables it exports (names from its `export` lines). */
export function loadEnvFile(envFile: string): Map<string, string> {
  let text: string;
  try {
    text = fs.readFileSync(envFile, "utf8");
  } catch {
    throw new SmokeFailure(`the env file ${envFile} is missing (the env step writes it)`);
  }
  const names = [...text.matchAll(/^export ([A-Za-z_][A-Za-z0-9_]*)=/gm)].map((m) => m[1]);
  const r = spawnSync(
    "/bin/sh",
    [
      "-c",
      '. "$1" >/dev/null 2>&1 </dev/null || exit 3; shift; for kf_v do eval "kf_x=\\${$kf_v-}"; printf \'%s\\0\' "$kf_x"; done',
      "sh",
      envFile,
      ...names,
    ],
    { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] },
  );
  if (r.status !== 0) throw new SmokeFailure(`sourcing ${envFile} failed`);
  const values = r.stdout.split("\0");
  return new Map(names.map((n, i) => [n, values[i] ?? ""]));
}

/** The cause of a failed kilo run, from its error events (the most specific one wins). */
function causeOf(
  errors: NonNullable<KiloEvent["error"]>[],
  args: SmokeArgs,
  target: SmokeTarget,
  quoted: (t: unknown) => string,
): string {
  const messageOf = (e: NonNullable<KiloEvent["error"]>) =>
    String(e.data?.message || e.message || e.name || "unknown error");
  const http = errors.find((e) => typeof e.data?.statusCode === "number");
  if (http) {
    const status = http.data?.statusCode ?? 0;
    // By the pool's `code` (its 403/429/5xx messages are scrubbed), never by the message.
    const body = http.data?.responseBody;
    const code = poolErrorCode(body);
    const mapped = poolErrorReason(status, body, { keySetting: keySettingOf(args) });
    if (code !== undefined || status === 401 || status === 429) return `kilo's request failed: ${mapped.reason}`;
    if (status === 404)
      return `the pooler answered HTTP 404 for model ${target.model}: ${quoted(messageOf(http))} — check kilo-fleet:poolerBaseUrl and the pool's models`;
    return `kilo's request failed: ${mapped.reason}: ${quoted(messageOf(http))}`;
  }
  const notFound = errors.find((e) => /^Model not found/.test(messageOf(e)));
  if (notFound)
    return `unknown model ${target.model}: kilo says ${quoted(messageOf(notFound))} — define it in kilo-fleet:models`;
  const net = errors.find((e) =>
    /Cannot connect to API|Connection reset|ECONNREFUSED|Unable to connect/i.test(messageOf(e)),
  );
  if (net)
    return `the pooler at ${target.baseUrl} is unreachable or dropped the connection (kilo: ${quoted(messageOf(net))})`;
  const specific = errors.filter((e) => !/^Unexpected server error/.test(messageOf(e)));
  const last = specific[specific.length - 1] ?? errors[errors.length - 1];
  return `kilo reported ${last.name || "an error"}: ${quoted(messageOf(last))}`;
}

/** The key settings a reason names. */
function keySettingOf(args: SmokeArgs): string {
  return `kilo-fleet:codexPoolerApiKey (or kilo-fleet:apiKeys.${args.host})`;
}

/**
 * The copy of a deployed config file kilo reads: the same settings, with `permission` replaced by
 * SMOKE_PERMISSION and no `mcp` servers (the check starts nothing but kilo). Written as plain JSON.
 */
export function smokeConfigCopy(text: string): string {
  const parsed = parseJsonc(text, [], { allowTrailingComma: true }) as unknown;
  const config: Record<string, unknown> = isJsonObject(parsed) ? { ...parsed } : {};
  delete config.mcp;
  config.permission = { ...SMOKE_PERMISSION };
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** The policy the policy step wrote, when its file is the one the stack's policy renders to (`sha256`). */
function deployedPolicy(sha256: string): Record<string, unknown> {
  const file = path.join(managedConfigDir(process.env), POLICY_FILE_NAME);
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    throw new SmokeFailure(`${file} is missing: the policy step writes it (kilo-fleet doctor says more)`);
  }
  if (fileDigest(text) !== sha256) {
    throw new SmokeFailure(
      `${file} is not the stack's policy (changed since the policy step wrote it: kilo-fleet doctor names the differences)`,
    );
  }
  const parsed = parseJsonc(text, [], { allowTrailingComma: true }) as unknown;
  const { $schema: _schema, ...policy } = isJsonObject(parsed) ? parsed : {};
  return policy;
}

/** What to check, from the deployed kilo.jsonc (smokeTarget.ts). */
function deployedTarget(configFile: string): SmokeTarget {
  let text: string;
  try {
    text = fs.readFileSync(configFile, "utf8");
  } catch {
    throw new SmokeFailure(`${configFile} is missing (the config step writes it)`);
  }
  try {
    return smokeTarget(text, configFile);
  } catch (e) {
    throw new SmokeFailure((e as Error).message);
  }
}

/** The installed CLI's version: its package.json (found through the bin link), or `kilo --version`. */
function kiloVersion(kiloBin: string, timeoutMs: number): string {
  try {
    let dir = path.dirname(fs.realpathSync(kiloBin));
    for (let i = 0; i < 4; i++, dir = path.dirname(dir)) {
      const file = path.join(dir, "package.json");
      if (!fs.existsSync(file)) continue;
      const pkg = JSON.parse(fs.readFileSync(file, "utf8")) as { name?: string; version?: unknown };
      // npm's layout has the wrapper's; install.method package's, the platform package's (@kilocode/cli-linux-x64).
      if (/^@kilocode\/cli(-[a-z0-9-]+)?$/.test(pkg.name ?? "") && typeof pkg.version === "string") return pkg.version;
    }
  } catch {
    // Ask kilo.
  }
  try {
    return execFileSync(kiloBin, ["--version"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: Math.max(1000, Math.min(30000, timeoutMs)),
    }).trim();
  } catch (e) {
    throw new SmokeFailure(
      `kilo at ${kiloBin} does not run: ${(e as { stderr?: string }).stderr || (e as Error).message}`,
    );
  }
}

/** The proxy variables kilo gets (the session's allowlisted ones, then the env file's), for the pool checks. */
export function proxyVariables(
  inherited: NodeJS.ProcessEnv,
  fromEnvFile: Map<string, string>,
): Record<string, string | undefined> {
  const names = PASSED_VARS.filter((v) => /proxy$/i.test(v));
  const env: Record<string, string | undefined> = {};
  for (const n of names) if (inherited[n]) env[n] = inherited[n];
  for (const n of names) if (fromEnvFile.has(n)) env[n] = fromEnvFile.get(n);
  return env;
}

/** The environment kilo gets: allowlisted variables, the env file's, and the check's own. */
export function kiloEnvironment(
  inherited: NodeJS.ProcessEnv,
  fromEnvFile: Map<string, string>,
  scratch: string,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(inherited)) {
    if (v !== undefined && (PASSED_VARS.includes(k) || k.startsWith("LC_"))) env[k] = v;
  }
  for (const [k, v] of fromEnvFile) env[k] = v;
  return {
    ...env,
    // A HOME of its own: nothing in the user's (~/.claude, ~/.kilocode, …) can reach kilo.
    HOME: path.join(scratch, "home"),
    XDG_CONFIG_HOME: path.join(scratch, "config"),
    XDG_CACHE_HOME: path.join(scratch, "cache"),
    XDG_DATA_HOME: path.join(scratch, "data"),
    XDG_STATE_HOME: path.join(scratch, "state"),
    TMPDIR: path.join(scratch, "tmp"),
    KILO_DISABLE_PROJECT_CONFIG: "1",
    KILO_DISABLE_MODELS_FETCH: "1",
    KILO_TELEMETRY_LEVEL: "off",
    KILO_SESSION_RETRY_LIMIT: "1",
    KILO_PERMISSION: JSON.stringify(SMOKE_PERMISSION),
    KILO_DISABLE_CLAUDE_CODE: "1",
    KILO_DISABLE_EXTERNAL_SKILLS: "1",
  };
}

export async function runSmokeCheck(
  layout: HostLayout,
  args: SmokeArgs,
): Promise<{ lines: string[]; result: SmokeResult }> {
  const scratch = new Scratch(layout.cacheDir);
  let redact = (text: unknown, maxChars: number) => sanitizeServerText(String(text), "", maxChars);
  const onSignal = (code: number) => () => {
    scratch.cleanup();
    process.exit(code);
  };
  const handlers: [NodeJS.Signals, () => void][] = [
    ["SIGHUP", onSignal(129)],
    ["SIGINT", onSignal(130)],
    ["SIGTERM", onSignal(143)],
  ];
  for (const [sig, h] of handlers) process.on(sig, h);
  try {
    return await smoke(layout, args, scratch, (key) => {
      redact = (text, maxChars) => sanitizeServerText(String(text), key, maxChars);
    });
  } catch (e) {
    scratch.cleanup();
    const cause =
      e instanceof SmokeFailure ? e.message : `the smoke check itself crashed: ${(e as Error)?.message ?? e}`;
    process.stderr.write(`smoke check failed on ${args.host}: ${redact(cause, LINE_CHARS)}\n`);
    return process.exit(1);
  } finally {
    scratch.cleanup();
    for (const [sig, h] of handlers) process.off(sig, h);
  }
}

async function smoke(
  layout: HostLayout,
  args: SmokeArgs,
  scratch: Scratch,
  setKey: (key: string) => void,
): Promise<{ lines: string[]; result: SmokeResult }> {
  const started = Date.now();
  const deadline = started + args.timeoutSeconds * 1000;
  const remainingMs = () => deadline - Date.now();
  const timedOut = () =>
    new SmokeFailure(`timed out after ${args.timeoutSeconds} s (kilo-fleet:smokeCheck.timeoutSeconds)`);

  if (!fs.existsSync(layout.kiloBin)) throw new SmokeFailure(`kilo is not installed at ${layout.kiloBin}`);
  const target = deployedTarget(layout.configFile);
  const fromEnvFile = loadEnvFile(layout.envFile);
  const key = fromEnvFile.get(target.keyVar) ?? "";
  const redact = redactor(key);
  setKey(key);
  const quoted = (t: unknown) => JSON.stringify(redact(t));
  if (key === "") {
    throw new SmokeFailure(
      `${target.keyVar} is empty or not exported after sourcing ${layout.envFile}: kilo would send no API key — set ${keySettingOf(args)} and deploy again`,
    );
  }

  // 1. The pool checks: /readyz, then /v1/models with the key (no tokens spent). They fail fast with the
  // pool's own reason; limits over the pool's context_length are warnings.
  const warnings: string[] = [];
  // Through the proxy kilo will use (the env file's kilo-fleet:proxy, or the session's variables): node's
  // fetch ignores proxy variables, so a proxied check goes through a CONNECT tunnel (proxyRequest.ts).
  const pool = await checkPool({
    baseUrl: target.baseUrl,
    apiKey: key,
    models: Object.keys(target.models),
    timeoutMs: Math.max(1000, Math.min(10_000, remainingMs())),
    keySetting: keySettingOf(args),
    proxyEnv: proxyVariables(process.env, fromEnvFile),
    // The env file's proxy is kilo-fleet:proxy; otherwise failures name the session's variable.
    ...(fromEnvFile.has("HTTPS_PROXY") ? { proxySetting: PROXY_SETTING } : {}),
  });
  // A proxy that did not answer is named as such, even when it used up the check's time.
  if (!pool.ok && pool.code === "proxy") throw new SmokeFailure(pool.reason);
  if (remainingMs() <= 0) throw timedOut();
  if (!pool.ok) throw new SmokeFailure(pool.reason);
  for (const w of contextLimitWarnings(target.models, pool.models, target.compaction)) warnings.push(w.message);
  const version = kiloVersion(layout.kiloBin, remainingMs());
  if (remainingMs() <= 0) throw timedOut();
  if (typeof args.policySha256 === "string") {
    // kilo's own view of the policy (no tokens spent; no variable of the env file reaches it).
    const policy = deployedPolicy(args.policySha256);
    let effective: unknown;
    try {
      effective = effectiveConfig({
        kiloBin: layout.kiloBin,
        configDir: layout.configDir,
        scratch: path.join(scratch.dir ?? scratch.create(), "policy"),
        inherited: process.env,
        withheld: [...fromEnvFile.keys()],
        timeoutMs: remainingMs(),
      });
    } catch (e) {
      if (remainingMs() <= 0) throw timedOut();
      throw new SmokeFailure((e as Error).message);
    }
    const bad = policyMismatches(policy, effective);
    if (bad.length > 0) {
      const short = (v: unknown) => (v === undefined ? "(absent)" : JSON.stringify(v).slice(0, 60));
      throw new SmokeFailure(
        `kilo does not follow the policy (is kilo's managed config deployed, and nothing beside it?): ${bad
          .slice(0, 3)
          .map((b) => `${b.path} is ${short(b.found)}, the policy says ${short(b.expected)}`)
          .join("; ")}`,
      );
    }
  }
  const passed = (level: SmokeResult["level"]) => {
    const seconds = Math.round((Date.now() - started) / 100) / 10;
    return {
      // Nothing but the result: the step logs nothing (it handles the key), and KiloHost logs the warnings
      // it carries as the deploy's own.
      lines: [],
      result: {
        step: "smoke" as const,
        pass: true as const,
        level,
        kiloVersion: redact(version),
        seconds,
        ...(warnings.length > 0 ? { warnings: warnings.map((w) => sanitizeServerText(w, key, WARNING_CHARS)) } : {}),
      },
    };
  };
  if (args.level === "pool") return passed("pool");

  // 2. The seed's `kilo run`, in a scratch directory of its own.
  const dir = scratch.dir ?? scratch.create();
  const work = path.join(dir, "work");
  const configCopy = path.join(dir, "config", "kilo");
  for (const d of [work, path.join(dir, "tmp"), path.join(dir, "home"), configCopy])
    fs.mkdirSync(d, { recursive: true });
  // kilo reads a copy of the deployed config files: on its first run kilo rewrites kilo.jsonc (it adds
  // "permission") and drops marker files beside it, and a deploy must not change the user's files that way.
  // The copy's permission is the check's own (SMOKE_PERMISSION).
  for (const name of fs.existsSync(layout.configDir) ? fs.readdirSync(layout.configDir).sort() : []) {
    const from = path.join(layout.configDir, name);
    if (/\.jsonc?$/.test(name) && fs.statSync(from).isFile()) {
      fs.writeFileSync(path.join(configCopy, name), smokeConfigCopy(fs.readFileSync(from, "utf8")), { mode: 0o600 });
    }
  }
  if (!fs.existsSync(path.join(configCopy, "kilo.jsonc"))) {
    throw new SmokeFailure(`${layout.configFile} is missing (the config step writes it)`);
  }

  // The seed's command, in its own process group so the deadline (and a cancelled deploy) stops everything.
  const env = kiloEnvironment(process.env, fromEnvFile, dir);
  const child = spawn(
    layout.kiloBin,
    ["run", "--model", target.model, "--pure", "--auto", "--format", "json", "--dir", work, SMOKE_PROMPT],
    { cwd: work, env, detached: true, stdio: ["ignore", "pipe", "pipe"] },
  );
  scratch.watch(child);
  const events: KiloEvent[] = [];
  let partial = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8");
  child.stdout?.on("data", (d: string) => {
    const lines = (partial + d).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      try {
        events.push(JSON.parse(line) as KiloEvent);
      } catch {
        // not an event
      }
    }
  });
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (d: string) => {
    stderr = (stderr + d).slice(-8192);
  });
  let expired = false;
  const timer = setTimeout(
    () => {
      expired = true;
      if (child.pid !== undefined) killGroup(child.pid, "SIGTERM");
      setTimeout(() => child.pid !== undefined && killGroup(child.pid, "SIGKILL"), 2000).unref();
    },
    Math.max(0, remainingMs()),
  );
  const status = await new Promise<{ code?: number | null; signal?: string | null; spawnError?: Error }>((resolve) => {
    child.on("error", (e) => resolve({ spawnError: e }));
    child.on("exit", (code, signal) => {
      // Let the pipes drain, without waiting on anything kilo left running.
      let settled = false;
      const finish = () => {
        if (!settled) {
          settled = true;
          resolve({ code, signal });
        }
      };
      child.on("close", finish);
      setTimeout(finish, 2000).unref();
    });
  });
  clearTimeout(timer);
  if (child.pid !== undefined) killGroup(child.pid, "SIGKILL");
  if (partial.trim() !== "") {
    try {
      events.push(JSON.parse(partial) as KiloEvent);
    } catch {
      // truncated
    }
  }

  if (status.spawnError)
    throw new SmokeFailure(`kilo at ${layout.kiloBin} could not start: ${status.spawnError.message}`);
  if (expired) throw timedOut();
  // The model asked for a tool the check does not allow: whatever kilo did with it, the pool's answer is
  // not the seed's conversation, and the check fails saying so.
  const foreign = events.filter((e) => e.type === "tool_use" && !WRITE_TOOLS.has(e.part?.tool ?? ""));
  if (foreign.length > 0) {
    const names = [...new Set(foreign.map((e) => quoted(e.part?.tool || "unknown")))].join(", ");
    const ran = foreign.filter((e) => e.part?.state?.status === "completed").length;
    throw new SmokeFailure(
      ran > 0
        ? `the model called ${names} and kilo ran it although the smoke check allows only the write tool — check kilo's permission handling and the pooler`
        : `the model called ${names}, which the smoke check refuses (it allows only the write tool, in its scratch directory) — is the pooler at ${target.baseUrl} the one you deployed?`,
    );
  }
  const errors = events.filter((e) => e.type === "error").map((e) => e.error ?? {});
  if (errors.length > 0) throw new SmokeFailure(causeOf(errors, args, target, quoted));
  if (status.code !== 0) {
    const lastLine = stderr.trim().split("\n").pop() || "";
    throw new SmokeFailure(
      `kilo exited with ${status.signal || `status ${status.code}`}${lastLine ? `: ${quoted(lastLine)}` : ""}`,
    );
  }
  const writes = events.filter((e) => e.type === "tool_use" && e.part?.tool === "write");
  if (writes.length === 0) throw new SmokeFailure(`kilo never called its write tool, so ${FILE} was not created`);
  const failed = writes.find((e) => e.part?.state?.status === "error");
  if (failed)
    throw new SmokeFailure(`kilo's write tool failed: ${quoted(failed.part?.state?.error || "unknown error")}`);
  let content: string;
  try {
    content = fs.readFileSync(path.join(work, FILE), "utf8");
  } catch {
    throw new SmokeFailure(`${FILE} is missing after kilo's write tool ran`);
  }
  if (content !== EXPECTED && content !== `${EXPECTED}\n`) {
    throw new SmokeFailure(
      `${FILE} holds ${redact(JSON.stringify(content.slice(0, 80)))} instead of ${JSON.stringify(EXPECTED)}`,
    );
  }
  const texts = events.filter((e) => e.type === "text" && typeof e.part?.text === "string");
  if (texts.length === 0) throw new SmokeFailure(`kilo gave no final reply (expected ${JSON.stringify(EXPECTED)})`);
  const reply = (texts[texts.length - 1].part?.text ?? "").trim();
  if (reply !== EXPECTED)
    throw new SmokeFailure(`kilo's final reply was ${quoted(reply)}, not ${JSON.stringify(EXPECTED)}`);

  return passed("kilo-run");
}
