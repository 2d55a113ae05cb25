/**
 * Fuzz: thousands of hostile strings through shQuote (and the fish quoting the host tool uses) reach
 * real shells as exactly the same bytes, and nothing in them executes.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { remoteCommandLine } from "../cli/remoteCommandLine";
import { shQuote } from "../common/shellQuote";
import { decodeStepArg, encodeStepArg } from "../common/stepArgs";
import { ensureAptPackages } from "../harness/sshd";
import { fishWord } from "../host/rcBlock";

const dir = mkdtempSync(join(tmpdir(), "kilo-fleet-quote-"));
const canary = join(dir, "canary");
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeAll(() => ensureAptPackages([{ pkg: "fish", bin: "/usr/bin/fish" }]));

/** A seeded generator, so a failure names a reproducible case. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = [
  "'",
  '"',
  "\\",
  "\\\\",
  "\\'",
  "'\\''",
  "$",
  "${HOME}",
  "$(touch CANARY)",
  "`touch CANARY`",
  "$((1+1))",
  "*",
  "?",
  "[a-z]",
  "{a,b}",
  "~",
  "!",
  "!!",
  "#",
  ";",
  "&",
  "|",
  "<",
  ">",
  "(",
  ")",
  "\n",
  "\t",
  " ",
  "\r",
  "-",
  "--",
  "-n",
  "%s",
  "%",
  "é",
  "日本",
  "🙂",
  "\u00a0",
  "\u2028",
  "\u001b[31m",
  "\u0001",
  "\u007f",
  "EOF",
  "';touch CANARY;'",
  '";touch CANARY;"',
];

function hostileStrings(count: number, seed = 42): string[] {
  const r = rng(seed);
  const out = ["", "'", "''", "\\", "\n", "-n", "-e", "--", "$(touch CANARY)", "`touch CANARY`"];
  while (out.length < count) {
    let s = "";
    const n = 1 + Math.floor(r() * 8);
    for (let i = 0; i < n; i++) {
      if (r() < 0.7) s += PIECES[Math.floor(r() * PIECES.length)].replaceAll("CANARY", canary);
      else s += String.fromCodePoint(1 + Math.floor(r() * (r() < 0.8 ? 0x7f : 0x2fff)));
    }
    out.push(s);
  }
  return out;
}

/** Runs `printf '%s\0' <quoted>...` in a shell and returns the strings it printed. */
function roundTrip(argv: string[], words: string[], quote: (s: string) => string): string[] {
  const script = `printf '%s\\000' ${words.map(quote).join(" ")}`;
  const r = spawnSync(argv[0], [...argv.slice(1), script], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  expect(r.status, r.stderr).toBe(0);
  const parts = r.stdout.split("\0");
  parts.pop();
  return parts;
}

const STRINGS = hostileStrings(4000);
const batches = (size: number) => {
  const out: string[][] = [];
  for (let i = 0; i < STRINGS.length; i += size) out.push(STRINGS.slice(i, i + size));
  return out;
};

describe("shQuote: hostile strings reach the shell byte for byte", () => {
  for (const shell of [
    ["/bin/sh", "-c"],
    ["dash", "-c"],
    ["bash", "-c"],
    ["bash", "--posix", "-c"],
    ["zsh", "-c"],
  ]) {
    test(`${shell.join(" ")}: ${STRINGS.length} strings`, () => {
      if (shell[0] === "zsh") ensureAptPackages([{ pkg: "zsh", bin: "/usr/bin/zsh" }]);
      for (const batch of batches(500)) expect(roundTrip(shell, batch, shQuote)).toEqual(batch);
      expect(existsSync(canary)).toBe(false);
    });
  }

  test("through remoteCommandLine under the login shells (bash, dash, zsh, fish): the same bytes", () => {
    ensureAptPackages([{ pkg: "zsh", bin: "/usr/bin/zsh" }]);
    for (const login of ["bash", "dash", "zsh", "fish"]) {
      for (const batch of batches(1000).slice(0, 2)) {
        const script = `printf '%s\\000' ${batch.map(shQuote).join(" ")}`;
        const r = spawnSync(login, ["-c", remoteCommandLine(script)], {
          encoding: "utf8",
          maxBuffer: 64 * 1024 * 1024,
        });
        expect(r.status, `${login}: ${r.stderr}`).toBe(0);
        const parts = r.stdout.split("\0");
        parts.pop();
        expect(parts, login).toEqual(batch);
      }
    }
    expect(existsSync(canary)).toBe(false);
  });

  test("step arguments (encodeStepArg, one single-quoted word) reach every login shell byte for byte", () => {
    ensureAptPackages([{ pkg: "zsh", bin: "/usr/bin/zsh" }]);
    for (const login of ["sh", "bash", "dash", "zsh", "fish"]) {
      for (const batch of batches(1000).slice(0, 2)) {
        const word = encodeStepArg({ values: batch });
        expect(word).not.toMatch(/['\\\n]/);
        const r = spawnSync(login, ["-c", `printf '%s' '${word}'`], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
        expect(r.status, `${login}: ${r.stderr}`).toBe(0);
        expect(decodeStepArg(r.stdout), login).toEqual({ values: batch });
      }
    }
    expect(existsSync(canary)).toBe(false);
  });

  test("shQuote refuses a NUL byte (no shell word can carry it)", () => {
    expect(() => shQuote("a\0b")).toThrow(/NUL/);
  });
});

describe("fish quoting (the fish env file): hostile strings reach fish byte for byte", () => {
  test(`fish -c: ${STRINGS.length} strings`, () => {
    for (const batch of batches(500)) {
      const script = `printf '%s\\0' ${batch.map(fishWord).join(" ")}`;
      const r = spawnSync("fish", ["-c", script], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
      expect(r.status, r.stderr).toBe(0);
      const parts = r.stdout.split("\0");
      parts.pop();
      expect(parts).toEqual(batch);
    }
    expect(existsSync(canary)).toBe(false);
  });
});
