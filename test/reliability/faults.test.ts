/**
 * Faults found in review (issue 17), host side, with the shipped steps on a temporary HOME:
 *   - item 2: a failed env step leaves no key on disk: a half managed block in .bashrc fails before anything
 *     is written; a startup file whose write fails after the key was written (a read-only link, as
 *     home-manager makes) gets the run's key removed again; a create killed at any point leaves what the
 *     other steps' deletes sweep, while a finished env step's files are left to its own delete;
 *   - item 1: every step records the absolute paths it wrote; when XDG_CONFIG_HOME moves, the next apply
 *     removes what it wrote at the old place (the key lives in one file), and the deletes act on the
 *     recorded paths only: a kilo.jsonc at the new place that kilo-fleet never wrote is left untouched;
 *   - item 1, records: kilo-fleet's records stay at ~/.local/state/kilo-fleet whatever XDG_STATE_HOME says:
 *     set after a deploy, re-apply and destroy leave HOME as it was; records an earlier version kept under
 *     XDG_STATE_HOME are moved there by the next apply (the package install's sh and the tool alike);
 *   - item 4: an install with an npm token killed (-9) while npm runs leaves the token in no file, and the
 *     next run removes the killed run's temp dir (and an earlier version's, holding an npmrc, an hour old).
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { shQuote } from "../../common/shellQuote";
import { encodeStepArg } from "../../common/stepArgs";
import { hostStepCommands } from "../../deployer/hostSteps";
import { hostToolArtifact } from "../../deployer/hostTool";
import type { KiloLock } from "../../deployer/kiloLock";
import { type FakeRegistry, fakeKiloTarball, startFakeRegistry } from "../../harness/fakeRegistry";
import {
  buildSettings,
  deployScripts,
  type Entry,
  filesContaining,
  makeHome,
  runLocal,
  scriptEnv,
  snapshot,
  snapshotObject,
  testKey,
  USER_BASHRC,
} from "../../harness/hostHome";
import { isLitter, runScript, snapshotDiff } from "../../harness/reliability";
import { BLOCK_START } from "../../host/rcBlock";

const scripts = deployScripts(buildSettings());

/** A temp HOME (the user's usual files, the tool shipped), removed however the test ends. */
function withHome(f: (h: { root: string; home: string; tmp: string }) => void) {
  const h = makeHome();
  try {
    f(h);
  } finally {
    rmSync(h.root, { recursive: true, force: true });
  }
}

const keyFiles = (h: { root: string }, key: string) => filesContaining(h.root, key);

