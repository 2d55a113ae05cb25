/**
 * The smoke check end to end over https, against a pooler whose certificate a private CA signs (the
 * stand-in pooler behind harness/privateCa's TLS front): the real host steps (install, config, env,
 * smoke) on a temporary HOME, run as local.Command runs them, with the real kilo 7.7.7.
 *
 * - with `caCertificates` set to the CA: the env step writes the CA file, and the smoke check passes at
 *   the kilo-run level (the pool checks in node and the conversation in kilo both trust it);
 * - without it: the smoke check fails with one line naming TLS and kilo-fleet:caCertificates, and no
 *   request reaches the pooler.
 *
 * The test machine's own trust settings (NODE_EXTRA_CA_CERTS, SSL_CERT_*) are not passed on: a host
 * with none is the case here.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseResult } from "../common/result";
import { type FakePooler, startFakePooler } from "../harness/fakePooler";
import { buildSettings, deployScripts, makeHome, type Run, scriptEnv, spawnLocal } from "../harness/hostHome";
import { TEST_KILO_VERSION } from "../harness/kilo";
import { makePrivateCa, type PrivateCa, startTlsFront, type TlsFront } from "../harness/privateCa";

const KEY = "test-key-smoke-https-7d0c3b52";
const HOST = "test-host";
let ca: PrivateCa;
let pooler: FakePooler;
let front: TlsFront;
const roots: string[] = [];

beforeAll(async () => {
  ca = makePrivateCa({ name: "corp" });
  pooler = await startFakePooler({ keys: KEY });
  front = await startTlsFront(ca, pooler.port);
});
afterAll(async () => {
  await front?.stop();
  await pooler?.stop();
  ca?.cleanup();
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

/** Runs a step command asynchronously (the pooler and its TLS front live in this process). */
function run(script: string, env: NodeJS.ProcessEnv, stdin = ""): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawnLocal(script, env);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    const timer = setTimeout(() => child.kill("SIGKILL"), 240_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(stdin);
  });
}

/** Deploys one host (install, config, env) with or without the CA, then runs its smoke check. */
async function deployAndSmoke(caCertificates: string | undefined) {
  const built = buildSettings({
    poolerBaseUrl: `${front.origin}/v1`,
    kiloVersion: TEST_KILO_VERSION,
    smokeCheck: { timeoutSeconds: 150 },
    ...(caCertificates !== undefined ? { caCertificates } : {}),
  });
  const steps = deployScripts(built);
  if (!steps.smoke) throw new Error("no smoke step");
  const { root, home, tmp } = makeHome({ kilo: true });
  roots.push(root);
  const env = scriptEnv(home, tmp, {
    NODE_EXTRA_CA_CERTS: undefined,
    SSL_CERT_FILE: undefined,
    SSL_CERT_DIR: undefined,
    NODE_TLS_REJECT_UNAUTHORIZED: undefined,
  });
  for (const step of ["install", "config", "env"] as const) {
    const r = await run(steps[step].create, env, step === "env" ? `${KEY}\n` : "");
    expect(r.code, `${step}: ${r.stderr}`).toBe(0);
  }
  const from = pooler.requests.length;
  const smoke = await run(steps.smoke.create, env);
  expect(`${smoke.stdout}${smoke.stderr}`).not.toContain(KEY);
  return { home, smoke, requests: pooler.requests.slice(from) };
}

describe("the smoke check over https with a private CA", () => {
  it("with caCertificates: the CA file is written and exported, and the kilo-run check passes", {
    timeout: 300_000,
  }, async () => {
    const { home, smoke, requests } = await deployAndSmoke(ca.caCert);
    expect(smoke.code, smoke.stderr).toBe(0);
    expect(parseResult(smoke.stdout, "smoke")).toMatchObject({
      pass: true,
      level: "kilo-run",
      kiloVersion: TEST_KILO_VERSION,
    });
    // Nothing on stderr: the context-limit warning is in the result only.
    expect(smoke.stderr).toBe("");
    const caFile = join(home, ".config/kilo/ca-certificates.pem");
    expect(readFileSync(caFile, "utf8")).toContain(ca.caCert.trim());
    expect(readFileSync(join(home, ".config/kilo/codex-pooler.env"), "utf8")).toContain(`NODE_EXTRA_CA_CERTS=`);
    // Both halves went over the TLS front: node's pool checks and kilo's conversation.
    expect(requests.map((q) => [q.path, q.reply])).toEqual([
      ["/readyz", "ready"],
      ["/v1/models", "models"],
      ["/v1/chat/completions", "tool_call"],
      ["/v1/chat/completions", "text"],
    ]);
  });

  it("without it: fails with one line naming TLS and kilo-fleet:caCertificates; nothing reaches the pooler", {
    timeout: 300_000,
  }, async () => {
    const { home, smoke, requests } = await deployAndSmoke(undefined);
    expect(smoke.code).toBe(1);
    expect(smoke.stdout).toBe("");
    expect(smoke.stderr).toMatch(
      new RegExp(
        `^smoke check failed on ${HOST}: TLS: the pooler at [^\\n]*127\\.0\\.0\\.1:${front.port}[^\\n]* failed the certificate check \\([A-Z_]+\\) — fix its certificate, or trust its CA with kilo-fleet:caCertificates\\n$`,
      ),
    );
    expect(existsSync(join(home, ".config/kilo/ca-certificates.pem"))).toBe(false);
    expect(requests).toEqual([]);
  });
});
