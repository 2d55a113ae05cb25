/**
 * The egress proxy's pure parts (common/proxy.ts, the install-package words, the hand-written HTTP parsing of
 * host/proxyRequest.ts, npm's proxy settings). The proxy itself, for real: test/egressProxy.test.ts.
 */
import { describe, expect, it } from "vitest";
import {
  bypassesProxy,
  parseProxyCredentials,
  proxyEnvVars,
  proxyFor,
  proxyUrlWithCredentials,
  shownProxy,
} from "../common/proxy";
import { encodeInstallPackageArg } from "../common/stepArgs";
import { npmProxySettings } from "../host/install";
import { parseHttpResponse, proxyAuthorization } from "../host/proxyRequest";

describe("proxy settings on the host", () => {
  it("credentials are percent-encoded into the URL and decode back byte-exact", () => {
    const creds = parseProxyCredentials("al ice:p@ss:w%rd$/{x}");
    expect(creds).toEqual({ user: "al ice", password: "p@ss:w%rd$/{x}" });
    const url = proxyUrlWithCredentials("http://proxy.corp:3128", creds);
    expect(url).toBe("http://al%20ice:p%40ss%3Aw%25rd%24%2F%7Bx%7D@proxy.corp:3128");
    expect(shownProxy(url)).toBe("http://proxy.corp:3128");
    const auth = proxyAuthorization(new URL(url)) ?? "";
    expect(Buffer.from(auth.replace(/^Basic /, ""), "base64").toString()).toBe("al ice:p@ss:w%rd$/{x}");
    expect(proxyAuthorization(new URL("http://proxy.corp:3128"))).toBeUndefined();
  });

  it("refuses credentials that are not one user:password line, without echoing them", () => {
    for (const bad of ["", "nocolon", ":pw", "u:p\nx"]) {
      expect(() => parseProxyCredentials(bad)).toThrow(/^the proxy credentials on stdin must be one line/);
    }
    try {
      parseProxyCredentials("secretvalue");
    } catch (e) {
      expect((e as Error).message).not.toContain("secretvalue");
    }
  });

  it("env file variables: both cases, http defaults to https's, NO_PROXY only when set", () => {
    expect(proxyEnvVars({ https: "http://p:1" })).toEqual([
      ["HTTPS_PROXY", "http://p:1"],
      ["https_proxy", "http://p:1"],
      ["HTTP_PROXY", "http://p:1"],
      ["http_proxy", "http://p:1"],
    ]);
    expect(proxyEnvVars({ https: "http://p:1", http: "http://q:2", noProxy: "corp,.internal" }).slice(2)).toEqual([
      ["HTTP_PROXY", "http://q:2"],
      ["http_proxy", "http://q:2"],
      ["NO_PROXY", "corp,.internal"],
      ["no_proxy", "corp,.internal"],
    ]);
  });

  it("NO_PROXY as curl reads it: *, suffixes with or without a dot, host:port, IPs", () => {
    expect(bypassesProxy("pool.corp", "443", "*")).toBe(true);
    expect(bypassesProxy("pool.corp", "443", "corp")).toBe(true);
    expect(bypassesProxy("pool.corp", "443", ".corp")).toBe(true);
    expect(bypassesProxy("poolcorp", "443", "corp")).toBe(false);
    expect(bypassesProxy("pool.corp", "443", "pool.corp:8443")).toBe(false);
    expect(bypassesProxy("pool.corp", "8443", "x, pool.corp:8443")).toBe(true);
    expect(bypassesProxy("127.0.0.1", "80", "localhost,127.0.0.1")).toBe(true);
    expect(bypassesProxy("127.0.0.1", "80", undefined)).toBe(false);
  });

  it("proxyFor: by scheme, lower case first, ALL_PROXY last, NO_PROXY wins", () => {
    const env = {
      HTTPS_PROXY: "http://s:1",
      http_proxy: "p:2",
      HTTP_PROXY: "http://ignored:3",
      NO_PROXY: "direct.corp",
    };
    expect(proxyFor(new URL("https://pool.corp/v1"), env)).toMatchObject({ from: "HTTPS_PROXY" });
    expect(proxyFor(new URL("http://pool.corp/v1"), env)?.proxy.href).toBe("http://p:2/");
    expect(proxyFor(new URL("https://direct.corp/v1"), env)).toBeUndefined();
    expect(proxyFor(new URL("https://x/v1"), { ALL_PROXY: "http://a:4" })).toMatchObject({ from: "ALL_PROXY" });
    expect(proxyFor(new URL("https://x/v1"), {})).toBeUndefined();
  });

  it("npm: one proxy for all its requests, the one for the registry's scheme; flags without credentials, npmrc lines with", () => {
    const p = { https: "http://s.corp:3128", http: "http://h.corp:3128", noProxy: "localhost,.corp" };
    expect(npmProxySettings(p, "http://mirror.corp/npm/").flags).toEqual([
      "--https-proxy",
      "http://h.corp:3128",
      "--proxy",
      "http://h.corp:3128",
      "--noproxy",
      "localhost,.corp",
    ]);
    for (const registry of ["https://mirror.corp/npm/", undefined]) {
      expect(npmProxySettings(p, registry)).toEqual({
        lines: [],
        flags: ["--https-proxy", "http://s.corp:3128", "--proxy", "http://s.corp:3128", "--noproxy", "localhost,.corp"],
      });
    }
    expect(npmProxySettings({ https: "http://s.corp:3128" }, "http://mirror.corp/").flags).toEqual([
      "--https-proxy",
      "http://s.corp:3128",
      "--proxy",
      "http://s.corp:3128",
    ]);
    expect(npmProxySettings(p, "HTTP://mirror.corp/", { user: "u", password: "p@ss ${HOME}" })).toEqual({
      lines: [
        "https-proxy=http://u:p%40ss%20%24%7BHOME%7D@h.corp:3128",
        "proxy=http://u:p%40ss%20%24%7BHOME%7D@h.corp:3128",
        "noproxy=localhost,.corp",
      ],
      flags: [],
    });
  });

  it("install-package words: the proxy before the platforms, no credentials, checked", () => {
    const integrity = { "linux-x64": `sha512-${"A".repeat(86)}==` };
    expect(
      encodeInstallPackageArg({
        version: "7.7.7",
        integrity,
        proxy: { https: "http://proxy.corp:3128/", noProxy: "localhost,.corp", authOnStdin: true },
      }),
    ).toBe(
      `7.7.7 - --proxy=http://proxy.corp:3128 --no-proxy=localhost,.corp --proxy-auth linux-x64=${integrity["linux-x64"]}`,
    );
    expect(() =>
      encodeInstallPackageArg({ version: "7.7.7", integrity, proxy: { https: "http://u:p@proxy.corp:3128" } }),
    ).toThrow(/proxy\.https .* is not usable/);
    expect(() =>
      encodeInstallPackageArg({ version: "7.7.7", integrity, proxy: { https: "http://p:1", noProxy: "a b" } }),
    ).toThrow(/proxy\.noProxy/);
  });

  it("install-package words: caCertificates as each certificate's DER in base64, after the proxy's, before the platforms", () => {
    const integrity = { "linux-x64": `sha512-${"A".repeat(86)}==` };
    const pem = (body: string) =>
      `-----BEGIN CERTIFICATE-----\n${body.match(/.{1,64}/g)?.join("\n")}\n-----END CERTIFICATE-----\n`;
    const one = `MII${"B".repeat(70)}Q==`;
    const two = `MII${"C".repeat(130)}`;
    expect(
      encodeInstallPackageArg({
        version: "7.7.7",
        integrity,
        proxy: { https: "http://proxy.corp:3128" },
        caCertificates: `# corporate roots\r\n${pem(one)}\n${pem(two).replaceAll("\n", "\r\n")}`,
      }),
    ).toBe(`7.7.7 - --proxy=http://proxy.corp:3128 --ca=${one},${two} linux-x64=${integrity["linux-x64"]}`);
    expect(() => encodeInstallPackageArg({ version: "7.7.7", integrity, caCertificates: "no PEM" })).toThrow(
      /caCertificates holds no certificate/,
    );
    expect(() =>
      encodeInstallPackageArg({ version: "7.7.7", integrity, caCertificates: pem("MIIB'x;rm -rf ~") }),
    ).toThrow(/caCertificates .* is not usable/);
  });

  it("parses whole HTTP/1.x responses: content-length, chunked, to the end", () => {
    const r = parseHttpResponse(Buffer.from("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA"));
    expect([r.status, r.body.toString()]).toEqual([200, "hello"]);
    const c = parseHttpResponse(
      Buffer.from("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"),
    );
    expect([c.status, c.body.toString()]).toEqual([404, "abcde"]);
    expect(parseHttpResponse(Buffer.from("HTTP/1.0 503 x\r\n\r\nbody")).body.toString()).toBe("body");
    expect(() => parseHttpResponse(Buffer.from("SSH-2.0-x\r\n\r\n"))).toThrow(/not an HTTP response/);
  });
});
