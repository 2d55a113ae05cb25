/**
 * The kilo lock file, like Terraform's `.terraform.lock.hcl`: for every pinned kilo version the stacks use,
 * each platform package's tarball URL and `sha512` integrity, as the registry's metadata gave them when
 * `npm run kilo-fleet -- lock` ran. Committed beside the stacks (`stacks/kilo-fleet.lock.json`); the host's
 * package install (host/kilo-package.sh) refuses a tarball whose sha512 differs.
 *
 *   { "version": 1, "kilo": { "7.7.7": { "linux-x64": { "package": "@kilocode/cli-linux-x64",
 *       "tarball": "https://…/cli-linux-x64-7.7.7.tgz", "integrity": "sha512-…" }, … } } }
 *
 * Keys are sorted and the text is `JSON.stringify(…, null, 2)` plus a newline: the same lock gives the same
 * bytes. Everything here is pure except `readLockFile`/`writeLockFile` (the file); reading the registry is the
 * CLI's (cli/lockRegistry.ts).
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parse } from "yaml";

export const LOCK_FILE_NAME = "kilo-fleet.lock.json";
export const DEFAULT_REGISTRY = "https://registry.npmjs.org/";
/** The wrapper package whose optionalDependencies name the platform packages. */
export const KILO_WRAPPER_PACKAGE = "@kilocode/cli";
/** The command that (re)writes the lock, for error messages. */
export const LOCK_COMMAND = "npm run kilo-fleet -- lock";

export interface LockEntry {
  /** The platform package, e.g. `@kilocode/cli-linux-x64`. */
  package: string;
  /** The platform package's tarball URL in the registry. */
  tarball: string;
  /** `sha512-<base64>` (npm's dist.integrity). */
  integrity: string;
}

/** Platform suffix (`linux-x64`, as host/kilo-package.sh's `platform` prints it) → its package. */
export type LockPlatforms = Record<string, LockEntry>;

export interface KiloLock {
  /** The lock format: 1 (a number, not the literal type, so the component schema can carry it). */
  version: number;
  /** kilo version → platforms. */
  kilo: Record<string, LockPlatforms>;
}

export class LockError extends Error {}

/** The lock file of a project whose stack files live in `stackConfigDir`. */
export function lockFilePath(stackConfigDir: string): string {
  return join(stackConfigDir, LOCK_FILE_NAME);
}

export function emptyLock(): KiloLock {
  return { version: 1, kilo: {} };
}

const PLATFORM = /^[a-z0-9]+(-[a-z0-9]+)+$/;
/** An exact kilo version. */
export const VERSION = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;
const INTEGRITY = /^sha512-[A-Za-z0-9+/]{86}==$/;
const URL_NO_SPACE = /^https?:\/\/\S+$/;

/** Checks one entry; returns the reason it is unusable, or undefined. */
export function entryProblem(platform: string, e: unknown): string | undefined {
  if (!PLATFORM.test(platform)) return `"${platform}" is not a platform name`;
  if (e === null || typeof e !== "object" || Array.isArray(e)) return "must be an object";
  const entry = e as Record<string, unknown>;
  const extra = Object.keys(entry).filter((k) => !["package", "tarball", "integrity"].includes(k));
  if (extra.length > 0) return `unknown key "${extra[0]}"`;
  if (entry.package !== `${KILO_WRAPPER_PACKAGE}-${platform}`)
    return `package must be "${KILO_WRAPPER_PACKAGE}-${platform}"`;
  if (typeof entry.tarball !== "string" || !URL_NO_SPACE.test(entry.tarball))
    return "tarball must be an http(s) URL without spaces";
  if (typeof entry.integrity !== "string" || !INTEGRITY.test(entry.integrity))
    return "integrity must be sha512-<88 base64 characters>";
  return undefined;
}

