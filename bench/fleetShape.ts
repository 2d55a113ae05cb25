/**
 * The benchmark's fleets, how it compares two evaluations' inputs across processes, and which steps each
 * change should re-run.
 */
import { createHash } from "node:crypto";
import type { HostEntry } from "../harness/pulumiMocks";

export type HostKind = "local" | "ssh";

/** A well-formed, pinned host key for the benchmark's SSH hosts (nothing connects to them). */
const BENCH_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICnSXF8HvguLsFJEryZPITxsJ1lUtKXEQPVMway9ThIy";

/** N hosts, half SSH and half local (the shape of the tests' 1000-host fleet). */
export function fleetHosts(n: number): HostEntry[] {
  return Array.from({ length: n }, (_, i) => {
    const name = `dev-${String(i).padStart(4, "0")}`;
    return i % 2 === 0
      ? { name, ssh: { host: `10.1.${i >> 8}.${i & 255}`, user: "dev", hostKey: BENCH_HOST_KEY } }
      : { name, local: true };
  });
}

/** A host key line the shape of `ssh-keyscan -t ed25519` output (a fixed, made-up key). */
function ed25519HostKeyLine(): string {
  const str = (b: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    return Buffer.concat([len, b]);
  };
  const blob = Buffer.concat([str(Buffer.from("ssh-ed25519")), str(Buffer.alloc(32, 0x5a))]);
  return `ssh-ed25519 ${blob.toString("base64")}`;
}

/**
 * The hosts of the state and change figures: one local, one SSH with a pinned host key (the recommended
 * setup, and the larger state).
 */
export const STATE_HOSTS: HostEntry[] = [
  { name: "alice-laptop", local: true },
  { name: "bob-desktop", ssh: { host: "bob-desktop.example.com", user: "bob", hostKey: ed25519HostKeyLine() } },
];

/** The state figure's SSH host behind a jump host (`ssh.proxy`, pinned; the jump host uses `sshPrivateKey`). */
export const JUMP_STATE_HOST: HostEntry = {
  name: "dana-bastioned",
  ssh: {
    host: "dana.internal.example.com",
    user: "dana",
    hostKey: ed25519HostKeyLine(),
    proxy: { host: "bastion.example.com", user: "jump", hostKey: ed25519HostKeyLine() },
  },
};

/** The version a "kilo bump" moves to (from the default pin). */
export const KILO_BUMP_VERSION = "7.8.0";

export const SCENARIOS = ["unchanged", "rotation", "kiloBump", "toolUpgrade"] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/**
 * The steps a change should re-run on a kind of host (issue 9): none for an unchanged stack; env + smoke
 * for a key rotation; install + smoke for a kilo bump; for a new kilo-fleet, the tool step and the steps
 * whose inputs name the tool (`namingTool`), nothing else.
 */
export function expectedSteps(scenario: ScenarioName, namingTool: readonly string[]): string[] {
  switch (scenario) {
    case "unchanged":
      return [];
    case "rotation":
      return ["env", "smoke"];
    case "kiloBump":
      return ["install", "smoke"];
    case "toolUpgrade":
      return [...new Set(["tool", ...namingTool])].sort();
  }
}

/** JSON with object keys sorted: equal for values `isDeepStrictEqual` calls equal (plain JSON data). */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const entries = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

export const digestInputs = (inputs: unknown): string =>
  createHash("sha256").update(canonicalJson(inputs)).digest("hex");

/**
 * Compares two evaluations' `{urn: digest}` maps: resources whose inputs differ plus those in only one.
 */
export function countDiffering(a: Record<string, string>, b: Record<string, string>): number {
  let n = 0;
  for (const [urn, d] of Object.entries(a)) if (b[urn] !== d) n++;
  for (const urn of Object.keys(b)) if (!(urn in a)) n++;
  return n;
}
