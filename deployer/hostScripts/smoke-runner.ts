/**
 * The node program the smoke script embeds (`node -e "$smoke_js" -- <args>`): it runs the seed's kilo
 * command with a deadline, reads kilo's `--format json` event stream, and decides pass or fail.
 *
 * Arguments: host, baseUrl, keyVar, timeoutSeconds, envFile, then the kilo command itself
 * (`<kilo> run --model ... --dir <cwd> <prompt>`, spelled out in the sh script).
 *
 * What it relies on (kilo 7.7.7, measured against the stand-in pooler):
 * - one JSON object per stdout line: `step_start`, `tool_use` (`part.tool`, `part.state.status`,
 *   `part.state.input`), `text` (`part.text`), `step_finish`, and `error`
 *   (`error.name`, `error.data.message`, `error.data.statusCode` for HTTP errors);
 * - an unknown model is an `UnknownError` "Model not found: <provider>/<model>." (after a generic
 *   "Unexpected server error"), exit 1;
 * - with KILO_SESSION_RETRY_LIMIT=1, an unreachable pooler ends in an `APIError` "Cannot connect to API"
 *   and a dropped stream in "Connection reset by server";
 * - kilo's stderr and its error messages repeat whatever the server said, so every line printed here
 *   goes through `redact` (the key is replaced by `[redacted]`).
 *
 * Output: on success one stdout line `kilo-fleet: smoke ok kilo=<version> seconds=<n.n>`; on failure one
 * stderr line `smoke check failed on <host>: <cause>` and exit 1. The whole run, kilo included, stays
 * within timeoutSeconds; kilo runs in its own process group, which is killed at the deadline and after
 * kilo exits (`--auto` may have started processes).
 *
 * Plain ES2020 CommonJS for node >= 18, no template literals (it lives in a String.raw template).
 */
