/**
 * host/kilo-package.sh: kilo installed from its platform package by plain POSIX sh (run by dash), with node
 * and npm hidden: every run gets a PATH made of a temp dir holding symlinks to only the tools the script
 * needs. Against the real registry (install, no-op, uninstall) and a stand-in registry on loopback
 * (harness/fakeRegistry.ts: tampered, stalled and dropped downloads, upgrades, the curl/wget and sha512
 * tool variants).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lockLinesFor, readLockFile } from "../deployer/kiloLock";
import { cachedTarball, type FakeRegistry, fakeKiloTarball, startFakeRegistry } from "../harness/fakeRegistry";
import { ensureAptPackages } from "../harness/sshd";

const ROOT = join(__dirname, "..");
const SCRIPT = join(ROOT, "host", "kilo-package.sh");
const LOCK = readLockFile(join(ROOT, "stacks", "kilo-fleet.lock.json"));
const NPMJS_TARBALL = (v: string) => `https://registry.npmjs.org/@kilocode/cli-linux-x64/-/cli-linux-x64-${v}.tgz`;
/** What the script uses besides a downloader and a sha512 tool (the header of host/kilo-package.sh). */
const BASE_TOOLS = ["awk", "sed", "uname", "mkdir", "mv", "rm", "rmdir", "ln", "readlink", "ls", "env", "cat"];
const MORE_TOOLS = ["find", "touch", "sleep", "tar", "gzip"];

const scratch = mkdtempSync(join(tmpdir(), "kilo-fleet-pkg-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function which(tool: string): string {
  for (const d of ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]) {
    if (existsSync(join(d, tool))) return join(d, tool);
  }
  throw new Error(`${tool} is not installed on this machine; the package-install tests need it`);
}

let toolDirCount = 0;
/**
 * A PATH directory with only: sh (dash), the base tools, `downloader` (a shim that logs each call to
 * `<dir>/downloads` and runs the real one) and `sha` — no node, no npm.
 */
function toolDir(opts: { downloader?: "curl" | "wget" | "none"; sha?: string; omit?: string[] } = {}): string {
  const dir = join(scratch, `tools-${toolDirCount++}`);
  mkdirSync(dir);
  const tools = [...BASE_TOOLS, ...MORE_TOOLS, opts.sha ?? "sha512sum"].filter((t) => !opts.omit?.includes(t));
  symlinkSync(which("dash"), join(dir, "sh"));
  for (const t of tools) symlinkSync(which(t), join(dir, t));
  const dl = opts.downloader ?? "curl";
  if (dl !== "none") {
    writeFileSync(join(dir, dl), `#!/bin/sh\necho "$*" >>'${dir}/downloads'\nexec ${which(dl)} "$@"\n`, {
      mode: 0o755,
    });
  }
  return dir;
}
/** The downloads the shim logged (not `wget --version`). */
const downloads = (dir: string) =>
  existsSync(join(dir, "downloads"))
    ? readFileSync(join(dir, "downloads"), "utf8")
        .split("\n")
        .filter((l) => l !== "" && l !== "--version")
    : [];

function makeHome(): string {
  const home = mkdtempSync(join(scratch, "home-"));
  writeFileSync(join(home, ".profile"), "# the user's own\n");
  mkdirSync(join(home, ".config", "kilo"), { recursive: true });
  writeFileSync(join(home, ".config", "kilo", "kilo.jsonc"), "{}\n");
  return home;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function env(home: string, path: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { HOME: home, PATH: path, ...extra };
  for (const k of ["http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"]) {
    if (process.env[k] !== undefined) e[k] = process.env[k];
  }
  return e;
}

/** Runs the script with dash, asynchronously (the stand-in registry answers from this process). */
async function pkg(args: string[], home: string, path: string, extra: Record<string, string> = {}): Promise<Run> {
  const t = Date.now();
  const child = spawn(which("dash"), [SCRIPT, ...args], { env: env(home, path, extra), cwd: home });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => {
    stdout += d;
  });
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), 180_000);
  const code = await new Promise<number | null>((r) => child.once("close", r));
  clearTimeout(timer);
  return { code, stdout, stderr, ms: Date.now() - t };
}