describe("a failed env step leaves no key on disk (issue 17, item 2)", () => {
  test("a .bashrc with half a managed block: the create fails before writing anything", () => {
    withHome((h) => {
      writeFileSync(join(h.home, ".bashrc"), `${BLOCK_START}\nexport FOO=1\n`);
      const env = scriptEnv(h.home, h.tmp);
      const before = snapshotObject(snapshot(h.home));
      const key = testKey();
      const r = runLocal(scripts.env.create, env, `${key}\n`);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^kilo-fleet: \S+\/\.bashrc line 1: kilo-fleet block has no end marker/);
      expect(keyFiles(h, key)).toEqual([]);
      expect(snapshotObject(snapshot(h.home))).toEqual(before);
    });
  });

  test("a startup file whose write fails after the key was written: the run removes the key it wrote", () => {
    withHome((h) => {
      // A link to a file that reads but cannot be replaced (as a read-only link into a store does).
      rmSync(join(h.home, ".profile"));
      symlinkSync("/proc/version", join(h.home, ".profile"));
      const env = scriptEnv(h.home, h.tmp);
      const key = testKey();
      const r = runLocal(scripts.env.create, env, `${key}\n`);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^kilo-fleet: cannot write \/proc\/version/);
      expect(keyFiles(h, key)).toEqual([]);
      // A rotation that fails the same way puts the earlier key back: the file the earlier step recorded.
      rmSync(join(h.home, ".profile"));
      writeFileSync(join(h.home, ".profile"), "# mine\n");
      const first = testKey();
      expect(runLocal(scripts.env.create, env, `${first}\n`).code).toBe(0);
      rmSync(join(h.home, ".profile"));
      symlinkSync("/proc/version", join(h.home, ".profile"));
      expect(runLocal(scripts.env.create, env, `${key}\n`).code).toBe(1);
      expect(keyFiles(h, key)).toEqual([]);
      expect(keyFiles(h, first)).toEqual(["home/.config/kilo/codex-pooler.env"]);
    });
  });

  test("a first create killed at every crash point: the config step's delete leaves no key", () => {
    withHome((h) => {
      const env = scriptEnv(h.home, h.tmp);
      // kilo-fleet's own state dir may differ between runs (which directories it made); the rest may not.
      const skip = (rel: string) => isLitter(rel) || /^\.local\/state(\/|$)/.test(rel);
      const pristine = snapshotObject(snapshot(h.home, skip));
      const findings: string[] = [];
      let finished = false;
      for (let at = 1; at < 200 && !finished; at++) {
        // The config step ran (its delete has a record to act on), then the env step's first create.
        expect(runLocal(scripts.config.create, env).code).toBe(0);
        const key = testKey();
        const r = runLocal(scripts.env.create, { ...env, KILO_FLEET_TEST_CRASH_AT: String(at) }, `${key}\n`);
        const state = join(h.home, ".local/state/kilo-fleet/shell.json");
        if (r.code === 0 || (existsSync(state) && JSON.parse(readFileSync(state, "utf8")).applied === true)) {
          // Finished, or killed after its last write (the state's rename to `applied`) on the way out: the
          // one window no record can close (Pulumi then re-runs the create on the next up). The env step's
          // own delete removes it.
          finished = r.code === 0;
          expect(runLocal(scripts.env.delete ?? "", env).code).toBe(0);
        }
        const del = runLocal(scripts.config.delete ?? "", env);
        if (del.code !== 0) findings.push(`crash at ${at}: config delete failed: ${del.stderr.trim()}`);
        for (const f of keyFiles(h, key)) findings.push(`crash at ${at}: the key is in ${f}`);
        const now = snapshotObject(snapshot(h.home, skip));
        for (const k of new Set([...Object.keys(now), ...Object.keys(pristine)])) {
          if (JSON.stringify(now[k]) !== JSON.stringify(pristine[k])) findings.push(`crash at ${at}: ${k} differs`);
        }
      }
      expect(finished).toBe(true);
      expect(findings).toEqual([]);
    });
  });

  test("a finished env step's key is its own delete's: the config and install deletes leave it", () => {
    withHome((h) => {
      const env = scriptEnv(h.home, h.tmp);
      const key = testKey();
      expect(runLocal(scripts.config.create, env).code).toBe(0);
      expect(runLocal(scripts.env.create, env, `${key}\n`).code).toBe(0);
      expect(runLocal(scripts.config.delete ?? "", env).code).toBe(0);
      expect(keyFiles(h, key)).toEqual(["home/.config/kilo/codex-pooler.env"]);
      expect(runLocal(scripts.env.delete ?? "", env).code).toBe(0);
      expect(keyFiles(h, key)).toEqual([]);
    });
  });
});

