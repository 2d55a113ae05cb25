/**
 * What the Pulumi state holds for one host, in bytes, from an evaluation under mocks (pure: recorded
 * resources and step outputs in, byte counts out).
 *
 * The figure is "inputs plus outputs": for each of the host's resources, its inputs and its outputs as a
 * checkpoint stores them, compact JSON (UTF-8). `@pulumi/command` echoes every input as an output and adds
 * `stdout` and `stderr`, so a Command's outputs are a copy of its inputs plus those two; a CopyToRemote's
 * are a copy of its inputs; the component's are what it registered; and the stack's outputs hold one entry
 * per host. A secret is stored encrypted, as the passphrase secrets provider writes it
 * (`{"4dabf…":"1b47…","ciphertext":"v1:<base64 nonce>:<base64 AES-GCM of the value's JSON>"}`, longer than
 * the value), and an asset as its path plus its sha256 (never its bytes).
 *
 * `entryBytes` adds what a checkpoint keeps around those (URNs, parent, dependencies, provider reference,
 * id, timestamps): the whole resource entries, for the curious; the targets are about `bytes`.
 */

import type { RecordedResource } from "../harness/pulumiMocks";

export const SIG_KEY = "4dabf18193072939515e22adb298388d";
export const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
export const ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17";

/** The parts of a recorded resource the figure reads (inputs raw: secrets still wrapped). */
export type StateResource = Omit<RecordedResource, "replaceOnChanges">;

/** A step's stdout and stderr as the provider keeps them. */
export interface StepOutput {
  stdout: string;
  stderr: string;
}

const isSig = (v: unknown, sig: string): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v) && (v as Record<string, unknown>)[SIG_KEY] === sig;

/** The value with every secret wrapper replaced by what it wraps. */
export function plain(v: unknown): unknown {
  if (isSig(v, SECRET_SIG)) return plain(v.value);
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

const base64Length = (bytes: number) => 4 * Math.ceil(bytes / 3);

/**
 * The length of the passphrase provider's ciphertext of `plaintextBytes` bytes:
 * `v1:` + base64(12-byte nonce) + `:` + base64(ciphertext + 16-byte GCM tag).
 */
export function ciphertextLength(plaintextBytes: number): number {
  return 3 + base64Length(12) + 1 + base64Length(plaintextBytes + 16);
}

const utf8Bytes = (s: string) => Buffer.byteLength(s, "utf8");

/** `v` as the checkpoint stores it: secrets as ciphertext envelopes (of the real length), assets with a hash. */
export function stateValue(v: unknown): unknown {
  if (isSig(v, SECRET_SIG)) {
    const n = ciphertextLength(utf8Bytes(JSON.stringify(plain(v.value)) ?? "null"));
    return { [SIG_KEY]: SECRET_SIG, ciphertext: `v1:${"A".repeat(16)}:${"A".repeat(n - 20)}` };
  }
  if (isSig(v, ASSET_SIG)) return { ...v, hash: "0".repeat(64) };
  if (Array.isArray(v)) return v.map(stateValue);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, stateValue(x)]));
  }
  return v;
}

/** Compact JSON bytes of a value as stored (0 for nothing). */
export function jsonBytes(v: unknown): number {
  return v === undefined ? 0 : utf8Bytes(JSON.stringify(v));
}

const isCommand = (type: string) => type === "command:local:Command" || type === "command:remote:Command";

/** The outputs a checkpoint stores for `r`: the provider's echo for Commands and copies, the component's own. */
export function stateOutputs(r: StateResource, out: StepOutput | undefined): Record<string, unknown> | undefined {
  if (!r.custom) return r.outputs === undefined ? undefined : (stateValue(r.outputs) as Record<string, unknown>);
  const echoed = stateValue(r.inputs) as Record<string, unknown>;
  if (!isCommand(r.type)) return echoed;
  const secret = (key: "stdout" | "stderr", text: string) =>
    r.additionalSecretOutputs.includes(key) ? stateValue({ [SIG_KEY]: SECRET_SIG, value: text }) : text;
  return { ...echoed, stdout: secret("stdout", out?.stdout ?? ""), stderr: secret("stderr", out?.stderr ?? "") };
}

/** One line of the breakdown: `<resource>.<key>` and the bytes it costs (a Command's input counts twice). */
export interface Contributor {
  what: string;
  bytes: number;
}

export interface ResourceBytes {
  name: string;
  type: string;
  inputBytes: number;
  outputBytes: number;
  /** The whole checkpoint entry (inputs, outputs, URNs, provider, id, timestamps). */
  entryBytes: number;
}

