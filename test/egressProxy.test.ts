/**
 * kilo-fleet:proxy on a host, for real (issue 21, item 2): Debian's tinyproxy on loopback, with Basic auth,
 * between the host steps and a stand-in registry and pooler that only the proxy can reach (each behind a
 * gate that closes every connection not coming from the proxy's own source address). The real host tool,
 * run as local.Command runs it, on a temporary HOME, with the real kilo 7.7.7:
 *
 * - the package download through the proxy with curl and with wget, the credentials only on stdin;
 * - install.method npm: the real npm installs @kilocode/cli 7.7.7 (wrapper and linux-x64 package) through it,
 *   the credentials on npm's stdin only (in no argument, no file);
 * - an https registry with a private CA, through CONNECT tunnels: the package download (curl, wget) and npm,
 *   trusting kilo-fleet:caCertificates; without them, or with a CA that does not sign it, one line naming it;
 * - the env file exporting the proxy, and the kilo-run smoke check (pool checks and kilo's chat requests)
 *   through it; an https pooler with a private CA through a CONNECT tunnel, the tool on node and on Bun;
 * - a proxy that refuses, does not answer, wants other credentials, or is stopped: one line naming it.
 */
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkArgsFor } from "../cli/doctor";
import { parseResult } from "../common/result";
import { encodeInstallPackageArg, type InstallArgs, type ProxyArgs } from "../common/stepArgs";
import { toolCommand, toolWord } from "../deployer/hostSteps";
import { hostToolArtifact } from "../deployer/hostTool";
import { readLockFile, shippedLockPath } from "../deployer/kiloLock";
import { type FakePooler, startFakePooler } from "../harness/fakePooler";
import {
  cachedTarball,
  type FakeRegistry,
  fakeKiloTarball,
  startFakeRegistry,
  TEST_KILO_WRAPPER,
} from "../harness/fakeRegistry";
import { buildSettings, deployScripts, filesContaining, makeHome, scriptEnv } from "../harness/hostHome";
import { TEST_KILO_VERSION } from "../harness/kilo";
import { makePrivateCa, type PrivateCa, startTlsFront, type TlsFront } from "../harness/privateCa";
import { runScript } from "../harness/runScript";
import { freePort } from "../harness/sshd";
import { type Gate, startGate, startSilentServer, startTinyproxy, type Tinyproxy } from "../harness/tinyproxy";

const KEY = "test-key-egress-5b1e90c4";
// tinyproxy's BasicAuth takes only letters, digits, `.`, `_` and `-` (the encoding of others: test/proxy.test.ts).
const USER = "kf-proxy";
const PASSWORD = "s3.cr_et-9z";
const CREDS = `${USER}:${PASSWORD}`;
const HOST = "test-host";
const tool = hostToolArtifact();
const LOCK = readLockFile(shippedLockPath());

let proxy: Tinyproxy;
let pooler: FakePooler;
let poolerGate: Gate;
let registry: FakeRegistry;
let registryGate: Gate;
let ca: PrivateCa;
let front: TlsFront;
let tlsGate: Gate;
let registryFront: TlsFront;
let registryTlsGate: Gate;
let otherCa: PrivateCa;
const roots: string[] = [];
let home1: { root: string; home: string; tmp: string };
const outputs: string[] = [];

beforeAll(async () => {
  const entry = LOCK?.kilo[TEST_KILO_VERSION]?.["linux-x64"];
  if (!entry) throw new Error(`the lock has no ${TEST_KILO_VERSION} linux-x64 entry`);
  home1 = freshHome();
  proxy = await startTinyproxy({ user: USER, password: PASSWORD });
  pooler = await startFakePooler({ keys: KEY });
  poolerGate = await startGate(pooler.port);
  registry = await startFakeRegistry({
    packages: [
      { platform: "linux-x64", version: TEST_KILO_VERSION, file: await cachedTarball(entry) },
      { platform: "linux-x64", version: "7.7.8", file: fakeKiloTarball(home1.tmp, "7.7.8") },
    ],
    wrappers: [{ version: TEST_KILO_VERSION, file: await cachedTarball(TEST_KILO_WRAPPER) }],
  });
  registryGate = await startGate(Number(new URL(registry.url).port));
  ca = makePrivateCa({ name: "egress" });
  front = await startTlsFront(ca, pooler.port);
  tlsGate = await startGate(front.port);
  registryFront = await startTlsFront(ca, Number(new URL(registry.url).port));
  registryTlsGate = await startGate(registryFront.port);
  registry.httpsHosts.add(`127.0.0.1:${registryTlsGate.port}`);
  otherCa = makePrivateCa({ name: "not-the-registry" });
}, 300_000);

