/**
 * The real kilo CLI for tests: `@kilocode/cli` at the pinned test version, installed once into a cache
 * directory outside the repo (reused across runs, and by every test that needs kilo). Installed with
 * the same user-level npm layout the host install script uses: `<prefix>/bin/kilo`.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";

export const TEST_KILO_VERSION = "7.7.7";

/** Where cached test installs live; override with KILO_FLEET_TEST_CACHE. */
export function testCacheDir(): string {
  return process.env.KILO_FLEET_TEST_CACHE ?? join(homedir(), ".cache", "kilo-fleet-test");
}

export interface KiloInstall {
  /** The npm prefix: `bin/kilo` and `lib/node_modules/@kilocode/cli` below it. */
  prefix: string;
  /** Absolute path of the kilo executable. */
  bin: string;
  version: string;
}

function installedVersion(prefix: string): string | undefined {
  const pkg = join(prefix, "lib", "node_modules", "@kilocode", "cli", "package.json");
  if (!existsSync(pkg) || !existsSync(join(prefix, "bin", "kilo"))) return undefined;
  return (JSON.parse(readFileSync(pkg, "utf8")) as { version?: string }).version;
}

/** Installs kilo at `version` into the cache (once) and returns where it is. */
export function ensureKilo(version = TEST_KILO_VERSION): KiloInstall {
  const prefix = join(testCacheDir(), `kilo-${version}`);
  if (installedVersion(prefix) !== version) {
    mkdirSync(testCacheDir(), { recursive: true });
    // Install beside the final place, then rename: a killed install never leaves a half cache.
    const staging = mkdtempSync(join(testCacheDir(), `.kilo-${version}-`));
    const npmCache = mkdtempSync(join(tmpdir(), "kilo-fleet-npm-cache-"));
    try {
      execFileSync(
        "npm",
        [
          "install",
          "-g",
          "--prefix",
          staging,
          "--cache",
          npmCache,
          "--no-audit",
          "--no-fund",
          `@kilocode/cli@${version}`,
        ],
        { stdio: ["ignore", "pipe", "pipe"], timeout: 300_000 },
      );
      rmSync(prefix, { recursive: true, force: true });
      renameSync(staging, prefix);
    } finally {
      rmSync(staging, { recursive: true, force: true });
      rmSync(npmCache, { recursive: true, force: true });
    }
    if (installedVersion(prefix) !== version) throw new Error(`kilo ${version} did not install into ${prefix}`);
  }
  return { prefix, bin: join(prefix, "bin", "kilo"), version };
}
