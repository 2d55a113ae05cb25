/**
 * The host steps run for real on a temporary HOME that already holds a user's startup files and
 * kilo.jsonc: the tool step, then create, create again (same bytes), rotate, delete (byte-identical to the
 * start, the tool gone too, no key anywhere), the key visible from fresh shells, kilo from a fresh login
 * shell, and /proc never holding the key while the env step runs.
 */
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { parseResult } from "../common/result";
import { hostToolArtifact } from "../deployer/hostTool";
import {
  buildSettings,
  deployScripts,
  filesContaining,
  isForeignFile,
  makeHome,
  runLocal,
  scriptEnv,
  shellOut,
  snapshot,
  snapshotObject,
  spawnLocal,
  testKey,
  USER_BASHRC,
  USER_FILES,
  USER_KILO_JSONC,
  USER_PROFILE,
  USER_ZSHRC,
} from "../harness/hostHome";
import { TEST_KILO_VERSION } from "../harness/kilo";
import { ensureLoginShells } from "../harness/sshd";
import { BLOCK_END, BLOCK_START } from "../host/rcBlock";

// install.method npm (kilo already in HOME's npm prefix): test/install.package.test.ts proves the package method.
const built = buildSettings({ kiloVersion: TEST_KILO_VERSION, install: { method: "npm" } });
const scripts = deployScripts(built);
const foreign = isForeignFile;
/** The deploy steps in order (the smoke check has its own tests). */
const DEPLOY_STEPS = ["tool", "install", "config", "env"] as const;

beforeAll(() => {
  ensureLoginShells();
});

