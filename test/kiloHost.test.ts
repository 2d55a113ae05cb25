/**
 * KiloHost and the program (index.ts) under Pulumi mocks: the resource graph per host, secrecy of the
 * API key, the stack's exports, warnings, bad config, and KiloHost as a library. Runs against the real
 * step-command builders and the real host tool artifact.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { afterEach, describe, expect, it, vi } from "vitest";
import { deployFleet } from "../deployer/fleet";
import { warningText } from "../deployer/hostSpec";
import { hostStepCommands } from "../deployer/hostSteps";
import { hostToolArtifact } from "../deployer/hostTool";
import { HOST_STEPS, KILO_HOST_TYPE, KiloHost, keyFingerprint } from "../deployer/kiloHost";
import { type KiloLock, readLockFile, shippedLockPath, withVersion, writeLockFile } from "../deployer/kiloLock";
import { resolveHosts } from "../deployer/resolveHosts";
import { SEED_MODEL } from "../deployer/settings";
import {
  type Evaluation,
  evaluate,
  evaluateIndex,
  findString,
  isSecretValue,
  programResources,
  type RecordedResource,
  STACK_TYPE,
  stackConfig,
  TEST_API_KEY,
  TEST_HOST_KEY,
  TEST_HOSTS,
  TEST_SSH_KEY,
  unwrapSecrets,
} from "../harness/pulumiMocks";

afterEach(() => {
  vi.unstubAllEnvs();
});

const COMMAND_TYPE = { local: "command:local:Command", ssh: "command:remote:Command" } as const;

/** The spec and the step commands the builders give `name` in `stackConfig(overrides)`. */
function expectedScripts(name: string, overrides: Record<string, unknown> = {}, lock?: KiloLock) {
  const { config } = stackConfig(overrides);
  delete config["kilo-fleet:codexPoolerApiKey"];
  delete config["kilo-fleet:sshPrivateKey"];
  const resolved = resolveHosts({ stack: config });
  if (resolved.errors.length > 0) throw new Error(JSON.stringify(resolved.errors));
  const spec = resolved.specs.find((s) => s.name === name);
  if (!spec) throw new Error(`no host ${name}`);
  return {
    spec,
    ...hostStepCommands(name, spec, hostToolArtifact(), spec.ssh ? "ssh" : "local", lock ? { lock } : {}),
  };
}

/** The shipped lock plus a 7.7.6 entry (a stand-in integrity: nothing downloads it under mocks). */
const LOCK_776: KiloLock = withVersion(readLockFile(shippedLockPath()) ?? { version: 1, kilo: {} }, "7.7.6", {
  "linux-x64": {
    package: "@kilocode/cli-linux-x64",
    tarball: "https://registry.npmjs.org/@kilocode/cli-linux-x64/-/cli-linux-x64-7.7.6.tgz",
    integrity: `sha512-${"A".repeat(86)}==`,
  },
});

/** `lock` written to a temp file (removed after the test). */
function lockFileWith(lock: KiloLock): string {
  const dir = mkdtempSync(join(tmpdir(), "kilo-fleet-lock-"));
  afterEachCleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "kilo-fleet.lock.json");
  writeLockFile(file, lock);
  return file;
}
const afterEachCleanups: (() => void)[] = [];
afterEach(() => {
  for (const f of afterEachCleanups.splice(0)) f();
});

/** A host's children in dependency order: the steps, with the tool copy after the tool step over SSH. */
function childNames(h: { name: string; ssh?: unknown }): string[] {
  return HOST_STEPS.flatMap((s) =>
    s === "tool" && h.ssh ? [`${h.name}-tool`, `${h.name}-tool-copy`] : [`${h.name}-${s}`],
  );
}

function inputsOf(r: RecordedResource): Record<string, unknown> {
  return unwrapSecrets(r.inputs) as Record<string, unknown>;
}

