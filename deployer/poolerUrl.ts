/**
 * The Codex Pooler docs' rules for Kilo's `baseURL` (docs/codex-pooler.md, points 1 and 9):
 * the pooler's `/v1` base, never a full endpoint, since Kilo appends `/chat/completions` itself.
 */

/** Returns why `url` is not a valid pooler base URL, naming what to write instead; undefined if valid. */
export function checkPoolerBaseUrl(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'must be an http(s) URL ending in /v1, e.g. "https://codex-pooler.example.com/v1"';
  }
  // The URL parser quietly percent-encodes or strips these; a base URL never needs them.
  if (/[\u0000-\u0020\u007f]/.test(url)) return "must not contain whitespace or control characters";
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    return `must use http or https, not ${u.protocol.replace(/:$/, "")}`;
  }
  if (u.search || u.hash || u.username || u.password) {
    return "must not carry a query, fragment or credentials (the API key goes in codexPoolerApiKey)";
  }
  const path = u.pathname.replace(/\/+$/, "");
  const base = `${u.origin}${path.replace(/\/(v1\/)?(chat\/completions|responses)$|\/backend-api\/codex.*$/, "")}`;
  const suggestion = base.endsWith("/v1") ? base : `${base}/v1`;
  if (/\/backend-api\/codex(\/|$)/.test(path)) {
    return `must not point at /backend-api/codex: Kilo talks to the pooler's OpenAI-compatible /v1 base (write "${suggestion}")`;
  }
  if (/\/chat\/completions$/.test(path)) {
    return `must be the pooler's /v1 base, not the /chat/completions endpoint: Kilo appends /chat/completions itself (write "${suggestion}")`;
  }
  if (/\/responses$/.test(path)) {
    return `must not point at /responses: Kilo is a chat-completions client (write "${suggestion}")`;
  }
  if (!path.endsWith("/v1")) {
    return `must end in /v1, the pooler's OpenAI-compatible base (write "${suggestion}")`;
  }
  if (url.endsWith("/")) {
    return `must not end in a slash (write "${u.origin}${path}")`;
  }
  return undefined;
}
