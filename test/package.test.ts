/**
 * kilo-fleet as a package: the tarball `npm pack` makes, installed into a fresh program beside the repo and
 * loaded as Pulumi's nodejs language host loads programs (harness/packageProbe.ts), and its CLI as a bin.
 */
import { spawn, spawnSync } from "node:child_process";
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hostToolArtifact } from "../deployer/hostTool";
import { KiloHost } from "../deployer/kiloHost";
import { TEST_SSH_KEY } from "../harness/fakeSecrets";
import { loadProgram, mockStepStdout, type PackedProgram, packAndInstall } from "../harness/packageProbe";
import { evaluate, unwrapSecrets } from "../harness/pulumiMocks";

const REPO = join(__dirname, "..");
const KEY = "kf-probe-key-0123456789";
const ARGS = `{ poolerBaseUrl: "https://pooler.example.com/v1", apiKey: pulumi.secret("${KEY}") }`;

let packed: PackedProgram;
let files: string[];

beforeAll(() => {
  packed = packAndInstall();
  const r = spawnSync("tar", ["tzf", packed.tarball], { encoding: "utf8" });
  files = r.stdout.trim().split("\n");
}, 300_000);

afterAll(() => {
  if (packed) rmSync(dirname(packed.dir), { recursive: true, force: true });
});

/** What `new KiloHost("laptop", …)` registers from the repo's sources, in this process. */
async function fromSources() {
  const e = await evaluate(
    () => new KiloHost("laptop", { poolerBaseUrl: "https://pooler.example.com/v1", apiKey: pulumi.secret(KEY) }),
    {
      project: "probe",
      stack: "dev",
      newResource: (a) => {
        const role = a.name.slice(a.name.lastIndexOf("-") + 1);
        return { state: { ...a.inputs, stdout: mockStepStdout()[role] ?? "", stderr: "" } };
      },
    },
  );
  if (e.error) throw e.error;
  return e.resources.filter((r) => r.type !== "pulumi:pulumi:Stack");
}

/** The tool's path on this machine differs between a clone and an install; nothing else may. */
function comparable(inputs: Record<string, unknown>, toolFile: string): unknown {
  return JSON.parse(JSON.stringify(unwrapSecrets(inputs)).split(toolFile).join("<tool>"));
}

