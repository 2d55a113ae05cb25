/**
 * common/redact.ts: the key, or any 8+ character prefix of it, never survives redaction in any encoding a
 * server could echo: examples first, then a seeded fuzz (random keys, random surrounding text, every
 * encoding, embedded at every base64 alignment), then sanitizeServerText's one-line contract.
 */
import { describe, expect, it } from "vitest";
import { MIN_PREFIX_CHARS, REDACTED, redactSecret, sanitizeServerText } from "../common/redact";

const KEY = "test-key-redact-Zx9/q+Lm_42=aa";

/** A seeded PRNG (mulberry32), so a failure can be replayed from its seed. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const str = (alphabet: string, n: number) => Array.from({ length: n }, () => pick([...alphabet])).join("");
  return { next, int, pick, str };
}

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const KEY_EXTRA = "-_.~+/=%&\"\\ !*'():@$é";
const TEXT = `${ALNUM} \t\n{}[]":,.;=&?/\\-_+%'<>#@!|`;

function b64(bytes: Uint8Array, url = false): string {
  const s = Buffer.from(bytes).toString("base64");
  return url ? s.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "") : s;
}

/** The base64 characters that depend on `secret`'s bytes alone at byte alignment `align` (0-2). */
function core(secret: string, align: number, url: boolean): string {
  const bytes = Buffer.concat([Buffer.alloc(align), Buffer.from(secret)]);
  const enc = b64(bytes, url).replace(/=+$/, "");
  return enc.slice(Math.ceil((8 * align) / 6), Math.floor((8 * bytes.length) / 6));
}

const lowerHex = (s: string) => s.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase());
const form = (s: string) => new URLSearchParams({ k: s }).toString().slice(2);
const jsonEscaped = (s: string) => JSON.stringify(s).slice(1, -1);
const jsonAllEscaped = (s: string) =>
  [...s].map((c) => (/[A-Za-z0-9]/.test(c) ? c : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)).join("");