describe("the resource graph", () => {
  let run: Evaluation;
  const getRun = async () => {
    run ??= await evaluateIndex(stackConfig());
    if (run.error) throw run.error;
    return run;
  };

  it("has the stack, then one KiloHost per host parented to the stack, and nothing else at the top", async () => {
    const e = await getRun();
    const stack = e.resources.filter((r) => r.type === STACK_TYPE);
    expect(stack).toHaveLength(1);
    const components = e.resources.filter((r) => r.type === KILO_HOST_TYPE);
    expect(components.map((c) => c.name)).toEqual(TEST_HOSTS.map((h) => h.name));
    for (const c of components) expect(c.parent).toBe(stack[0].urn);
    // Everything else is a child of a KiloHost.
    const componentUrns = new Set(components.map((c) => c.urn));
    const others = programResources(e).filter((r) => r.type !== KILO_HOST_TYPE);
    expect(others.map((r) => r.name).sort()).toEqual(TEST_HOSTS.flatMap(childNames).sort());
    for (const r of others) expect(componentUrns.has(r.parent)).toBe(true);
  });

  for (const h of TEST_HOSTS) {
    const kind = h.ssh ? "ssh" : "local";
    it(`${h.name} (${kind}): its ${COMMAND_TYPE[kind]} children in order, each depending on the one before`, async () => {
      const e = await getRun();
      const component = e.byName(h.name);
      let previous: RecordedResource | undefined;
      for (const name of childNames(h)) {
        const r = e.byName(name);
        expect(r.type).toBe(name.endsWith("-tool-copy") ? "command:remote:CopyToRemote" : COMMAND_TYPE[kind]);
        expect(r.custom).toBe(true);
        expect(r.parent).toBe(component.urn);
        expect(r.dependencies).toEqual(previous ? [previous.urn] : []);
        // Registration order follows the dependency order.
        if (previous) expect(e.resources.indexOf(r)).toBeGreaterThan(e.resources.indexOf(previous));
        previous = r;
      }
      // The component plus at most five Commands (SSH hosts also copy the tool file).
      expect(childNames(h).filter((n) => !n.endsWith("-tool-copy")).length).toBeLessThanOrEqual(5);
    });

    it(`${h.name}: runs exactly the builders' commands, ${kind === "ssh" ? "on the login shell" : "with /bin/sh -c"}`, async () => {
      const e = await getRun();
      const expected = expectedScripts(h.name);
      for (const step of HOST_STEPS) {
        const inputs = inputsOf(e.byName(`${h.name}-${step}`));
        const script = expected[step];
        if (!script) throw new Error(`no ${step} commands`);
        expect(inputs.create).toBe(script.create);
        expect(inputs.update).toBeUndefined();
        expect(inputs.delete).toBe(script.delete);
        if (kind === "local") {
          expect(inputs.interpreter).toEqual(["/bin/sh", "-c"]);
          expect(inputs.connection).toBeUndefined();
        } else {
          expect(inputs.interpreter).toBeUndefined();
          // Remote hosts refuse unknown environment variables: none are sent.
          expect(inputs.environment).toBeUndefined();
        }
        // Every step but the tool step is one short line: the tool, a subcommand, one JSON argument.
        if (step !== "tool") {
          expect(String(inputs.create)).toMatch(
            /^\/bin\/sh ~\/\.local\/share\/kilo-fleet\/tool-[0-9a-f]{12}\.cjs [a-z-]+ '[^'\\]*'$/,
          );
          expect(String(inputs.create).length, `${h.name}-${step}`).toBeLessThan(2048);
        }
      }
      if (kind === "ssh") {
        const copy = inputsOf(e.byName(`${h.name}-tool-copy`));
        const tool = hostToolArtifact();
        expect(copy.remotePath).toBe(tool.pathInHome);
        expect(copy.source).toMatchObject({ path: tool.assetPath });
        expect(tool.assetPath).toBe(`build/host-tool/tool-${tool.id}.cjs`);
        expect(JSON.stringify(copy)).not.toContain(tool.text.slice(200, 260));
      }
    });
  }

  it("connects to SSH hosts as configured, pins the host key when given, and keeps the SSH key secret", async () => {
    const e = await getRun();
    const bob = e.byName("bob-desktop-install");
    const carol = e.byName("carol-box-install");
    // The SDK makes the whole connection a secret; the private key is a secret inside it too.
    expect(isSecretValue(bob.inputs.connection)).toBe(true);
    expect(inputsOf(bob).connection).toMatchObject({
      host: "10.0.0.5",
      user: "bob",
      port: 22,
      hostKey: TEST_HOST_KEY,
      privateKey: TEST_SSH_KEY,
    });
    expect(inputsOf(carol).connection).toMatchObject({ host: "carol.lan", user: "carol", port: 2222 });
    expect((inputsOf(carol).connection as Record<string, unknown>).hostKey).toBeUndefined();
    // The SSH key is in no input but a remote connection.
    for (const r of programResources(e)) {
      for (const hit of findString(r.inputs, "testkeytestkey")) {
        expect(`${r.name}: ${hit.path}`).toBe(`${r.name}: connection.privateKey`);
        expect(hit.secret).toBe(true);
      }
    }
  });

  it("sets the options the command provider needs on every step", async () => {
    const e = await getRun();
    for (const h of TEST_HOSTS) {
      for (const step of HOST_STEPS) {
        const r = e.byName(`${h.name}-${step}`);
        const inputs = inputsOf(r);
        // The tool step prints nothing, so it has nothing to hand on.
        expect(inputs.addPreviousOutputInEnv, r.name).toBe(step === "tool" ? undefined : false);
        // Every step writes or removes files: a replacement must delete the old before creating the new;
        // the tool step is replaced create-before-delete (its old delete runs last: see kiloHost.ts).
        expect(r.deleteBeforeReplace, r.name).toBe(step !== "tool");
        const sensitive = step === "env" || step === "smoke";
        expect(inputs.logging, r.name).toBe(sensitive ? "none" : undefined);
        if (sensitive) expect(r.additionalSecretOutputs, r.name).toEqual(expect.arrayContaining(["stdout", "stderr"]));
        // Only the tool step and the smoke check have triggers (a trigger change replaces; the others update).
        expect(inputs.triggers === undefined, r.name).toBe(step !== "smoke" && step !== "tool");
        if (step === "tool") expect(inputs.triggers).toEqual([`tool=${hostToolArtifact().id}`]);
      }
    }
  });
});

