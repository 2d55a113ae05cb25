/**
 * The install step for real: @kilocode/cli from the registry into a fresh HOME's ~/.local, then again
 * (must skip without invoking npm), kilo from a fresh login shell, then delete (npm uninstall, HOME back
 * to how it was).
 */
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterAll, expect, test } from "vitest";
import { parseResult } from "../common/result";
import {
  buildSettings,
  deployScripts,
  makeHome,
  runLocal,
  scriptEnv,
  shellOut,
  snapshot,
  snapshotObject,
  testKey,
} from "../harness/hostHome";
import { TEST_KILO_VERSION } from "../harness/kilo";

const h = makeHome({ files: { ".bashrc": "# mine\n" } });
afterAll(() => rmSync(h.root, { recursive: true, force: true }));

/** node and an npm that records each call, first on PATH (the finder takes npm from beside node). */
function npmShim(): { bin: string; log: string } {
  const bin = join(h.root, "shim");
  const log = join(h.root, "npm-calls.log");
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, "node"));
  const realNpm = join(process.execPath, "..", "npm");
  writeFileSync(join(bin, "npm"), `#!/bin/sh\nprintf '%s\\n' "$*" >>'${log}'\nexec '${realNpm}' "$@"\n`);
  chmodSync(join(bin, "npm"), 0o755);
  writeFileSync(log, "");
  return { bin, log };
}

test("installs kilo 7.7.7 from the registry, skips the second time without npm, uninstalls on delete", () => {
  const built = buildSettings({ kiloVersion: TEST_KILO_VERSION, install: { method: "npm" } });
  const install = deployScripts(built).install;
  const shim = npmShim();
  const env = scriptEnv(h.home, h.tmp, { PATH: `${shim.bin}:${process.env.PATH}` });
  const calls = () => readFileSync(shim.log, "utf8").split("\n").filter(Boolean);
  const before = snapshotObject(snapshot(h.home));

  let t = Date.now();
  const first = runLocal(install.create, env);
  const firstMs = Date.now() - t;
  expect(first.stderr).toBe("");
  expect(first.code).toBe(0);
  expect(parseResult(first.stdout, "install")).toEqual({
    step: "install",
    kiloVersion: TEST_KILO_VERSION,
    bin: `${h.home}/.local/bin/kilo`,
    method: "npm",
    changed: true,
  });
  expect(calls()).toHaveLength(1);
  expect(calls()[0]).toMatch(
    new RegExp(
      `^install -g --prefix ${h.home}/\\.local --ignore-scripts --cache ${h.tmp}/kilo-fleet\\.\\d+\\.\\w+/npm-cache .*@kilocode/cli@${TEST_KILO_VERSION}$`,
    ),
  );
  const pkg = JSON.parse(readFileSync(join(h.home, ".local/lib/node_modules/@kilocode/cli/package.json"), "utf8"));
  expect(pkg.version).toBe(TEST_KILO_VERSION);
  // npm's download cache was a temp dir, removed: no second copy of the CLI on the host.
  expect(readdirSync(h.tmp).filter((n) => n.startsWith("kilo-fleet"))).toEqual([]);
  expect(existsSync(join(h.home, ".npm"))).toBe(false);

  t = Date.now();
  const second = runLocal(install.create, env);
  const secondMs = Date.now() - t;
  expect(second.code).toBe(0);
  expect(second.stdout).toContain("npm not run");
  expect(parseResult(second.stdout, "install")).toMatchObject({
    kiloVersion: TEST_KILO_VERSION,
    method: "npm",
    changed: false,
  });
  expect(calls()).toHaveLength(1); // npm was not invoked again
  expect(secondMs).toBeLessThan(3000);
  process.stdout.write(`[install] first ${firstMs} ms, second (skip) ${secondMs} ms\n`);

  // kilo from a fresh login shell (the env step's block puts ~/.local/bin on PATH).
  const envStep = deployScripts(built).env;
  expect(runLocal(envStep.create, env, testKey()).code).toBe(0);
  const login = shellOut(["sh", "-lc", "kilo --version"], scriptEnv(h.home, h.tmp, { PATH: "/usr/bin:/bin" }));
  expect(login.stdout.trim()).toBe(TEST_KILO_VERSION);
  expect(runLocal(envStep.delete ?? "", env).code).toBe(0);

  // Delete: kilo-fleet installed it, so it uninstalls it; the directories npm made for it go too.
  const del = runLocal(install.delete ?? "", env);
  expect(del.stderr).toBe("");
  expect(del.code).toBe(0);
  expect(del.stdout).toContain("uninstalled kilo");
  expect(calls()[1]).toMatch(/^uninstall -g --prefix .* @kilocode\/cli$/);
  const foreign = (rel: string) =>
    /^(\.cache|\.local\/share\/kilo$|\.local\/share\/kilo\/|\.local\/state\/kilo)(\/|$)/.test(rel);
  const after = snapshotObject(snapshot(h.home, foreign));
  // kilo's postinstall and `kilo --version` make ~/.config/kilo, ~/.local/share/kilo, ~/.local/state/kilo and
  // ~/.cache/kilo (kilo's own, left alone): only those and their parents may remain.
  const extra = Object.keys(after).filter((k) => !(k in before));
  process.stdout.write(`[install] left by kilo itself: ${extra.join(", ")}\n`);
  for (const k of extra) expect([".config", ".config/kilo", ".local", ".local/state"]).toContain(k);
  for (const [k, v] of Object.entries(before)) expect(after[k]).toEqual(v);
  expect(existsSync(join(h.home, ".local/bin/kilo"))).toBe(false);
  expect(existsSync(join(h.home, ".local/lib"))).toBe(false);
  expect(existsSync(join(h.home, ".local/state/kilo-fleet"))).toBe(false);
}, 240_000);
