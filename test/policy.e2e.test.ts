/**
 * A policy through the whole program: index.ts evaluated under mocks that really run every local Command
 * (harness/deployingMock.ts) on a temporary HOME, with a stand-in managed dir (KILO_FLEET_TEST_SYSTEM_DIR, in
 * the Commands' environment as a deploy's would be): tool, install, config, env, policy and smoke run in
 * that order, the env file carries the policy's settings, the smoke check (level pool) checks kilo's
 * effective config; then every delete in reverse leaves HOME and the managed dir's parent as they were, a
 * managed file that was there put back byte for byte.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { parseResult } from "../common/result";
import { HOST_STEPS } from "../deployer/kiloHost";
import { deployingMock, LocalCommandRunner } from "../harness/deployingMock";
import { startFakePooler } from "../harness/fakePooler";
import { snapshot, snapshotObject } from "../harness/hostHome";
import { TEST_KILO_VERSION } from "../harness/kilo";
import { evaluateIndex, stackConfig } from "../harness/pulumiMocks";
import { renderPolicyFile } from "../host/policy";

const KEY = "test-key-policy-e2e-7a3c91";
const HOST = "policy-box";
const root = mkdtempSync(join(tmpdir(), "kilo-fleet-policy-e2e-"));
afterAll(() => {
  vi.unstubAllEnvs();
  rmSync(root, { recursive: true, force: true });
});

describe("index.ts with a policy, deployed for real under mocks, then destroyed", () => {
  it("runs the policy step between env and smoke; destroy puts everything back", { timeout: 600_000 }, async () => {
    const pooler = await startFakePooler({ keys: KEY });
    try {
      const home = join(root, "home");
      const tmp = join(root, "tmp");
      const etc = join(root, "etc");
      for (const d of [home, tmp, join(etc, "kilo")]) mkdirSync(d, { recursive: true });
      // An administrator's managed file, there before kilo-fleet.
      const theirs = '{ "share": "manual" }';
      writeFileSync(join(etc, "kilo", "kilo.jsonc"), theirs, { mode: 0o640 });
      const before = { home: snapshotObject(snapshot(home)), etc: snapshotObject(snapshot(etc)) };
      vi.stubEnv("KILO_FLEET_TEST_SYSTEM_DIR", join(etc, "kilo"));
      const runner = new LocalCommandRunner({ cwd: root, home, tmp });
      const mock = deployingMock(runner);
      const e = await evaluateIndex(
        stackConfig({
          poolerBaseUrl: pooler.url,
          codexPoolerApiKey: KEY,
          sshPrivateKey: undefined,
          kiloVersion: TEST_KILO_VERSION,
          hosts: [{ name: HOST, local: true, shells: ["sh"] }],
          smokeCheck: { enabled: true, timeoutSeconds: 120, level: "pool" },
          policy: { model: "gpt-5.5", permission: { bash: "deny" }, share: "disabled" },
        }),
        { newResource: mock.newResource },
      );
      if (e.error) throw e.error;
      await mock.finish();
      const steps = ["tool", "install", "config", "env", "policy", "smoke"];
      expect(steps.filter((s) => s !== "policy")).toEqual([...HOST_STEPS]);
      expect(runner.executed.map((x) => `${x.name}:${x.op}`)).toEqual(steps.map((s) => `${HOST}-${s}:create`));

      const policyRun = runner.executed.find((x) => x.name === `${HOST}-policy`);
      expect(parseResult(policyRun?.stdout ?? "", "policy")).toEqual({
        step: "policy",
        path: join(etc, "kilo", "kilo.jsonc"),
        status: "updated",
        replaced: true,
      });
      const managed = readFileSync(join(etc, "kilo", "kilo.jsonc"), "utf8");
      expect(managed).toBe(
        renderPolicyFile({
          provider: { "codex-pooler": { options: { baseURL: pooler.url, apiKey: "{env:CODEX_POOLER_API_KEY}" } } },
          enabled_providers: ["codex-pooler"],
          model: "codex-pooler/gpt-5.5",
          permission: { bash: "deny" },
          share: "disabled",
        }),
      );
      const envFile = readFileSync(join(home, ".config/kilo/codex-pooler.env"), "utf8");
      expect(envFile).toContain("export KILO_TELEMETRY_LEVEL='off'\nexport KILO_DISABLE_SHARE='1'\n");
      const smoke = runner.executed.find((x) => x.name === `${HOST}-smoke`);
      expect(parseResult(smoke?.stdout ?? "", "smoke")?.pass).toBe(true);
      for (const x of runner.executed) expect(`${x.stdout}${x.stderr}`).not.toContain(KEY);

      const ran = runner.executed.length;
      await runner.destroy(
        mock.states,
        steps.map((s) => `${HOST}-${s}`),
      );
      expect(runner.executed.slice(ran).map((x) => x.name)).toEqual([...steps].reverse().map((s) => `${HOST}-${s}`));
      expect(snapshotObject(snapshot(etc))).toEqual(before.etc);
      expect(readFileSync(join(etc, "kilo", "kilo.jsonc"), "utf8")).toBe(theirs);
      expect(snapshotObject(snapshot(home))).toEqual(before.home);
    } finally {
      await pooler.stop();
    }
  });
});