describe("secrecy of the API key", () => {
  it("is in no input but each env command's stdin, where it is a secret", async () => {
    const e = await evaluateIndex(stackConfig());
    expect(e.error).toBeUndefined();
    const hits = programResources(e)
      .flatMap((r) => findString(r.inputs, TEST_API_KEY).map((hit) => ({ resource: r.name, ...hit })))
      .sort(
        (a, b) =>
          TEST_HOSTS.findIndex((h) => a.resource.startsWith(h.name)) -
          TEST_HOSTS.findIndex((h) => b.resource.startsWith(h.name)),
      );
    expect(hits).toEqual(TEST_HOSTS.map((h) => ({ resource: `${h.name}-env`, path: "stdin", secret: true })));
    for (const h of TEST_HOSTS) expect(isSecretValue(e.byName(`${h.name}-env`).inputs.stdin)).toBe(true);
  });

  it("is not in the state as an unsalted hash either; the smoke trigger holds a secret per-host HMAC", async () => {
    const e = await evaluateIndex(stackConfig());
    const plainHashes = [
      createHash("sha256").update(TEST_API_KEY).digest("hex"),
      createHash("sha1").update(TEST_API_KEY).digest("hex"),
      createHash("md5").update(TEST_API_KEY).digest("hex"),
      Buffer.from(TEST_API_KEY).toString("base64"),
    ];
    for (const r of e.resources) {
      for (const hash of plainHashes) {
        expect(findString(r.inputs, hash), r.name).toEqual([]);
        expect(findString(r.outputs, hash), r.name).toEqual([]);
      }
    }
    const fingerprints = new Set<string>();
    for (const h of TEST_HOSTS) {
      const triggers = e.byName(`${h.name}-smoke`).inputs.triggers as unknown[];
      const secretOnes = triggers.filter(isSecretValue);
      expect(secretOnes).toHaveLength(1);
      const fp = String(secretOnes[0].value);
      expect(fp).toBe(keyFingerprint(TEST_API_KEY, `kilo-fleet/test/${h.name}`));
      expect(fp).toMatch(/^key=hmac-sha256:[0-9a-f]{16}$/);
      fingerprints.add(fp);
      // Everything else in the triggers is plain, and none of it derives from the key.
      for (const t of triggers.filter((t) => !isSecretValue(t))) expect(String(t)).toMatch(/^(kilo|install|config)=/);
    }
    expect(fingerprints.size).toBe(TEST_HOSTS.length);
  });

  it("is in no stack export or component output, and no export is a secret", async () => {
    const e = await evaluateIndex(stackConfig());
    expect(e.stackOutputs).toBeDefined();
    for (const r of e.resources) {
      expect(findString(r.outputs ?? {}, TEST_API_KEY), r.name).toEqual([]);
      expect(findString(r.outputs ?? {}, "testkeytestkey"), r.name).toEqual([]);
    }
    expect(JSON.stringify(e.stackOutputs)).not.toContain("1b47061264138c4ac30d75fd1eb44270");
    expect(unwrapSecrets(e.stackOutputs)).toEqual(e.stackOutputs);
  });
});

