/**
 * The kilo lock file (deployer/kiloLock.ts) and the CLI around it: `kilo-fleet lock` against the real
 * registry and a stand-in one (harness/fakeRegistry.ts), and `validate` refusing a pinned version the lock
 * lacks.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fetchLockEntries, mergeChecked } from "../cli/lockRegistry";
import {
  emptyLock,
  fleetLockPath,
  type KiloLock,
  LockError,
  lockLinesFor,
  lockProblems,
  parseLock,
  pinnedVersions,
  readLockFile,
  serializeLock,
  shippedLockPath,
  withVersion,
} from "../deployer/kiloLock";
import { type FakeRegistry, fakeKiloTarball, startFakeRegistry } from "../harness/fakeRegistry";

const ROOT = join(__dirname, "..");
const TSX = join(ROOT, "node_modules", ".bin", "tsx");
const scratch = mkdtempSync(join(tmpdir(), "kilo-fleet-lock-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const I1 = `sha512-${"A".repeat(86)}==`;
const I2 = `sha512-${"B".repeat(86)}==`;
const entry = (platform: string, integrity = I1) => ({
  package: `@kilocode/cli-${platform}`,
  tarball: `https://registry.npmjs.org/@kilocode/cli-${platform}/-/cli-${platform}-7.7.7.tgz`,
  integrity,
});
const LOCK: KiloLock = {
  version: 1,
  kilo: { "7.7.7": { "linux-x64": entry("linux-x64"), "darwin-arm64": entry("darwin-arm64", I2) } },
};

describe("the lock file format", () => {
  it("serializes with sorted keys and a trailing newline, and parses back to the same bytes", () => {
    const text = serializeLock({
      version: 1,
      kilo: { "7.8.0": { "linux-x64": entry("linux-x64") }, ...LOCK.kilo },
    });
    expect(text.endsWith("}\n")).toBe(true);
    expect(Object.keys(JSON.parse(text).kilo)).toEqual(["7.7.7", "7.8.0"]);
    expect(Object.keys(JSON.parse(text).kilo["7.7.7"])).toEqual(["darwin-arm64", "linux-x64"]);
    expect(Object.keys(JSON.parse(text).kilo["7.7.7"]["linux-x64"])).toEqual(["package", "tarball", "integrity"]);
    expect(serializeLock(parseLock(text))).toBe(text);
  });

  it("the committed stacks/kilo-fleet.lock.json is valid, in stable bytes, and locks 7.7.7 for linux-x64", () => {
    const path = join(ROOT, "stacks", "kilo-fleet.lock.json");
    const lock = readLockFile(path);
    expect(lock).toBeDefined();
    expect(serializeLock(lock as KiloLock)).toBe(readFileSync(path, "utf8"));
    expect((lock as KiloLock).kilo["7.7.7"]["linux-x64"]).toMatchObject({
      package: "@kilocode/cli-linux-x64",
      tarball: "https://registry.npmjs.org/@kilocode/cli-linux-x64/-/cli-linux-x64-7.7.7.tgz",
    });
  });

  it.each([
    ["not json", /not JSON/],
    ['{"version":2,"kilo":{}}', /"version" must be 1/],
    ['{"version":1,"kilo":{},"x":1}', /unknown key "x"/],
    ['{"version":1,"kilo":{"latest":{}}}', /kilo\["latest"\]: not an exact kilo version/],
    ['{"version":1,"kilo":{"7.7.7":{}}}', /kilo\["7.7.7"\]: no platforms/],
    [
      JSON.stringify({
        version: 1,
        kilo: { "7.7.7": { "linux-x64": { ...entry("linux-x64"), integrity: "sha1-xyz" } } },
      }),
      /kilo\["7.7.7"\]\["linux-x64"\]: integrity must be sha512-/,
    ],
    [
      JSON.stringify({ version: 1, kilo: { "7.7.7": { "linux-x64": entry("darwin-arm64") } } }),
      /package must be "@kilocode\/cli-linux-x64"/,
    ],
    [
      JSON.stringify({
        version: 1,
        kilo: { "7.7.7": { "linux-x64": { ...entry("linux-x64"), tarball: "https://x/a b.tgz" } } },
      }),
      /tarball must be an http\(s\) URL without spaces/,
    ],
  ])("refuses %s", (text, message) => {
    expect(() => parseLock(text)).toThrow(message);
  });

  it("a corrupt lock file is named with the command to run; a missing one is undefined", () => {
    const path = join(scratch, "bad.lock.json");
    writeFileSync(path, "{");
    expect(() => readLockFile(path)).toThrow(/bad\.lock\.json: not JSON .*run: npm run kilo-fleet -- lock/);
    expect(readLockFile(join(scratch, "none.json"))).toBeUndefined();
  });
});

describe("lockLinesFor and the checks", () => {
  it("gives one `<platform> <tarball> <integrity>` line per platform, sorted", () => {
    expect(lockLinesFor(LOCK, "7.7.7")).toBe(
      `darwin-arm64 ${entry("darwin-arm64").tarball} ${I2}\nlinux-x64 ${entry("linux-x64").tarball} ${I1}\n`,
    );
    expect(() => lockLinesFor(LOCK, "7.8.0")).toThrow(
      new LockError("kilo 7.8.0 is not in the lock file; run: npm run kilo-fleet -- lock"),
    );
  });

  it("lockProblems: every pinned version missing from the lock, by key; latest is fine", () => {
    const pinned = pinnedVersions({
      kiloVersion: "7.7.7",
      hosts: [{}, { kiloVersion: "7.8.0" }, { kiloVersion: "latest" }],
    });
    expect(pinned).toEqual([
      { key: "kilo-fleet:kiloVersion", version: "7.7.7" },
      { key: "kilo-fleet:hosts[1].kiloVersion", version: "7.8.0" },
      { key: "kilo-fleet:hosts[2].kiloVersion", version: "latest" },
    ]);
    expect(lockProblems(LOCK, pinned, "stacks/kilo-fleet.lock.json")).toEqual([
      {
        key: "kilo-fleet:hosts[1].kiloVersion",
        message: "kilo 7.8.0 is not in the lock file stacks/kilo-fleet.lock.json; run: npm run kilo-fleet -- lock",
      },
    ]);
    expect(lockProblems(undefined, pinned, "L").map((p) => p.message)).toEqual([
      "kilo 7.7.7 is pinned but there is no lock file L; run: npm run kilo-fleet -- lock",
      "kilo 7.8.0 is pinned but there is no lock file L; run: npm run kilo-fleet -- lock",
    ]);
  });

  it("mergeChecked refuses a locked integrity the registry changed", () => {
    expect(mergeChecked(emptyLock(), "7.7.7", LOCK.kilo["7.7.7"])).toEqual(LOCK);
    expect(() => mergeChecked(LOCK, "7.7.7", { "linux-x64": entry("linux-x64", I2) })).toThrow(
      /@kilocode\/cli-linux-x64@7\.7\.7: the registry now gives sha512-B+==, the lock file has sha512-A+==/,
    );
    expect(withVersion(LOCK, "7.8.0", {}).kilo["7.7.7"]).toBe(LOCK.kilo["7.7.7"]);
  });
});

function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return cliWith(process.env, ...args);
}

function cliWith(
  env: NodeJS.ProcessEnv,
  ...args: string[]
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(TSX, [join(ROOT, "cli", "kilo-fleet.ts"), ...args], { cwd: ROOT, env });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => {
    stdout += d;
  });
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  return new Promise((r) => child.once("close", (code) => r({ code, stdout, stderr })));
}

describe("fetchLockEntries and `kilo-fleet lock`", () => {
  let reg: FakeRegistry;
  beforeAll(async () => {
    reg = await startFakeRegistry({
      packages: [
        { platform: "linux-x64", version: "7.7.8", file: fakeKiloTarball(scratch, "7.7.8") },
        { platform: "darwin-arm64", version: "7.7.8", file: fakeKiloTarball(scratch, "7.7.8-darwin") },
        { platform: "windows-x64", version: "7.7.8", file: fakeKiloTarball(scratch, "7.7.8-win") },
      ],
      unpublished: ["linux-arm64"],
    });
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it("reads the real registry: 7.7.7's linux-x64 entry is the committed one", async () => {
    const { entries } = await fetchLockEntries("7.7.7");
    const committed = readLockFile(join(ROOT, "stacks", "kilo-fleet.lock.json")) as KiloLock;
    expect(entries["linux-x64"]).toEqual(committed.kilo["7.7.7"]["linux-x64"]);
    expect(Object.keys(entries).every((p) => /^(linux|darwin)-/.test(p))).toBe(true);
  });

  it("reads a stand-in: Linux and macOS packages, unpublished ones listed as missing, Windows left out", async () => {
    const { entries, missing } = await fetchLockEntries("7.7.8", reg.url);
    expect(Object.keys(entries)).toEqual(["darwin-arm64", "linux-x64"]);
    expect(entries["linux-x64"]).toEqual({
      package: "@kilocode/cli-linux-x64",
      tarball: `${reg.url}@kilocode/cli-linux-x64/-/cli-linux-x64-7.7.8.tgz`,
      integrity: reg.integrity("linux-x64", "7.7.8"),
    });
    expect(missing).toEqual(["linux-arm64"]);
    await expect(fetchLockEntries("9.9.9", reg.url)).rejects.toThrow(/not in the registry \(HTTP 404\)/);
    await expect(fetchLockEntries("7.7.8", "http://127.0.0.1:9/")).rejects.toThrow(
      /cannot read http:\/\/127\.0\.0\.1:9\//,
    );
  });

  it("`lock` writes every pinned version (fleet and per host), validate then passes; a missing one is refused", async () => {
    const stack = join(scratch, "Pulumi.t.yaml");
    writeFileSync(
      stack,
      `config:
  kilo-fleet:poolerBaseUrl: http://localhost:4000/v1
  kilo-fleet:kiloVersion: 7.7.8
  kilo-fleet:hosts:
    - name: a
      local: true
    - name: b
      local: true
      kiloVersion: latest
`,
    );
    const lockPath = join(scratch, "kilo-fleet.lock.json");
    const before = await cli("validate", "--file", stack, "--lock", lockPath);
    expect(before.code).toBe(1);
    expect(before.stderr).toContain(
      `kilo-fleet:kiloVersion: kilo 7.7.8 is pinned but there is no lock file ${lockPath}; run: npm run kilo-fleet -- lock`,
    );
    expect(before.stderr).toMatch(/warning: kilo-fleet:hosts\[1\]\.kiloVersion: "latest" means kilo is not pinned/);

    const r = await cli("lock", "--file", stack, "--registry", reg.url, "--lock", lockPath);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("kilo 7.7.8: 2 platforms (darwin-arm64, linux-x64)");
    expect(r.stderr).toContain(`warning: kilo 7.7.8: ${reg.url} has no package for linux-arm64`);
    const written = readFileSync(lockPath, "utf8");
    expect(Object.keys(parseLock(written).kilo)).toEqual(["7.7.8"]);
    expect(parseLock(written).kilo["7.7.8"]["linux-x64"].integrity).toBe(reg.integrity("linux-x64", "7.7.8"));

    const again = await cli("lock", "--file", stack, "--registry", reg.url, "--lock", lockPath);
    expect(again.code).toBe(0);
    expect(readFileSync(lockPath, "utf8")).toBe(written);
    const ok = await cli("validate", "--file", stack, "--lock", lockPath);
    expect(ok.code, ok.stderr).toBe(0);

    // A host pinning a version the lock lacks is refused by key, naming the command.
    writeFileSync(stack, readFileSync(stack, "utf8").replace("kiloVersion: latest", "kiloVersion: 7.7.9"));
    const missing = await cli("validate", "--file", stack, "--lock", lockPath);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(
      `kilo-fleet:hosts[1].kiloVersion: kilo 7.7.9 is not in the lock file ${lockPath}; run: npm run kilo-fleet -- lock`,
    );
    // ...and locking it fails without touching the file when the registry does not have it.
    const fail = await cli("lock", "--file", stack, "--registry", reg.url, "--lock", lockPath);
    expect(fail.code).toBe(1);
    expect(fail.stderr).toMatch(/7\.7\.9: not in the registry \(HTTP 404\); .* not changed/);
    expect(readFileSync(lockPath, "utf8")).toBe(written);
  });

  it("validate and lock find the lock file as pulumi up and doctor do: --lock, else KILO_FLEET_LOCK_FILE, else the shipped one", async () => {
    const stack = join(scratch, "Pulumi.env.yaml");
    writeFileSync(
      stack,
      "config:\n  kilo-fleet:poolerBaseUrl: http://localhost:4000/v1\n  kilo-fleet:kiloVersion: 7.7.8\n",
    );
    const lockPath = join(scratch, "env.lock.json");
    const env = { ...process.env, KILO_FLEET_LOCK_FILE: lockPath };
    const before = await cliWith(env, "validate", "--file", stack);
    expect(before.code).toBe(1);
    expect(before.stderr).toContain(`kilo 7.7.8 is pinned but there is no lock file ${lockPath}`);
    const r = await cliWith(env, "lock", "--file", stack, "--registry", reg.url);
    expect(r.code, r.stderr).toBe(0);
    expect(Object.keys(parseLock(readFileSync(lockPath, "utf8")).kilo)).toEqual(["7.7.8"]);
    expect((await cliWith(env, "validate", "--file", stack)).code).toBe(0);
    // The shipped lock (no 7.7.8) is what the same stack is checked against without the variable.
    const shipped = await cliWith({ ...process.env, KILO_FLEET_LOCK_FILE: "" }, "validate", "--file", stack);
    expect(shipped.code).toBe(1);
    expect(shipped.stderr).toContain("kilo 7.7.8 is not in the lock file stacks/kilo-fleet.lock.json");
  });

  it("the committed stacks validate against the committed lock", async () => {
    const r = await cli("validate");
    expect(r.code, r.stderr).toBe(0);
  });
});

describe("the lock file of a program that installed kilo-fleet as a package", () => {
  it("is the project's (<stackConfigDir>/kilo-fleet.lock.json) once `lock` wrote it, else the one kilo-fleet ships", () => {
    const project = mkdtempSync(join(tmpdir(), "kilo-fleet-project-"));
    try {
      writeFileSync(join(project, "Pulumi.yaml"), "name: p\nruntime: nodejs\nstackConfigDir: stacks\n");
      const own = join(project, "stacks", "kilo-fleet.lock.json");
      const env = { KILO_FLEET_LOCK_FILE: "" };
      const from = join(project, "sub");
      expect(fleetLockPath(env, undefined, { from })).toBe(shippedLockPath());
      expect(fleetLockPath(env, undefined, { from, forWriting: true })).toBe(own);
      mkdirSync(join(project, "stacks"));
      writeFileSync(own, serializeLock(emptyLock()));
      expect(fleetLockPath(env, undefined, { from })).toBe(own);
      expect(fleetLockPath({ KILO_FLEET_LOCK_FILE: "/elsewhere.json" }, undefined, { from })).toBe("/elsewhere.json");
      expect(fleetLockPath(env, "/flag.json", { from })).toBe("/flag.json");
    } finally {
      rmSync(project, { recursive: true, force: true });
    }
  });
});
