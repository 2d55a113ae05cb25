/**
 * `kilo-fleet lock`'s registry side: each pinned kilo version's platform packages (tarball, sha512) from the
 * registry's metadata, checked against what the lock already holds.
 */
import {
  DEFAULT_REGISTRY,
  entryProblem,
  KILO_WRAPPER_PACKAGE,
  type KiloLock,
  type LockEntry,
  LockError,
  type LockPlatforms,
  sortKeys,
  VERSION,
  withVersion,
} from "../deployer/kiloLock";

/** A registry document's URL: `<registry>/<name with / as %2f>/<version>`. */
export function registryDocUrl(registry: string, name: string, version: string): string {
  const base = registry.endsWith("/") ? registry : `${registry}/`;
  return `${base}${name.replace("/", "%2f")}/${encodeURIComponent(version)}`;
}

/** Platforms the host-side package install can use (Windows packages exist but no POSIX sh runs there). */
export function isPosixPlatform(platform: string): boolean {
  return /^(linux|darwin)-/.test(platform);
}

type Fetch = (url: string) => Promise<{ ok: boolean; status: number; json(): Promise<unknown> }>;

/** Thrown for a 404: the registry has no such package version. */
class NotInRegistry extends LockError {}

async function getJson(url: string, fetchImpl: Fetch): Promise<Record<string, unknown>> {
  let res: Awaited<ReturnType<Fetch>>;
  try {
    res = await fetchImpl(url);
  } catch (e) {
    const cause = (e as { cause?: { message?: string } }).cause?.message;
    throw new LockError(`cannot read ${url}: ${(e as Error).message}${cause ? ` (${cause})` : ""}`);
  }
  if (res.status === 404) throw new NotInRegistry(`${url}: not in the registry (HTTP 404)`);
  if (!res.ok) throw new LockError(`cannot read ${url}: HTTP ${res.status}`);
  const body = await res.json();
  if (body === null || typeof body !== "object") throw new LockError(`${url}: not a registry document`);
  return body as Record<string, unknown>;
}

export interface FetchedEntries {
  entries: LockPlatforms;
  /** Platform packages the wrapper names that the registry does not have (404), sorted. */
  missing: string[];
}

/**
 * Reads the registry's metadata for kilo `version`: the wrapper's optionalDependencies name the platform
 * packages (Linux and macOS ones are kept); each one's `dist.tarball` and `dist.integrity` become an entry.
 * A platform package the registry does not have (404: never published, or a partial mirror) is left out and
 * listed in `missing` (a host of that platform is then refused with the lock command to run). Throws
 * LockError when the registry cannot be read, its metadata is not usable, or it has no platform package.
 */
export async function fetchLockEntries(
  version: string,
  registry: string = DEFAULT_REGISTRY,
  fetchImpl: Fetch = (url) => fetch(url, { headers: { accept: "application/json" } }),
): Promise<FetchedEntries> {
  if (!VERSION.test(version)) throw new LockError(`"${version}" is not an exact kilo version`);
  const wrapper = await getJson(registryDocUrl(registry, KILO_WRAPPER_PACKAGE, version), fetchImpl);
  const deps = (wrapper.optionalDependencies ?? {}) as Record<string, unknown>;
  const prefix = `${KILO_WRAPPER_PACKAGE}-`;
  const platforms = Object.keys(deps)
    .filter((name) => name.startsWith(prefix) && isPosixPlatform(name.slice(prefix.length)))
    .sort();
  if (platforms.length === 0) {
    throw new LockError(`${KILO_WRAPPER_PACKAGE}@${version} names no Linux or macOS platform package`);
  }
  const entries: LockPlatforms = {};
  const missing: string[] = [];
  await Promise.all(
    platforms.map(async (name) => {
      const platform = name.slice(prefix.length);
      const pinned = String(deps[name]);
      if (pinned !== version) throw new LockError(`${KILO_WRAPPER_PACKAGE}@${version} wants ${name}@${pinned}`);
      let doc: Record<string, unknown>;
      try {
        doc = await getJson(registryDocUrl(registry, name, version), fetchImpl);
      } catch (e) {
        if (!(e instanceof NotInRegistry)) throw e;
        missing.push(platform);
        return;
      }
      const dist = (doc.dist ?? {}) as Record<string, unknown>;
      const entry = { package: name, tarball: dist.tarball, integrity: dist.integrity };
      const problem = entryProblem(platform, entry);
      if (problem) throw new LockError(`${name}@${version} in ${registry}: ${problem}`);
      entries[platform] = entry as LockEntry;
    }),
  );
  if (Object.keys(entries).length === 0) {
    throw new LockError(
      `the registry ${registry} has none of the platform packages of ${KILO_WRAPPER_PACKAGE}@${version}`,
    );
  }
  return { entries: sortKeys(entries), missing: missing.sort() };
}

/**
 * Entries for the lock, checked against what it already holds: an npm version is immutable, so a locked
 * platform whose integrity changed at the registry is refused (LockError), not silently re-locked.
 */
export function mergeChecked(lock: KiloLock, version: string, fetched: LockPlatforms): KiloLock {
  const old = lock.kilo[version] ?? {};
  for (const [p, e] of Object.entries(old)) {
    const now = fetched[p];
    if (now && now.integrity !== e.integrity) {
      throw new LockError(
        `${e.package}@${version}: the registry now gives ${now.integrity}, the lock file has ${e.integrity}; a published version should never change: find out why before you delete that entry and lock again`,
      );
    }
  }
  return withVersion(lock, version, fetched);
}
