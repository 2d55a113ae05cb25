/**
 * Runs a Pulumi program under `pulumi.runtime.setMocks` and records what it registered: every
 * resource's type, name, parent, dependencies, options and raw inputs (secrets still wrapped, so tests
 * can tell a secret input from a plain one), the outputs each component registered, and the warnings
 * logged.
 *
 * Each evaluation runs in its own Pulumi runtime store (`withLocalStorage`, what the Automation API
 * uses to run inline programs): config, stack resource, mock monitor and RPC bookkeeping are fresh every
 * time, so one test process can evaluate a program any number of times, e.g. "old key" then "new key",
 * and diff the two.
 */

import { createRequire } from "node:module";
import { isDeepStrictEqual } from "node:util";
import * as pulumi from "@pulumi/pulumi";
import { vi } from "vitest";
import { formatResult, type StepResult } from "../common/result";
import { TEST_API_KEY, TEST_SSH_KEY } from "./fakeSecrets";

const require = createRequire(import.meta.url);
// Internal runtime modules (no typings): the same instances @pulumi/pulumi itself uses.
const runtimeState = require("@pulumi/pulumi/runtime/state") as {
  withLocalStorage<T>(fn: () => Promise<T>): Promise<T>;
  getStore(): { settings: { monitor: MonitorLike } };
};
const runtimeSettings = require("@pulumi/pulumi/runtime/settings") as { waitForRPCs(): Promise<void> };
const rpc = require("@pulumi/pulumi/runtime/rpc") as { specialSigKey: string; specialSecretSig: string };

/** The parts of a RegisterResourceRequest the recorder reads. */
interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getCustom(): boolean;
  getDependenciesList(): string[];
  getDeletebeforereplace(): boolean;
  getAdditionalsecretoutputsList(): string[];
  getReplaceonchangesList(): string[];
  getObject(): { toJavaScript(): Record<string, unknown> } | undefined;
}
interface MonitorLike {
  registerResource(req: RegisterRequest, cb: (err: unknown, resp: { getUrn(): string } | undefined) => void): unknown;
  registerResourceOutputs(
    req: { getUrn(): string; getOutputs(): { toJavaScript(): Record<string, unknown> } | undefined },
    cb: (err: unknown, resp: unknown) => void,
  ): unknown;
}

export interface RecordedResource {
  urn: string;
  type: string;
  name: string;
  custom: boolean;
  /** The parent's URN ("" for the stack). */
  parent: string;
  /** URNs of explicit dependencies (`dependsOn`, plus those the SDK adds for Output inputs). */
  dependencies: string[];
  deleteBeforeReplace: boolean;
  additionalSecretOutputs: string[];
  replaceOnChanges: string[];
  /** Inputs as the engine would receive them: secrets are `{<sig>: <secret sig>, value}` objects. */
  inputs: Record<string, unknown>;
  /** What the component registered with `registerOutputs` (raw, secrets wrapped), if anything. */
  outputs?: Record<string, unknown>;
}

export interface Evaluation {
  /** Every registered resource, in registration order, including the stack itself. */
  resources: RecordedResource[];
  /** The stack's exports as registered with the engine (raw, secrets wrapped). */
  stackOutputs: Record<string, unknown> | undefined;
  /** Messages passed to `pulumi.log.warn`. */
  warnings: string[];
  /** What the program threw, if it did. */
  error: unknown;
  /** The resource named `name` (throws if there is not exactly one). */
  byName(name: string): RecordedResource;
}

export interface MockResult {
  id?: string;
  state: Record<string, unknown>;
}

export interface EvaluateOptions {
  /** Full config keys (`kilo-fleet:model`) to values: strings, as the runtime holds them. */
  config?: Record<string, string>;
  /** Keys of `config` that are secrets. */
  secretKeys?: string[];
  project?: string;
  stack?: string;
  /** Makes a resource's state from its inputs (default: `defaultMockState`). May really run things. */
  newResource?: (args: pulumi.runtime.MockResourceArgs) => MockResult | Promise<MockResult>;
}