describe("stack exports", () => {
  it("exports kind, kilo version, config path, env file path and the smoke result per host", async () => {
    const e = await evaluateIndex(stackConfig());
    expect(e.error).toBeUndefined();
    const hosts = (e.stackOutputs as { hosts: Record<string, unknown> }).hosts;
    expect(Object.keys(hosts)).toEqual(TEST_HOSTS.map((h) => h.name));
    // As the (mocked) steps reported them.
    expect(hosts["alice-laptop"]).toEqual({
      kind: "local",
      wave: 0,
      kiloVersion: "7.7.7",
      configPath: "~/.config/kilo/kilo.jsonc",
      envFilePath: "~/.config/kilo/codex-pooler.env",
      smoke: { enabled: true, pass: true, level: "kilo-run", kiloVersion: "7.7.7", seconds: 12.3 },
    });
    expect(hosts["bob-desktop"]).toMatchObject({ kind: "ssh", wave: 0, kiloVersion: "7.7.7" });
    expect(hosts["bob-desktop"]).not.toHaveProperty("kiloConfig");
    // The managed keys are plain JSON in the exports (no secret, not the key): a preview shows their change,
    // once for the hosts that share them.
    const { kiloConfig } = e.stackOutputs as { kiloConfig: { model: string } };
    expect(kiloConfig).toEqual(expectedScripts("alice-laptop").kiloConfig);
    expect(kiloConfig.model).toBe("codex-pooler/gpt-5.5");
  });

  it("exports the kilo.jsonc keys once, and per host only for a host whose keys differ", async () => {
    const models = { "gpt-5.5": SEED_MODEL, "gpt-5.4-mini": { ...SEED_MODEL, name: "mini" } };
    const hostsConfig = [
      { name: "a", local: true, model: "gpt-5.4-mini" },
      { name: "b", local: true },
      { name: "c", local: true },
    ];
    const e = await evaluateIndex(stackConfig({ models, hosts: hostsConfig }));
    expect(e.error).toBeUndefined();
    const out = e.stackOutputs as { kiloConfig: { model: string }; hosts: Record<string, { kiloConfig?: unknown }> };
    // The keys two of three hosts share are the stack's, though the first host's differ.
    expect(out.kiloConfig.model).toBe("codex-pooler/gpt-5.5");
    expect(out.hosts.a.kiloConfig).toMatchObject({ model: "codex-pooler/gpt-5.4-mini" });
    expect(out.hosts.b).not.toHaveProperty("kiloConfig");
    expect(out.hosts.c).not.toHaveProperty("kiloConfig");
    // A tie goes to the earliest host's.
    const tie = await evaluateIndex(stackConfig({ models, hosts: hostsConfig.slice(0, 2) }));
    const tied = tie.stackOutputs as typeof out;
    expect(tied.kiloConfig.model).toBe("codex-pooler/gpt-5.4-mini");
    expect(tied.hosts.a).not.toHaveProperty("kiloConfig");
    expect(tied.hosts.b.kiloConfig).toMatchObject({ model: "codex-pooler/gpt-5.5" });
  });

  it("reports a disabled smoke check as such, and has no smoke resource then", async () => {
    const e = await evaluateIndex(stackConfig({ smokeCheck: { enabled: false } }));
    expect(e.error).toBeUndefined();
    expect(programResources(e).filter((r) => r.name.endsWith("-smoke"))).toEqual([]);
    const hosts = (e.stackOutputs as { hosts: Record<string, { smoke: unknown }> }).hosts;
    for (const h of TEST_HOSTS) expect(hosts[h.name].smoke).toEqual({ enabled: false });
  });
});

