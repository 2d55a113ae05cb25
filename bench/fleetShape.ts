/** The benchmark's fleets and how it compares two evaluations' inputs across processes. */
import { createHash } from "node:crypto";
import type { HostEntry } from "../test/support/pulumiMocks";

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