describe("the npm package", () => {
  it("ships compiled JavaScript, types, the release's host tool and the lock; no test, harness, bench or source", () => {
    expect(files).toContain("package/dist/index.js");
    expect(files).toContain("package/dist/index.d.ts");
    expect(files).toContain("package/dist/cli/kilo-fleet.js");
    expect(files).toContain("package/dist/stacks/kilo-fleet.lock.json");
    expect(files).toContain("package/PulumiPlugin.yaml");
    expect(files).toContain(`package/dist/host-tool/tool-${hostToolArtifact().id}.cjs`);
    expect(files.filter((f) => f.includes("/host-tool/"))).toHaveLength(1);
    for (const f of files) {
      expect(f).not.toMatch(/^package\/(test|harness|bench|program|scripts|tools|examples|stacks)\//);
      expect(f).not.toMatch(/(?<!\.d)\.ts$/);
      expect(f).not.toMatch(/\.test\./);
    }
  });

  it("is a versioned, public package with exports, a bin, engines, and only what runs as dependencies", () => {
    const pkg = JSON.parse(readFileSync(join(packed.dir, "node_modules", "kilo-fleet", "package.json"), "utf8"));
    expect(pkg.private).toBeUndefined();
    expect(pkg.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(pkg.exports["."]).toEqual({ types: "./dist/index.d.ts", default: "./dist/index.js" });
    expect(pkg.bin).toEqual({ "kilo-fleet": "dist/cli/kilo-fleet.js" });
    expect(pkg.engines.node).toBeDefined();
    for (const tool of ["esbuild", "tsx", "typescript", "vitest", "@biomejs/biome"]) {
      expect(pkg.dependencies[tool], tool).toBeUndefined();
    }
    expect(pkg.peerDependencies["@pulumi/pulumi"]).toBeDefined();
  });

  it("imports with no side effect: a program that only imports it registers nothing", () => {
    writeFileSync(join(packed.dir, "only-import.js"), 'require("kilo-fleet");\n');
    const loaded = loadProgram(packed.dir, "only-import.js");
    expect(loaded.error).toBeUndefined();
    expect(loaded.resources.map((r) => r.type)).toEqual(["pulumi:pulumi:Stack"]);
  });

  for (const [kind, file, text] of [
    [
      "TypeScript (ts-node, the program's TypeScript, module nodenext)",
      "index.ts",
      `import * as pulumi from "@pulumi/pulumi";\nimport { KiloHost, type KiloHostArgs } from "kilo-fleet";\nconst args: KiloHostArgs = ${ARGS};\nexport const kiloVersion = new KiloHost("laptop", args).kiloVersion;\n`,
    ],
    [
      "plain CommonJS JavaScript",
      "index.js",
      `const pulumi = require("@pulumi/pulumi");\nconst { KiloHost } = require("kilo-fleet");\nexports.kiloVersion = new KiloHost("laptop", ${ARGS}).kiloVersion;\n`,
    ],
  ] as const) {
    it(`a ${kind} program loads KiloHost from the installed package and registers what the sources register`, async () => {
      writeFileSync(join(packed.dir, file), text);
      const loaded = loadProgram(packed.dir, file);
      expect(loaded.error).toBeUndefined();
      const got = loaded.resources.filter((r) => r.type !== "pulumi:pulumi:Stack");
      const want = await fromSources();
      expect(got.map((r) => `${r.type} ${r.name}`)).toEqual(want.map((r) => `${r.type} ${r.name}`));
      const installedTool = join(
        packed.dir,
        "node_modules",
        "kilo-fleet",
        "dist",
        "host-tool",
        `tool-${hostToolArtifact().id}.cjs`,
      );
      for (const [i, r] of got.entries()) {
        expect(comparable(r.inputs, installedTool), r.name).toEqual(
          comparable(want[i].inputs, hostToolArtifact().file),
        );
      }
      const env = got.find((r) => r.name === "laptop-env");
      expect(JSON.stringify(env?.inputs.stdin)).toContain(KEY);
      expect(JSON.stringify(got.filter((r) => r.name !== "laptop-env"))).not.toContain(KEY);
    });
  }
});

describe("examples/typescript (KiloHost on another stack's VM) with the installed package", () => {
  it("typechecks, and connects to the address and host key the stack reference gives", () => {
    const dir = join(packed.dir, "example-ts");
    mkdirSync(dir, { recursive: true });
    cpSync(join(REPO, "examples", "typescript", "index.ts"), join(dir, "index.ts"));
    const check = spawnSync(
      process.execPath,
      [
        join(packed.dir, "node_modules", "typescript", "bin", "tsc"),
        "--noEmit",
        "--strict",
        "--skipLibCheck",
        "--module",
        "commonjs",
        "--moduleResolution",
        "node",
        "--target",
        "ES2020",
        join(dir, "index.ts"),
      ],
      { encoding: "utf8", cwd: packed.dir },
    );
    expect(check.stdout + check.stderr).toBe("");
    const hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFromTheVmStackOutputs0000";
    const loaded = loadProgram(packed.dir, "example-ts/index.ts", {
      config: {
        "probe:vmStack": "org/vms/dev",
        "probe:poolerBaseUrl": "https://pooler.example.com/v1",
        "probe:codexPoolerApiKey": KEY,
        "probe:sshPrivateKey": TEST_SSH_KEY,
      },
      secretKeys: ["probe:codexPoolerApiKey", "probe:sshPrivateKey"],
      stateByType: { "pulumi:pulumi:StackReference": { outputs: { publicIp: "203.0.113.7", hostKey } } },
    });
    expect(loaded.error).toBeUndefined();
    const env = loaded.resources.find((r) => r.name === "dev-vm-env");
    expect(env?.type).toBe("command:remote:Command");
    const connection = JSON.stringify(env?.inputs.connection);
    expect(connection).toContain("203.0.113.7");
    expect(connection).toContain(hostKey);
    expect(loaded.resources.map((r) => r.type)).toContain("kilo-fleet:index:KiloHost");
  });
});

describe("the component plugin, as Pulumi's plugin host runs it from a clone", () => {
  it("serves KiloHost's schema (schema.json) over gRPC from package.json's main (dist/plugin.js)", async () => {
    // `npm pack` above ran `prepare` (the build), as `npm install` does in a clone `pulumi package add` fetched.
    const sdk = (m: string) => require(join(REPO, "node_modules", m));
    const grpc = sdk("@grpc/grpc-js");
    const rpc = sdk("@pulumi/pulumi/proto/provider_grpc_pb.js");
    const pb = sdk("@pulumi/pulumi/proto/provider_pb.js");
    const host = spawn(
      process.execPath,
      [join(REPO, "node_modules/@pulumi/pulumi/cmd/run-plugin/index.js"), REPO, "127.0.0.1:1"],
      {
        cwd: REPO,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    try {
      const port = await new Promise<string>((resolve, reject) => {
        let out = "";
        let err = "";
        host.stdout.on("data", (d) => {
          out += d;
          const m = /^(\d+)\s/.exec(out);
          if (m) resolve(m[1]);
        });
        host.stderr.on("data", (d) => (err += d));
        host.on("exit", (code) => reject(new Error(`the plugin exited (${code}) before serving: ${err}`)));
      });
      const client = new rpc.ResourceProviderClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
      const served = await new Promise<string>((resolve, reject) =>
        client.getSchema(new pb.GetSchemaRequest(), (e: Error | null, r: { getSchema(): string }) =>
          e ? reject(e) : resolve(r.getSchema()),
        ),
      );
      client.close();
      expect(JSON.parse(served)).toEqual(JSON.parse(readFileSync(join(REPO, "schema.json"), "utf8")));
    } finally {
      host.kill();
    }
  });
});

describe("the kilo-fleet bin from the installed package", () => {
  const npx = (...args: string[]) =>
    spawnSync("npx", ["--no-install", "kilo-fleet", ...args], { cwd: packed.dir, encoding: "utf8", timeout: 60_000 });

  beforeAll(() => {
    writeFileSync(join(packed.dir, "Pulumi.yaml"), "name: probe\nruntime: nodejs\nstackConfigDir: stacks\n");
    mkdirSync(join(packed.dir, "stacks"), { recursive: true });
    cpSync(join(REPO, "stacks", "Pulumi.dev.yaml"), join(packed.dir, "stacks", "Pulumi.dev.yaml"));
  });

  it("is compiled JavaScript run by node (no tsx installed)", () => {
    const bin = readFileSync(join(packed.dir, "node_modules", "kilo-fleet", "dist", "cli", "kilo-fleet.js"), "utf8");
    expect(bin.startsWith("#!/usr/bin/env node\n")).toBe(true);
    expect(spawnSync("node", ["-e", 'require.resolve("tsx")'], { cwd: packed.dir }).status).not.toBe(0);
  });

  it("validates and renders the program's own stack, and prints doctor's help", () => {
    const validate = npx("validate", "--stack", "dev");
    expect(validate.status, validate.stderr).toBe(0);
    expect(validate.stdout).toContain("stacks/Pulumi.dev.yaml: valid (1 host)");
    const render = npx("render", "--stack", "dev");
    expect(render.status).toBe(0);
    expect(JSON.parse(render.stdout.slice(render.stdout.indexOf("{")))).toMatchObject({
      provider: { "codex-pooler": { options: { baseURL: "http://localhost:4000/v1" } } },
    });
    const help = npx("doctor", "--help");
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/doctor/);
  });
});