export interface HostStateBytes {
  /** Inputs plus outputs of the host's resources, plus its entry in the stack's outputs. */
  bytes: number;
  /** The same with every resource's whole checkpoint entry. */
  entryBytes: number;
  /** The host's entry in the stack outputs. */
  stackOutputBytes: number;
  resources: ResourceBytes[];
  /** Where the bytes are, largest first. */
  contributors: Contributor[];
}

/** The checkpoint's entry for `r` (apitype ResourceV3's fields), compact JSON. */
export function checkpointEntry(r: StateResource, out: StepOutput | undefined): Record<string, unknown> {
  const [, , stack, project] = /^urn:pulumi:([^:]*)::([^:]*)::/.exec(r.urn) ?? ["", "", "stack", "project"];
  const time = "2025-01-01T00:00:00.000000000Z";
  const inputs = r.custom ? stateValue(r.inputs) : undefined;
  return {
    urn: r.urn,
    custom: r.custom,
    ...(r.custom ? { id: `${r.name}-0123abcd` } : {}),
    type: r.type,
    ...(inputs && Object.keys(inputs).length > 0 ? { inputs } : {}),
    ...(stateOutputs(r, out) ? { outputs: stateOutputs(r, out) } : {}),
    ...(r.parent ? { parent: r.parent } : {}),
    ...(r.dependencies.length > 0 ? { dependencies: r.dependencies } : {}),
    ...(r.custom
      ? {
          provider: `urn:pulumi:${stack}::${project}::pulumi:providers:command::default_1_2_1::00000000-0000-0000-0000-000000000000`,
        }
      : {}),
    ...(r.deleteBeforeReplace ? { deleteBeforeReplace: true } : {}),
    ...(r.additionalSecretOutputs.length > 0 ? { additionalSecretOutputs: r.additionalSecretOutputs } : {}),
    created: time,
    modified: time,
  };
}

/**
 * The state bytes of host `host`: its component (type `componentType`, named `host`) and that component's
 * children, each child's step output from `outputOf`, plus `stackOutput` (the host's entry in the stack's
 * outputs, as `"<host>":<value>`).
 */
export function hostStateBytes(
  resources: readonly StateResource[],
  host: string,
  componentType: string,
  outputOf: (r: StateResource) => StepOutput | undefined,
  stackOutput?: unknown,
): HostStateBytes {
  const component = resources.find((r) => r.type === componentType && r.name === host);
  if (!component) throw new Error(`no ${componentType} named ${host} among the recorded resources`);
  const mine = [component, ...resources.filter((r) => r.parent === component.urn)];
  const contributors: Contributor[] = [];
  const rows = mine.map((r): ResourceBytes => {
    const out = outputOf(r);
    const outputs = stateOutputs(r, out);
    const inputBytes = r.custom ? jsonBytes(stateValue(r.inputs)) : 0;
    const outputBytes = jsonBytes(outputs);
    if (r.custom) {
      // An input is stored twice (input and echoed output): its key, its value, its comma, twice.
      for (const [k, v] of Object.entries(r.inputs)) {
        contributors.push({ what: `${r.name}.${k}`, bytes: 2 * jsonBytes({ [k]: stateValue(v) }) - 4 });
      }
      if (isCommand(r.type) && outputs) {
        for (const k of ["stdout", "stderr"]) {
          contributors.push({ what: `${r.name}.${k}`, bytes: jsonBytes({ [k]: outputs[k] }) - 2 });
        }
      }
    } else {
      for (const [k, v] of Object.entries(outputs ?? {})) {
        contributors.push({ what: `${r.name}.${k} (output)`, bytes: jsonBytes({ [k]: v }) - 2 });
      }
    }
    return { name: r.name, type: r.type, inputBytes, outputBytes, entryBytes: jsonBytes(checkpointEntry(r, out)) };
  });
  const stackOutputBytes = stackOutput === undefined ? 0 : jsonBytes({ [host]: stateValue(stackOutput) }) - 2;
  if (stackOutputBytes > 0) contributors.push({ what: `stack output ${host}`, bytes: stackOutputBytes });
  contributors.sort((a, b) => b.bytes - a.bytes || (a.what < b.what ? -1 : 1));
  const sum = (f: (x: ResourceBytes) => number) => rows.reduce((a, x) => a + f(x), 0);
  return {
    bytes: sum((x) => x.inputBytes + x.outputBytes) + stackOutputBytes,
    entryBytes: sum((x) => x.entryBytes) + stackOutputBytes,
    stackOutputBytes,
    resources: rows,
    contributors,
  };
}
