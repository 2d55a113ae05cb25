/**
 * An egress proxy for tests: Debian's tinyproxy on loopback, and a gate that lets only the proxy reach a
 * test server (so a request that went around the proxy fails instead of passing unnoticed).
 *
 * API
 *   const proxy = await startTinyproxy({ user, password })
 *       Installs `tinyproxy-bin` (the binary alone: no service, no init script) when /usr/bin/tinyproxy is
 *       missing, and starts `tinyproxy -d` on a free 127.0.0.1 port with its own config: outgoing
 *       connections from PROXY_SOURCE (its `Bind`), Basic auth when given, every connection and request
 *       line logged (LogLevel Connect).
 *   proxy.url ("http://127.0.0.1:PORT"), proxy.port, proxy.log() (its log so far)
 *   await proxy.stop()   stops it (by its pid), and removes tinyproxy-bin again when this call installed it
 *                        (once: a second call does nothing)
 *   const gate = await startGate(targetPort)
 *       A TCP port on 127.0.0.1 that forwards to 127.0.0.1:targetPort only connections coming from
 *       PROXY_SOURCE, and closes any other at once (counted in gate.refused).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureAptPackages, freePort } from "./sshd";

/** The source address of the proxy's outgoing connections (tinyproxy's `Bind`); nothing else uses it. */
export const PROXY_SOURCE = "127.0.0.7";

export interface Tinyproxy {
  url: string;
  port: number;
  log(): string;
  stop(): Promise<void>;
}

function installed(pkg: string): boolean {
  const r = spawnSync("dpkg-query", ["-W", "-f=${Status}", pkg], { encoding: "utf8" });
  return r.status === 0 && r.stdout.includes("install ok installed");
}

export async function startTinyproxy(opts: { user?: string; password?: string } = {}): Promise<Tinyproxy> {
  const wasInstalled = installed("tinyproxy-bin");
  ensureAptPackages([{ pkg: "tinyproxy-bin", bin: "/usr/bin/tinyproxy" }]);
  const weInstalled = !wasInstalled && installed("tinyproxy-bin");
  const dir = mkdtempSync(join(tmpdir(), "kilo-fleet-tinyproxy-"));
  let child: ChildProcess | undefined;
  let log = "";
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child?.once("exit", r));
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
    }
    rmSync(dir, { recursive: true, force: true });
    if (weInstalled) {
      spawnSync("apt-get", ["purge", "-y", "tinyproxy-bin"], {
        env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
        encoding: "utf8",
      });
    }
  };
  try {
    const port = await freePort();
    const config = join(dir, "tinyproxy.conf");
    writeFileSync(
      config,
      [
        `Port ${port}`,
        "Listen 127.0.0.1",
        `Bind ${PROXY_SOURCE}`,
        "Timeout 60",
        "MaxClients 50",
        "LogLevel Connect",
        "User nobody",
        "Group nogroup",
        ...(opts.user !== undefined ? [`BasicAuth ${opts.user} ${opts.password ?? ""}`] : []),
        "",
      ].join("\n"),
    );
    child = spawn("/usr/bin/tinyproxy", ["-d", "-c", config], { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout?.on("data", (d) => {
      log += String(d);
    });
    child.stderr?.on("data", (d) => {
      log += String(d);
    });
    const proc = child;
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`tinyproxy exited (${proc.exitCode}): ${log.trim()}`);
      const up = await new Promise<boolean>((resolve) => {
        const c = connect({ host: "127.0.0.1", port });
        c.once("connect", () => {
          c.destroy();
          resolve(true);
        });
        c.once("error", () => resolve(false));
      });
      if (up) break;
      if (Date.now() > deadline) throw new Error(`tinyproxy did not start within 10 s: ${log.trim()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return { url: `http://127.0.0.1:${port}`, port, log: () => log, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

export interface Gate {
  port: number;
  /** Connections closed because they did not come from the proxy. */
  refused: number;
  stop(): Promise<void>;
}

export function startGate(targetPort: number): Promise<Gate> {
  const sockets = new Set<Socket>();
  const gate: Gate = { port: 0, refused: 0, stop: async () => {} };
  const server = createServer((s) => {
    if (s.remoteAddress !== PROXY_SOURCE && s.remoteAddress !== `::ffff:${PROXY_SOURCE}`) {
      gate.refused++;
      s.destroy();
      return;
    }
    const upstream = connect({ host: "127.0.0.1", port: targetPort });
    for (const x of [s, upstream]) {
      sockets.add(x);
      x.on("close", () => sockets.delete(x));
      x.on("error", () => {
        s.destroy();
        upstream.destroy();
      });
    }
    s.pipe(upstream).pipe(s);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      gate.port = (server.address() as { port: number }).port;
      gate.stop = () =>
        new Promise<void>((done) => {
          for (const s of sockets) s.destroy();
          server.close(() => done());
        });
      resolve(gate);
    });
  });
}

/** A TCP server that accepts connections and never answers: a proxy that does not answer. */
export function startSilentServer(): Promise<{ port: number; stop(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      resolve({
        port: (server.address() as { port: number }).port,
        stop: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
