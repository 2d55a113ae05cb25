/**
 * A private certificate authority for tests: a CA and a server certificate it signs for `127.0.0.1`,
 * `::1` and `localhost`, made with the `openssl` CLI in a temp dir. For serving the stand-in pooler (or
 * any loopback server) over https with a certificate nothing trusts unless it is told to, the way a
 * corporate CA or an internally signed pooler looks to a host.
 *
 *   const ca = makePrivateCa();
 *   https.createServer({ key: ca.serverKey, cert: ca.serverCert }, handler);
 *   // trust it: NODE_EXTRA_CA_CERTS=ca.caCertPath, npm --cafile ca.caCertPath, kilo-fleet:caCertificates: ca.caCert
 *   ca.cleanup();
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer as createTlsServer } from "node:tls";

export interface PrivateCa {
  /** The temp dir holding every file below; `cleanup` removes it. */
  dir: string;
  /** The CA's certificate (PEM): what a host must trust. */
  caCert: string;
  caCertPath: string;
  /** The server's certificate (PEM), signed by the CA, for 127.0.0.1, ::1 and localhost. */
  serverCert: string;
  serverCertPath: string;
  /** The server's private key (PEM, unencrypted). */
  serverKey: string;
  serverKeyPath: string;
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync("openssl", args, { cwd, encoding: "utf8" });
  if (r.error) throw new Error(`makePrivateCa: cannot run openssl (${r.error.message}); install the openssl package`);
  if (r.status !== 0) throw new Error(`makePrivateCa: openssl ${args[0]} failed: ${(r.stderr || r.stdout).trim()}`);
}

/**
 * Makes a CA (`CN=<name> CA`) and a server certificate it signs (`CN=localhost`, SANs 127.0.0.1, ::1,
 * localhost; serverAuth), both EC P-256, valid from now for `days` days.
 */
export function makePrivateCa(options: { name?: string; days?: number } = {}): PrivateCa {
  const name = options.name ?? "kilo-fleet test";
  const days = String(options.days ?? 30);
  const dir = mkdtempSync(join(tmpdir(), "kilo-fleet-ca-"));
  try {
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
      [
        "req",
        "-x509",
        ...ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        days,
        "-subj",
        `/CN=${name} CA`,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
      ],
      dir,
    );
    openssl(["req", ...ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"], dir);
    writeFileSync(
      join(dir, "server.ext"),
      [
        "basicConstraints=CA:FALSE",
        "keyUsage=critical,digitalSignature",
        "extendedKeyUsage=serverAuth",
        "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost",
        "",
      ].join("\n"),
    );
    openssl(
      [
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        days,
        "-extfile",
        "server.ext",
      ],
      dir,
    );
    const path = (f: string) => join(dir, f);
    return {
      dir,
      caCert: readFileSync(path("ca.pem"), "utf8"),
      caCertPath: path("ca.pem"),
      serverCert: readFileSync(path("server.pem"), "utf8"),
      serverCertPath: path("server.pem"),
      serverKey: readFileSync(path("server.key"), "utf8"),
      serverKeyPath: path("server.key"),
      cleanup: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

export interface TlsFront {
  /** The https port on 127.0.0.1. */
  port: number;
  /** `https://127.0.0.1:<port>` (append `/v1` for a pooler base URL). */
  origin: string;
  stop(): Promise<void>;
}

/**
 * Serves `https://127.0.0.1:<port>` with the CA's server certificate, forwarding each connection's bytes
 * to plain `127.0.0.1:targetPort` (the stand-in pooler, or any http server): https in front of a test
 * server that only speaks http, the way a TLS-terminating proxy does.
 */
export function startTlsFront(ca: PrivateCa, targetPort: number): Promise<TlsFront> {
  const sockets = new Set<Socket>();
  const server = createTlsServer({ key: ca.serverKey, cert: ca.serverCert }, (tls) => {
    const upstream = connect({ host: "127.0.0.1", port: targetPort });
    sockets.add(tls);
    sockets.add(upstream);
    const drop = () => {
      tls.destroy();
      upstream.destroy();
    };
    tls.on("error", drop).on("close", () => sockets.delete(tls));
    upstream.on("error", drop).on("close", () => sockets.delete(upstream));
    tls.pipe(upstream).pipe(tls);
  });
  // Failed handshakes (a client that does not trust the CA) are the point of many tests: not errors here.
  server.on("tlsClientError", () => {});
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      resolve({
        port,
        origin: `https://127.0.0.1:${port}`,
        stop: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