function result(r: Run): Record<string, unknown> {
  const lines = r.stdout.trimEnd().split("\n");
  const last = lines[lines.length - 1];
  expect(last, `stdout: ${r.stdout}\nstderr: ${r.stderr}`).toMatch(/^kilo-fleet-result \{/);
  return JSON.parse(last.slice("kilo-fleet-result ".length));
}

/** The one `kilo-fleet: …` line of a failure. */
function failure(r: Run): string {
  expect(r.code, `stdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(1);
  const lines = r.stderr.split("\n").filter((l) => l.startsWith("kilo-fleet:"));
  expect(lines).toHaveLength(1);
  return lines[0];
}

/** Every path under `dir`: type, mode and bytes (links: target); big files by size and a byte sample. */
function snap(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(dir, r));
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out[r] = `link ${readlinkSync(join(dir, r))}`;
      else if (st.isDirectory()) {
        out[r] = `dir ${mode}`;
        walk(r);
      } else if (st.size > 1_000_000) out[r] = `file ${mode} ${st.size}`;
      else out[r] = `file ${mode} ${readFileSync(join(dir, r)).toString("base64")}`;
    }
  };
  walk("");
  return out;
}

const KILO_DIR = (home: string) => join(home, ".local", "share", "kilo-fleet", "kilo");
const LINK = (home: string) => join(home, ".local", "bin", "kilo");

/** `kilo --version` through the link, with its own HOME (kilo makes directories in HOME when it starts). */
function kiloVersion(home: string): string {
  const kiloHome = mkdtempSync(join(scratch, "kilo-home-"));
  const r = spawnSync(LINK(home), ["--version"], { env: { HOME: kiloHome, PATH: "/usr/bin:/bin" }, encoding: "utf8" });
  rmSync(kiloHome, { recursive: true, force: true });
  return `${r.stdout}${r.stderr}`.trim();
}

describe("the real registry, node and npm hidden", () => {
  it("installs 7.7.7 from the lock, re-runs as a no-op (same bytes, no download), kilo runs, uninstall restores HOME", async () => {
    expect(LOCK, "stacks/kilo-fleet.lock.json is missing").toBeDefined();
    const lines = lockLinesFor(LOCK ?? { version: 1, kilo: {} }, "7.7.7");
    const tools = toolDir();
    for (const hidden of ["node", "npm", "npx"]) {
      const r = spawnSync(join(tools, "sh"), ["-c", `command -v ${hidden}`], { env: { PATH: tools } });
      expect(r.status, `${hidden} is visible on the test PATH`).not.toBe(0);
    }
    const home = makeHome();
    const before = snap(home);

    const first = await pkg(["install", "7.7.7", "", lines], home, tools);
    expect(first.code, first.stderr).toBe(0);
    expect(result(first)).toEqual({
      step: "install",
      method: "package",
      kiloVersion: "7.7.7",
      platform: "linux-x64",
      bin: LINK(home),
      changed: true,
    });
    expect(downloads(tools)).toEqual([expect.stringContaining(NPMJS_TARBALL("7.7.7"))]);
    expect(readlinkSync(LINK(home))).toBe(join(KILO_DIR(home), "7.7.7", "linux-x64", "bin", "kilo"));
    expect(kiloVersion(home)).toBe("7.7.7");
    // Nothing else of kilo's (its cache/data dirs from the version check) landed in HOME.
    expect(readdirSync(join(home, ".local", "share"))).toEqual(["kilo-fleet"]);
    expect(existsSync(join(home, ".cache"))).toBe(false);
    expect(readdirSync(KILO_DIR(home))).toEqual(["7.7.7"]);
    expect(existsSync(join(home, ".kilo-fleet.lock"))).toBe(false);

    const installed = snap(home);
    const again = await pkg(["install", "7.7.7", "", lines], home, tools);
    expect(again.code, again.stderr).toBe(0);
    expect(result(again).changed).toBe(false);
    expect(again.ms).toBeLessThan(1000);
    expect(downloads(tools)).toHaveLength(1);
    expect(snap(home)).toEqual(installed);

    const un = await pkg(["uninstall"], home, tools);
    expect(un.code, un.stderr).toBe(0);
    expect(result(un)).toEqual({ step: "install-delete", outcome: "removed the kilo installed from its package" });
    expect(snap(home)).toEqual(before);
    const un2 = await pkg(["uninstall"], home, tools);
    expect(result(un2)).toEqual({ step: "install-delete", outcome: "no kilo package installed by kilo-fleet" });
    expect(snap(home)).toEqual(before);
  });
});

describe("platform detection", () => {
  const dir = join(scratch, "platform");
  const file = (name: string, text: string) => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  const cpu = (flags: string) => file(`cpuinfo-${flags.length}`, `processor\t: 0\nflags\t\t: fpu sse2 ${flags}\n\n`);
  const withAvx2 = () => cpu("avx avx2 bmi2");
  const noAvx2 = () => cpu("avx");
  const glibc = () => file("ldd-glibc", "ldd (Debian GLIBC 2.36-9+deb12u10) 2.36\n");
  const muslLdd = () => file("ldd-musl", "musl libc (x86_64)\nVersion 1.2.5\n");
  const emptyLib = () => {
    mkdirSync(join(dir, "lib-empty"), { recursive: true });
    return join(dir, "lib-empty");
  };
  const muslLib = () => {
    mkdirSync(join(dir, "lib-musl"), { recursive: true });
    writeFileSync(join(dir, "lib-musl", "ld-musl-x86_64.so.1"), "");
    return join(dir, "lib-musl");
  };
  const sysctl = (text: string) => file(`sysctl-${text.length}`, text);

  const linux = (m: string, cpuinfo: string, lib: string, ldd: string) => ({
    KILO_FLEET_TEST_UNAME_S: "Linux",
    KILO_FLEET_TEST_UNAME_M: m,
    KILO_FLEET_TEST_CPUINFO: cpuinfo,
    KILO_FLEET_TEST_LIBDIR: lib,
    KILO_FLEET_TEST_LDD: ldd,
  });
  const darwin = (m: string, sys: string) => ({
    KILO_FLEET_TEST_UNAME_S: "Darwin",
    KILO_FLEET_TEST_UNAME_M: m,
    KILO_FLEET_TEST_SYSCTL: sys,
  });
  const cases: [string, () => Record<string, string>, string][] = [
    ["Linux x86_64, AVX2, glibc", () => linux("x86_64", withAvx2(), emptyLib(), glibc()), "linux-x64"],
    ["Linux x86_64, no AVX2", () => linux("x86_64", noAvx2(), emptyLib(), glibc()), "linux-x64-baseline"],
    ["Linux x86_64, ld-musl in /lib", () => linux("x86_64", withAvx2(), muslLib(), glibc()), "linux-x64-musl"],
    [
      "Linux amd64, no AVX2, ldd says musl",
      () => linux("amd64", noAvx2(), emptyLib(), muslLdd()),
      "linux-x64-baseline-musl",
    ],
    [
      "Linux aarch64 (no AVX2 flag: never baseline)",
      () => linux("aarch64", noAvx2(), emptyLib(), glibc()),
      "linux-arm64",
    ],
    ["Linux arm64, musl", () => linux("arm64", noAvx2(), muslLib(), glibc()), "linux-arm64-musl"],
    ["macOS arm64", () => darwin("arm64", sysctl("")), "darwin-arm64"],
    ["macOS x86_64, hw.optional.avx2_0", () => darwin("x86_64", sysctl("hw.optional.avx2_0: 1\n")), "darwin-x64"],
    [
      "macOS x86_64, leaf7 features with AVX2",
      () =>
        darwin(
          "x86_64",
          sysctl("hw.optional.avx2_0: 0\nmachdep.cpu.leaf7_features: RDWRFSGS TSC_THREAD_OFFSET SGX BMI1 AVX2 SMEP\n"),
        ),
      "darwin-x64",
    ],
    [
      "macOS x86_64 without AVX2",
      () => darwin("x86_64", sysctl("machdep.cpu.leaf7_features: RDWRFSGS SMEP\n")),
      "darwin-x64-baseline",
    ],
    [
      "macOS x86_64 shell under Rosetta (native arm64, never baseline)",
      () => darwin("x86_64", sysctl("sysctl.proc_translated: 1\n")),
      "darwin-arm64",
    ],
  ];
  it.each(cases)("%s → %s", async (_name, overrides, want) => {
    const r = await pkg(["platform"], scratch, toolDir({ downloader: "none" }), overrides());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${want}\n`);
  });

  it("refuses an OS or a CPU kilo has no package for, in one line", async () => {
    const tools = toolDir({ downloader: "none" });
    const os = await pkg(["platform"], scratch, tools, {
      KILO_FLEET_TEST_UNAME_S: "FreeBSD",
      KILO_FLEET_TEST_UNAME_M: "amd64",
    });
    expect(failure(os)).toMatch(/supports Linux and macOS, not "FreeBSD"/);
    const cpu = await pkg(["platform"], scratch, tools, {
      KILO_FLEET_TEST_UNAME_S: "Linux",
      KILO_FLEET_TEST_UNAME_M: "riscv64",
    });
    expect(failure(cpu)).toMatch(/no package for the CPU "riscv64"/);
  });

  it("on this machine, without overrides, matches /proc/cpuinfo", async () => {
    const avx2 = /^flags\s*:.*\bavx2\b/m.test(readFileSync("/proc/cpuinfo", "utf8"));
    expect(process.arch).toBe("x64");
    const r = await pkg(["platform"], scratch, toolDir({ downloader: "none" }));
    expect(r.stdout).toBe(avx2 ? "linux-x64\n" : "linux-x64-baseline\n");
  });
});

