/**
 * Lets harness/pulumiMocks.ts run outside vitest (the benchmark's evaluation workers): it imports
 * `vi` from "vitest" for two things only, `vi.spyOn(pulumi.log, "warn").mockImplementation(...)` /
 * `mockRestore()` and `vi.resetModules()`, and vitest refuses to load outside its runner. Importing this
 * module first makes `require("vitest")` return a stand-in with just those two.
 *
 * `resetModules` is a no-op here: every evaluation worker is a fresh process, so the program's module
 * graph is fresh for its first evaluation; a second evaluation in the same process calls the program's
 * functions (deployer/fleet.ts) directly instead of re-importing index.ts.
 */
import Module from "node:module";

type Fn = (...args: unknown[]) => unknown;

function spyOn(obj: Record<string, unknown>, key: string) {
  const original = obj[key];
  return {
    mockImplementation(fn: Fn) {
      obj[key] = fn;
      return this;
    },
    mockRestore() {
      obj[key] = original;
    },
  };
}

export const viStandIn = { spyOn, resetModules: () => undefined };

const M = Module as unknown as { _load: (request: string, parent: unknown, isMain: boolean) => unknown };
const load = M._load;
M._load = function (this: unknown, request: string, parent: unknown, isMain: boolean) {
  if (request === "vitest") return { vi: viStandIn };
  return load.call(this, request, parent, isMain);
};