export const STACK_TYPE = "pulumi:pulumi:Stack";

/** True for a secret-wrapped value as the mocks see it. */
export function isSecretValue(v: unknown): v is { value: unknown } {
  return (
    v !== null &&
    typeof v === "object" &&
    (v as Record<string, unknown>)[rpc.specialSigKey] === rpc.specialSecretSig &&
    "value" in (v as object)
  );
}

/** The value with every secret wrapper replaced by what it wraps. */
export function unwrapSecrets(v: unknown): unknown {
  if (isSecretValue(v)) return unwrapSecrets(v.value);
  if (Array.isArray(v)) return v.map(unwrapSecrets);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrapSecrets(x)]));
  }
  return v;
}

/**
 * Every place `needle` occurs in `v` (as part of any string), with its path and whether it sits inside
 * a secret wrapper: `[{path: "stdin", secret: true}]`.
 */
export function findString(v: unknown, needle: string, path = "", secret = false): { path: string; secret: boolean }[] {
  if (isSecretValue(v)) return findString(v.value, needle, path, true);
  if (typeof v === "string") return v.includes(needle) ? [{ path, secret }] : [];
  if (Array.isArray(v)) return v.flatMap((x, i) => findString(x, needle, `${path}[${i}]`, secret));
  if (v !== null && typeof v === "object") {
    return Object.entries(v).flatMap(([k, x]) => findString(x, needle, path ? `${path}.${k}` : k, secret));
  }
  return [];
}

/** The kilo version the default mock's install step reports. */
export const MOCK_INSTALLED_VERSION = "7.7.7";

/**
 * A plausible state for a mocked resource: its inputs, plus the stdout kilo-fleet's steps print (the
 * lines the host scripts' own tests pin down), for a user whose HOME is /home/dev.
 */
export function defaultMockState(args: pulumi.runtime.MockResourceArgs): MockResult {
  const state: Record<string, unknown> = { ...args.inputs };
  if (args.type === "command:local:Command" || args.type === "command:remote:Command") {
    const inputs = unwrapSecrets(args.inputs) as Record<string, unknown>;
    const role = args.name.slice(args.name.lastIndexOf("-") + 1);
    const human: Record<string, string> = {
      install: `[kilo-fleet] downloading https://registry.npmjs.org/@kilocode/cli-linux-x64/-/cli-linux-x64-${MOCK_INSTALLED_VERSION}.tgz`,
    };
    const results: Record<string, StepResult> = {
      install: {
        step: "install",
        kiloVersion: MOCK_INSTALLED_VERSION,
        bin: "/home/dev/.local/bin/kilo",
        method: "npm",
        changed: true,
      },
      config: { step: "config", configPath: "~/.config/kilo/kilo.jsonc", status: "created" },
      env: { step: "env", envFilePath: "~/.config/kilo/codex-pooler.env", rcFiles: ["~/.profile"], changed: true },
    };
    if (role === "smoke") {
      const triggers = Array.isArray(inputs.triggers) ? (inputs.triggers as unknown[]) : [];
      const kilo = String(triggers.find((t) => String(t).startsWith("kilo=")) ?? "kilo=0.0.0-mock")
        .slice(5)
        .split(" ")[0];
      results.smoke = { step: "smoke", pass: true, level: "kilo-run", kiloVersion: kilo, seconds: 12.3 };
    }
    const stdout: Record<string, string> = Object.fromEntries(
      Object.entries(results).map(([k, r]) => [k, [human[k], formatResult(r)].filter(Boolean).join("\n")]),
    );
    state.stdout = stdout[role] ?? "";
    state.stderr = "";
  }
  return { id: `${args.name}-id`, state };
}

