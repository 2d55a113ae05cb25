/**
 * `npmRegistry` hygiene, the same as `poolerBaseUrl`'s (deployer/poolerUrl.ts): the URL lands in plain
 * stack state and in npm's command line on the host, so it must not carry a credential; the credential
 * goes in the `npmToken` secret. Plain http is allowed (a loopback mirror) but warned about elsewhere.
 */

const LOOPBACK = (hostname: string) =>
  hostname === "localhost" || hostname === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(hostname);

const USE_TOKEN =
  "put the registry's token in the npmToken secret instead (pulumi config set --secret npmToken <token>)";

/** Why `url` is not a usable npm registry URL (never quoting the URL), or undefined. */
export function checkNpmRegistryUrl(url: string): string | undefined {
  if (/[\u0000-\u0020\u007f]/.test(url)) return "must not contain whitespace or control characters";
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'must be an http(s) URL, e.g. "https://npm.example.com/"';
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    return `must use http or https, not ${u.protocol.replace(/:$/, "")}`;
  }
  if (u.username || u.password) {
    return `must not carry credentials (user:token@): they would be stored in plain stack state and passed on npm's command line; ${USE_TOKEN}`;
  }
  if (u.search || u.hash) {
    return `must not carry a query or fragment (a token in the URL would be stored in plain text); ${USE_TOKEN}`;
  }
  return undefined;
}

/** The warning for a valid `npmRegistry`, or undefined. */
export function npmRegistryWarning(url: string): string | undefined {
  const u = new URL(url);
  if (u.protocol === "http:" && !LOOPBACK(u.hostname)) {
    return `plain http to ${u.hostname}: the kilo CLI is downloaded without TLS and can be altered in transit, and npmToken (if set) crosses the network unencrypted (use https)`;
  }
  return undefined;
}

/**
 * The npmrc line that authenticates to `registry` with a token, for the install step's own 0600 npmrc
 * (`--userconfig`), as npm spells it: `//host[:port]/path/:_authToken=<token>`. The token is appended by
 * the host side from stdin; this is the prefix only.
 */
export function npmAuthTokenKey(registry: string): string {
  const u = new URL(registry);
  const path = u.pathname.endsWith("/") ? u.pathname : `${u.pathname}/`;
  return `//${u.host}${path}:_authToken`;
}