describe("paths that move between runs (issue 17, item 1)", () => {
  test("XDG_CONFIG_HOME set after a deploy: the next apply moves the files, the key lives in one", () => {
    withHome((h) => {
      const env = scriptEnv(h.home, h.tmp);
      const moved = scriptEnv(h.home, h.tmp, { XDG_CONFIG_HOME: join(h.home, "xdg") });
      const key = testKey();
      expect(runLocal(scripts.config.create, env).code).toBe(0);
      expect(runLocal(scripts.env.create, env, `${key}\n`).code).toBe(0);
      const rotated = testKey();
      let r = runLocal(scripts.config.create, moved);
      expect(r.code, r.stderr).toBe(0);
      r = runLocal(scripts.env.create, moved, `${rotated}\n`);
      expect(r.code, r.stderr).toBe(0);
      expect(keyFiles(h, key)).toEqual([]);
      expect(keyFiles(h, rotated)).toEqual(["home/xdg/kilo/codex-pooler.env"]);
      // The user's own kilo.jsonc at the old place is theirs again, byte for byte (it had a backup).
      const userOwn = readFileSync(join(h.home, ".config/kilo/kilo.jsonc"), "utf8");
      expect(userOwn).not.toContain("codex-pooler");
      expect(existsSync(join(h.home, ".config/kilo/kilo.jsonc.kilo-fleet-backup"))).toBe(false);
      for (const s of [scripts.env, scripts.config]) expect(runLocal(s.delete ?? "", moved).code).toBe(0);
      expect(keyFiles(h, rotated)).toEqual([]);
      expect(existsSync(join(h.home, "xdg/kilo/kilo.jsonc"))).toBe(false);
    });
  });

  test("XDG_CONFIG_HOME set before a destroy: the deletes act on the recorded paths only", () => {
    withHome((h) => {
      const env = scriptEnv(h.home, h.tmp);
      const moved = scriptEnv(h.home, h.tmp, { XDG_CONFIG_HOME: join(h.home, "xdg") });
      // The user's own kilo.jsonc at the new place: kilo-fleet never wrote it.
      const mine = '{ "model": "someone/else", "provider": { "codex-pooler": { "name": "mine" } } }\n';
      mkdirSync(join(h.home, "xdg/kilo"), { recursive: true });
      writeFileSync(join(h.home, "xdg/kilo/kilo.jsonc"), mine);
      const before = snapshotObject(snapshot(h.home));
      const key = testKey();
      expect(runLocal(scripts.config.create, env).code).toBe(0);
      expect(runLocal(scripts.env.create, env, `${key}\n`).code).toBe(0);
      for (const s of [scripts.env, scripts.config]) {
        const r = runLocal(s.delete ?? "", moved);
        expect(r.code, r.stderr).toBe(0);
      }
      expect(readFileSync(join(h.home, "xdg/kilo/kilo.jsonc"), "utf8")).toBe(mine);
      expect(keyFiles(h, key)).toEqual([]);
      expect(snapshotObject(snapshot(h.home))).toEqual(before);
    });
  });
});