/** Every way a prefix of the key could show up in the output. */
function leakForms(prefix: string): string[] {
  const forms = [
    prefix,
    encodeURIComponent(prefix),
    lowerHex(encodeURIComponent(prefix)),
    form(prefix),
    jsonEscaped(prefix),
    jsonEscaped(prefix).replace(/\//g, "\\/"),
    jsonAllEscaped(prefix),
  ];
  for (let align = 0; align < 3; align++) for (const url of [false, true]) forms.push(core(prefix, align, url));
  return forms;
}

/** Fails with the form and prefix that leaked. */
function expectNoLeak(out: string, key: string, context: string) {
  const chars = [...key];
  for (let n = Math.min(MIN_PREFIX_CHARS, chars.length); n <= chars.length; n++) {
    const prefix = chars.slice(0, n).join("");
    for (const f of leakForms(prefix)) {
      if (f.length >= 6 && out.includes(f)) {
        throw new Error(`leak of a ${n}-char prefix as ${JSON.stringify(f)} in ${JSON.stringify(out)} (${context})`);
      }
    }
  }
}

/** Ways to encode one occurrence (the key or a prefix of it) into server text. */
const ENCODERS: Record<string, (s: string, r: ReturnType<typeof rng>) => string> = {
  plain: (s) => s,
  uri: (s) => encodeURIComponent(s),
  uriLower: (s) => lowerHex(encodeURIComponent(s)),
  uriDouble: (s) => encodeURIComponent(encodeURIComponent(s)),
  form: (s) => form(s),
  json: (s) => jsonEscaped(s),
  jsonSlash: (s) => jsonEscaped(s).replace(/\//g, "\\/"),
  jsonUnicode: (s) => jsonAllEscaped(s),
  jsonInJson: (s) => JSON.stringify({ error: { message: `bad key ${s}` } }),
  base64: (s) => b64(Buffer.from(s)),
  base64url: (s) => b64(Buffer.from(s), true),
  basicAuth: (s, r) => `Basic ${b64(Buffer.from(`${r.str(ALNUM, r.int(7))}:${s}`))}`,
  base64Embedded: (s, r) => {
    const before = Buffer.from(r.str(ALNUM, r.int(9)));
    const after = Buffer.from(r.str(ALNUM, r.int(9)));
    return b64(Buffer.concat([before, Buffer.from(s), after]), r.next() < 0.5);
  },
  truncatedWithEllipsis: (s) => `${s}…`,
};

describe("redactSecret: examples", () => {
  it("as is, URL-encoded (both hex cases, form, double), JSON-escaped, base64/base64url, Basic auth", () => {
    const samples = [
      `Incorrect API key provided: ${KEY}.`,
      `GET /v1/models?key=${encodeURIComponent(KEY)} failed`,
      `key=${lowerHex(encodeURIComponent(KEY))}`,
      `body: k=${form(KEY)}&x=1`,
      `{"error":{"message":"bad key ${jsonEscaped(KEY).replace(/\//g, "\\/")}"}}`,
      `echo ${jsonAllEscaped(KEY)}`,
      `authorization: Basic ${b64(Buffer.from(`user:${KEY}`))}`,
      `token ${b64(Buffer.from(KEY), true)} rejected`,
      `%25 ${encodeURIComponent(encodeURIComponent(KEY))}`,
    ];
    for (const s of samples) {
      const out = redactSecret(s, KEY);
      expect(out).toContain(REDACTED);
      expectNoLeak(out, KEY, s);
    }
    expect(redactSecret(`Incorrect API key provided: ${KEY}.`, KEY)).toBe(`Incorrect API key provided: ${REDACTED}.`);
  });

  it("a truncated echo of 8+ characters is redacted; 7 are not a leak and stay", () => {
    expect(redactSecret(`key ${KEY.slice(0, 12)}… is wrong`, KEY)).toBe(`key ${REDACTED}… is wrong`);
    expect(redactSecret(`key ${KEY.slice(0, 8)}…`, KEY)).toBe(`key ${REDACTED}…`);
    expect(redactSecret(`key ${KEY.slice(0, 7)}…`, KEY)).toBe(`key ${KEY.slice(0, 7)}…`);
  });

  it("removes the whole base64 run around a hit (the rest of a Basic credential goes too)", () => {
    const basic = b64(Buffer.from(`alice:${KEY}`));
    expect(redactSecret(`Authorization: Basic ${basic} denied`, KEY)).toBe(`Authorization: Basic ${REDACTED} denied`);
  });

  it("leaves text without the key alone, and handles an empty key or text", () => {
    const text = "upstream request failed (quota_exhausted) — sk-other-key-1234567890";
    expect(redactSecret(text, KEY)).toBe(text);
    expect(redactSecret(text, "")).toBe(text);
    expect(redactSecret("", KEY)).toBe("");
  });

  it("a short key (under 8 characters) is redacted whole", () => {
    expect(redactSecret("the key abc12 and abc1", "abc12")).toBe(`the key ${REDACTED} and abc1`);
  });
});

describe("redactSecret: fuzz", () => {
  const SEEDS = 400;
  it(`never leaves the key or an 8+ char prefix in any encoding (${SEEDS} seeded cases × every encoder)`, () => {
    let hits = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const r = rng(seed);
      const keyAlphabet = r.next() < 0.5 ? `${ALNUM}-_` : ALNUM + KEY_EXTRA;
      const key = (r.next() < 0.5 ? "sk-" : "") + r.str(keyAlphabet, 8 + r.int(56));
      for (const [name, encode] of Object.entries(ENCODERS)) {
        const chars = [...key];
        const occurrences = 1 + r.int(3);
        let text = r.str(TEXT, r.int(40));
        for (let i = 0; i < occurrences; i++) {
          const n = r.next() < 0.5 ? chars.length : MIN_PREFIX_CHARS + r.int(chars.length - MIN_PREFIX_CHARS + 1);
          text += encode(chars.slice(0, n).join(""), r) + r.str(TEXT, r.int(40));
        }
        const out = redactSecret(text, key);
        expectNoLeak(out, key, `seed ${seed}, ${name}, key ${JSON.stringify(key)}`);
        expect(out, `seed ${seed}, ${name}`).toContain(REDACTED);
        hits++;
        // Text without the key is left as it is.
        const clean = r.str(TEXT, 20 + r.int(200));
        expect(redactSecret(clean, key), `seed ${seed}, clean text`).toBe(clean);
      }
    }
    expect(hits).toBe(SEEDS * Object.keys(ENCODERS).length);
  });
});

describe("sanitizeServerText", () => {
  it("one short line: redacted, escape sequences and control characters removed, whitespace folded", () => {
    const raw = `\u001b[91mError:\u001b[0m  bad\tkey\r\n${KEY}\u0000 \u202e end\u0007`;
    expect(sanitizeServerText(raw, KEY)).toBe(`Error: bad key ${REDACTED} end`);
  });

  it("a control character or escape sequence hidden inside the key cannot join it back together", () => {
    for (const hidden of ["\u0000", "\u001b[0m", "\u200b", "\u0008", "\u007f"]) {
      const split = `${KEY.slice(0, 10)}${hidden}${KEY.slice(10)}`;
      const out = sanitizeServerText(`key ${split} refused`, KEY);
      expectNoLeak(out, KEY, JSON.stringify(hidden));
      expect(out).toBe(`key ${REDACTED} refused`);
    }
  });

  it("cuts to maxChars (default 160) with a trailing …, counting characters, not UTF-16 units", () => {
    const long = "x".repeat(500);
    expect(sanitizeServerText(long, KEY)).toBe(`${"x".repeat(159)}…`);
    expect([...sanitizeServerText("😀".repeat(50), KEY, 20)]).toHaveLength(20);
    expect(sanitizeServerText("short", KEY, 20)).toBe("short");
    expect(sanitizeServerText("a b c d e f", KEY, 4)).toBe("a b…");
  });

  it("fuzz: one line, no control characters, at most maxChars, no leak", () => {
    for (let seed = 1; seed <= 200; seed++) {
      const r = rng(seed * 7919);
      const key = `sk-${r.str(ALNUM + KEY_EXTRA, 16 + r.int(40))}`;
      const noise = () => r.str(`${TEXT}\u0000\u0007\u001b\r\u0085\u200b`, r.int(60));
      const encode = r.pick(Object.values(ENCODERS));
      const text = noise() + encode(key, r) + noise();
      const max = 20 + r.int(200);
      const out = sanitizeServerText(text, key, max);
      expect([...out].length).toBeLessThanOrEqual(max);
      expect(out).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u200b]/);
      expect(out).toBe(out.trim());
      expect(out).not.toMatch(/\s{2}/);
      expectNoLeak(out, key, `seed ${seed}`);
    }
  });
});