export const SMOKE_RUNNER_JS = String.raw`"use strict";
const { spawn, execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const EXPECTED = "kilo ok";
const FILE = "kilo-ok.txt";
const [host, baseUrl, keyVar, timeoutText, envFile, ...kiloCmd] = process.argv.slice(1);
const timeoutS = Number(timeoutText);
const started = Date.now();
const deadline = started + timeoutS * 1000;
const key = process.env[keyVar] || "";
const modelArg = kiloCmd[kiloCmd.indexOf("--model") + 1];

// Every printed byte goes through redact: the key never appears, even when the server echoes it.
function redact(text) {
  let s = String(text);
  if (key !== "") s = s.split(key).join("[redacted]");
  s = s.replace(/\u001b\[[0-9;]*[A-Za-z]/g, "").replace(/\s+/g, " ").trim();
  return s.length > 300 ? s.slice(0, 299) + "…" : s;
}
function quoted(text) {
  return JSON.stringify(redact(text));
}
function fail(cause) {
  process.stderr.write("smoke check failed on " + host + ": " + redact(cause) + "\n");
  process.exit(1);
}
function remainingMs() {
  return deadline - Date.now();
}
function timedOut() {
  fail("timed out after " + timeoutS + " s (kilo-fleet:smokeCheck.timeoutSeconds)");
}

// The cause of a failed kilo run, from its error events (the most specific one wins).
function causeOf(errors) {
  const messageOf = (e) => String((e.data && e.data.message) || e.message || e.name || "unknown error");
  const http = errors.find((e) => e.data && typeof e.data.statusCode === "number");
  if (http) {
    const code = http.data.statusCode;
    const msg = messageOf(http);
    if (code === 401) return "the pooler refused the API key (HTTP 401) — rotate codexPoolerApiKey";
    if (code === 403) return "the pooler denied this API key access (HTTP 403): " + quoted(msg);
    if (code === 404)
      return "the pooler answered HTTP 404 for model " + modelArg + ": " + quoted(msg) + " — check poolerBaseUrl and the pool's models";
    if (code === 429) return "the pooler is rate limiting this key (HTTP 429): " + quoted(msg);
    return "the pooler answered HTTP " + code + ": " + quoted(msg);
  }
  const notFound = errors.find((e) => /^Model not found/.test(messageOf(e)));
  if (notFound)
    return "unknown model " + modelArg + ": kilo says " + quoted(messageOf(notFound)) + " — define it in kilo-fleet:models";
  const net = errors.find((e) => /Cannot connect to API|Connection reset|ECONNREFUSED|Unable to connect/i.test(messageOf(e)));
  if (net) return "the pooler at " + baseUrl + " is unreachable or dropped the connection (kilo: " + quoted(messageOf(net)) + ")";
  const specific = errors.filter((e) => !/^Unexpected server error/.test(messageOf(e)));
  const last = specific[specific.length - 1] || errors[errors.length - 1];
  return "kilo reported " + (last.name || "an error") + ": " + quoted(messageOf(last));
}

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch (e) {
    // Already gone.
  }
}

// The installed CLI's version: its package.json (found through the bin symlink npm made), or --version.
function kiloVersion() {
  try {
    let dir = path.dirname(fs.realpathSync(kiloCmd[0]));
    for (let i = 0; i < 4; i++, dir = path.dirname(dir)) {
      const file = path.join(dir, "package.json");
      if (!fs.existsSync(file)) continue;
      const pkg = JSON.parse(fs.readFileSync(file, "utf8"));
      if (pkg.name === "@kilocode/cli" && typeof pkg.version === "string") return pkg.version;
    }
  } catch (e) {
    // Fall back to asking kilo.
  }
  try {
    return execFileSync(kiloCmd[0], ["--version"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      timeout: Math.max(1000, Math.min(30000, remainingMs())),
    }).trim();
  } catch (e) {
    if (remainingMs() <= 0) timedOut();
    fail("kilo at " + kiloCmd[0] + " does not run: " + (e.stderr || e.message));
  }
}

async function main() {
  if (key === "") {
    fail(keyVar + " is empty or not exported after sourcing " + envFile + ": kilo would send no API key — set kilo-fleet:codexPoolerApiKey and deploy again");
  }

  // Is anyone answering at the base URL? Any HTTP status will do. (Node's fetch ignores proxy
  // variables, so behind a proxy this is left to kilo, which honours them.)
  const proxied = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"].some(
    (v) => process.env[v],
  );
  if (!proxied) {
    const waitMs = Math.max(1000, Math.min(10000, remainingMs()));
    try {
      const res = await fetch(baseUrl, { redirect: "manual", signal: AbortSignal.timeout(waitMs) });
      await res.body?.cancel();
    } catch (e) {
      if (remainingMs() <= 0) timedOut();
      const why =
        e && e.name === "TimeoutError"
          ? "no answer within " + Math.round(waitMs / 1000) + " s"
          : (e && e.cause && (e.cause.code || e.cause.message)) || (e && e.message) || String(e);
      fail("the pooler is unreachable at " + baseUrl + " (" + why + ")");
    }
  }
  const version = kiloVersion();
  if (remainingMs() <= 0) timedOut();

  // The seed's command, in its own process group so the deadline can stop everything it started.
  const child = spawn(kiloCmd[0], kiloCmd.slice(1), { detached: true, stdio: ["ignore", "pipe", "pipe"] });
  const events = [];
  let partial = "";
  let stderr = "";
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (d) => {
    const lines = (partial + d).split("\n");
    partial = lines.pop();
    for (const line of lines) {
      try {
        events.push(JSON.parse(line));
      } catch (e) {
        // Not an event: ignore.
      }
    }
  });
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d) => {
    stderr = (stderr + d).slice(-8192);
  });
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(sig, () => {
      killGroup(child.pid, "SIGKILL");
      process.exit(1);
    });
  }
  let expired = false;
  const timer = setTimeout(() => {
    expired = true;
    killGroup(child.pid, "SIGTERM");
    setTimeout(() => killGroup(child.pid, "SIGKILL"), 2000).unref();
  }, Math.max(0, remainingMs()));
  const status = await new Promise((resolve) => {
    child.on("error", (e) => resolve({ spawnError: e }));
    child.on("exit", (code, signal) => {
      // Give the pipes a moment to drain, without waiting on anything kilo left running.
      let settled = false;
      const finish = () => {
        if (!settled) {
          settled = true;
          resolve({ code, signal });
        }
      };
      child.on("close", finish);
      setTimeout(finish, 2000).unref();
    });
  });
  clearTimeout(timer);
  killGroup(child.pid, "SIGKILL");
  if (partial.trim() !== "") {
    try {
      events.push(JSON.parse(partial));
    } catch (e) {
      // Truncated: ignore.
    }
  }

  if (status.spawnError) fail("kilo at " + kiloCmd[0] + " could not start: " + status.spawnError.message);
  if (expired) timedOut();
  const errors = events.filter((e) => e.type === "error").map((e) => e.error || {});
  if (errors.length > 0) fail(causeOf(errors));
  if (status.code !== 0) {
    const lastLine = stderr.trim().split("\n").pop() || "";
    fail("kilo exited with " + (status.signal || "status " + status.code) + (lastLine ? ": " + quoted(lastLine) : ""));
  }

  const writes = events.filter((e) => e.type === "tool_use" && e.part && e.part.tool === "write");
  if (writes.length === 0) fail("kilo never called its write tool, so " + FILE + " was not created");
  const failed = writes.find((e) => e.part.state && e.part.state.status === "error");
  if (failed) fail("kilo's write tool failed: " + quoted(failed.part.state.error || "unknown error"));
  let content;
  try {
    content = fs.readFileSync(path.join(process.cwd(), FILE), "utf8");
  } catch (e) {
    fail(FILE + " is missing after kilo's write tool ran");
  }
  if (content !== EXPECTED && content !== EXPECTED + "\n")
    fail(FILE + " holds " + redact(JSON.stringify(content.slice(0, 80))) + " instead of " + JSON.stringify(EXPECTED));
  const texts = events.filter((e) => e.type === "text" && e.part && typeof e.part.text === "string");
  if (texts.length === 0) fail("kilo gave no final reply (expected " + JSON.stringify(EXPECTED) + ")");
  const reply = texts[texts.length - 1].part.text.trim();
  if (reply !== EXPECTED) fail("kilo's final reply was " + quoted(reply) + ", not " + JSON.stringify(EXPECTED));

  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  process.stdout.write("kilo-fleet: smoke ok kilo=" + redact(version) + " seconds=" + seconds + "\n");
}

main().catch((e) => fail("the smoke check itself crashed: " + (e && e.stack ? e.stack.split("\n")[0] : String(e))));
`;