describe("warnings", () => {
  it("warns once, on that host, about each SSH host that accepts any host key (insecureIgnoreHostKey)", async () => {
    const e = await evaluateIndex(stackConfig());
    const hostKeyWarnings = e.warnings.filter((w) => /hostKey|HostKey/.test(w));
    expect(hostKeyWarnings).toEqual([
      expect.stringMatching(
        /^kilo-fleet:hosts\[2\]\.ssh\.insecureIgnoreHostKey: the server's host key is not checked, so anyone who can answer for carol\.lan receives the API key; pin it instead \(ssh-keyscan /,
      ),
    ]);
  });

  it("logs the warnings validate prints, each once, in the same words (an http npmRegistry included)", async () => {
    const overrides = { npmRegistry: "http://npm.corp.example.com/", kiloVersion: "latest" };
    const e = await evaluateIndex(stackConfig(overrides));
    expect(e.error).toBeUndefined();
    const { config } = stackConfig(overrides);
    delete config["kilo-fleet:codexPoolerApiKey"];
    delete config["kilo-fleet:sshPrivateKey"];
    const validated = resolveHosts({ stack: config }).warnings.map(warningText);
    expect(validated).toContainEqual(expect.stringMatching(/^kilo-fleet:npmRegistry: plain http to npm\.corp/));
    expect(validated).toContainEqual(
      expect.stringMatching(/^kilo-fleet:kiloVersion: "latest" means kilo is not pinned/),
    );
    expect(e.warnings.filter((w) => !w.includes("plain text")).sort()).toEqual([...validated].sort());
  });

  it("warns when a secret is stored in plain text in the stack file", async () => {
    const stack = stackConfig();
    const e = await evaluateIndex({ config: stack.config, secretKeys: ["kilo-fleet:sshPrivateKey"] });
    expect(e.error).toBeUndefined();
    expect(e.warnings.filter((w) => w.includes("plain text"))).toEqual([
      expect.stringContaining("kilo-fleet:codexPoolerApiKey"),
    ]);
    // The warning names the key, never the value.
    for (const w of e.warnings) expect(w).not.toContain(TEST_API_KEY);
  });
});