/**
 * Evaluates `program` as a stack (inside `runInPulumiStack`, the way the Node language host runs a
 * program), with `config` set, under mocks, and returns what it registered. Never throws for a program
 * error: it is returned as `error`.
 */
export function evaluate(program: () => unknown, options: EvaluateOptions = {}): Promise<Evaluation> {
  return runtimeState.withLocalStorage(async () => {
    const resources: RecordedResource[] = [];
    const outputsByUrn = new Map<string, Record<string, unknown>>();
    const warnings: string[] = [];
    const newResource = options.newResource ?? defaultMockState;

    await pulumi.runtime.setMocks(
      {
        newResource: async (args) => {
          const r = await newResource(args);
          return { id: r.id ?? `${args.name}-id`, state: r.state };
        },
        call: (args) => args.inputs,
      },
      options.project ?? "kilo-fleet",
      options.stack ?? "test",
      false,
    );
    const monitor = runtimeState.getStore().settings.monitor;
    const registerResource = monitor.registerResource.bind(monitor);
    monitor.registerResource = (req, cb) =>
      registerResource(req, (err, resp) => {
        if (!err && resp) {
          resources.push({
            urn: resp.getUrn(),
            type: req.getType(),
            name: req.getName(),
            custom: req.getCustom(),
            parent: req.getParent(),
            dependencies: req.getDependenciesList(),
            deleteBeforeReplace: req.getDeletebeforereplace(),
            additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
            replaceOnChanges: req.getReplaceonchangesList(),
            inputs: req.getObject()?.toJavaScript() ?? {},
          });
        }
        cb(err, resp);
      });
    const registerResourceOutputs = monitor.registerResourceOutputs.bind(monitor);
    monitor.registerResourceOutputs = (req, cb) => {
      outputsByUrn.set(req.getUrn(), req.getOutputs()?.toJavaScript() ?? {});
      return registerResourceOutputs(req, cb);
    };
    pulumi.runtime.setAllConfig(options.config ?? {}, options.secretKeys);

    const warn = vi.spyOn(pulumi.log, "warn").mockImplementation(async (msg: string) => {
      warnings.push(msg);
    });
    let error: unknown;
    try {
      // The program's own error is caught inside the stack's init, as the language host reports it, so
      // the stack resource itself does not leave rejected promises behind.
      await pulumi.runtime.runInPulumiStack(async () => {
        try {
          return (await program()) as Record<string, unknown> | undefined;
        } catch (e) {
          error = e;
          return undefined;
        }
      });
    } catch (e) {
      error ??= e;
    }
    try {
      await runtimeSettings.waitForRPCs();
    } catch (e) {
      error ??= e;
    } finally {
      warn.mockRestore();
    }
    for (const r of resources) {
      const outputs = outputsByUrn.get(r.urn);
      if (outputs !== undefined) r.outputs = outputs;
    }
    const stack = resources.find((r) => r.type === STACK_TYPE);
    return {
      resources,
      stackOutputs: stack?.outputs,
      warnings,
      error,
      byName(name: string) {
        const found = resources.filter((r) => r.name === name);
        if (found.length !== 1) throw new Error(`expected one resource named ${name}, found ${found.length}`);
        return found[0];
      },
    };
  });
}

/** The resources other than the stack itself. */
export function programResources(e: Evaluation): RecordedResource[] {
  return e.resources.filter((r) => r.type !== STACK_TYPE);
}

export interface EvaluationDiff {
  /** Resources only in the second evaluation, by name. */
  added: string[];
  /** Resources only in the first evaluation, by name. */
  removed: string[];
  /** Resources in both whose inputs differ (secrets unwrapped), by name, with the differing input keys. */
  changed: Record<string, string[]>;
}

/**
 * What `pulumi up` would do going from `before` to `after`, as far as inputs go: which resources are
 * added, removed, or have different inputs (compared with secrets unwrapped, so a changed secret
 * counts, and a value merely becoming secret does not). Resources are matched by URN.
 */
