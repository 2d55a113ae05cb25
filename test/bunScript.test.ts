/**
 * The host tool without Node.js: kilo's platform binary is Bun-compiled, and with `BUN_BE_BUN=1` it runs a
 * script as Bun. These tests check what the host tool relies on, on the real kilo 7.7.7 binary, against
 * node running the same file: a CommonJS file with a sh/JS polyglot header (`":" /*` … `*\/;`: sh runs the
 * lines in between, JS skips them as a comment), process.argv, fs, child_process.spawnSync (stdin, stdout,
 * stderr, status), crypto.createHash, fetch, stdin, and process.exit / exitCode / uncaught errors.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureKilo } from "../harness/kilo";

const scratch = mkdtempSync(join(tmpdir(), "kilo-fleet-bun-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** The platform binary inside the cached npm install of kilo. */
function kiloPlatformBinary(): string {
  const kilo = ensureKilo();
  const bin = join(kilo.prefix, "lib/node_modules/@kilocode/cli/node_modules/@kilocode/cli-linux-x64/bin/kilo");
  if (!existsSync(bin)) throw new Error(`no platform binary at ${bin} (the cached kilo install has another layout?)`);
  return bin;
}

const SCRIPT = `":" /*
printf 'sh part: %s\\n' "$*"
exit 0
*/;
"use strict";
const fs = require("fs");
const path = require("path");
const cp = require("child_process");
const crypto = require("crypto");
const out = {};
out.argv = process.argv.slice(2);
out.argv0IsAbsolute = path.isAbsolute(process.argv[0]);
out.argv1 = path.basename(process.argv[1]);
const dir = process.env.SCRATCH;
fs.mkdirSync(path.join(dir, "a", "b"), { recursive: true });
fs.writeFileSync(path.join(dir, "a", "b", "f.txt"), "héllo\\n", { mode: 0o600 });
fs.renameSync(path.join(dir, "a", "b", "f.txt"), path.join(dir, "a", "g.txt"));
out.read = fs.readFileSync(path.join(dir, "a", "g.txt"), "utf8");
out.mode = (fs.statSync(path.join(dir, "a", "g.txt")).mode & 0o777).toString(8);
out.readdir = fs.readdirSync(path.join(dir, "a")).sort();
try { fs.readFileSync(path.join(dir, "missing")); } catch (e) { out.enoent = e.code; }
fs.rmSync(path.join(dir, "a"), { recursive: true, force: true });
out.removed = !fs.existsSync(path.join(dir, "a"));
const r = cp.spawnSync("sh", ["-c", "read x; echo \\"out:$x\\"; echo err >&2; exit 3"], { input: "in\\n", encoding: "utf8" });
out.spawn = { status: r.status, stdout: r.stdout, stderr: r.stderr, signal: r.signal };
const k = cp.spawnSync("sh", ["-c", "kill -TERM $$"], { encoding: "utf8" });
out.killed = { status: k.status, signal: k.signal };
out.missingCmd = cp.spawnSync("kilo-fleet-no-such-command", [], { encoding: "utf8" }).error?.code;
out.sha512 = crypto.createHash("sha512").update("abc").digest("base64");
out.sha256hex = crypto.createHash("sha256").update(Buffer.from([1, 2, 3])).digest("hex");
out.stdin = fs.readFileSync(0, "utf8");
(async () => {
  const res = await fetch(process.env.URL + "/x?q=1", { method: "POST", body: "ping", headers: { "x-t": "1" } });
  out.fetch = { status: res.status, body: await res.text() };
  process.stdout.write(JSON.stringify(out) + "\\n");
  const how = process.env.EXIT_HOW;
  if (how === "exit") process.exit(7);
  if (how === "exitCode") { process.exitCode = 5; return; }
  if (how === "throw") throw new Error("boom");
})();
`;

let url = "";
const server = createServer((req, res) => {
  let body = "";
  req.on("data", (d) => {
    body += d;
  });
  req.on("end", () => {
    res.writeHead(201, { "content-type": "text/plain" });
    res.end(`${req.method} ${req.url} ${req.headers["x-t"]} ${body}`);
  });
});
beforeAll(async () => {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

/** Runs the script on kilo's binary as Bun or on node; args, stdin, env and cwd are the same for both. */
async function exec(runtime: "bun" | "node", how: string) {
  const file = join(scratch, "script.cjs");
  writeFileSync(file, SCRIPT);
  const cmd = runtime === "bun" ? kiloPlatformBinary() : process.execPath;
  const work = mkdtempSync(join(scratch, `${runtime}-`));
  const env = { PATH: "/usr/bin:/bin", HOME: work, SCRATCH: work, URL: url, EXIT_HOW: how };
  const child = spawn(cmd, [file, "one", "two words", ""], {
    env: runtime === "bun" ? { ...env, BUN_BE_BUN: "1" } : env,
    cwd: work,
    stdio: ["pipe", "pipe", "pipe"],
  });
  child.stdin.end("stdin text");
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => {
    stdout += d;
  });
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const code = await new Promise<number | null>((r) => child.once("close", r));
  return { code, stdout, stderr };
}

describe("BUN_BE_BUN=1 <kilo platform binary> script.cjs behaves as node for the host tool", () => {
  it("the polyglot header: sh runs the part between the markers", () => {
    const file = join(scratch, "poly.cjs");
    writeFileSync(file, SCRIPT);
    const r = spawnSync("/bin/dash", [file, "a", "b c"], { encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("sh part: a b c\n");
  });

  for (const how of ["exit", "exitCode", "throw", "none"]) {
    it(`same results as node (${how})`, async () => {
      const bun = await exec("bun", how);
      const node = await exec("node", how);
      expect(node.stdout).not.toBe("");
      const parsed = JSON.parse(bun.stdout);
      expect(parsed).toEqual(JSON.parse(node.stdout));
      expect(parsed).toMatchObject({
        argv: ["one", "two words", ""],
        argv0IsAbsolute: true,
        argv1: "script.cjs",
        read: "héllo\n",
        mode: "600",
        readdir: ["b", "g.txt"],
        enoent: "ENOENT",
        removed: true,
        spawn: { status: 3, stdout: "out:in\n", stderr: "err\n", signal: null },
        killed: { status: null, signal: "SIGTERM" },
        missingCmd: "ENOENT",
        sha512: "3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/uu9RU1EI2Q86A4qmslPpUyknw==",
        sha256hex: "039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81",
        stdin: "stdin text",
        fetch: { status: 201, body: "POST /x?q=1 1 ping" },
      });
      const want = { exit: 7, exitCode: 5, throw: 1, none: 0 }[how];
      expect(bun.code).toBe(want);
      expect(node.code).toBe(want);
      if (how === "throw") expect(bun.stderr).toMatch(/boom/);
    });
  }

  it("starts fast (under 2 s even on a loaded machine; ~25 ms idle)", async () => {
    const t = Date.now();
    await exec("bun", "none");
    expect(Date.now() - t).toBeLessThan(2000);
    expect(readFileSync(kiloPlatformBinary()).subarray(0, 4).toString("latin1")).toBe("\x7fELF");
  });
});