afterAll(async () => {
  await proxy?.stop();
  for (const s of [registryTlsGate, registryFront, tlsGate, front, registryGate, poolerGate]) await s?.stop();
  await registry?.stop();
  await pooler?.stop();
  ca?.cleanup();
  otherCa?.cleanup();
  for (const r of roots) rmSync(r, { recursive: true, force: true });
  // No step printed the proxy's password or the key, in any encoding a log would carry.
  for (const o of outputs) {
    expect(o).not.toContain(PASSWORD);
    expect(o).not.toContain(KEY);
  }
});

const poolerUrl = () => `http://127.0.0.1:${poolerGate.port}/v1`;
const registryUrl = () => `http://127.0.0.1:${registryGate.port}/`;
/** The same registry over https (the private CA's certificate), reachable only through the proxy too. */
const httpsRegistryUrl = () => `https://127.0.0.1:${registryTlsGate.port}/`;

async function run(script: string, env: NodeJS.ProcessEnv, stdin = "") {
  // The command line is what the state and `ps` would show: never the credentials.
  expect(script).not.toContain(PASSWORD);
  const r = await runScript(script, env, { stdin });
  outputs.push(r.stdout, r.stderr);
  return r;
}

/** A fresh temporary HOME, removed after the tests. */
function freshHome(): { root: string; home: string; tmp: string } {
  const h = makeHome();
  roots.push(h.root);
  return h;
}

/** How many CONNECT tunnels to `gate` the proxy's `log` shows. */
const tunnelsTo = (gate: Gate, log: string) =>
  log.match(new RegExp(`CONNECT 127\\.0\\.0\\.1:${gate.port} HTTP/1\\.1`, "g"))?.length ?? 0;

/** Where an install's registry is, and the CAs it trusts. */
type InstallOpts = Pick<InstallArgs, "registry" | "caCertificates">;

/** The one `kilo-fleet: …` (or `smoke check failed …`) line of a failed step. */
function failureLine(r: { code: number | null; stdout: string; stderr: string }): string {
  expect(r.code, r.stderr).toBe(1);
  expect(r.stdout).toBe("");
  const lines = r.stderr.split("\n").filter((l) => /^(kilo-fleet:|smoke check failed)/.test(l));
  expect(lines, r.stderr).toHaveLength(1);
  return lines[0];
}

/** A PATH directory with every /usr/bin tool but those named. */
function pathWithout(root: string, names: string[]): string {
  const bin = join(root, `path-without-${names[0]}`);
  mkdirSync(bin);
  for (const name of readdirSync("/usr/bin")) {
    if (!names.includes(name)) symlinkSync(join("/usr/bin", name), join(bin, name));
  }
  return bin;
}

function installPackage(version: string, p: ProxyArgs, o: InstallOpts = {}): string {
  const integrity = { "linux-x64": registry.integrity("linux-x64", version) };
  const word = encodeInstallPackageArg({ version, registry: registryUrl(), integrity, proxy: p, ...o });
  return `/bin/sh ${toolWord(tool.id)} install-package '${word}'`;
}

const installNpm = (p: ProxyArgs, o: InstallOpts = {}) =>
  toolCommand(tool.id, "install", {
    host: HOST,
    version: TEST_KILO_VERSION,
    registry: registryUrl(),
    proxy: p,
    ...o,
  } satisfies InstallArgs);

/**
 * tinyproxy 1.11 closes a client's connection after each answer without saying so (no `Connection: close`),
 * so npm, which keeps connections alive, now and then sends a request on a closed one (ECONNRESET) and retries
 * it after `fetch-retry-mintimeout`, 10 s by default: ten such waits make a 9 s install 130 s. The host's
 * environment shortens npm's waits (npm reads npm_config_* from it); what goes through the proxy is the same.
 */