export function diffEvaluations(before: Evaluation, after: Evaluation): EvaluationDiff {
  const index = (e: Evaluation) => new Map(programResources(e).map((r) => [r.urn, r]));
  const a = index(before);
  const b = index(after);
  const added = [...b.keys()].filter((u) => !a.has(u)).map((u) => b.get(u)?.name ?? u);
  const removed = [...a.keys()].filter((u) => !b.has(u)).map((u) => a.get(u)?.name ?? u);
  const changed: Record<string, string[]> = {};
  for (const [urn, ra] of a) {
    const rb = b.get(urn);
    if (!rb) continue;
    const ia = unwrapSecrets(ra.inputs) as Record<string, unknown>;
    const ib = unwrapSecrets(rb.inputs) as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(ia), ...Object.keys(ib)])].sort();
    const differing = keys.filter((k) => !isDeepStrictEqual(ia[k], ib[k]));
    if (differing.length > 0) changed[ra.name] = differing;
  }
  return { added: added.sort(), removed: removed.sort(), changed };
}

// ---------------------------------------------------------------------------------------------------
// kilo-fleet's program under the mocks.

export { TEST_API_KEY, TEST_SSH_KEY };
export const TEST_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJtestHostKeyForKiloFleetTests0000000000 bob@desktop";

export interface HostEntry {
  name: string;
  local?: true;
  ssh?: {
    host: string;
    user: string;
    port?: number;
    hostKey?: string;
    insecureIgnoreHostKey?: boolean;
    proxy?: { host: string; user: string; port?: number; hostKey: string };
  };
  kiloVersion?: string;
  model?: string;
  shells?: string[];
  /** Rollout wave (`hosts[i].wave`; absent: 0). */
  wave?: number;
}

/**
 * The three-host fleet most tests use: one local host, one pinned SSH host, one on port 2222 that
 * accepts any host key (`insecureIgnoreHostKey`, the only way to leave a host unpinned).
 */
export const TEST_HOSTS: HostEntry[] = [
  { name: "alice-laptop", local: true },
  { name: "bob-desktop", ssh: { host: "10.0.0.5", user: "bob", hostKey: TEST_HOST_KEY } },
  { name: "carol-box", ssh: { host: "carol.lan", user: "carol", port: 2222, insecureIgnoreHostKey: true } },
];

/**
 * A stack's config as the Pulumi runtime hands it to the program: full keys, strings, structured values
 * as JSON text. `overrides` replaces or adds keys (short names, `undefined` deletes one).
 */
export function stackConfig(overrides: Record<string, unknown> = {}): {
  config: Record<string, string>;
  secretKeys: string[];
} {
  const values: Record<string, unknown> = {
    poolerBaseUrl: "https://pooler.example.com/v1",
    codexPoolerApiKey: TEST_API_KEY,
    sshPrivateKey: TEST_SSH_KEY,
    hosts: TEST_HOSTS,
    ...overrides,
  };
  const config: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) {
    if (v === undefined) continue;
    config[`kilo-fleet:${k}`] = typeof v === "string" ? v : JSON.stringify(v);
  }
  const secretKeys = [
    "kilo-fleet:codexPoolerApiKey",
    "kilo-fleet:sshPrivateKey",
    "kilo-fleet:npmToken",
    "kilo-fleet:apiKeys",
  ].filter((k) => k in config);
  return { config, secretKeys };
}

/**
 * Evaluates the real program, `program/index.ts`, in a fresh module graph (so its top-level code runs again)
 * with the given stack config.
 */
export function evaluateIndex(
  stack: { config: Record<string, string>; secretKeys?: string[] },
  options: Omit<EvaluateOptions, "config" | "secretKeys"> = {},
): Promise<Evaluation> {
  return evaluate(
    async () => {
      vi.resetModules();
      return await import("../program/index");
    },
    { ...options, config: stack.config, secretKeys: stack.secretKeys },
  );
}
