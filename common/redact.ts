/**
 * Redaction of a secret (a Pool API key) from text a server sent back, before any of it is printed.
 * Pure code, no imports: the deployer and the host tool (node >= 18 or Bun) both use it.
 *
 * A server can echo the key in many shapes. `redactSecret` finds it, or any prefix of it of at least
 * 8 characters (a server that echoes `sk-abc12…`), in every encoding below, also mixed within one
 * occurrence, and replaces each occurrence with `[REDACTED]`:
 *   - as is;
 *   - URL-encoded: `%HH` in either hex case (encodeURIComponent, escape-everything encoders), doubly
 *     encoded `%25HH`, and form encoding (`+` for a space);
 *   - JSON-escaped: `\uXXXX` in either hex case, `\"`, `\\`, `\/`, `\n` and the other short escapes;
 *   - base64 and base64url, also inside a larger base64 blob (Basic auth `user:key`, a JWT, a cookie):
 *     for each of the 3 byte alignments the secret can have in the blob, the characters that depend on
 *     the secret's bytes alone are searched for, and a hit removes the whole base64 run around it.
 */

export const REDACTED = "[REDACTED]";

/** The shortest prefix of the secret that counts as a leak (the whole secret when it is shorter). */
export const MIN_PREFIX_CHARS = 8;

/** The fewest base64 characters searched for: shorter cores would match ordinary text by chance. */
const MIN_BASE64_CORE = 6;

const BASE64_CHAR = /[A-Za-z0-9+/_-]/;

function escapeRegExp(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&");
}

/** `[aA]`-style class for one hex digit, so `%2f` and `%2F` both match. */
function hexDigitCI(d: string): string {
  return /[a-f]/i.test(d) ? `[${d.toLowerCase()}${d.toUpperCase()}]` : d;
}

function hexCI(n: number, width: number): string {
  return [...n.toString(16).padStart(width, "0")].map(hexDigitCI).join("");
}

const JSON_SHORT_ESCAPES: Record<string, string> = {
  '"': '\\"',
  "\\": "\\\\",
  "/": "\\/",
  "\b": "\\b",
  "\f": "\\f",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
};

/** A regex alternation matching one character (a code point) in any of the supported encodings. */
function charPattern(ch: string): string {
  const alts = new Set<string>([escapeRegExp(ch)]);
  const bytes = [...new TextEncoder().encode(ch)];
  alts.add(bytes.map((b) => `%${hexCI(b, 2)}`).join(""));
  alts.add(bytes.map((b) => `%25${hexCI(b, 2)}`).join(""));
  if (ch === " ") alts.add("\\+");
  const units: number[] = [];
  for (let i = 0; i < ch.length; i++) units.push(ch.charCodeAt(i));
  alts.add(units.map((u) => `\\\\u${hexCI(u, 4)}`).join(""));
  const short = JSON_SHORT_ESCAPES[ch];
  if (short) alts.add(escapeRegExp(short));
  return `(?:${[...alts].join("|")})`;
}

/**
 * A pattern for `units[0..min)` followed by as many of the remaining units as are there:
 * `a b c (?:d (?:e)?)?` — the longest prefix at least `min` long.
 */
function prefixPattern(units: readonly string[], min: number): string {
  let tail = "";
  for (let i = units.length - 1; i >= min; i--) tail = `(?:${units[i]}${tail})?`;
  return units.slice(0, min).join("") + tail;
}

/**
 * The base64 characters that depend on the secret's bytes alone when the secret starts `align` bytes
 * after a 3-byte group boundary of a larger blob, and how many of them the shortest leaking prefix
 * covers.
 */
function base64Core(bytes: Uint8Array, align: number, minBytes: number): { core: string; min: number } {
  const buf = new Uint8Array(align + bytes.length);
  buf.set(bytes, align);
  const enc = btoa(String.fromCharCode(...buf)).replace(/=+$/, "");
  const start = Math.ceil((8 * align) / 6);
  const end = Math.floor((8 * (align + bytes.length)) / 6);
  const minEnd = Math.floor((8 * (align + minBytes)) / 6);
  return { core: enc.slice(start, end), min: Math.max(0, minEnd - start) };
}

