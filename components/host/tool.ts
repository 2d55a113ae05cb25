/**
 * kilo-fleet's host tool: the file work of the host scripts, bundled by esbuild into one CommonJS file
 * that each script writes to a temp dir and runs with the host's node (see hostScripts/tool.ts).
 *
 *   node tool.cjs <command> name=value ...
 *
 * Commands: config-apply, config-delete, env-apply (the key on stdin; `ca-file=` the CA PEM), env-delete,
 * npm-ca-bundle (`ca-file=`, `out=`: the file for npm's --cafile), record-dir,
 * install-state, install-state-get. Every failure is one `kilo-fleet: ...` line on stderr and exit 1. Nothing here prints the key.
 * Each command runs holding the HOME's lock (`$HOME/.kilo-fleet.lock`, lock.ts), so two deploys of one
 * host never interleave their read-modify-writes.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { KeyPath } from "../kiloConfigMerge";
import { checkCaPem, npmCaBundle } from "./caFile";
import { configApply, configDelete } from "./configFile";
import { cleanupDirs, HostError, mkdirsRecorded, recordDirs, removeFile, writeFileAtomic } from "./fsUtil";
import { withHostLock } from "./lock";
import { envApply, envDelete } from "./shellEnv";

/**
 * Arguments are `name=value` words, not `--name value`: node scans its whole argv for some options of
 * its own (node 20 reads `--env-file` even after the script name).
 */
function options(argv: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const a of argv) {
    const eq = a.indexOf("=");
    if (eq <= 0) throw new HostError(`tool: bad argument ${JSON.stringify(a.slice(0, 40))}`);
    m.set(a.slice(0, eq), a.slice(eq + 1));
  }
  return m;
}

function run(argv: string[]): string[] {
  const [command, ...rest] = argv;
  const o = options(rest);
  const get = (k: string): string => {
    const v = o.get(k);
    if (v === undefined) throw new HostError(`tool ${command}: ${k}= is required`);
    return v;
  };
  const abs = (k: string) => path.resolve(get(k));
  switch (command) {
    case "config-apply":
    case "config-delete": {
      const p = {
        home: abs("home"),
        configFile: abs("config-file"),
        backupFile: abs("backup-file"),
        stateDir: abs("state-dir"),
        systemDir: o.get("system-dir") ?? "/etc/kilo",
      };
      const paths = JSON.parse(get("paths")) as KeyPath[];
      if (command === "config-delete") {
        const out = configDelete(p, paths);
        cleanupDirs(p.stateDir);
        return out;
      }
      return configApply(p, JSON.parse(get("managed")) as Record<string, unknown>, paths);
    }
    case "env-apply":
    case "env-delete": {
      const p = {
        home: abs("home"),
        configDir: abs("config-dir"),
        envFile: abs("env-file"),
        fishEnvFile: abs("fish-env-file"),
        binDir: abs("bin-dir"),
        stateDir: abs("state-dir"),
        rcFiles: JSON.parse(get("rc-files")) as Record<string, string>,
      };
      if (command === "env-delete") {
        const out = envDelete(p);
        cleanupDirs(p.stateDir);
        return [out];
      }
      // ca-file=: a file holding the PEM text of kilo-fleet:caCertificates (the script writes it to its
      // temp dir); absent, no CA file (and one written earlier is removed).
      const caPem = o.get("ca-file");
      return envApply(p, {
        apiKeyEnvVar: get("var"),
        pinned: get("pinned") === "1",
        shells: get("shells"),
        ...(caPem !== undefined ? { caCertificates: fs.readFileSync(path.resolve(caPem), "utf8") } : {}),
      });
    }
    case "npm-ca-bundle": {
      // For the install step's `npm --cafile`: npm replaces its roots with the file, so it gets this
      // node's roots plus the CA certificates (ca-file=), written 0644 to out= (the script's temp dir).
      const pem = fs.readFileSync(abs("ca-file"), "utf8");
      checkCaPem(pem);
      writeFileAtomic(abs("out"), npmCaBundle(pem), 0o644);
      return [];
    }
    case "record-dir": {
      // A directory npm created for the install step: the last delete removes it when empty.
      recordDirs(abs("state-dir"), [abs("dir")]);
      return [];
    }
    case "install-state": {
      const file = path.join(abs("state-dir"), "install");
      const value = get("set");
      if (value === "forget") {
        removeFile(file);
        cleanupDirs(abs("state-dir"));
      } else {
        mkdirsRecorded(abs("state-dir"), abs("state-dir"));
        writeFileAtomic(file, `${value}\n`, 0o600);
      }
      return [];
    }
    case "install-state-get": {
      const file = path.join(abs("state-dir"), "install");
      return fs.existsSync(file) ? [fs.readFileSync(file, "utf8").trim()] : [];
    }
    default:
      throw new HostError(`tool: unknown command ${command}`);
  }
}

/** The HOME whose lock the run takes: the `home=` argument, else the process's HOME. */
function lockHome(argv: string[]): string {
  const arg = argv.find((a) => a.startsWith("home="));
  return path.resolve(arg ? arg.slice("home=".length) : os.homedir());
}

try {
  // One run at a time per HOME (two stacks sharing a host): see lock.ts.
  const argv = process.argv.slice(2);
  for (const line of withHostLock(lockHome(argv), () => run(argv))) {
    (line.startsWith("kilo-fleet: warning:") ? process.stderr : process.stdout).write(`${line}\n`);
  }
} catch (e) {
  const message = e instanceof HostError ? e.message : `unexpected error: ${(e as Error)?.message ?? String(e)}`;
  process.stderr.write(`kilo-fleet: ${message.replace(/\s*\n\s*/g, " ")}\n`);
  process.exit(1);
}
