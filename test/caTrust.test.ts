/**
 * What a host needs to trust a private CA, measured: the real kilo 7.7.7 (a Bun binary) against the
 * stand-in pooler served over https on loopback with a certificate a private CA signs (harness/privateCa),
 * and npm against the same server. Without the CA each fails on TLS; with `NODE_EXTRA_CA_CERTS` (kilo,
 * npm) or `--cafile` (npm) each gets through. And `--cafile` REPLACES npm's trusted roots, so a cafile
 * holding only the private CA no longer trusts anything else.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderKiloConfig, renderKiloConfigText } from "../deployer/kiloConfig";
import { resolveHosts } from "../deployer/resolveHosts";
import { formatErrors, parseSettings } from "../deployer/settings";
import { type FakePooler, SMOKE_FILE, startFakePooler } from "../harness/fakePooler";
import { ensureKilo, type KiloInstall } from "../harness/kilo";
import { makePrivateCa, type PrivateCa, startTlsFront, type TlsFront } from "../harness/privateCa";
import { npmCaBundle } from "../host/caFile";
import { SMOKE_PROMPT } from "../host/smoke";

const KEY = "test-key-ca-trust";
let kilo: KiloInstall;
let ca: PrivateCa;
let other: PrivateCa;
let pooler: FakePooler;
let front: TlsFront;
let otherFront: TlsFront;
const scratch = mkdtempSync(join(tmpdir(), "kilo-fleet-ca-trust-"));

beforeAll(async () => {
  kilo = ensureKilo();
  ca = makePrivateCa({ name: "corp" });
  other = makePrivateCa({ name: "elsewhere" });
  pooler = await startFakePooler({ keys: KEY });
  front = await startTlsFront(ca, pooler.port);
  otherFront = await startTlsFront(other, pooler.port);
});
afterAll(async () => {
  await front?.stop();
  await otherFront?.stop();
  await pooler?.stop();
  ca?.cleanup();
  other?.cleanup();
  rmSync(scratch, { recursive: true, force: true });
});

/** This process's environment without its own trust settings (the test machine's proxy CA) or kilo's. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !/^(XDG_|KILO|OPENCODE|NODE_EXTRA_CA_CERTS$|SSL_CERT_|NODE_TLS|npm_config_)/i.test(k),
    ),
  );
  return { ...env, NO_COLOR: "1", ...extra } as NodeJS.ProcessEnv;
}

/** Runs the smoke check's kilo command against `baseUrl`; whether kilo wrote the smoke file, and its output. */
async function kiloRun(baseUrl: string, extraEnv: Record<string, string>) {
  const home = mkdtempSync(join(scratch, "home-"));
  const cwd = mkdtempSync(join(scratch, "cwd-"));
  const r = parseSettings({ "kilo-fleet:poolerBaseUrl": baseUrl });
  if (!r.ok) throw new Error(formatErrors(r.errors));
  mkdirSync(join(home, ".config", "kilo"), { recursive: true });
  writeFileSync(
    join(home, ".config", "kilo", "kilo.jsonc"),
    renderKiloConfigText(renderKiloConfig(resolveHosts({ stack: { "kilo-fleet:poolerBaseUrl": baseUrl } }).specs[0])),
  );
  const child = spawn(
    kilo.bin,
    ["run", "--model", "codex-pooler/gpt-5.5", "--pure", "--auto", "--format", "json", "--dir", cwd, SMOKE_PROMPT],
    { cwd, env: cleanEnv({ HOME: home, CODEX_POOLER_API_KEY: KEY, ...extraEnv }), stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  child.stdout.on("data", (d) => {
    output += String(d);
  });
  child.stderr.on("data", (d) => {
    output += String(d);
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
  const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
  clearTimeout(timer);
  const file = join(cwd, SMOKE_FILE);
  return { code, output, wrote: existsSync(file) && readFileSync(file, "utf8") === "kilo ok" };
}

describe("kilo (Bun) and a private CA", () => {
  it("without the CA, kilo cannot reach the https pooler, and says it is a certificate problem", async () => {
    const r = await kiloRun(`${front.origin}/v1`, {});
    expect(r.wrote).toBe(false);
    expect(r.output).toMatch(/certificate|self.signed|UNABLE_TO_VERIFY|unknown.?ca|issuer/i);
    expect(r.output).not.toContain(KEY);
  });

  it("NODE_EXTRA_CA_CERTS=<the CA file> is enough: the smoke conversation completes over https", async () => {
    const r = await kiloRun(`${front.origin}/v1`, { NODE_EXTRA_CA_CERTS: ca.caCertPath });
    expect(r.output).not.toContain(KEY);
    expect(r.wrote, r.output.slice(-2000)).toBe(true);
    expect(pooler.requests.some((q) => q.path === "/v1/chat/completions")).toBe(true);
  });
});

describe("npm and a private CA", () => {
  // A registry stand-in that answers 404 to everything: a 404 means the TLS handshake succeeded.
  let registry: Server;
  let regFront: TlsFront;
  let regOther: TlsFront;
  beforeAll(async () => {
    registry = createServer((_req, res) => {
      res.writeHead(404, { "content-type": "application/json" });
      res.end("{}");
    });
    await new Promise<void>((resolve) => registry.listen(0, "127.0.0.1", resolve));
    const port = (registry.address() as AddressInfo).port;
    regFront = await startTlsFront(ca, port);
    regOther = await startTlsFront(other, port);
  });
  afterAll(async () => {
    await regFront?.stop();
    await regOther?.stop();
    await new Promise((resolve) => registry?.close(resolve));
  });

  /** `npm ping` run asynchronously: the registry and its https front live in this process. */
  async function npmPing(origin: string, args: string[], env: Record<string, string> = {}) {
    const home = mkdtempSync(join(scratch, "npm-"));
    const child = spawn(
      "npm",
      ["ping", "--registry", `${origin}/`, "--cache", join(home, "cache"), "--fetch-retries", "0", ...args],
      { env: cleanEnv({ HOME: home, ...env }), stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    child.stdout.on("data", (d) => {
      out += String(d);
    });
    child.stderr.on("data", (d) => {
      out += String(d);
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
    clearTimeout(timer);
    if (code === null) throw new Error(`npm ping did not finish within 60 s: ${out}`);
    return {
      out,
      reached: /E404|404 Not Found/.test(out),
      tls: /SELF_SIGNED|UNABLE_TO_VERIFY|unable to (get|verify)/i.test(out),
    };
  }

  it("fails on TLS without the CA; gets through with --cafile, but NOT with NODE_EXTRA_CA_CERTS", async () => {
    const none = await npmPing(regFront.origin, []);
    expect(none.tls, none.out).toBe(true);
    const cafile = await npmPing(regFront.origin, ["--cafile", ca.caCertPath]);
    expect([cafile.tls, cafile.reached], cafile.out).toEqual([false, true]);
    // npm sets its own CA list on its agent: the variable kilo honours does nothing for npm.
    const extra = await npmPing(regFront.origin, [], { NODE_EXTRA_CA_CERTS: ca.caCertPath });
    expect([extra.tls, extra.reached], extra.out).toEqual([true, false]);
  });

  it("--cafile replaces npm's roots; npmCaBundle (the roots plus the private CA) trusts both", async () => {
    // `other` stands for a public root: with a cafile of the private CA alone, npm no longer trusts it.
    const only = await npmPing(regOther.origin, ["--cafile", ca.caCertPath]);
    expect(only.tls, only.out).toBe(true);
    const bundle = join(scratch, "npm-ca-bundle.pem");
    writeFileSync(bundle, npmCaBundle(ca.caCert, [other.caCert]));
    for (const origin of [regOther.origin, regFront.origin]) {
      const r = await npmPing(origin, ["--cafile", bundle]);
      expect([r.tls, r.reached], r.out).toEqual([false, true]);
    }
  });
});
