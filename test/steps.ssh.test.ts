/**
 * The host steps over SSH, exactly as remote.Command runs them: a private sshd, a throwaway user with
 * a login shell of its own, each step's command sent as one command string with stdin piped (no TTY, no
 * environment passed), parsed by the login shell; the tool file copied over SFTP as CopyToRemote does.
 * Same assertions as the local run, with a real registry install, plus every login shell (bash, dash, zsh,
 * fish) parsing the commands alike (a hostile JSON argument arrives byte for byte) and /proc while the key
 * goes over the wire.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parse as parseJsonc } from "jsonc-parser";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { parseResult } from "../common/result";
import { hostToolArtifact } from "../deployer/hostTool";
import {
  buildSettings,
  deployScripts,
  filesContaining,
  isForeignFile,
  snapshot,
  snapshotObject,
  testKey,
  USER_BASHRC,
  USER_FILES,
  USER_KILO_JSONC,
} from "../harness/hostHome";
import { TEST_KILO_VERSION } from "../harness/kilo";
import { ensureLoginShells, type SshServer, startSshd } from "../harness/sshd";

// install.method npm over SSH; test/install.package.test.ts has the package method over SSH, without node.
const built = buildSettings({ kiloVersion: TEST_KILO_VERSION, install: { method: "npm" } });
const scripts = deployScripts(built, "ssh");
const foreign = isForeignFile;
const tool = hostToolArtifact();

let server: SshServer;
beforeAll(async () => {
  ensureLoginShells();
  server = await startSshd({ shell: "/bin/bash" });
  // The user's own files, written as the user. ~/.local/state exists on a used machine (shells keep
  // history there); kilo's postinstall also creates it.
  server.writeAsUser(USER_FILES);
  expect(server.asUser(["mkdir", "-p", ".local/state"]).code).toBe(0);
});
afterAll(async () => {
  await server?.stop();
});

const run = async (script: string, stdin = "") => {
  const r = await server.run(script, stdin, { timeoutMs: 240_000 });
  return r;
};

/** The tool step, then the file copy that follows it (CopyToRemote). */
const shipTool = async () => {
  const r = await run(scripts.tool.create);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  server.copyToRemote(tool.file, tool.pathInHome);
  return r;
};

describe("over SSH (login shell bash)", () => {
  test("create, again (same bytes), fresh login shells, delete (byte-identical, no key anywhere)", async () => {
    const key = testKey();
    const before = snapshotObject(snapshot(server.home, foreign));
    const createAll = async () => {
      const out: Record<string, string> = {};
      out.tool = (await shipTool()).stdout;
      for (const step of ["install", "config", "env"] as const) {
        const r = await run(scripts[step].create, step === "env" ? `${key}\n` : "");
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
    expect(out.tool).toBe("");
    expect(readFileSync(join(server.home, tool.pathInHome), "utf8")).toBe(tool.text);
    expect(out.install).not.toContain("npm not run");
    expect(parseResult(out.install, "install")).toEqual({
      step: "install",
      kiloVersion: TEST_KILO_VERSION,
      bin: `${server.home}/.local/bin/kilo`,
      method: "npm",
      changed: true,
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

    for (const step of ["env", "config", "install", "tool"] as const) {
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
    await shipTool();
    const child = server.spawn(scripts.env.create);
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
            if (what === "cmdline" && text.includes(`tool-${tool.id}.cjs\0env-apply`)) sawTool = true;
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
    expect((await run(scripts.tool.delete ?? "")).code).toBe(0);
  }, 60_000);
});

describe("every login shell parses the step commands alike", () => {
  // Every character the JSON argument's encoding must get past a login shell: quotes, backslashes, %,
  // an encoded-looking %27, $, backticks, globs, non-ASCII.
  const hostile = `it's a \\ back "slash" $HOME %27 %% \`id\` $(id) *?[a] é ✓`;
  const withHostile = deployScripts(buildSettings({ kiloSettings: { share: "disabled", hostile } }), "ssh");
  for (const shell of ["/bin/dash", "/usr/bin/zsh", "/usr/bin/fish", "/bin/bash"]) {
    test(`login shell ${shell}: tool step, config (hostile JSON argument), env (key on stdin), deletes`, async () => {
      server.setShell(shell);
      try {
        const key = testKey();
        await shipTool();
        const c = await run(withHostile.config.create);
        expect(c.stderr).toBe("");
        expect(c.code).toBe(0);
        const text = readFileSync(join(server.home, ".config/kilo/kilo.jsonc"), "utf8");
        expect((parseJsonc(text) as { hostile?: string }).hostile).toBe(hostile);
        const e = await run(scripts.env.create, key);
        expect(e.stderr).toBe("");
        expect(e.code).toBe(0);
        expect(readFileSync(join(server.home, ".config/kilo/codex-pooler.env"), "utf8")).toContain(`'${key}'`);
        for (const d of [scripts.env.delete, withHostile.config.delete, scripts.tool.delete]) {
          const r = await run(d ?? "");
          expect(r.stderr).toBe("");
          expect(r.code).toBe(0);
        }
        expect(filesContaining(server.home, key)).toEqual([]);
        expect(readFileSync(join(server.home, ".config/kilo/kilo.jsonc"), "utf8")).toBe(USER_KILO_JSONC);
      } finally {
        server.setShell("/bin/bash");
      }
    });
  }
});
