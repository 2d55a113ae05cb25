/**
 * The egress proxy (`kilo-fleet:proxy`): which proxy a URL goes through, the proxy variables the env file
 * exports, and the proxy's credentials as they arrive on a step's stdin. Pure: the host tool and the
 * deployer both use it. The why and the rules: docs/design.md, "The egress proxy".
 */
import type { ProxyArgs } from "./stepArgs";

/** The setting a proxy failure names. */
export const PROXY_SETTING = "kilo-fleet:proxy";

/** The variables the env file sets for a proxy, in order (upper and lower case: tools read one or the other). */
export const PROXY_ENV_NAMES = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"];

/**
 * `user:password` as it arrives on stdin (`kilo-fleet:proxyCredentials`): one line, a user before the first
 * `:`. Errors never contain it.
 */
export function parseProxyCredentials(line: string): { user: string; password: string } {
  const i = line.indexOf(":");
  if (i <= 0 || /[\u0000-\u001f\u007f]/.test(line)) {
    throw new Error(
      "the proxy credentials on stdin must be one line `user:password` (kilo-fleet:proxyCredentials); nothing was changed",
    );
  }
  return { user: line.slice(0, i), password: line.slice(i + 1) };
}

/** A proxy URL with credentials in its userinfo, percent-encoded (curl, wget, npm, Bun and node decode them). */
export function proxyUrlWithCredentials(proxyUrl: string, credentials?: { user: string; password: string }): string {
  if (credentials === undefined) return proxyUrl;
  const u = new URL(proxyUrl);
  u.username = encodeURIComponent(credentials.user);
  u.password = encodeURIComponent(credentials.password);
  return u.href.replace(/\/$/, "");
}

/** A proxy URL as printed: scheme, host and port, never credentials. */
export function shownProxy(proxyUrl: string): string {
  try {
    const u = new URL(proxyUrl);
    return `${u.protocol}//${u.host}`;
  } catch {
    return "(a proxy URL that does not parse)";
  }
}

/** The env file's proxy variables for `proxy` (credentials already decided). */
export function proxyEnvVars(proxy: ProxyArgs, credentials?: { user: string; password: string }): [string, string][] {
  const https = proxyUrlWithCredentials(proxy.https, credentials);
  const http = proxyUrlWithCredentials(proxy.http ?? proxy.https, credentials);
  const vars: [string, string][] = [
    ["HTTPS_PROXY", https],
    ["https_proxy", https],
    ["HTTP_PROXY", http],
    ["http_proxy", http],
  ];
  if (proxy.noProxy !== undefined) vars.push(["NO_PROXY", proxy.noProxy], ["no_proxy", proxy.noProxy]);
  return vars;
}

/** Whether `host` (and `port`) is excluded by a NO_PROXY list, as curl reads it (`*`, suffixes, host:port). */
export function bypassesProxy(host: string, port: string, noProxy: string | undefined): boolean {
  if (!noProxy) return false;
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  for (const raw of noProxy.split(/[\s,]+/)) {
    let entry = raw.trim().toLowerCase();
    if (entry === "") continue;
    if (entry === "*") return true;
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
    if (m) {
      if (m[2] !== port) continue;
      entry = m[1];
    }
    entry = entry.replace(/^\[|\]$/g, "").replace(/^\*?\./, "");
    if (h === entry || h.endsWith(`.${entry}`)) return true;
  }
  return false;
}

/**
 * The proxy a request to `url` goes through under `env` (the variables kilo gets): `https_proxy`/`HTTPS_PROXY`
 * for https, `http_proxy`/`HTTP_PROXY` for http, then `all_proxy`/`ALL_PROXY`; none when NO_PROXY excludes
 * the host. Returns the variable's name with it, for messages.
 */
export function proxyFor(
  url: URL,
  env: Readonly<Record<string, string | undefined>>,
): { proxy: URL; from: string } | undefined {
  const names =
    url.protocol === "https:"
      ? ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
      : ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"];
  const from = names.find((n) => env[n]);
  if (from === undefined) return undefined;
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  if (bypassesProxy(url.hostname, port, env.no_proxy ?? env.NO_PROXY)) return undefined;
  let proxy: URL;
  try {
    proxy = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(env[from] ?? "") ? (env[from] as string) : `http://${env[from]}`);
  } catch {
    throw new Error(`${from} is not a proxy URL (${PROXY_SETTING})`);
  }
  return { proxy, from };
}