describe("bad config", () => {
  it("stops the program with one RunError listing every error, before any resource is registered", async () => {
    const e = await evaluateIndex(
      stackConfig({
        poolerBaseUrl: "https://pooler.example.com/v1/chat/completions",
        codexPoolerApiKey: undefined,
        hosts: [
          { name: "ok-host", local: true },
          { name: "Bad Name", local: true },
          { name: "ssh-host", ssh: { host: "h", user: "u", port: 70000, hostKey: TEST_HOST_KEY } },
        ],
        smokeCheck: { timeoutSeconds: 5 },
      }),
    );
    expect(pulumi.RunError.isInstance(e.error)).toBe(true);
    const message = (e.error as Error).message;
    for (const key of [
      "kilo-fleet:poolerBaseUrl",
      "kilo-fleet:codexPoolerApiKey",
      "kilo-fleet:hosts[1].name",
      "kilo-fleet:hosts[2].ssh.port",
      "kilo-fleet:smokeCheck.timeoutSeconds",
    ]) {
      expect(message).toContain(key);
    }
    expect(message).toMatch(/5 errors; nothing was deployed/);
    expect(programResources(e)).toEqual([]);
  });

  it("refuses what validate refuses: a host or user starting with '-', a reserved apiKeyEnvVar, a step over the exec limit", async () => {
    const e = await evaluateIndex(
      stackConfig({
        apiKeyEnvVar: "LD_PRELOAD",
        hosts: [{ name: "dash", ssh: { host: "-V", user: "-oProxyCommand=x", hostKey: TEST_HOST_KEY } }],
      }),
    );
    expect(pulumi.RunError.isInstance(e.error)).toBe(true);
    const message = (e.error as Error).message;
    expect(message).toContain("kilo-fleet:hosts[0].ssh.host: must not start with '-'");
    expect(message).toContain("kilo-fleet:hosts[0].ssh.user: must not start with '-'");
    expect(message).toContain('kilo-fleet:apiKeyEnvVar: is refused: "LD_PRELOAD" changes how shells');
    expect(programResources(e)).toEqual([]);

    const big = await evaluateIndex(stackConfig({ kiloSettings: { notes: "x".repeat(140 * 1024) } }));
    expect(pulumi.RunError.isInstance(big.error)).toBe(true);
    expect((big.error as Error).message).toMatch(
      /kilo-fleet:kiloSettings\.notes: makes host "[a-z-]+"'s config step \d+ bytes, over the 131071-byte limit/,
    );
    expect(programResources(big)).toEqual([]);

    const lib = await evaluate(() => {
      new KiloHost("x", {
        poolerBaseUrl: "https://p.example.com/v1",
        apiKey: "k",
        apiKeyEnvVar: "KILO_KEY",
        kiloSettings: { notes: "x".repeat(140 * 1024) },
        ssh: { host: "-V", user: "u", hostKey: TEST_HOST_KEY },
        sshPrivateKey: "key",
      });
    });
    expect((lib.error as Error).message).toContain("  ssh.host: must not start with '-'");
    expect((lib.error as Error).message).toContain(
      '  apiKeyEnvVar: is refused: "KILO_KEY" is a name kilo-fleet or kilo',
    );
    const libBig = await evaluate(() => {
      new KiloHost("x", {
        poolerBaseUrl: "https://p.example.com/v1",
        apiKey: "k",
        kiloSettings: { notes: "x".repeat(140 * 1024) },
      });
    });
    expect((libBig.error as Error).message).toMatch(/ {2}kiloSettings\.notes: makes host "x"'s config step/);
  });

  it("refuses an SSH host with neither the sshPrivateKey secret nor an SSH agent", async () => {
    vi.stubEnv("SSH_AUTH_SOCK", "");
    const e = await evaluateIndex(stackConfig({ sshPrivateKey: undefined }));
    expect(pulumi.RunError.isInstance(e.error)).toBe(true);
    expect((e.error as Error).message).toContain("kilo-fleet:hosts[1].ssh: no way to authenticate");
    expect((e.error as Error).message).toContain("kilo-fleet:hosts[2].ssh: no way to authenticate");
    expect(programResources(e)).toEqual([]);
  });

  it("uses the SSH agent when there is no sshPrivateKey but SSH_AUTH_SOCK is set", async () => {
    vi.stubEnv("SSH_AUTH_SOCK", "/tmp/agent.sock");
    const e = await evaluateIndex(stackConfig({ sshPrivateKey: undefined }));
    expect(e.error).toBeUndefined();
    const connection = inputsOf(e.byName("bob-desktop-env")).connection as Record<string, unknown>;
    expect(connection.privateKey).toBeUndefined();
    // The agent socket is not put into the state: the provider reads SSH_AUTH_SOCK itself at deploy time.
    expect(connection.agentSocketPath).toBeUndefined();
  });
});

describe("KiloHost as a library", () => {
  it("applies the settings schema's defaults (the one place defaults live)", async () => {
    let host: KiloHost | undefined;
    const e = await evaluate(() => {
      host = new KiloHost("dev-box", { poolerBaseUrl: "http://localhost:4000/v1", apiKey: pulumi.secret("k") });
    });
    expect(e.error).toBeUndefined();
    const defaults = resolveHosts({
      stack: {
        "kilo-fleet:poolerBaseUrl": "http://localhost:4000/v1",
        "kilo-fleet:hosts": [{ name: "dev-box", local: true }],
      },
    });
    expect(defaults.errors).toEqual([]);
    expect(host?.spec).toEqual(defaults.specs[0]);
    expect(host?.spec).toMatchObject({ kiloVersion: "7.7.7", model: "gpt-5.5", providerId: "codex-pooler" });
    expect(e.byName("dev-box").type).toBe(KILO_HOST_TYPE);
    expect(programResources(e)).toHaveLength(1 + HOST_STEPS.length);
  });

  it("gets from deployFleet one resolved spec per host: the fleet's settings with the host's overrides", async () => {
    const overrides = {
      providerId: "my-pool",
      apiKeyEnvVar: "MY_POOL_KEY",
      kiloVersion: "7.7.6",
      models: {
        "gpt-5.5": { limit: { context: 272000, output: 64000 } },
        "gpt-5.4-mini": { name: "mini", limit: { context: 128000, input: 100000, output: 16000 } },
      },
      compactionThresholdPercent: null,
      permission: { bash: "allow" },
      kiloSettings: { share: "disabled" },
      smokeCheck: { enabled: true, timeoutSeconds: 60 },
      npmRegistry: "https://npm.example.com/",
      hosts: [
        { name: "a", local: true, kiloVersion: "7.7.7", model: "gpt-5.4-mini", shells: ["bash", "fish"] },
        { name: "b", ssh: { host: "b.lan", user: "b", port: 2200, hostKey: TEST_HOST_KEY } },
      ],
    };
    const { config } = stackConfig(overrides);
    const fleetSecrets = { codexPoolerApiKey: pulumi.secret(TEST_API_KEY), sshPrivateKey: pulumi.secret(TEST_SSH_KEY) };
    // 7.7.6 is pinned: pulumi up needs it in the lock file, as validate does.
    const refused = await evaluate(() => {
      deployFleet(config, fleetSecrets);
    });
    expect((refused.error as Error).message).toContain(
      `kilo-fleet:kiloVersion: kilo 7.7.6 is not in the lock file ${shippedLockPath()}; run: npm run kilo-fleet -- lock`,
    );
    expect(programResources(refused)).toEqual([]);
    const lockFile = lockFileWith(LOCK_776);
    let fleet: ReturnType<typeof deployFleet> | undefined;
    const e = await evaluate(() => {
      fleet = deployFleet(config, fleetSecrets, undefined, lockFile);
    });
    expect(e.error).toBeUndefined();
    expect(fleet?.hosts.a.spec).toEqual(expectedScripts("a", overrides, LOCK_776).spec);
    expect(fleet?.hosts.a.spec).toMatchObject({
      kiloVersion: "7.7.7",
      model: "gpt-5.4-mini",
      shells: ["bash", "fish"],
    });
    expect(fleet?.hosts.b.spec).toEqual(expectedScripts("b", overrides, LOCK_776).spec);
    // The install step checks what the given lock says for 7.7.6.
    expect(inputsOf(e.byName("b-install")).create).toBe(expectedScripts("b", overrides, LOCK_776).install.create);
    expect(inputsOf(e.byName("b-install")).create).toContain(
      `7.7.6 https://npm.example.com/ linux-x64=sha512-${"A".repeat(86)}==`,
    );
    expect(fleet?.hosts.b.spec).toMatchObject({
      kiloVersion: "7.7.6",
      model: "gpt-5.5",
      npmRegistry: "https://npm.example.com/",
    });
    expect(fleet?.hosts.b.spec.ssh).toEqual({
      host: "b.lan",
      user: "b",
      port: 2200,
      hostKey: TEST_HOST_KEY,
      connectTimeoutSeconds: 10,
      connectAttempts: 3,
    });
  });

  it("warns, on the resource, that an SSH host's key is not checked", async () => {
    const ssh = { host: "h.lan", user: "u", insecureIgnoreHostKey: true };
    const e = await evaluate(() => {
      new KiloHost("x", { poolerBaseUrl: "https://p.example.com/v1", apiKey: "k", ssh, sshPrivateKey: "key" });
      new KiloHost("y", {
        poolerBaseUrl: "https://p.example.com/v1",
        apiKey: "k",
        ssh: { host: "h.lan", user: "u", hostKey: TEST_HOST_KEY },
        sshPrivateKey: "key",
      });
    });
    expect(e.error).toBeUndefined();
    expect(e.warnings).toEqual([
      expect.stringMatching(/^x: ssh\.insecureIgnoreHostKey: the server's host key is not checked/),
    ]);
  });

  it("refuses insecureIgnoreHostKey beside a hostKey, plain or an Output", async () => {
    for (const hostKey of [TEST_HOST_KEY, pulumi.output(TEST_HOST_KEY)]) {
      const e = await evaluate(() => {
        new KiloHost("x", {
          poolerBaseUrl: "https://p.example.com/v1",
          apiKey: "k",
          ssh: { host: "h.lan", user: "u", hostKey, insecureIgnoreHostKey: true },
          sshPrivateKey: "key",
        });
      });
      expect((e.error as Error).message).toContain(
        "  ssh.insecureIgnoreHostKey: must not be true when hostKey is set (the pinned key would be ignored)",
      );
      expect(programResources(e)).toEqual([]);
    }
  });

  it("takes SSH connection fields from other resources (Outputs), validating the plain ones", async () => {
    const e = await evaluate(() => {
      new KiloHost("vm", {
        poolerBaseUrl: "https://p.example.com/v1",
        apiKey: "k",
        ssh: { host: pulumi.output("203.0.113.7"), user: "ubuntu", hostKey: pulumi.output(TEST_HOST_KEY) },
        sshPrivateKey: "key",
      });
    });
    expect(e.error).toBeUndefined();
    expect(inputsOf(e.byName("vm-install")).connection).toMatchObject({
      host: "203.0.113.7",
      user: "ubuntu",
      port: 22,
      hostKey: TEST_HOST_KEY,
    });
    const bad = await evaluate(() => {
      new KiloHost("vm", {
        poolerBaseUrl: "https://p.example.com/v1",
        apiKey: "k",
        ssh: { host: pulumi.output("203.0.113.7"), user: "bad user" },
        sshPrivateKey: "key",
      });
    });
    expect((bad.error as Error).message).toContain("ssh.user: must not contain whitespace");
  });

  it("install.method package (the default) runs the tool's sh with the lock's sha512s; npm runs npm; the lock is an argument", async () => {
    const base = { poolerBaseUrl: "https://p.example.com/v1", apiKey: "k" };
    const e = await evaluate(() => {
      new KiloHost("pkg", base);
      new KiloHost("by-npm", { ...base, install: { method: "npm" }, kiloVersion: "7.7.6" });
      new KiloHost("pinned", { ...base, kiloVersion: "7.7.6", kiloLock: LOCK_776 });
      new KiloHost("edge", { ...base, kiloVersion: "latest" });
    });
    expect(e.error).toBeUndefined();
    const shipped = readLockFile(shippedLockPath())?.kilo["7.7.7"]?.["linux-x64"]?.integrity;
    expect(shipped).toMatch(/^sha512-/);
    const tool = `~/.local/share/kilo-fleet/tool-${hostToolArtifact().id}.cjs`;
    expect(inputsOf(e.byName("pkg-install"))).toMatchObject({
      create: `/bin/sh ${tool} install-package '7.7.7 - linux-x64=${shipped}'`,
      delete: `/bin/sh ${tool} install-package-delete`,
    });
    expect(inputsOf(e.byName("by-npm-install")).create).toBe(
      `/bin/sh ${tool} install '{\`host\`:\`by-npm\`,\`version\`:\`7.7.6\`}'`,
    );
    expect(inputsOf(e.byName("by-npm-install")).delete).toBe(`/bin/sh ${tool} install-delete`);
    expect(inputsOf(e.byName("pinned-install")).create).toContain(`install-package '7.7.6 - linux-x64=sha512-AAAA`);
    expect(inputsOf(e.byName("edge-install")).create).toBe(`/bin/sh ${tool} install-package 'latest -'`);
    expect(e.warnings).toEqual([
      expect.stringMatching(
        /^edge: kiloVersion: "latest" means kilo is not pinned: .*; install\.method package installs it unlocked \(no sha512 from the lock file to check\)$/,
      ),
    ]);
    // The smoke check re-runs on a method change: the method is one of its triggers.
    expect(unwrapSecrets(inputsOf(e.byName("pkg-smoke")).triggers)).toContain("kilo=7.7.7 package");
    expect(unwrapSecrets(inputsOf(e.byName("by-npm-smoke")).triggers)).toContain("kilo=7.7.6 npm");

    const refused = await evaluate(() => {
      new KiloHost("old", { ...base, kiloVersion: "7.7.6" });
    });
    expect(pulumi.RunError.isInstance(refused.error)).toBe(true);
    expect((refused.error as Error).message).toBe(
      'KiloHost "old": invalid arguments:\n  kiloVersion: kilo 7.7.6 is not in the lock file; run: npm run kilo-fleet -- lock (install.method package)',
    );
    expect(programResources(refused)).toEqual([]);
  });

  it("reports invalid arguments in the library's own terms", async () => {
    const e = await evaluate(() => {
      new KiloHost("x", {
        poolerBaseUrl: "https://p.example.com/v1/responses",
        apiKey: "k",
        ssh: { host: "h", user: "u", port: 0 },
        sshPrivateKey: "key",
      });
    });
    expect(pulumi.RunError.isInstance(e.error)).toBe(true);
    const message = (e.error as Error).message;
    expect(message).toContain('KiloHost "x": invalid arguments');
    expect(message).toContain("  poolerBaseUrl: ");
    expect(message).toContain("  ssh.port: must be 1-65535");
    expect(message).not.toContain("kilo-fleet:");
  });
});