describe("host scripts on a local HOME with the user's own files", () => {
  const h = makeHome({
    kilo: true,
    tool: false,
    files: {
      ...USER_FILES,
      ".config/fish/config.fish": "# my fish config\nset -g fish_greeting\n",
    },
  });
  const env = scriptEnv(h.home, h.tmp);
  const key = testKey();
  const key2 = testKey();
  afterAll(() => rmSync(h.root, { recursive: true, force: true }));

  const createAll = (k: string) => {
    const out: Record<string, string> = {};
    for (const step of DEPLOY_STEPS) {
      const r = runLocal(scripts[step].create, env, step === "env" ? `${k}\n` : "");
      expect(r.stderr, `${step} stderr`).toBe("");
      expect(r.code, `${step}: ${r.stderr}`).toBe(0);
      expect(r.stdout).not.toContain(k);
      out[step] = r.stdout;
    }
    return out;
  };
  const sessionEnv = () => scriptEnv(h.home, h.tmp, { PATH: "/usr/bin:/bin", CODEX_POOLER_API_KEY: undefined });

  test("create writes the files, again leaves the same bytes, rotation rewrites only the env file, delete restores everything", () => {
    const before = snapshot(h.home, foreign);
    const out = createAll(key);
    expect(readFileSync(join(h.home, hostToolArtifact().pathInHome), "utf8")).toBe(hostToolArtifact().text);
    expect(parseResult(out.install, "install")).toEqual({
      step: "install",
      kiloVersion: TEST_KILO_VERSION,
      bin: `${h.home}/.local/bin/kilo`,
      method: "preexisting",
      changed: false,
    });
    expect(out.install).toContain("npm not run");

    // The files.
    const kiloDir = join(h.home, ".config/kilo");
    const envFile = join(kiloDir, "codex-pooler.env");
    expect(statSync(envFile).mode & 0o777).toBe(0o600);
    expect(statSync(kiloDir).mode & 0o777).toBe(0o700);
    expect(readFileSync(envFile, "utf8").split("\n").slice(1)).toEqual([
      `export CODEX_POOLER_API_KEY='${key}'`,
      "export KILO_DISABLE_AUTOUPDATE='1'",
      "",
    ]);
    expect(statSync(join(kiloDir, "codex-pooler.env.fish")).mode & 0o777).toBe(0o600);
    const bashrc = readFileSync(join(h.home, ".bashrc"), "utf8");
    expect(bashrc.startsWith(`${BLOCK_START}\n`)).toBe(true);
    expect(bashrc.endsWith(`${BLOCK_END}\n${USER_BASHRC}`)).toBe(true);
    const profile = readFileSync(join(h.home, ".profile"), "utf8");
    expect(profile.startsWith(`${USER_PROFILE}\n${BLOCK_START}\n`)).toBe(true);
    expect(readFileSync(join(h.home, ".zshrc"), "utf8").startsWith(`${USER_ZSHRC}${BLOCK_START}\n`)).toBe(true);
    const fishBlock = readFileSync(join(h.home, ".config/fish/conf.d/kilo-fleet.fish"), "utf8");
    expect(fishBlock.startsWith(`${BLOCK_START}\n`) && fishBlock.endsWith(`${BLOCK_END}\n`)).toBe(true);
    const jsonc = readFileSync(join(kiloDir, "kilo.jsonc"), "utf8");
    expect(jsonc).toContain("// my own kilo settings");
    expect(jsonc).toContain('"share": "disabled", // keep this');
    expect(jsonc).toContain('"my-local"');
    expect(jsonc).toContain('"model": "codex-pooler/gpt-5.5"');
    expect(jsonc).toContain('"apiKey": "{env:CODEX_POOLER_API_KEY}"');
    expect(readFileSync(join(kiloDir, "kilo.jsonc.kilo-fleet-backup"), "utf8")).toBe(USER_KILO_JSONC);
    for (const f of filesContaining(h.home, key)) expect(f).toMatch(/^\.config\/kilo\/codex-pooler\.env(\.fish)?$/);

    // Again: the same bytes and modes, and the key without its newline is the same key.
    const first = snapshotObject(snapshot(h.home, foreign));
    createAll(key);
    expect(snapshotObject(snapshot(h.home, foreign))).toEqual(first);
    expect(runLocal(scripts.env.create, env, key).code).toBe(0);
    expect(snapshotObject(snapshot(h.home, foreign))).toEqual(first);

    // Fresh shells see the key; a fresh login shell finds kilo.
    const s = sessionEnv();
    expect(shellOut(["bash", "-ic", 'echo "[$CODEX_POOLER_API_KEY]"'], s).stdout).toBe(`[${key}]\n`);
    expect(shellOut(["sh", "-lc", 'echo "[$CODEX_POOLER_API_KEY] [$KILO_DISABLE_AUTOUPDATE]"'], s).stdout).toBe(
      `[${key}] [1]\n`,
    );
    expect(shellOut(["bash", "-lc", 'echo "[$CODEX_POOLER_API_KEY]"'], s).stdout).toBe(`[${key}]\n`);
    expect(shellOut(["zsh", "-ic", 'echo "[$CODEX_POOLER_API_KEY]"'], s).stdout).toBe(`[${key}]\n`);
    expect(shellOut(["fish", "-c", 'echo "[$CODEX_POOLER_API_KEY] [$KILO_DISABLE_AUTOUPDATE]"'], s).stdout).toBe(
      `[${key}] [1]\n`,
    );
    const kilo = shellOut(["sh", "-lc", "command -v kilo && kilo --version"], s);
    expect(kilo.stdout).toBe(`${h.home}/.local/bin/kilo\n${TEST_KILO_VERSION}\n`);
    const kiloBash = shellOut(["bash", "-lc", "kilo --version"], s);
    expect(kiloBash.stdout.trim()).toBe(TEST_KILO_VERSION);

    // Rotation: only the env files change.
    const rcFiles = [".bashrc", ".profile", ".zshrc", ".config/fish/conf.d/kilo-fleet.fish", ".config/kilo/kilo.jsonc"];
    const stats = rcFiles.map((f) => statSync(join(h.home, f), { bigint: true }));
    const r = runLocal(scripts.env.create, env, `${key2}\n`);
    expect(r.code).toBe(0);
    rcFiles.forEach((f, i) => {
      const now = statSync(join(h.home, f), { bigint: true });
      expect([now.ino, now.mtimeNs], f).toEqual([stats[i].ino, stats[i].mtimeNs]);
    });
    const rotated = snapshotObject(snapshot(h.home, foreign));
    const changed = Object.keys(rotated).filter((k) => JSON.stringify(rotated[k]) !== JSON.stringify(first[k]));
    expect(changed.sort()).toEqual([".config/kilo/codex-pooler.env", ".config/kilo/codex-pooler.env.fish"]);
    expect(shellOut(["bash", "-ic", 'echo "[$CODEX_POOLER_API_KEY]"'], s).stdout).toBe(`[${key2}]\n`);

    // Delete, in reverse order: the user's files are byte-identical to the start, no file holds a key.
    for (const step of ["env", "config", "install", "tool"] as const) {
      const d = runLocal(scripts[step].delete ?? "", env);
      expect(d.code, `${step} delete: ${d.stderr}`).toBe(0);
      expect(d.stderr).toBe("");
    }
    expect(snapshotObject(snapshot(h.home, foreign))).toEqual(snapshotObject(before));
    expect(existsSync(join(h.home, ".local/state/kilo-fleet"))).toBe(false);
    expect(existsSync(join(h.home, ".local/share/kilo-fleet"))).toBe(false);
    expect(filesContaining(h.root, key)).toEqual([]);
    expect(filesContaining(h.root, key2)).toEqual([]);
    // Every script removed its temp dir (kilo itself keeps a "kilo" dir in TMPDIR).
    expect(readdirSync(h.tmp).filter((n) => n.startsWith("kilo-fleet"))).toEqual([]);
  });
});

