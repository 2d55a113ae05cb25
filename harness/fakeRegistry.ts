/**
 * A stand-in npm registry on loopback for the package-install tests (host/kilo-package.sh) and the `lock`
 * command: it serves kilo's wrapper metadata, each platform package's metadata and tarball, and can alter
 * or stall a tarball on purpose.
 *
 *   const reg = await startFakeRegistry({ packages: [{ platform: "linux-x64", version: "7.7.7", file }] })
 *   reg.url                 "http://127.0.0.1:PORT/" (pass as the registry; the script rewrites npmjs URLs to it)
 *   reg.setMode("tamper")   tarballs: "ok" (as given), "tamper" (one byte changed, same length), "stall" (sends
 *                           half the body, then nothing until stop), "close" (half the body, then drops the
 *                           connection), "404"
 *   reg.requests            every request path, in order; reg.tarballRequests() counts tarball downloads
 *   reg.waitForTarballBytes(n)   resolves once a tarball response started after the call has sent n bytes
 *   await reg.stop()
 *
 * Paths have npmjs's shape: `/@kilocode%2fcli/<v>`, `/@kilocode%2fcli-<platform>/<v>`,
 * `/@kilocode/cli-<platform>/-/cli-<platform>-<v>.tgz`. Metadata `dist.tarball` points at this server, at
 * the address the client asked for (its Host header: behind a gate or a proxy, the gate's), and
 * `dist.integrity` is the sha512 of the bytes as given (so "tamper" really differs from it).
 *
 * For a real `npm install @kilocode/cli@<v>`, pass `wrappers: [{ version, file }]` (the wrapper package's real
 * tarball): then it also serves the packuments npm asks for, `/@kilocode%2fcli` (each wrapper version's
 * package.json, as in its tarball, with `dist`) and `/@kilocode%2fcli-<platform>` (os and cpu from the
 * platform's name), and `/@kilocode/cli/-/cli-<v>.tgz`. The wrapper names twelve platform packages as
 * optional dependencies; those not served answer 404, which npm skips, as this machine's registry does for
 * the ones @kilocode/cli 7.7.7 never published.
 *
 * Also: `cachedTarball(entry)` downloads a real tarball once into the test cache
 * (~/.cache/kilo-fleet-test/packages, checked against its integrity) and returns its path
 * (`TEST_KILO_WRAPPER`: the wrapper's entry for the test version; a platform's: the lock's); and
 * `fakeKiloTarball(dir, version)` builds a tiny package whose bin/kilo is a sh script printing `version`.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { LockEntry } from "../deployer/kiloLock";
import { TEST_KILO_VERSION, testCacheDir } from "./kilo";

export type TarballMode = "ok" | "tamper" | "stall" | "close" | "404";

export interface FakePackage {
  platform: string;
  version: string;
  /** Path of the .tgz to serve. */
  file: string;
}

/** A wrapper package (`@kilocode/cli`) the registry serves for a real npm install. */
export interface FakeWrapper {
  version: string;
  /** Path of its real .tgz. */
  file: string;
}

/** npmjs's tarball of the test version's wrapper package, `@kilocode/cli` (the lock pins only platform packages). */
export const TEST_KILO_WRAPPER = {
  tarball: `https://registry.npmjs.org/@kilocode/cli/-/cli-${TEST_KILO_VERSION}.tgz`,
  integrity: "sha512-19EnDYB64KuvPxY2/HfUJs40vO87xlV2UO/L8CqV9EWqHQtcT0ORgOcPLxGl+L77sH6NEv/fjDfOf2sxR0jJyw==",
};

export interface FakeRegistry {
  url: string;
  requests: string[];
  setMode(mode: TarballMode): void;
  tarballRequests(): number;
  waitForTarballBytes(n: number, timeoutMs?: number): Promise<void>;
  /** `host:port`s reached over https (a TLS front before this http server): tarball URLs there say https. */
  httpsHosts: Set<string>;
  /** `sha512-<base64>` of a package's bytes as given. */
  integrity(platform: string, version: string): string;
  stop(): Promise<void>;
}

export function sha512Integrity(bytes: Buffer): string {
  return `sha512-${createHash("sha512").update(bytes).digest("base64")}`;
}