interface Matcher {
  re: RegExp;
  /** Widen a hit to the whole base64 run it is part of. */
  base64Run: boolean;
}

const cache = new Map<string, Matcher[]>();

function matchersFor(secret: string): Matcher[] {
  const cached = cache.get(secret);
  if (cached) return cached;
  const chars = [...secret];
  const minChars = Math.min(MIN_PREFIX_CHARS, chars.length);
  const matchers: Matcher[] = [
    { re: new RegExp(prefixPattern(chars.map(charPattern), minChars), "g"), base64Run: false },
  ];
  const bytes = new TextEncoder().encode(secret);
  const minBytes = new TextEncoder().encode(chars.slice(0, minChars).join("")).length;
  for (let align = 0; align < 3; align++) {
    const { core, min } = base64Core(bytes, align, minBytes);
    const need = Math.min(Math.max(min, MIN_BASE64_CORE), core.length);
    if (need < MIN_BASE64_CORE) continue; // a secret of a few bytes: too short to find in base64
    for (const alphabet of ["base64", "base64url"]) {
      const c = alphabet === "base64" ? core : core.replace(/\+/g, "-").replace(/\//g, "_");
      matchers.push({ re: new RegExp(prefixPattern([...c].map(charPattern), need), "g"), base64Run: true });
    }
  }
  if (cache.size > 32) cache.clear();
  cache.set(secret, matchers);
  return matchers;
}

/** Replaces the secret, and every 8+ character prefix of it, in every encoding a server could echo. */
export function redactSecret(text: string, secret: string): string {
  if (!secret || !text) return text;
  const matchers = matchersFor(secret);
  let current = text;
  // A replacement can join pieces into a new hit only in contrived text; go on until nothing changes.
  for (let round = 0; round < 4; round++) {
    const ranges: [number, number][] = [];
    for (const { re, base64Run } of matchers) {
      re.lastIndex = 0;
      for (let m = re.exec(current); m !== null; m = re.exec(current)) {
        let start = m.index;
        let end = m.index + m[0].length;
        if (m[0].length === 0) {
          re.lastIndex++;
          continue;
        }
        if (base64Run) {
          while (start > 0 && BASE64_CHAR.test(current[start - 1])) start--;
          while (end < current.length && BASE64_CHAR.test(current[end])) end++;
          while (end < current.length && current[end] === "=") end++;
        }
        ranges.push([start, end]);
      }
    }
    if (ranges.length === 0) return current;
    ranges.sort((a, b) => a[0] - b[0]);
    let out = "";
    let at = 0;
    let open: [number, number] | undefined;
    for (const r of ranges) {
      if (open && r[0] <= open[1]) open[1] = Math.max(open[1], r[1]);
      else {
        if (open) {
          out += current.slice(at, open[0]) + REDACTED;
          at = open[1];
        }
        open = [r[0], r[1]];
      }
    }
    if (open) {
      out += current.slice(at, open[0]) + REDACTED;
      at = open[1];
    }
    current = out + current.slice(at);
  }
  return current;
}

/** ANSI escape sequences (colours, cursor moves) and OSC strings a terminal-minded server may send. */
const ANSI = /\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)?|\u001b[@-Z\\-_]/g;
/** C0/C1 controls except whitespace, plus invisible format characters (bidi overrides, zero-width). */
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/g;

/**
 * Server text made safe for one log line: escape sequences and control characters removed first (so
 * one hidden inside the key cannot split it into pieces that escape redaction), the secret redacted in
 * every encoding, whitespace folded to single spaces (and redacted again), and cut to `maxChars`
 * characters with a trailing "…".
 */
export function sanitizeServerText(text: string, secret: string, maxChars = 160): string {
  let s = String(text).replace(ANSI, "").replace(CONTROL, "");
  s = redactSecret(s, secret);
  s = redactSecret(s.replace(/\s+/g, " ").trim(), secret);
  const chars = [...s];
  if (chars.length <= maxChars) return s;
  if (maxChars <= 1) return "…".slice(0, Math.max(0, maxChars));
  return `${chars
    .slice(0, maxChars - 1)
    .join("")
    .trimEnd()}…`;
}