/** Parses lock file text; throws LockError naming what is wrong (`kilo["7.7.7"]["linux-x64"]: …`). */
export function parseLock(text: string): KiloLock {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new LockError(`not JSON (${(e as Error).message})`);
  }
  if (data === null || typeof data !== "object" || Array.isArray(data)) throw new LockError("must be a JSON object");
  const d = data as Record<string, unknown>;
  if (d.version !== 1) throw new LockError(`"version" must be 1 (this kilo-fleet reads lock format 1)`);
  const extra = Object.keys(d).filter((k) => k !== "version" && k !== "kilo");
  if (extra.length > 0) throw new LockError(`unknown key "${extra[0]}"`);
  const kilo = d.kilo;
  if (kilo === null || typeof kilo !== "object" || Array.isArray(kilo)) throw new LockError(`"kilo" must be an object`);
  const out: KiloLock = emptyLock();
  for (const [version, platforms] of Object.entries(kilo as Record<string, unknown>)) {
    if (!VERSION.test(version)) throw new LockError(`kilo["${version}"]: not an exact kilo version`);
    if (platforms === null || typeof platforms !== "object" || Array.isArray(platforms)) {
      throw new LockError(`kilo["${version}"]: must be an object of platforms`);
    }
    const entries = Object.entries(platforms as Record<string, unknown>);
    if (entries.length === 0) throw new LockError(`kilo["${version}"]: no platforms`);
    out.kilo[version] = {};
    for (const [platform, entry] of entries) {
      const problem = entryProblem(platform, entry);
      if (problem) throw new LockError(`kilo["${version}"]["${platform}"]: ${problem}`);
      const e = entry as LockEntry;
      out.kilo[version][platform] = { package: e.package, tarball: e.tarball, integrity: e.integrity };
    }
  }
  return out;
}

/** `o` with its keys sorted (stable bytes). */
export function sortKeys<T>(o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(
    Object.keys(o)
      .sort()
      .map((k) => [k, o[k]]),
  );
}

/** The lock's file text: sorted keys, two-space JSON, trailing newline (stable bytes). */
export function serializeLock(lock: KiloLock): string {
  const kilo = sortKeys(
    Object.fromEntries(
      Object.entries(lock.kilo).map(([v, platforms]) => [
        v,
        sortKeys(
          Object.fromEntries(
            Object.entries(platforms).map(([p, e]) => [
              p,
              { package: e.package, tarball: e.tarball, integrity: e.integrity },
            ]),
          ),
        ),
      ]),
    ),
  );
  return `${JSON.stringify({ version: 1, kilo }, null, 2)}\n`;
}

/** The lock at `path`; undefined when there is no such file. Throws LockError (with the path) when unusable. */
export function readLockFile(path: string): KiloLock | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new LockError(`${path}: ${(e as Error).message}`);
  }
  try {
    return parseLock(text);
  } catch (e) {
    throw new LockError(`${path}: ${(e as Error).message}; fix it or delete it and run: ${LOCK_COMMAND}`);
  }
}

/** Writes the lock atomically (temp file + rename). */
export function writeLockFile(path: string, lock: KiloLock): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, serializeLock(lock));
    renameSync(tmp, path);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** The lock kilo-fleet keeps beside its own stacks (`stacks/kilo-fleet.lock.json`): it locks the default kiloVersion. */
export function shippedLockPath(): string {
  return join(__dirname, "..", "stacks", LOCK_FILE_NAME);
}

/** The nearest directory at or above `from` holding a Pulumi.yaml (the project), if any. */
export function findProjectDir(from: string): string | undefined {
  for (let dir = resolve(from); ; dir = dirname(dir)) {
    if (existsSync(join(dir, "Pulumi.yaml"))) return dir;
    if (dirname(dir) === dir) return undefined;
  }
}

/** The lock file of the Pulumi project at or above `from`: in its stack config directory. */
export function projectLockPath(from = process.cwd()): string | undefined {
  const dir = findProjectDir(from);
  if (dir === undefined) return undefined;
  const project = parse(readFileSync(join(dir, "Pulumi.yaml"), "utf8")) as { stackConfigDir?: unknown } | null;
  const stackConfigDir = typeof project?.stackConfigDir === "string" ? project.stackConfigDir : ".";
  return join(dir, stackConfigDir, LOCK_FILE_NAME);
}

/**
 * The one lock file validate, lock, doctor and `pulumi up` use: `override` (the CLI's `--lock`), else
 * `KILO_FLEET_LOCK_FILE` when set, else the project's (`<stackConfigDir>/kilo-fleet.lock.json`, which `lock`
 * writes) when it exists, else the lock kilo-fleet ships. `forWriting`: the project's even before it exists.
 */