describe("the env script and the key", () => {
  test("the key is never in any process's command line or environment while the env script runs", async () => {
    const h = makeHome();
    try {
      const key = testKey();
      const child = spawnLocal(scripts.env.create, scriptEnv(h.home, h.tmp));
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => {
        stdout += d;
      });
      child.stderr.on("data", (d) => {
        stderr += d;
      });
      const exited = new Promise<number | null>((r) => child.once("close", r));
      let sawTool = false;
      let scans = 0;
      const leaks: string[] = [];
      const scan = () => {
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
            if (text.includes(key)) leaks.push(`${pid}/${what}`);
            if (what === "cmdline" && text.includes(`tool-${hostToolArtifact().id}.cjs\0env-apply`)) sawTool = true;
          }
        }
      };
      // Feed the key slowly: the tool is running (reading stdin) while /proc is scanned.
      const chunks = [key.slice(0, 4), key.slice(4, 9), key.slice(9), "\n"];
      let done = false;
      const scanner = (async () => {
        while (!done) {
          scan();
          await new Promise((r) => setTimeout(r, 10));
        }
      })();
      for (const c of chunks) {
        await new Promise((r) => setTimeout(r, 400));
        child.stdin.write(c);
      }
      child.stdin.end();
      const code = await exited;
      done = true;
      await scanner;
      expect(stderr).toBe("");
      expect(code).toBe(0);
      expect(sawTool).toBe(true);
      expect(scans).toBeGreaterThan(20);
      expect(leaks).toEqual([]);
      expect(stdout).not.toContain(key);
      expect(readFileSync(join(h.home, ".config/kilo/codex-pooler.env"), "utf8")).toContain(`'${key}'`);
    } finally {
      rmSync(h.root, { recursive: true, force: true });
    }
  });

  test("a hostile key reaches every shell byte for byte, and is never executed", () => {
    const h = makeHome({ files: { ".bashrc": "", ".config/fish/config.fish": "" } });
    try {
      const canary = join(h.root, "canary");
      const key = `k'"$(touch ${canary})\`touch ${canary}\`$HOME\\n\\\\;*?[a]{b} é|&<>!#~%`;
      const env = scriptEnv(h.home, h.tmp);
      const r = runLocal(scripts.env.create, env, `${key}\n`);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const s = scriptEnv(h.home, h.tmp, { PATH: "/usr/bin:/bin" });
      const print = "printf '[%s]' \"$CODEX_POOLER_API_KEY\"";
      expect(shellOut(["bash", "-ic", print], s).stdout).toBe(`[${key}]`);
      expect(shellOut(["sh", "-lc", print], s).stdout).toBe(`[${key}]`);
      expect(shellOut(["fish", "-c", "printf '[%s]' \"$CODEX_POOLER_API_KEY\""], s).stdout).toBe(`[${key}]`);
      expect(existsSync(canary)).toBe(false);
    } finally {
      rmSync(h.root, { recursive: true, force: true });
    }
  });

  test("a key with a second line, a carriage return, or nothing at all is refused before anything is written", () => {
    const h = makeHome();
    try {
      const before = snapshotObject(snapshot(h.home));
      for (const bad of ["", "\n", "test-key-a\nb", "test-key-a\r\n", "test-key-a\n\n"]) {
        const r = runLocal(scripts.env.create, scriptEnv(h.home, h.tmp), bad);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/^kilo-fleet: (no API key on stdin|the API key on stdin must be one line)[^\n]*\n$/);
        expect(r.stderr).not.toContain("test-key-a");
        expect(snapshotObject(snapshot(h.home))).toEqual(before);
      }
    } finally {
      rmSync(h.root, { recursive: true, force: true });
    }
  });
});