describe("kilo-fleet's records do not move with XDG_STATE_HOME (issue 17, item 1)", () => {
  const VERSION = "7.7.8";
  const scratch = mkdtempSync(join(tmpdir(), "kilo-fleet-records-"));
  let reg: FakeRegistry;
  beforeAll(async () => {
    reg = await startFakeRegistry({
      packages: [{ platform: "linux-x64", version: VERSION, file: fakeKiloTarball(scratch, VERSION) }],
    });
  });
  afterAll(async () => {
    await reg?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  /** install (the package install's sh, against the stand-in registry), config and env, as a stack has them. */
  const steps = () => {
    const built = buildSettings({ kiloVersion: VERSION, npmRegistry: reg.url });
    const lock: KiloLock = {
      version: 1,
      kilo: {
        [VERSION]: {
          "linux-x64": {
            package: "@kilocode/cli-linux-x64",
            tarball: "-",
            integrity: reg.integrity("linux-x64", VERSION),
          },
        },
      },
    };
    return hostStepCommands(built.spec.name, built.spec, hostToolArtifact(), "local", { lock });
  };
  const apply = async (s: ReturnType<typeof steps>, env: NodeJS.ProcessEnv, key: string, shell?: string) => {
    for (const [script, stdin] of [
      [s.install.create, ""],
      [s.config.create, ""],
      [s.env.create, `${key}\n`],
    ] as const) {
      const r = await runScript(script, env, { stdin, shell });
      expect(r.code, r.stderr).toBe(0);
    }
  };
  const destroy = async (s: ReturnType<typeof steps>, env: NodeJS.ProcessEnv, shell?: string) => {
    for (const script of [s.env.delete, s.config.delete, s.install.delete]) {
      const r = await runScript(script ?? "", env, { shell });
      expect(r.code, r.stderr).toBe(0);
    }
  };
  const RECORDS = ".local/state/kilo-fleet";

  for (const how of ["in the steps' environment", "exported in .bashrc (bash reads it for SSH commands)"] as const) {
    test(`XDG_STATE_HOME set after a deploy, ${how}: re-apply and destroy find the records; HOME comes back as it was`, async () => {
      const h = makeHome();
      try {
        const s = steps();
        const before = snapshot(h.home);
        const env = scriptEnv(h.home, h.tmp);
        const elsewhere = join(h.home, "state-elsewhere");
        const key = testKey();
        await apply(s, env, key);
        // The user's own line, above the rest of their .bashrc (its non-interactive `return` included).
        const exported = `export XDG_STATE_HOME="$HOME/state-elsewhere"\n`;
        const viaBashrc = how.startsWith("exported");
        let moved = scriptEnv(h.home, h.tmp, { XDG_STATE_HOME: elsewhere });
        let shell: string | undefined;
        if (viaBashrc) {
          const rc = join(h.home, ".bashrc");
          writeFileSync(rc, exported + readFileSync(rc, "utf8"));
          // As sshd has bash run a command: non-interactive, with .bashrc read (BASH_ENV plays sshd's part).
          moved = scriptEnv(h.home, h.tmp, { BASH_ENV: rc });
          shell = "/bin/bash";
          expect((await runScript('printf %s "$XDG_STATE_HOME"', moved, { shell })).stdout).toBe(elsewhere);
        }
        const rotated = testKey();
        await apply(s, moved, rotated, shell);
        expect(readdirSync(join(h.home, RECORDS))).toEqual(
          expect.arrayContaining(["config.json", "kilo-package", "shell.json"]),
        );
        expect(existsSync(elsewhere)).toBe(false);
        expect(keyFiles(h, key)).toEqual([]);
        expect(keyFiles(h, rotated)).toEqual(["home/.config/kilo/codex-pooler.env"]);
        await destroy(s, moved, shell);
        expect(filesContaining(h.root, rotated)).toEqual([]);
        const after = snapshot(h.home);
        if (viaBashrc) {
          expect(after.get(".bashrc")?.content).toBe(exported + USER_BASHRC);
          after.set(".bashrc", before.get(".bashrc") as Entry);
        }
        expect(snapshotDiff(after, before)).toEqual([]);
      } finally {
        rmSync(h.root, { recursive: true, force: true });
      }
    });
  }

  /**
   * What an earlier version left when XDG_STATE_HOME named `dir` at the deploy: the records there, with the
   * directories it made for them (`dir` and `dir/kilo-fleet`, where now `~/.local/state…` are) recorded.
   */
  function asEarlierVersion(home: string, dir: string): void {
    const from = join(home, RECORDS);
    mkdirSync(dir);
    for (const name of readdirSync(from)) {
      const text = readFileSync(join(from, name), "utf8").replaceAll(join(home, ".local/state"), dir);
      mkdirSync(join(dir, "kilo-fleet"), { recursive: true });
      writeFileSync(join(dir, "kilo-fleet", name), text, { mode: statSync(join(from, name)).mode & 0o777 });
    }
    rmSync(join(home, ".local/state"), { recursive: true });
  }

  for (const first of ["the package install (sh)", "the config step (the tool)"] as const) {
    test(`records an earlier version kept under XDG_STATE_HOME: ${first} moves them, the destroy leaves HOME as it was`, async () => {
      const h = makeHome();
      try {
        const s = steps();
        const before = snapshot(h.home);
        const xdg = join(h.home, "xdg-state");
        const env = scriptEnv(h.home, h.tmp, { XDG_STATE_HOME: xdg });
        const key = testKey();
        await apply(s, scriptEnv(h.home, h.tmp), key);
        const records = snapshot(join(h.home, RECORDS));
        asEarlierVersion(h.home, xdg);
        const r = await runScript(first.startsWith("the package") ? s.install.create : s.config.create, env);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout + r.stderr).toContain(`moved its records from ${xdg}/kilo-fleet to ${h.home}/${RECORDS}`);
        expect(existsSync(xdg)).toBe(false);
        // The same records as a deploy without XDG_STATE_HOME leaves, but the config step's own (it rewrote it)
        // and dirs.json (the move lists the directories it made in each record that can remove them); the
        // package install's record holds the same lines.
        const now = snapshot(join(h.home, RECORDS));
        const skip = (d: string) => /^(config\.json|dirs\.json|kilo-package):/.test(d);
        expect(snapshotDiff(now, records).filter((d) => !skip(d))).toEqual([]);
        const lines = (m: Map<string, Entry>) => m.get("kilo-package")?.content?.split("\n").sort();
        expect(lines(now)).toEqual(lines(records));
        await apply(s, env, key);
        await destroy(s, env);
        expect(filesContaining(h.root, key)).toEqual([]);
        expect(snapshotDiff(snapshot(h.home), before)).toEqual([]);
      } finally {
        rmSync(h.root, { recursive: true, force: true });
      }
    });
  }
});

describe("no copy of an npm token outlives its step, kill -9 included (issue 17, item 4)", () => {
  test("kill -9 of the install while npm runs: the token is in no file; the next run sweeps the temp dir", async () => {
    const h = makeHome();
    try {
      const token = `npm_${testKey()}`;
      const marker = join(h.root, "npm-running");
      // A stand-in npm: says it runs, then installs slowly (the kill comes meanwhile) or at once.
      const fakeNpm = join(h.root, "fake-npm");
      writeFileSync(
        fakeNpm,
        `#!/bin/sh
prefix=
prev=
for a in "$@"; do [ "$prev" = --prefix ] && prefix=$a; prev=$a; done
: > '${marker}'
[ -n "\${KF_SLOW_NPM:-}" ] && sleep 30
mkdir -p "$prefix/lib/node_modules/@kilocode/cli" "$prefix/bin"
printf '{"version":"7.7.7"}' > "$prefix/lib/node_modules/@kilocode/cli/package.json"
printf '#!/bin/sh\\n' > "$prefix/bin/kilo"; chmod 755 "$prefix/bin/kilo"
`,
        { mode: 0o755 },
      );
      const args = { host: "t", version: "7.7.7", registry: "https://npm.example.com/", tokenOnStdin: true as const };
      const line = `${shQuote(process.execPath)} ${shQuote(hostToolArtifact().file)} install '${encodeStepArg(args)}'`;
      const env = scriptEnv(h.home, h.tmp, { KILO_FLEET_NPM: fakeNpm });
      const seen = new Promise<void>((resolve) => {
        const t = setInterval(() => {
          if (!existsSync(marker)) return;
          clearInterval(t);
          resolve();
        }, 20);
      });
      const killed = await runScript(line, { ...env, KF_SLOW_NPM: "1" }, { stdin: `${token}\n`, killWhen: seen });
      expect(killed.killed).toBe(true);
      expect(filesContaining(h.root, token)).toEqual([]);
      // An earlier version's temp dir (no pid in its name) with its npmrc, killed two hours ago: swept; one
      // of a run that may still be going (fresh) is left.
      for (const [name, ageS] of [
        ["kilo-fleet.Old123", 7200],
        ["kilo-fleet.New456", 0],
      ] as const) {
        mkdirSync(join(h.tmp, name));
        writeFileSync(
          join(h.tmp, name, "npmrc"),
          `//npm.example.com/:_authToken=${name === "kilo-fleet.Old123" ? token : "other"}\n`,
        );
        const t = Date.now() / 1000 - ageS;
        utimesSync(join(h.tmp, name), t, t);
      }
      const again = await runScript(line, env, { stdin: `${token}\n` });
      expect(again.code, again.stderr).toBe(0);
      expect(readdirSync(h.tmp).filter((n) => n.startsWith("kilo-fleet."))).toEqual(["kilo-fleet.New456"]);
      expect(filesContaining(h.root, token)).toEqual([]);
    } finally {
      rmSync(h.root, { recursive: true, force: true });
    }
  });
});