const NPM_QUICK_RETRIES = { npm_config_fetch_retry_mintimeout: "200", npm_config_fetch_retry_maxtimeout: "2000" };

/**
 * node and an npm that records its arguments, runs the real npm, then lists the files under HOME and TMPDIR
 * that hold the proxy's password (plain, percent-encoded, or in a Basic header), before the tool removes its
 * temp dir (npm's cache and logs). First on PATH (the tool's header takes npm from beside node).
 */
function npmShim(root: string): {
  bin: string;
  calls: () => string[];
  secretFiles: () => string;
  secretFilesNow: (h: { home: string; tmp: string }) => string;
} {
  const bin = join(root, "npm-shim");
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, "node"));
  const forms = join(root, "secret-forms");
  writeFileSync(forms, `${PASSWORD}\n${encodeURIComponent(PASSWORD)}\n${Buffer.from(CREDS).toString("base64")}\n`);
  const calls = join(root, "npm-calls.log");
  const found = join(root, "secret-files.log");
  writeFileSync(calls, "");
  writeFileSync(found, "");
  const realNpm = join(process.execPath, "..", "npm");
  writeFileSync(
    join(bin, "npm"),
    `#!/bin/sh\nprintf '%s\\n' "$*" >>'${calls}'\n'${realNpm}' "$@"\nrc=$?\n` +
      `grep -rlF -f '${forms}' "$HOME" "$TMPDIR" >>'${found}' 2>/dev/null\nexit $rc\n`,
  );
  chmodSync(join(bin, "npm"), 0o755);
  return {
    bin,
    calls: () => readFileSync(calls, "utf8").split("\n").filter(Boolean),
    secretFiles: () => readFileSync(found, "utf8"),
    secretFilesNow: (h) => spawnSync("grep", ["-rlF", "-f", forms, h.home, h.tmp], { encoding: "utf8" }).stdout,
  };
}

const envApply = (p: ProxyArgs, caCertificates?: string) =>
  toolCommand(tool.id, "env-apply", {
    var: "CODEX_POOLER_API_KEY",
    pinned: true,
    shells: "default",
    ...(caCertificates !== undefined ? { caCertificates } : {}),
    proxy: p,
  });

const smoke = (level: "kilo-run" | "pool", timeoutSeconds = 150) =>
  toolCommand(tool.id, "smoke", { host: HOST, timeoutSeconds, level });

const configApply = (baseUrl: string) =>
  deployScripts(buildSettings({ poolerBaseUrl: baseUrl, kiloVersion: TEST_KILO_VERSION })).config.create;

/** The tool's environment on HOME: no proxy or CA variable of the test runner's reaches it. */
const envOf = (home: { home: string; tmp: string }, extra: Record<string, string | undefined> = {}) =>
  scriptEnv(home.home, home.tmp, {
    NODE_EXTRA_CA_CERTS: undefined,
    SSL_CERT_FILE: undefined,
    SSL_CERT_DIR: undefined,
    ...extra,
  });