describe('kiloVersion "latest"', () => {
  test("asks the registry for the latest version (npm view) and skips the install when that is what is installed", () => {
    const h = makeHome({ files: {}, kilo: true });
    try {
      const bin = join(h.root, "fake-npm");
      const log = join(h.root, "npm.log");
      mkdirSync(bin);
      symlinkSync(process.execPath, join(bin, "node"));
      // A registry stand-in: `npm view` answers the installed version; anything else is recorded and fails.
      writeFileSync(
        join(bin, "npm"),
        `#!/bin/sh\nprintf '%s\\n' "$*" >>'${log}'\nif [ "$1" = view ]; then echo ${TEST_KILO_VERSION}; exit 0; fi\nexit 1\n`,
      );
      chmodSync(join(bin, "npm"), 0o755);
      const b = buildSettings({ kiloVersion: "latest", install: { method: "npm" } });
      const r = runLocal(deployScripts(b).install.create, scriptEnv(h.home, h.tmp, { PATH: `${bin}:/usr/bin:/bin` }));
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("npm not run");
      expect(parseResult(r.stdout, "install")?.kiloVersion).toBe(TEST_KILO_VERSION);
      const calls = readFileSync(log, "utf8").trim().split("\n");
      expect(calls).toHaveLength(1);
      expect(calls[0]).toMatch(/^view @kilocode\/cli@latest version --cache /);
    } finally {
      rmSync(h.root, { recursive: true, force: true });
    }
  });
});

describe("kilo.jsonc kilo-fleet created", () => {
  test("is removed on delete, also after kilo's own first-run rewrite; a key the user added keeps it", () => {
    for (const userAdds of [false, true]) {
      const h = makeHome({ files: { ".bashrc": "" } });
      try {
        const before = snapshotObject(snapshot(h.home));
        const env = scriptEnv(h.home, h.tmp);
        expect(runLocal(scripts.config.create, env).code).toBe(0);
        const file = join(h.home, ".config/kilo/kilo.jsonc");
        // What kilo 7.7.7 does on first run: adds "permission": {"bash": "allow"}, drops the final newline.
        let text = readFileSync(file, "utf8")
          .trimEnd()
          .replace(/\n}$/, ',\n  "permission": {\n    "bash": "allow"\n  }\n}');
        if (userAdds) text = text.replace(/\n}$/, ',\n  "share": "manual"\n}');
        writeFileSync(file, text);
        const d = runLocal(scripts.config.delete ?? "", env);
        expect(d.code, d.stderr).toBe(0);
        if (userAdds) {
          expect(readFileSync(file, "utf8")).toContain('"share": "manual"');
          expect(readFileSync(file, "utf8")).not.toContain("codex-pooler");
        } else {
          expect(existsSync(file)).toBe(false);
          expect(snapshotObject(snapshot(h.home))).toEqual(before);
        }
      } finally {
        rmSync(h.root, { recursive: true, force: true });
      }
    }
  });
});