export function fleetLockPath(
  env: NodeJS.ProcessEnv = process.env,
  override?: string,
  options: { from?: string; forWriting?: boolean } = {},
): string {
  if (override) return override;
  if (env.KILO_FLEET_LOCK_FILE) return env.KILO_FLEET_LOCK_FILE;
  const own = projectLockPath(options.from);
  return own !== undefined && (options.forWriting || existsSync(own)) ? own : shippedLockPath();
}

let shipped: { lock: KiloLock | undefined } | undefined;
/** The shipped lock, read once per process (undefined when the file is absent). Throws LockError when unusable. */
export function shippedLock(): KiloLock | undefined {
  shipped ??= { lock: readLockFile(shippedLockPath()) };
  return shipped.lock;
}

/**
 * What the host's package install needs of the lock for `version`: platform → `sha512-…` integrity. `latest`
 * gives `{}` (the host asks the registry, unlocked); a pinned version the lock lacks throws LockError naming
 * the lock command.
 */
export function lockedIntegrity(lock: KiloLock | undefined, version: string): Record<string, string> {
  if (version === "latest") return {};
  const platforms = lock?.kilo[version];
  if (!platforms || Object.keys(platforms).length === 0) {
    throw new LockError(`kilo ${version} is not in the lock file; run: ${LOCK_COMMAND}`);
  }
  return Object.fromEntries(
    Object.keys(platforms)
      .sort()
      .map((p) => [p, platforms[p].integrity]),
  );
}

/** The lock with `version`'s platforms set to `entries` (a new object; the input is not changed). */
export function withVersion(lock: KiloLock, version: string, entries: LockPlatforms): KiloLock {
  return { version: 1, kilo: { ...lock.kilo, [version]: { ...entries } } };
}

/** The lock with only the versions in `keep`. */
export function onlyVersions(lock: KiloLock, keep: Iterable<string>): KiloLock {
  const wanted = new Set(keep);
  return { version: 1, kilo: Object.fromEntries(Object.entries(lock.kilo).filter(([v]) => wanted.has(v))) };
}

/**
 * The `<lock-lines>` argument of host/kilo-package.sh's install: one `<platform> <tarball> <integrity>` line
 * per platform of `version`, sorted by platform. Throws LockError when the version is not locked.
 */
export function lockLinesFor(lock: KiloLock, version: string): string {
  const platforms = lock.kilo[version];
  if (!platforms || Object.keys(platforms).length === 0) {
    throw new LockError(`kilo ${version} is not in the lock file; run: ${LOCK_COMMAND}`);
  }
  return Object.keys(platforms)
    .sort()
    .map((p) => `${p} ${platforms[p].tarball} ${platforms[p].integrity}\n`)
    .join("");
}

/** A pinned kilo version and the config key that pins it (`kilo-fleet:hosts[1].kiloVersion`). */
export interface PinnedVersion {
  key: string;
  version: string;
}

/**
 * The problems of pinned versions against the lock (`lock` undefined: no lock file at `lockPath`), one per
 * pinning key, as `{key, message}`. `latest` is never a problem here (the settings warn about it).
 */
export function lockProblems(
  lock: KiloLock | undefined,
  pinned: readonly PinnedVersion[],
  lockPath: string,
): { key: string; message: string }[] {
  const out: { key: string; message: string }[] = [];
  for (const { key, version } of pinned) {
    if (version === "latest") continue;
    if (lock?.kilo[version] && Object.keys(lock.kilo[version]).length > 0) continue;
    out.push({
      key,
      message: lock
        ? `kilo ${version} is not in the lock file ${lockPath}; run: ${LOCK_COMMAND}`
        : `kilo ${version} is pinned but there is no lock file ${lockPath}; run: ${LOCK_COMMAND}`,
    });
  }
  return out;
}

/** The kilo versions settings pin: the fleet's `kiloVersion` and every host's own. */
export function pinnedVersions(settings: {
  kiloVersion: string;
  hosts: readonly { kiloVersion?: string }[];
}): PinnedVersion[] {
  const out: PinnedVersion[] = [{ key: "kilo-fleet:kiloVersion", version: settings.kiloVersion }];
  settings.hosts.forEach((h, i) => {
    if (h.kiloVersion !== undefined) out.push({ key: `kilo-fleet:hosts[${i}].kiloVersion`, version: h.kiloVersion });
  });
  return out;
}