describe("an egress proxy (tinyproxy) between the host and everything it reaches", () => {
  it("nothing reaches the stand-in registry or pooler around the proxy", async () => {
    for (const gate of [poolerGate, registryGate, tlsGate, registryTlsGate]) {
      const before = gate.refused;
      // A direct request: closed without a byte of answer.
      const answer = await new Promise<string>((resolve) => {
        let got = "";
        const c = connect({ host: "127.0.0.1", port: gate.port }, () => c.write("GET /readyz HTTP/1.0\r\n\r\n"));
        c.on("data", (d) => {
          got += String(d);
        });
        c.on("error", () => {});
        c.on("close", () => resolve(got));
      });
      expect(answer).toBe("");
      expect(gate.refused).toBe(before + 1);
    }
  });

  it("the package download (curl) goes through it, its credentials on stdin only; without them, one line naming the proxy", {
    timeout: 120_000,
  }, async () => {
    const env = envOf(home1);
    const denied = await run(installPackage(TEST_KILO_VERSION, { https: proxy.url, http: proxy.url }), env);
    expect(failureLine(denied)).toMatch(
      new RegExp(
        `^kilo-fleet: cannot download @kilocode/cli-linux-x64@7\\.7\\.7 from \\S+ through the proxy ${proxy.url} \\(kilo-fleet:proxy\\) \\(curl: \\(\\d+\\) .*407.*\\); nothing was changed$`,
      ),
    );
    const r = await run(installPackage(TEST_KILO_VERSION, { https: proxy.url, authOnStdin: true }), env, `${CREDS}\n`);
    expect(r.code, r.stderr).toBe(0);
    expect(parseResult(r.stdout, "install")).toMatchObject({ kiloVersion: TEST_KILO_VERSION, changed: true });
    expect(proxy.log()).toContain(
      `GET http://127.0.0.1:${registryGate.port}/@kilocode/cli-linux-x64/-/cli-linux-x64-7.7.7.tgz HTTP/1.1`,
    );
    expect(registry.tarballRequests()).toBe(1);
  });

  it("with wget (no curl on the host) too", { timeout: 60_000 }, async () => {
    const h = freshHome();
    const env = envOf(h, { PATH: pathWithout(h.root, ["curl"]) });
    const r = await run(installPackage("7.7.8", { https: proxy.url, authOnStdin: true }), env, CREDS);
    expect(r.code, r.stderr).toBe(0);
    expect(parseResult(r.stdout, "install")).toMatchObject({ kiloVersion: "7.7.8" });
    expect(proxy.log()).toContain(
      `GET http://127.0.0.1:${registryGate.port}/@kilocode/cli-linux-x64/-/cli-linux-x64-7.7.8.tgz HTTP/1.1`,
    );
  });

  it("install.method npm: npm installs kilo through it, every request (the http proxy for an http registry), the credentials in no argument and no file; without them, one line naming the proxy", {
    timeout: 120_000,
  }, async () => {
    const h = freshHome();
    const shim = npmShim(h.root);
    // The scan finds a file that holds the password.
    writeFileSync(join(h.tmp, "probe"), `x${PASSWORD}x`);
    expect(shim.secretFilesNow(h)).toBe(`${join(h.tmp, "probe")}\n`);
    rmSync(join(h.tmp, "probe"));
    const env = envOf(h, { PATH: `${shim.bin}:${process.env.PATH}`, ...NPM_QUICK_RETRIES });
    // The registry is plain http, so npm must use the http proxy (tinyproxy); the https one is a port nobody
    // listens on, where a request would fail.
    const p = { https: `http://127.0.0.1:${await freePort()}`, http: proxy.url };

    const denied = await run(installNpm(p), env);
    expect(failureLine(denied)).toMatch(
      new RegExp(
        `^kilo-fleet: npm install @kilocode/cli@7\\.7\\.7 failed on ${HOST} through the proxy ${proxy.url} \\(kilo-fleet:proxy\\) \\(E407: 407 Proxy Authentication Required - GET \\S+\\)$`,
      ),
    );
    // Nothing was changed: npm's directories under ~/.local were removed again.
    expect(existsSync(join(h.home, ".local/lib"))).toBe(false);
    expect(existsSync(join(h.home, ".local/bin"))).toBe(false);

    const from = registry.requests.length;
    const logFrom = proxy.log().length;
    const refused = registryGate.refused;
    const r = await run(installNpm({ ...p, authOnStdin: true }), env, `${CREDS}\n`);
    expect(r.code, r.stderr).toBe(0);
    expect(parseResult(r.stdout, "install")).toEqual({
      step: "install",
      kiloVersion: TEST_KILO_VERSION,
      bin: `${h.home}/.local/bin/kilo`,
      method: "npm",
      changed: true,
    });
    // A complete install: the wrapper, and the linux-x64 package with kilo's binary in it.
    const modules = join(h.home, ".local/lib/node_modules/@kilocode/cli");
    const version = (dir: string) => JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).version;
    expect(version(modules)).toBe(TEST_KILO_VERSION);
    expect(version(join(modules, "node_modules/@kilocode/cli-linux-x64"))).toBe(TEST_KILO_VERSION);
    expect(statSync(join(modules, "node_modules/@kilocode/cli-linux-x64/bin/kilo")).size).toBeGreaterThan(1e6);

    // Nothing went around the proxy: npm knows the registry only by its gate's address (the one it was given,
    // and the one the packuments' tarball URLs name), the gate passes only connections from the proxy's source
    // address and refused none meanwhile, and each request the registry answered is one of tinyproxy's logged
    // requests, one for one. (npm skips an optional package it cannot fetch, so a failed direct request alone
    // would not fail the install: hence the count.)
    const served = registry.requests.slice(from);
    expect(served).toEqual(
      expect.arrayContaining([
        "/@kilocode%2fcli",
        "/@kilocode%2fcli-linux-x64",
        `/@kilocode/cli/-/cli-${TEST_KILO_VERSION}.tgz`,
        `/@kilocode/cli-linux-x64/-/cli-linux-x64-${TEST_KILO_VERSION}.tgz`,
      ]),
    );
    const logged = [
      ...proxy
        .log()
        .slice(logFrom)
        .matchAll(
          new RegExp(
            `Request \\(file descriptor \\d+\\): GET http://127\\.0\\.0\\.1:${registryGate.port}(/\\S*) HTTP/1\\.1`,
            "g",
          ),
        ),
    ].map((m) => m[1]);
    expect([...logged].sort()).toEqual([...served].sort());
    expect(registryGate.refused).toBe(refused);

    // The credentials: in no argument of npm's (nor in the step's command line: run() checks), and in no file
    // under HOME or TMPDIR while npm's cache and logs were still there, nor after.
    expect(shim.calls()).toHaveLength(2);
    for (const c of shim.calls()) expect(c).not.toContain(PASSWORD);
    expect(shim.secretFiles()).toBe("");
    expect(shim.secretFilesNow(h)).toBe("");
  });

  it("an https registry with a private CA, through CONNECT: the package download (curl, then wget) trusts kilo-fleet:caCertificates; without them, or with a CA that does not sign it, one line naming the setting", {
    timeout: 120_000,
  }, async () => {
    const h = freshHome();
    const env = envOf(h);
    const p = { https: proxy.url, authOnStdin: true as const };
    const o = { registry: httpsRegistryUrl() };
    const tarball = `${httpsRegistryUrl()}@kilocode/cli-linux-x64/-/cli-linux-x64-7.7.7.tgz`.replace(
      /[.?*+^$[\]\\(){}|/]/g,
      "\\$&",
    );
    const cannot = `^kilo-fleet: cannot download @kilocode/cli-linux-x64@7\\.7\\.7 from ${tarball} through the proxy ${proxy.url} \\(kilo-fleet:proxy\\) \\(curl: \\(60\\) [^)]*\\)`;
    const tunnels = (log: string) => tunnelsTo(registryTlsGate, log);
    const tarballs = registry.tarballRequests();
    const refusedBefore = registryTlsGate.refused;
    let logFrom = proxy.log().length;

    // The host's own CAs do not know the registry's: the line says which setting takes its CA.
    expect(failureLine(await run(installPackage(TEST_KILO_VERSION, p, o), env, CREDS))).toMatch(
      new RegExp(
        `${cannot}; the host does not trust its certificate: set kilo-fleet:caCertificates to the CA that signs it \\(a TLS-inspecting proxy's, or the registry's\\); nothing was changed$`,
      ),
    );
    // A CA that did not sign it: tried, and said so.
    const wrong = installPackage(TEST_KILO_VERSION, p, { ...o, caCertificates: otherCa.caCert });
    expect(failureLine(await run(wrong, env, CREDS))).toMatch(
      new RegExp(`${cannot}; kilo-fleet:caCertificates does not sign its certificate either; nothing was changed$`),
    );
    expect(existsSync(join(h.home, ".local/bin/kilo"))).toBe(false);
    // Through the tunnel, and never further: the TLS handshake failed before any request.
    expect(tunnels(proxy.log().slice(logFrom))).toBe(3);
    expect(registry.tarballRequests()).toBe(tarballs);

    logFrom = proxy.log().length;
    const right = installPackage(TEST_KILO_VERSION, p, { ...o, caCertificates: ca.caCert });
    const r = await run(right, env, CREDS);
    expect(r.code, r.stderr).toBe(0);
    expect(parseResult(r.stdout, "install")).toMatchObject({ kiloVersion: TEST_KILO_VERSION, changed: true });
    expect(registry.tarballRequests()).toBe(tarballs + 1);
    // The host's CAs first (refused), then the stack's: two tunnels, through the proxy only.
    expect(tunnels(proxy.log().slice(logFrom))).toBe(2);
    // The CA file was the download's temp dir's, gone with it.
    const kiloDir = join(h.home, ".local/share/kilo-fleet/kilo");
    expect(readdirSync(kiloDir).filter((n) => n.includes("tmp"))).toEqual([]);
    expect(filesContaining(h.tmp, "BEGIN CERTIFICATE")).toEqual([]);
    // Again: already at the pin, nothing downloaded.
    const again = await run(right, env, CREDS);
    expect(parseResult(again.stdout, "install")).toMatchObject({ changed: false });
    expect(registry.tarballRequests()).toBe(tarballs + 1);

    // wget (no curl on the host): the same.
    const w = freshHome();
    const wenv = envOf(w, { PATH: pathWithout(w.root, ["curl"]) });
    const refused = await run(installPackage("7.7.8", p, o), wenv, CREDS);
    expect(failureLine(refused)).toMatch(
      /\(wget: exit 5 \(SSL verification failure\)\); the host does not trust its certificate: set kilo-fleet:caCertificates to the CA that signs it/,
    );
    const wr = await run(installPackage("7.7.8", p, { ...o, caCertificates: ca.caCert }), wenv, CREDS);
    expect(wr.code, wr.stderr).toBe(0);
    expect(parseResult(wr.stdout, "install")).toMatchObject({ kiloVersion: "7.7.8", changed: true });
    expect(registryTlsGate.refused).toBe(refusedBefore);
  });

  it("install.method npm from an https registry with a private CA, through CONNECT: npm trusts kilo-fleet:caCertificates (its --cafile); without them, one line naming the setting", {
    timeout: 180_000,
  }, async () => {
    const h = freshHome();
    const env = envOf(h, NPM_QUICK_RETRIES);
    const p = { https: proxy.url, authOnStdin: true as const };
    const o = { registry: httpsRegistryUrl() };
    const denied = await run(installNpm(p, o), env, `${CREDS}\n`);
    expect(failureLine(denied)).toMatch(
      new RegExp(
        `^kilo-fleet: npm install @kilocode/cli@7\\.7\\.7 failed on ${HOST} through the proxy ${proxy.url} \\(kilo-fleet:proxy\\) \\((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|UNABLE_TO_VERIFY_LEAF_SIGNATURE): [^)]*\\); the host does not trust its certificate: set kilo-fleet:caCertificates to the CA that signs it \\(a TLS-inspecting proxy's, or the registry's\\)$`,
      ),
    );
    expect(existsSync(join(h.home, ".local/lib"))).toBe(false);
    // A CA that does not sign it: npm was given it, and the line says so.
    const wrong = await run(installNpm(p, { ...o, caCertificates: otherCa.caCert }), env, `${CREDS}\n`);
    expect(failureLine(wrong)).toMatch(/\); kilo-fleet:caCertificates does not sign its certificate either$/);

    const from = registry.requests.length;
    const logFrom = proxy.log().length;
    const refusedBefore = registryTlsGate.refused;
    const r = await run(installNpm(p, { ...o, caCertificates: ca.caCert }), env, `${CREDS}\n`);
    expect(r.code, r.stderr).toBe(0);
    expect(parseResult(r.stdout, "install")).toMatchObject({ kiloVersion: TEST_KILO_VERSION, method: "npm" });
    const modules = join(h.home, ".local/lib/node_modules/@kilocode/cli");
    expect(JSON.parse(readFileSync(join(modules, "package.json"), "utf8")).version).toBe(TEST_KILO_VERSION);
    expect(statSync(join(modules, "node_modules/@kilocode/cli-linux-x64/bin/kilo")).size).toBeGreaterThan(1e6);
    // The wrapper and the platform package, their metadata (tarball URLs naming the https registry) and
    // tarballs, all through CONNECT tunnels to the TLS gate, which took connections from the proxy alone.
    expect(registry.requests.slice(from)).toEqual(
      expect.arrayContaining([
        "/@kilocode%2fcli",
        "/@kilocode%2fcli-linux-x64",
        `/@kilocode/cli/-/cli-${TEST_KILO_VERSION}.tgz`,
        `/@kilocode/cli-linux-x64/-/cli-linux-x64-${TEST_KILO_VERSION}.tgz`,
      ]),
    );
    expect(tunnelsTo(registryTlsGate, proxy.log().slice(logFrom))).toBeGreaterThan(0);
    expect(proxy.log().slice(logFrom)).not.toMatch(new RegExp(`GET http://127\\.0\\.0\\.1:${registryGate.port}/`));
    expect(registryTlsGate.refused).toBe(refusedBefore);
  });

  it("the env file exports the proxy (0600); the pool checks of an http pooler go through it in absolute form", {
    timeout: 60_000,
  }, async () => {
    const env = envOf(home1);
    expect((await run(configApply(poolerUrl()), env)).code).toBe(0);
    const e = await run(
      envApply({ https: proxy.url, noProxy: "example.invalid", authOnStdin: true }),
      env,
      `${KEY}\n${CREDS}\n`,
    );
    expect(e.code, e.stderr).toBe(0);
    const envFile = join(home1.home, ".config/kilo/codex-pooler.env");
    expect(statSync(envFile).mode & 0o777).toBe(0o600);
    const withCreds = proxy.url.replace("http://", `http://${USER}:${PASSWORD}@`);
    for (const v of ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"]) {
      expect(readFileSync(envFile, "utf8")).toContain(`export ${v}='${withCreds}'\n`);
    }
    expect(readFileSync(envFile, "utf8")).toContain("export NO_PROXY='example.invalid'\n");

    // doctor's check: the env file is what the env step writes for this proxy (its credentials as they are),
    // and another proxy in the stack is drift.
    const envDrift = async (p: { https: string; noProxy?: string }) => {
      const settings = buildSettings({ poolerBaseUrl: poolerUrl(), kiloVersion: TEST_KILO_VERSION, proxy: p });
      const c = await run(toolCommand(tool.id, "check", checkArgsFor(settings.spec, false)), env);
      expect(c.code, c.stderr).toBe(0);
      return (parseResult(c.stdout, "check")?.drift ?? []).filter((d) => d.item === "env-file").map((d) => d.what);
    };
    expect(await envDrift({ https: proxy.url, noProxy: "example.invalid" })).toEqual([]);
    expect(await envDrift({ https: "http://other-proxy:3128", noProxy: "example.invalid" })).toEqual(
      ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"].map(
        (v) => `~/.config/kilo/codex-pooler.env was edited: ${v} is not what the env step writes`,
      ),
    );

    const from = pooler.requests.length;
    const logFrom = proxy.log().length;
    const s = await run(smoke("pool"), env);
    expect(s.code, s.stderr).toBe(0);
    expect(pooler.requests.slice(from).map((q) => q.path)).toEqual(["/readyz", "/v1/models"]);
    const log = proxy.log().slice(logFrom);
    const base = `http://127.0.0.1:${poolerGate.port}`;
    expect(log).toContain(`GET ${base}/readyz HTTP/1.1`);
    expect(log).toContain(`GET ${base}/v1/models HTTP/1.1`);
  });

  it("an https pooler with a private CA: the pool checks and kilo's chat requests through CONNECT tunnels (kilo-run), the tool on node and on kilo's Bun", {
    timeout: 240_000,
  }, async () => {
    const env = envOf(home1);
    const origin = `https://127.0.0.1:${tlsGate.port}`;
    expect((await run(configApply(`${origin}/v1`), env)).code).toBe(0);
    const e = await run(envApply({ https: proxy.url, authOnStdin: true }, ca.caCert), env, `${KEY}\n${CREDS}`);
    expect(e.code, e.stderr).toBe(0);
    const tunnels = (log: string) => tunnelsTo(tlsGate, log);

    let from = pooler.requests.length;
    let logFrom = proxy.log().length;
    const s = await run(smoke("kilo-run"), env);
    expect(s.code, s.stderr).toBe(0);
    expect(parseResult(s.stdout, "smoke")).toMatchObject({ pass: true, level: "kilo-run" });
    expect(pooler.requests.slice(from).map((q) => [q.path, q.reply])).toEqual([
      ["/readyz", "ready"],
      ["/v1/models", "models"],
      ["/v1/chat/completions", "tool_call"],
      ["/v1/chat/completions", "text"],
    ]);
    // Two for the pool checks (one connection each), at least one for kilo's conversation.
    expect(tunnels(proxy.log().slice(logFrom))).toBeGreaterThanOrEqual(3);

    const noNode = pathWithout(home1.root, ["node", "nodejs", "npm", "npx", "corepack"]);
    from = pooler.requests.length;
    logFrom = proxy.log().length;
    const bun = await run(smoke("pool"), { ...env, PATH: noNode });
    expect(bun.code, bun.stderr).toBe(0);
    expect(parseResult(bun.stdout, "smoke")).toMatchObject({ pass: true, level: "pool" });
    expect(pooler.requests.slice(from).map((q) => q.path)).toEqual(["/readyz", "/v1/models"]);
    expect(tunnels(proxy.log().slice(logFrom))).toBe(2);
  });

  it("a proxy that does not answer, or refuses the credentials: the step fails in one line naming kilo-fleet:proxy", {
    timeout: 60_000,
  }, async () => {
    const env = envOf(home1);
    const silent = await startSilentServer();
    try {
      const silentUrl = `http://127.0.0.1:${silent.port}`;
      expect((await run(envApply({ https: silentUrl }, ca.caCert), env, KEY)).code).toBe(0);
      expect(failureLine(await run(smoke("pool", 3), env))).toBe(
        `smoke check failed on ${HOST}: the egress proxy ${silentUrl} (kilo-fleet:proxy) did not answer the CONNECT in time`,
      );
    } finally {
      await silent.stop();
    }
    expect(
      (await run(envApply({ https: proxy.url, authOnStdin: true }, ca.caCert), env, `${KEY}\n${USER}:wrong`)).code,
    ).toBe(0);
    expect(failureLine(await run(smoke("pool"), env))).toBe(
      `smoke check failed on ${HOST}: the egress proxy ${proxy.url} (kilo-fleet:proxy) refused the credentials or asks for them (HTTP 401) — set kilo-fleet:proxyCredentials, or check them`,
    );
  });

  it("with the proxy stopped: the download, npm and the smoke check fail in one line naming the proxy", {
    timeout: 60_000,
  }, async () => {
    const env = envOf(home1);
    expect(
      (await run(envApply({ https: proxy.url, authOnStdin: true }, ca.caCert), env, `${KEY}\n${CREDS}`)).code,
    ).toBe(0);
    await proxy.stop();
    expect(failureLine(await run(smoke("pool"), env))).toBe(
      `smoke check failed on ${HOST}: the egress proxy ${proxy.url} (kilo-fleet:proxy) refused or dropped the connection (ECONNREFUSED)`,
    );
    const r = await run(installPackage("7.7.8", { https: proxy.url, authOnStdin: true }), env, CREDS);
    expect(failureLine(r)).toMatch(
      new RegExp(
        `^kilo-fleet: cannot download @kilocode/cli-linux-x64@7\\.7\\.8 from \\S+ through the proxy ${proxy.url} \\(kilo-fleet:proxy\\) \\(curl: \\(7\\) [^)]*\\); nothing was changed$`,
      ),
    );
    const h = freshHome();
    const npm = await run(installNpm({ https: proxy.url, authOnStdin: true }), envOf(h, NPM_QUICK_RETRIES), CREDS);
    expect(failureLine(npm)).toMatch(
      new RegExp(
        `^kilo-fleet: npm install @kilocode/cli@7\\.7\\.7 failed on ${HOST} through the proxy ${proxy.url} \\(kilo-fleet:proxy\\) \\(ECONNREFUSED: [^)]*\\)$`,
      ),
    );
    // Nothing went around it meanwhile.
    expect([poolerGate.refused, registryGate.refused, tlsGate.refused, registryTlsGate.refused]).toEqual([1, 1, 1, 1]);
  });
});
