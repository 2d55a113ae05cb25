/**
 * The host scripts over SSH, exactly as remote.Command runs them: a private sshd, a throwaway user with
 * a login shell of its own, each script wrapped by remoteCommandLine and sent as one command string with
 * stdin piped (no TTY, no environment passed). Same assertions as the local run, with a real registry
 * install, plus every login shell (bash, dash, zsh, fish) and /proc while the key goes over the wire.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { parseInstallOutput, remoteCommandLine } from "../deployer/hostScripts";
import {
  buildSettings,
  deployScripts,
  filesContaining,
  isForeignFile,
  snapshot,
  snapshotObject,
  testKey,
  USER_BASHRC,
  USER_KILO_JSONC,
  USER_PROFILE,
  USER_ZSHRC,
} from "../harness/hostHome";
import { TEST_KILO_VERSION } from "../harness/kilo";
import { ensureAptPackages, type SshServer, startSshd } from "./support/sshd";

const built = buildSettings({ kiloVersion: TEST_KILO_VERSION });
const scripts = deployScripts(built);
const foreign = isForeignFile;

let server: SshServer;
beforeAll(async () => {
  ensureAptPackages([
    { pkg: "zsh", bin: "/usr/bin/zsh" },
    { pkg: "fish", bin: "/usr/bin/fish" },
  ]);
  server = await startSshd({ shell: "/bin/bash" });
  // The user's own files, written as the user. ~/.local/state exists on a used machine (shells keep
  // history there); kilo's postinstall also creates it.
  const files: Record<string, string> = {
    ".bashrc": USER_BASHRC,
    ".profile": USER_PROFILE,
    ".zshrc": USER_ZSHRC,
    ".config/kilo/kilo.jsonc": USER_KILO_JSONC,
  };
  for (const [rel, text] of Object.entries(files)) {
    const r = server.asUser(["sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1"', "sh", rel], { input: text });
    expect(r.code, r.stderr).toBe(0);
  }
  expect(server.asUser(["mkdir", "-p", ".local/state"]).code).toBe(0);
});
afterAll(async () => {
  await server?.stop();
});

const run = async (script: string, stdin = "") => {
  const r = await server.run(remoteCommandLine(script), stdin, { timeoutMs: 240_000 });
  return r;
};

describe("over SSH (login shell bash)", () => {
  test("create, again (same bytes), fresh login shells, delete (byte-identical, no key anywhere)", async () => {
    const key = testKey();
    const before = snapshotObject(snapshot(server.home, foreign));
    const createAll = async () => {
      const out: Record<string, string> = {};
      for (const [step, s] of Object.entries(scripts)) {
        const r = await run(s.create, step === "env" ? `${key}\n` : "");
        expect(r.stderr, step).toBe("");
        expect(r.code, step).toBe(0);
        expect(r.stdout).not.toContain(key);
        out[step] = r.stdout;
      }
      return out;
    };
    const t = Date.now();
    const out = await createAll();
    process.stdout.write(`[ssh] first create (real registry install) ${Date.now() - t} ms\n`);
    expect(out.preflight).toMatch(/^kilo-fleet: node \S+ at \/\S+\/node, npm \S+ at \/\S+ on test-host\n$/);
    expect(out.install).not.toContain("npm not run");
    expect(parseInstallOutput(out.install)).toEqual({
      version: TEST_KILO_VERSION,
      bin: `${server.home}/.local/bin/kilo`,
    });

    const envFile = join(server.home, ".config/kilo/codex-pooler.env");
    expect(statSync(envFile).mode & 0o777).toBe(0o600);
    expect(statSync(envFile).uid).toBe(server.uid);
    expect(statSync(join(server.home, ".config/kilo")).mode & 0o777).toBe(0o700);
    expect(readFileSync(join(server.home, ".bashrc"), "utf8").endsWith(USER_BASHRC)).toBe(true);
    expect(readFileSync(join(server.home, ".config/kilo/kilo.jsonc"), "utf8")).toContain("// my own kilo settings");
    for (const f of filesContaining(server.home, key)) expect(f).toBe(".config/kilo/codex-pooler.env");

    const first = snapshotObject(snapshot(server.home, foreign));
    const again = await createAll();
    expect(again.install).toContain("npm not run");
    expect(snapshotObject(snapshot(server.home, foreign))).toEqual(first);

    // A fresh login shell (and an interactive bash) sees the key and finds kilo.
    const probe = async (commandLine: string) => {
      const r = await server.run(commandLine);
      return r.stdout;
    };
    expect(await probe(`bash -ic 'echo "[$CODEX_POOLER_API_KEY]"' 2>/dev/null`)).toBe(`[${key}]\n`);
    expect(await probe(`sh -lc 'echo "[$CODEX_POOLER_API_KEY] [$KILO_DISABLE_AUTOUPDATE]"'`)).toBe(`[${key}] [1]\n`);
    expect(await probe(`zsh -ic 'echo "[$CODEX_POOLER_API_KEY]"'`)).toBe(`[${key}]\n`);
    expect(await probe(`bash -lc 'command -v kilo; kilo --version'`)).toBe(
      `${server.home}/.local/bin/kilo\n${TEST_KILO_VERSION}\n`,
    );

    for (const step of ["env", "config", "install"] as const) {
      const r = await run(scripts[step].delete ?? "");
      expect(r.stderr, step).toBe("");
      expect(r.code, step).toBe(0);
    }
    const after = snapshotObject(snapshot(server.home, foreign));
    // kilo's own (left alone): the empty ~/.config/kilo its postinstall made is not there before.
    expect(after).toEqual(before);
    expect(filesContaining(server.home, key)).toEqual([]);
    expect(readdirSync(join(server.home, ".local"))).not.toContain("bin");
  }, 240_000);

  test("the key is in no process's command line or environment while it goes over SSH to the env script", async () => {
    const key = testKey();
    const child = server.spawn(remoteCommandLine(scripts.env.create));
    let stderr = "";
    child.stderr?.on("data", (d) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((r) => child.once("close", r));
    let sawTool = false;
    let scans = 0;
    const leaks: string[] = [];
    let done = false;
    const scanner = (async () => {
      while (!done) {
        scans++;
        for (const pid of readdirSync("/proc")) {
          if (!/^\d+$/.test(pid)) continue;
          for (const what of ["cmdline", "environ"]) {
            let text: string;
            try {
              text = readFileSync(`/proc/${pid}/${what}`, "latin1");
            } catch {
              continue;
            }
            if (text.includes(key)) leaks.push(`${pid}/${what}: ${text.slice(0, 80)}`);
            if (what === "cmdline" && text.includes("kilo-fleet-tool.cjs\0env-apply")) sawTool = true;
          }
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    for (const c of [key.slice(0, 5), key.slice(5, 11), key.slice(11), "\n"]) {
      await new Promise((r) => setTimeout(r, 400));
      child.stdin?.write(c);
    }
    child.stdin?.end();
    const code = await exited;
    done = true;
    await scanner;
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(sawTool).toBe(true);
    expect(scans).toBeGreaterThan(20);
    expect(leaks).toEqual([]);
    const d = await run(scripts.env.delete ?? "");
    expect(d.code).toBe(0);
  }, 60_000);
});

describe("every login shell runs the scripts as sh", () => {
  for (const shell of ["/bin/dash", "/usr/bin/zsh", "/usr/bin/fish", "/bin/bash"]) {
    test(`login shell ${shell}: preflight, env (key on stdin), env delete`, async () => {
      server.setShell(shell);
      try {
        const key = testKey();
        const p = await run(scripts.preflight.create);
        expect(p.stderr).toBe("");
        expect(p.code).toBe(0);
        const e = await run(scripts.env.create, key);
        expect(e.stderr).toBe("");
        expect(e.code).toBe(0);
        expect(readFileSync(join(server.home, ".config/kilo/codex-pooler.env"), "utf8")).toContain(`'${key}'`);
        const d = await run(scripts.env.delete ?? "");
        expect(d.code).toBe(0);
        expect(filesContaining(server.home, key)).toEqual([]);
      } finally {
        server.setShell("/bin/bash");
      }
    });
  }
});
