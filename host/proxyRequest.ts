/**
 * One GET through an http egress proxy, on node and on kilo's Bun alike (the global `fetch` of node ignores
 * proxies, and Bun's `http.request` cannot send CONNECT): https URLs through a CONNECT tunnel, then TLS
 * (node:tls over the tunnel's socket; the runtime's roots plus NODE_EXTRA_CA_CERTS, which the tool's header
 * points at kilo-fleet:caCertificates), plain http URLs in absolute form. HTTP/1.1 with `Connection: close`,
 * written and read by hand. Why: docs/design.md, "The egress proxy".
 */
import * as net from "node:net";
import * as tls from "node:tls";
import { PROXY_SETTING, shownProxy } from "../common/proxy";

/** The proxy itself failed: it refused or dropped the connection, did not answer, or refused the request. */
export class ProxyFailure extends Error {}

/** The most of a response kept (the pool's answers are small). */
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

function timeoutError(): Error {
  const e = new Error("timed out");
  e.name = "TimeoutError";
  return e;
}

/** `Basic …` for a proxy URL's userinfo (percent-decoded), or undefined without one. */
export function proxyAuthorization(proxy: URL): string | undefined {
  if (proxy.username === "" && proxy.password === "") return undefined;
  const pair = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
  return `Basic ${Buffer.from(pair, "utf8").toString("base64")}`;
}

/** Splits a whole HTTP/1.x response: status, lower-cased headers, body (de-chunked). */
export function parseHttpResponse(raw: Buffer): { status: number; headers: Record<string, string>; body: Buffer } {
  const end = raw.indexOf("\r\n\r\n");
  if (end < 0) throw new Error("an incomplete HTTP response");
  const head = raw.subarray(0, end).toString("latin1").split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? "");
  if (!m) throw new Error("not an HTTP response");
  const headers: Record<string, string> = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(":");
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  let body = raw.subarray(end + 4);
  if (/\bchunked\b/i.test(headers["transfer-encoding"] ?? "")) {
    const parts: Buffer[] = [];
    let at = 0;
    for (;;) {
      const eol = body.indexOf("\r\n", at);
      if (eol < 0) break;
      const size = Number.parseInt(body.subarray(at, eol).toString("latin1").split(";")[0], 16);
      if (!Number.isFinite(size) || size === 0) break;
      parts.push(body.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  } else if (headers["content-length"] !== undefined) {
    body = body.subarray(0, Number(headers["content-length"]));
  }
  return { status: Number(m[1]), headers, body };
}

/** Reads a socket to its end (capped), or fails at the deadline. */
function readAll(socket: net.Socket, deadline: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(
      () => {
        socket.destroy();
        reject(timeoutError());
      },
      Math.max(1, deadline - Date.now()),
    );
    socket.on("data", (d: Buffer) => {
      chunks.push(d);
      size += d.length;
      if (size > MAX_RESPONSE_BYTES) {
        clearTimeout(timer);
        socket.destroy();
        reject(new Error("the response is too large"));
      }
    });
    socket.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    socket.once("end", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    socket.resume();
  });
}

/** The request's bytes: `target` is the origin-form path, or the absolute URL for a proxy to forward. */
function requestText(target: string, url: URL, headers: Record<string, string>, extra: Record<string, string>): string {
  const lines = [`GET ${target} HTTP/1.1`, `Host: ${url.host}`, "Connection: close"];
  for (const [k, v] of Object.entries({ ...headers, ...extra })) lines.push(`${k}: ${v}`);
  return `${lines.join("\r\n")}\r\n\r\n`;
}

/** What the proxy's refusal of a request means, in one line naming the setting. */
function refusal(shown: string, setting: string, status: number, what: string): ProxyFailure {
  // 407 is the standard answer; tinyproxy answers a CONNECT with 401.
  if (status === 407 || status === 401) {
    return new ProxyFailure(
      `the egress proxy ${shown} (${setting}) refused the credentials or asks for them (HTTP ${status}) — set kilo-fleet:proxyCredentials, or check them`,
    );
  }
  return new ProxyFailure(
    `the egress proxy ${shown} (${setting}) refused ${what} (HTTP ${status}) — allow it in the proxy, or list the host in ${PROXY_SETTING}.noProxy`,
  );
}

/**
 * GET `url` through `proxy` (an `http://` proxy URL, credentials in its userinfo) before `deadline` (ms since
 * the epoch); `setting` is what failures name. A ProxyFailure when the proxy refuses, drops or does not answer; otherwise the server's answer,
 * or the errors a direct request would give (a TLS error's `code`, a `TimeoutError`).
 */
