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
import { tmpdir } from "node:os";
import { join } from "node:path";

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