describe("shells", () => {
  test("explicit shells: a dropped shell loses its block, a created rc file is removed again, symlinked dotfiles stay links", () => {
    const h = makeHome({
      files: { ".bashrc": "# mine\n", "dotfiles/zshrc": "# zsh via dotfiles\n", ".local/share/fish/.keep": "" },
    });
    try {
      symlinkSync("dotfiles/zshrc", join(h.home, ".zshrc"));
      const before = snapshotObject(snapshot(h.home, foreign));
      const env = scriptEnv(h.home, h.tmp);
      const key = testKey();
      const withShells = (shells: string[]) => {
        const b = buildSettings({}, { shells });
        return deployScripts(b).env;
      };
      expect(runLocal(withShells(["bash", "zsh", "fish"]).create, env, key).code).toBe(0);
      expect(existsSync(join(h.home, ".profile"))).toBe(false); // sh not listed
      expect(readFileSync(join(h.home, "dotfiles/zshrc"), "utf8")).toContain(BLOCK_START);
      expect(snapshot(h.home).get(".zshrc")?.type).toBe("link");
      expect(readFileSync(join(h.home, ".config/fish/conf.d/kilo-fleet.fish"), "utf8")).toContain(BLOCK_START);
      const s = scriptEnv(h.home, h.tmp, { PATH: "/usr/bin:/bin" });
      expect(
        shellOut(
          ["fish", "-c", 'echo "[$CODEX_POOLER_API_KEY]"; contains -- $HOME/.local/bin $PATH; and echo onpath'],
          s,
        ).stdout,
      ).toBe(`[${key}]\nonpath\n`);

      // Drop zsh and fish: their blocks go, the fish file the block created alone goes with it.
      const bashOnly = withShells(["bash"]);
      const r = runLocal(bashOnly.create, env, key);
      expect(r.code).toBe(0);
      expect(readFileSync(join(h.home, "dotfiles/zshrc"), "utf8")).toBe("# zsh via dotfiles\n");
      expect(existsSync(join(h.home, ".config/fish/conf.d/kilo-fleet.fish"))).toBe(false);
      expect(existsSync(join(h.home, ".config/kilo/codex-pooler.env.fish"))).toBe(false);
      expect(runLocal(bashOnly.delete ?? "", env).code).toBe(0);
      expect(snapshotObject(snapshot(h.home, foreign))).toEqual(before);
    } finally {
      rmSync(h.root, { recursive: true, force: true });
    }
  });

  test("a HOME with a space and a quote in its path: each login shell runs the SSH steps' lines, the deletes restore it", () => {
    const root = mkdtempSync(join(tmpdir(), "kilo-fleet-home-"));
    try {
      const ssh = deployScripts(buildSettings({}), "ssh");
      const tool = hostToolArtifact();
      for (const shell of ["/bin/sh", "/bin/bash", "/bin/dash", "/usr/bin/zsh", "/usr/bin/fish"]) {
        const home = join(root, `${shell.replace(/.*\//, "")} dev's home`);
        const tmp = join(root, `${shell.replace(/.*\//, "")}-tmp`);
        for (const d of [home, tmp]) mkdirSync(d);
        writeFileSync(join(home, ".bashrc"), USER_BASHRC);
        const env = scriptEnv(home, tmp);
        // fish makes its own ~/.config/fish and ~/.local/share/fish on its first run: before the snapshot.
        if (shell.endsWith("fish")) expect(runLocal("true", env, "", { shell }).code).toBe(0);
        const before = snapshotObject(snapshot(home, foreign));
        const run = (line: string, stdin = "") => {
          const r = runLocal(line, env, stdin, { shell });
          expect(r.code, `${shell}: ${line.slice(0, 60)}: ${r.stderr}`).toBe(0);
          return r;
        };
        expect(run(ssh.tool.create).stdout).toBe("");
        // What CopyToRemote does next: the file at its path under HOME.
        copyFileSync(tool.file, join(home, tool.pathInHome));
        expect(parseResult(run(ssh.config.create).stdout, "config")).toEqual({
          step: "config",
          configPath: "~/.config/kilo/kilo.jsonc",
          status: "created",
        });
        expect(parseResult(run(ssh.env.create, `${testKey()}\n`).stdout, "env")?.changed).toBe(true);
        for (const d of [ssh.env.delete, ssh.config.delete, ssh.tool.delete]) run(d ?? "");
        expect(snapshotObject(snapshot(home, foreign)), shell).toEqual(before);
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test("default shells: those whose rc file exists, plus ~/.profile (created alone, removed on delete)", () => {
    const h = makeHome({ files: { ".zshrc": "# only zsh here\n" } });
    try {
      const before = snapshotObject(snapshot(h.home));
      const env = scriptEnv(h.home, h.tmp);
      const r = runLocal(scripts.env.create, env, testKey());
      expect(r.code).toBe(0);
      expect(parseResult(r.stdout, "env")?.rcFiles).toEqual(["~/.zshrc", "~/.profile"]);
      expect(readFileSync(join(h.home, ".zshrc"), "utf8")).toContain(BLOCK_START);
      expect(existsSync(join(h.home, ".bashrc"))).toBe(false);
      expect(readFileSync(join(h.home, ".profile"), "utf8").startsWith(BLOCK_START)).toBe(true);
      expect(runLocal(scripts.env.delete ?? "", env).code).toBe(0);
      expect(snapshotObject(snapshot(h.home))).toEqual(before);
    } finally {
      rmSync(h.root, { recursive: true, force: true });
    }
  });

  test('kiloVersion "latest": no KILO_DISABLE_AUTOUPDATE in the env file', () => {
    const h = makeHome({ files: {} });
    try {
      const b = buildSettings({ kiloVersion: "latest" });
      const r = runLocal(deployScripts(b).env.create, scriptEnv(h.home, h.tmp), "test-key-latest\n");
      expect(r.code).toBe(0);
      expect(readFileSync(join(h.home, ".config/kilo/codex-pooler.env"), "utf8")).not.toContain(
        "KILO_DISABLE_AUTOUPDATE",
      );
    } finally {
      rmSync(h.root, { recursive: true, force: true });
    }
  });
});