export async function proxiedGet(
  url: URL,
  headers: Record<string, string>,
  proxy: URL,
  deadline: number,
  setting: string = PROXY_SETTING,
): Promise<{ status: number; text: string }> {
  const shown = shownProxy(proxy.href);
  if (proxy.protocol !== "http:") {
    throw new ProxyFailure(`the egress proxy ${shown} (${setting}) must be an http:// proxy URL`);
  }
  const auth = proxyAuthorization(proxy);
  const proxyHeaders: Record<string, string> = auth ? { "Proxy-Authorization": auth } : {};
  const socket = net.connect({ host: proxy.hostname.replace(/^\[|\]$/g, ""), port: Number(proxy.port || 80) });
  // 1. The proxy accepts the connection.
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => {
        socket.destroy();
        reject(new ProxyFailure(`the egress proxy ${shown} (${setting}) did not answer (connecting timed out)`));
      },
      Math.max(1, deadline - Date.now()),
    );
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const code = typeof e.code === "string" && /^[A-Z][A-Z0-9_]{0,31}$/.test(e.code) ? ` (${e.code})` : "";
      reject(new ProxyFailure(`the egress proxy ${shown} (${setting}) refused or dropped the connection${code}`));
    });
  });
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  try {
    if (url.protocol === "http:") {
      // 2a. Plain http: the proxy forwards the absolute URL; a 407 or a refusal is the proxy's own answer.
      socket.write(requestText(url.href, url, headers, proxyHeaders));
      const r = parseHttpResponse(await readAllNamingProxy(socket, deadline, shown, setting));
      if (r.status === 407) throw refusal(shown, setting, r.status, `the request to ${url.host}`);
      return { status: r.status, text: r.body.toString("utf8") };
    }
    // 2b. https: a CONNECT tunnel, then TLS to the server through it.
    const authority = `${url.hostname}:${port}`;
    socket.write(
      `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${Object.entries(proxyHeaders)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join("")}\r\n`,
    );
    const status = await connectStatus(socket, deadline, shown, setting);
    if (status !== 200) throw refusal(shown, setting, status, `the tunnel to ${authority}`);
    const host = url.hostname.replace(/^\[|\]$/g, "");
    const secure = tls.connect({
      socket,
      host,
      ...(net.isIP(host) ? {} : { servername: host }),
      // Bun checks the connection's own host otherwise (localhost for a given socket).
      checkServerIdentity: (_name, cert) => tls.checkServerIdentity(host, cert),
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => {
          secure.destroy();
          reject(timeoutError());
        },
        Math.max(1, deadline - Date.now()),
      );
      secure.once("secureConnect", () => {
        clearTimeout(timer);
        resolve();
      });
      secure.once("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
    secure.write(requestText(`${url.pathname}${url.search}`, url, headers, {}));
    const r = parseHttpResponse(await readAll(secure, deadline));
    return { status: r.status, text: r.body.toString("utf8") };
  } finally {
    socket.destroy();
  }
}

/** readAll, where a timeout or a drop before any answer is the proxy's. */
async function readAllNamingProxy(
  socket: net.Socket,
  deadline: number,
  shown: string,
  setting: string,
): Promise<Buffer> {
  try {
    const raw = await readAll(socket, deadline);
    if (raw.length === 0) throw new Error("closed");
    return raw;
  } catch (e) {
    if (e instanceof Error && e.name === "TimeoutError") {
      throw new ProxyFailure(`the egress proxy ${shown} (${setting}) did not answer in time`);
    }
    throw new ProxyFailure(`the egress proxy ${shown} (${setting}) dropped the connection without an answer`);
  }
}

/** The status of the proxy's answer to CONNECT (its head only; what follows is the tunnel). */
function connectStatus(socket: net.Socket, deadline: number, shown: string, setting: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let head = Buffer.alloc(0);
    const done = (f: () => void) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("error", onEnd);
      socket.off("end", onEnd);
      f();
    };
    const timer = setTimeout(
      () =>
        done(() =>
          reject(new ProxyFailure(`the egress proxy ${shown} (${setting}) did not answer the CONNECT in time`)),
        ),
      Math.max(1, deadline - Date.now()),
    );
    const onData = (d: Buffer) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) {
        if (head.length > 16384)
          done(() => reject(new ProxyFailure(`the egress proxy ${shown} answered CONNECT with no end`)));
        return;
      }
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head.subarray(0, end).toString("latin1"));
      // Bytes after the head would be the server's before it was asked: none with TLS (the client speaks first).
      done(() => {
        socket.pause();
        if (m) resolve(Number(m[1]));
        else
          reject(
            new ProxyFailure(`the egress proxy ${shown} (${setting}) answered CONNECT with something that is not HTTP`),
          );
      });
    };
    const onEnd = () =>
      done(() =>
        reject(new ProxyFailure(`the egress proxy ${shown} (${setting}) dropped the connection without an answer`)),
      );
    socket.on("data", onData);
    socket.once("error", onEnd);
    socket.once("end", onEnd);
  });
}