describe("check-tools", () => {
  it("passes silently with everything, names what is missing otherwise", async () => {
    const ok = await pkg(["check-tools"], scratch, toolDir());
    expect(ok).toMatchObject({ code: 0, stdout: "", stderr: "" });
    expect(failure(await pkg(["check-tools"], scratch, toolDir({ omit: ["gzip"] })))).toMatch(
      /missing on this host: gzip \(/,
    );
    expect(failure(await pkg(["check-tools"], scratch, toolDir({ downloader: "none" })))).toMatch(
      /missing on this host: curl or wget \(/,
    );
    expect(failure(await pkg(["check-tools"], scratch, toolDir({ sha: "tar", omit: ["tar"] })))).toMatch(
      /missing on this host: tar, sha512sum or shasum or openssl \(/,
    );
  });
});

describe("a stand-in registry on loopback", () => {
  let reg: FakeRegistry;
  const lines = (v: string) => `linux-x64 ${NPMJS_TARBALL(v)} ${reg.integrity("linux-x64", v)}\n`;
  beforeAll(async () => {
    const entry = LOCK?.kilo["7.7.7"]?.["linux-x64"];
    if (!entry) throw new Error("stacks/kilo-fleet.lock.json has no 7.7.7 linux-x64 entry");
    const real = await cachedTarball(entry);
    reg = await startFakeRegistry({
      packages: [
        { platform: "linux-x64", version: "7.7.7", file: real },
        { platform: "linux-x64", version: "7.7.8", file: fakeKiloTarball(scratch, "7.7.8") },
        { platform: "linux-x64", version: "7.7.9", file: fakeKiloTarball(scratch, "7.7.9") },
      ],
    });
    ensureAptPackages([{ pkg: "wget", bin: "/usr/bin/wget" }]);
  }, 300_000);
  afterAll(async () => {
    await reg?.stop();
  });

  it("a tampered tarball is refused in one line and changes nothing (fresh HOME, and over an installed kilo)", async () => {
    reg.setMode("tamper");
    const tools = toolDir();
    const home = makeHome();
    const before = snap(home);
    const r = await pkg(["install", "7.7.7", reg.url, lines("7.7.7")], home, tools);
    expect(failure(r)).toMatch(
      /^kilo-fleet: the downloaded @kilocode\/cli-linux-x64@7\.7\.7 does not match the lock file's sha512 \(lock: sha512-\S+, downloaded: sha512-\S+, from http:\/\/127\.0\.0\.1:\d+\/@kilocode\/cli-linux-x64\/-\/cli-linux-x64-7\.7\.7\.tgz\); nothing was changed$/,
    );
    expect(snap(home)).toEqual(before);

    reg.setMode("ok");
    expect((await pkg(["install", "7.7.8", reg.url, lines("7.7.8")], home, tools)).code).toBe(0);
    const installed = snap(home);
    reg.setMode("tamper");
    expect(failure(await pkg(["install", "7.7.9", reg.url, lines("7.7.9")], home, tools))).toMatch(/does not match/);
    expect(snap(home)).toEqual(installed);
    expect(kiloVersion(home)).toBe("7.7.8");
    reg.setMode("ok");
    expect((await pkg(["uninstall"], home, tools)).code).toBe(0);
    expect(snap(home)).toEqual(before);
  });

  it("a version missing from the lock lines names the platform and the lock command", async () => {
    const home = makeHome();
    const before = snap(home);
    const r = await pkg(
      ["install", "7.7.7", reg.url, `darwin-arm64 ${NPMJS_TARBALL("7.7.7")} ${reg.integrity("linux-x64", "7.7.7")}\n`],
      home,
      toolDir(),
    );
    expect(failure(r)).toBe(
      "kilo-fleet: the lock lines for kilo 7.7.7 have no entry for platform linux-x64 (@kilocode/cli-linux-x64); add it with: npm run kilo-fleet -- lock",
    );
    expect(snap(home)).toEqual(before);
  });

  it("upgrade and downgrade: the previous version goes once the new one is linked, only if kilo-fleet installed it", async () => {
    reg.setMode("ok");
    const tools = toolDir();
    const home = makeHome();
    // A version directory kilo-fleet has no record of: never removed.
    mkdirSync(join(KILO_DIR(home), "7.7.6", "linux-x64", "bin"), { recursive: true });
    writeFileSync(join(KILO_DIR(home), "7.7.6", "linux-x64", "bin", "kilo"), "#!/bin/sh\necho 7.7.6\n", {
      mode: 0o755,
    });
    const before = snap(home);

    const r1 = await pkg(["install", "7.7.8", reg.url, lines("7.7.8")], home, tools);
    expect(r1.code, r1.stderr).toBe(0);
    expect(kiloVersion(home)).toBe("7.7.8");
    const r2 = await pkg(["install", "7.7.9", reg.url, lines("7.7.9")], home, tools);
    expect(result(r2)).toMatchObject({ kiloVersion: "7.7.9", changed: true });
    expect(kiloVersion(home)).toBe("7.7.9");
    expect(readdirSync(KILO_DIR(home)).sort()).toEqual(["7.7.6", "7.7.9"]);
    const r3 = await pkg(["install", "7.7.8", reg.url, lines("7.7.8")], home, tools);
    expect(result(r3)).toMatchObject({ kiloVersion: "7.7.8", changed: true });
    expect(kiloVersion(home)).toBe("7.7.8");
    expect(readdirSync(KILO_DIR(home)).sort()).toEqual(["7.7.6", "7.7.8"]);

    expect((await pkg(["uninstall"], home, tools)).code).toBe(0);
    expect(snap(home)).toEqual(before);
  });

  it("a download killed midway (kill -9) leaves the old kilo linked and working, no partial version; the next run cleans up", async () => {
    reg.setMode("ok");
    const tools = toolDir();
    const home = makeHome();
    expect((await pkg(["install", "7.7.8", reg.url, lines("7.7.8")], home, tools)).code).toBe(0);
    const installed = snap(home);

    reg.setMode("stall");
    const child: ChildProcess = spawn(which("dash"), [SCRIPT, "install", "7.7.7", reg.url, lines("7.7.7")], {
      env: env(home, tools),
      cwd: home,
      detached: true,
      stdio: "ignore",
    });
    const exited = new Promise((r) => child.once("exit", r));
    await reg.waitForTarballBytes(1_000_000);
    process.kill(-(child.pid as number), "SIGKILL");
    await exited;

    expect(kiloVersion(home)).toBe("7.7.8");
    expect(readdirSync(KILO_DIR(home))).toContain("7.7.8");
    expect(readdirSync(KILO_DIR(home))).not.toContain("7.7.7");
    // What the kill left: the download temp dir and the lock (its owner's pid is dead).
    expect(readdirSync(KILO_DIR(home)).some((n) => /^\.download\.kilo-fleet-tmp-\d+$/.test(n))).toBe(true);
    expect(existsSync(join(home, ".kilo-fleet.lock", "owner"))).toBe(true);

    reg.setMode("ok");
    const next = await pkg(["install", "7.7.8", reg.url, lines("7.7.8")], home, tools);
    expect(result(next).changed).toBe(false);
    expect(snap(home)).toEqual(installed);

    // A dropped connection fails in one line and changes nothing either.
    reg.setMode("close");
    expect(failure(await pkg(["install", "7.7.7", reg.url, lines("7.7.7")], home, tools))).toMatch(
      /^kilo-fleet: cannot download @kilocode\/cli-linux-x64@7\.7\.7 from http:\S+ \(curl: \(18\).*\); nothing was changed$/,
    );
    expect(snap(home)).toEqual(installed);
    reg.setMode("ok");
  });

  it.each([
    ["wget", "sha512sum"],
    ["curl", "shasum"],
    ["curl", "openssl"],
    ["wget", "openssl"],
  ] as const)("works with %s and %s: install, no-op without a request, uninstall", async (downloader, sha) => {
    reg.setMode("ok");
    const tools = toolDir({ downloader, sha });
    const home = makeHome();
    const before = snap(home);
    const r = await pkg(["install", "7.7.8", reg.url, lines("7.7.8")], home, tools);
    expect(r.code, r.stderr).toBe(0);
    expect(downloads(tools)).toHaveLength(1);
    const requests = reg.requests.length;
    expect(result(await pkg(["install", "7.7.8", reg.url, lines("7.7.8")], home, tools)).changed).toBe(false);
    expect(reg.requests.length).toBe(requests);
    reg.setMode("tamper");
    expect(failure(await pkg(["install", "7.7.9", reg.url, lines("7.7.9")], home, tools))).toMatch(/does not match/);
    reg.setMode("ok");
    expect((await pkg(["uninstall"], home, tools)).code).toBe(0);
    expect(snap(home)).toEqual(before);
  });

  it("never replaces a ~/.local/bin/kilo kilo-fleet did not create", async () => {
    const tools = toolDir();
    for (const make of [
      (home: string) => writeFileSync(LINK(home), "#!/bin/sh\necho mine\n", { mode: 0o755 }),
      (home: string) => symlinkSync("../lib/node_modules/@kilocode/cli/bin/kilo", LINK(home)),
    ]) {
      const home = makeHome();
      mkdirSync(join(home, ".local", "bin"), { recursive: true });
      make(home);
      const before = snap(home);
      const requests = reg.requests.length;
      expect(failure(await pkg(["install", "7.7.8", reg.url, lines("7.7.8")], home, tools))).toMatch(
        /\.local\/bin\/kilo exists and kilo-fleet did not install it .*remove it .* or set install\.method npm/,
      );
      expect(snap(home)).toEqual(before);
      expect(reg.requests.length).toBe(requests);
    }
  });

  it("takes the per-HOME lock of host/lock.ts: waits for a live owner, breaks a dead one's", async () => {
    const tools = toolDir();
    const home = makeHome();
    const lock = join(home, ".kilo-fleet.lock");
    const holder = spawn("sleep", ["30"]);
    mkdirSync(lock);
    writeFileSync(join(lock, "owner"), `${holder.pid} ${hostname()}\n`);
    const child = spawn(which("dash"), [SCRIPT, "install", "7.7.8", reg.url, lines("7.7.8")], {
      env: env(home, tools),
      cwd: home,
    });
    let out = "";
    child.stdout?.on("data", (d) => {
      out += d;
    });
    const done = new Promise<number | null>((r) => child.once("exit", r));
    await new Promise((r) => setTimeout(r, 1500));
    expect(child.exitCode).toBeNull();
    expect(existsSync(LINK(home))).toBe(false);
    rmSync(lock, { recursive: true });
    expect(await done).toBe(0);
    expect(out).toMatch(/"changed":true/);
    holder.kill();

    // A lock whose owner (on this host) is gone is broken.
    const dead = spawnSync("true");
    mkdirSync(lock);
    writeFileSync(join(lock, "owner"), `${dead.pid} ${hostname()}\n`);
    const r = await pkg(["install", "7.7.8", reg.url, lines("7.7.8")], home, tools);
    expect(result(r).changed).toBe(false);
    expect(existsSync(lock)).toBe(false);
    expect((await pkg(["uninstall"], home, tools)).code).toBe(0);
  });
});