/**
 * `unpublished`: platforms the wrapper's metadata names (for every version served) that the registry does
 * not have (404), as a partial mirror would.
 */
export async function startFakeRegistry(opts: {
  packages: FakePackage[];
  mode?: TarballMode;
  unpublished?: string[];
  wrappers?: FakeWrapper[];
}): Promise<FakeRegistry> {
  let mode: TarballMode = opts.mode ?? "ok";
  const requests: string[] = [];
  const bytes = new Map<string, Buffer>();
  for (const p of opts.packages) bytes.set(`${p.platform}@${p.version}`, readFileSync(p.file));
  const wrappers = new Map<string, { bytes: Buffer; manifest: Record<string, unknown> }>();
  for (const w of opts.wrappers ?? []) {
    const manifest = JSON.parse(execFileSync("tar", ["-xzOf", w.file, "package/package.json"], { encoding: "utf8" }));
    wrappers.set(w.version, { bytes: readFileSync(w.file), manifest });
  }
  const open = new Set<ServerResponse>();
  // Tarball responses are numbered; a waiter waits for one that starts after it was made.
  let tarballResponses = 0;
  const waiters: { n: number; after: number; resolve: () => void }[] = [];
  const sent = (response: number, n: number) => {
    for (const w of [...waiters]) {
      if (response > w.after && n >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };

  let base = "";
  // Where the client reached this server (the gate's address behind a gate): tarball URLs point there.
  const httpsHosts = new Set<string>();
  const baseOf = (req: IncomingMessage) => {
    const host = req.headers.host;
    return host ? `${httpsHosts.has(host) ? "https" : "http"}://${host}/` : base;
  };
  const json = (res: ServerResponse, body: unknown) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  const notFound = (res: ServerResponse) => {
    res.writeHead(404, { "content-type": "application/json" });
    res.end('{"error":"Not found"}');
  };
  const tarballPath = (platform: string, version: string) =>
    `@kilocode/cli-${platform}/-/cli-${platform}-${version}.tgz`;
  /** A platform package's version metadata, its tarball on the registry as the request reached it. */
  const platformManifest = (req: IncomingMessage, platform: string, version: string, body: Buffer) => ({
    name: `@kilocode/cli-${platform}`,
    version,
    dist: { tarball: `${baseOf(req)}${tarballPath(platform, version)}`, integrity: sha512Integrity(body) },
  });
  const packument = (name: string, versions: [string, Record<string, unknown>][]) => ({
    name,
    "dist-tags": { latest: versions[versions.length - 1][0] },
    versions: Object.fromEntries(versions),
  });

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? "/";
    requests.push(path);
    const decoded = decodeURIComponent(path).replace(/^\/+/, "");
    if (wrappers.size > 0 && decoded === "@kilocode/cli") {
      return json(
        res,
        packument(
          "@kilocode/cli",
          [...wrappers].map(([v, w]) => [
            v,
            {
              ...w.manifest,
              dist: { tarball: `${baseOf(req)}@kilocode/cli/-/cli-${v}.tgz`, integrity: sha512Integrity(w.bytes) },
            },
          ]),
        ),
      );
    }
    let m = /^@kilocode\/cli\/-\/cli-([^/]+)\.tgz$/.exec(decoded);
    const wrapper = m && wrappers.get(m[1]);
    if (wrapper) {
      res.writeHead(200, {
        "content-type": "application/octet-stream",
        "content-length": String(wrapper.bytes.length),
      });
      res.end(wrapper.bytes);
      return;
    }
    m = /^@kilocode\/cli-([a-z0-9-]+)$/.exec(decoded);
    if (m && wrappers.size > 0) {
      const platform = m[1];
      const served = opts.packages.filter((p) => p.platform === platform);
      if (served.length === 0) return notFound(res);
      const [os, cpu] = platform.split("-");
      return json(
        res,
        packument(
          `@kilocode/cli-${platform}`,
          served.map((p) => [
            p.version,
            {
              ...platformManifest(req, platform, p.version, bytes.get(`${platform}@${p.version}`) as Buffer),
              os: [os],
              cpu: [cpu],
            },
          ]),
        ),
      );
    }
    m = /^@kilocode\/cli\/([^/]+)$/.exec(decoded);
    if (m) {
      const version = m[1];
      const platforms = opts.packages.filter((p) => p.version === version).map((p) => p.platform);
      if (platforms.length === 0) return notFound(res);
      platforms.push(...(opts.unpublished ?? []));
      return json(res, {
        name: "@kilocode/cli",
        version,
        optionalDependencies: Object.fromEntries(platforms.map((p) => [`@kilocode/cli-${p}`, version])),
      });
    }
    m = /^@kilocode\/cli-([a-z0-9-]+)\/-\/cli-[a-z0-9-]+-([^/]+)\.tgz$/.exec(decoded);
    if (m) {
      const body = bytes.get(`${m[1]}@${m[2]}`);
      if (!body || mode === "404") return notFound(res);
      let out = body;
      if (mode === "tamper") {
        out = Buffer.from(body);
        const i = Math.floor(out.length / 2);
        out[i] = out[i] ^ 0xff;
      }
      const response = ++tarballResponses;
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(out.length) });
      if (mode === "stall" || mode === "close") {
        const half = out.subarray(0, Math.floor(out.length / 2));
        open.add(res);
        res.write(half, () => {
          sent(response, half.length);
          if (mode === "close") res.destroy();
        });
        return;
      }
      res.end(out, () => sent(response, out.length));
      return;
    }
    m = /^@kilocode\/cli-([a-z0-9-]+)\/([^/]+)$/.exec(decoded);
    if (m) {
      const body = bytes.get(`${m[1]}@${m[2]}`);
      if (!body) return notFound(res);
      return json(res, platformManifest(req, m[1], m[2], body));
    }
    notFound(res);
  };
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;

  return {
    url: base,
    requests,
    httpsHosts,
    setMode: (m) => {
      mode = m;
    },
    tarballRequests: () => requests.filter((r) => r.endsWith(".tgz")).length,
    waitForTarballBytes: (n, timeoutMs = 30_000) =>
      new Promise<void>((resolve, reject) => {
        const w = { n, after: tarballResponses, resolve };
        waiters.push(w);
        setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i >= 0) {
            waiters.splice(i, 1);
            reject(new Error(`the stand-in registry sent no ${n} tarball bytes within ${timeoutMs} ms`));
          }
        }, timeoutMs).unref();
      }),
    integrity: (platform, version) => {
      const b = bytes.get(`${platform}@${version}`);
      if (!b) throw new Error(`no ${platform}@${version} in the stand-in registry`);
      return sha512Integrity(b);
    },
    stop: async () => {
      for (const r of open) r.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A real tarball (a lock entry's, `TEST_KILO_WRAPPER`), downloaded once into the test cache and checked against its integrity. */
export async function cachedTarball(entry: Pick<LockEntry, "tarball" | "integrity">): Promise<string> {
  const dir = join(testCacheDir(), "packages");
  const file = join(dir, entry.tarball.slice(entry.tarball.lastIndexOf("/") + 1));
  if (existsSync(file) && sha512Integrity(readFileSync(file)) === entry.integrity) return file;
  mkdirSync(dir, { recursive: true });
  const res = await fetch(entry.tarball);
  if (!res.ok) throw new Error(`cannot download ${entry.tarball}: HTTP ${res.status}`);
  const body = Buffer.from(await res.arrayBuffer());
  if (sha512Integrity(body) !== entry.integrity) {
    throw new Error(`${entry.tarball} does not match its integrity ${entry.integrity}`);
  }
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, body);
  renameSync(tmp, file);
  return file;
}

/** A tiny platform package (`package/bin/kilo` is a sh script printing `version`), as a .tgz in `dir`. */
export function fakeKiloTarball(dir: string, version: string): string {
  const root = join(dir, `fake-kilo-${version}`);
  rmSync(root, { recursive: true, force: true });
  mkdirSync(join(root, "package", "bin"), { recursive: true });
  writeFileSync(join(root, "package", "package.json"), JSON.stringify({ name: "@kilocode/cli-fake", version }));
  writeFileSync(join(root, "package", "bin", "kilo"), `#!/bin/sh\necho ${version}\n`, { mode: 0o755 });
  const file = join(dir, `fake-kilo-${version}.tgz`);
  execFileSync("tar", ["-czf", file, "-C", root, "package"]);
  return file;
}
