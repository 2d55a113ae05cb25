/**
 * `smokeCheck.level` (issue 10, item 6): `kilo-run` by default, `pool` fleet-wide or per host
 * (`hosts[i].smokeCheck.level` wins), refused when misspelt, and carried into the smoke step's argument
 * (whose only other settings are the host and the timeout: what it checks comes from the deployed kilo.jsonc).
 */
import { describe, expect, it } from "vitest";
import { decodeStepArg } from "../common/stepArgs";
import { resolveHosts } from "../deployer/resolveHosts";
import { parseSettings } from "../deployer/settings";
import { buildSettings, deployScripts } from "../harness/hostHome";
import { smokeTarget } from "../host/smokeTarget";

function parse(extra: Record<string, unknown>) {
  return parseSettings({
    "kilo-fleet:poolerBaseUrl": "http://localhost:4000/v1",
    ...Object.fromEntries(Object.entries(extra).map(([k, v]) => [`kilo-fleet:${k}`, v])),
  });
}

/** The smoke step's decoded JSON argument. */
function smokeArg(extra: Record<string, unknown> = {}, hostExtra: Record<string, unknown> = {}) {
  const create = deployScripts(buildSettings(extra, hostExtra)).smoke?.create ?? "";
  const word = /smoke '([^']*)'$/.exec(create)?.[1];
  return decodeStepArg(word ?? "") as Record<string, unknown>;
}

describe("smokeCheck.level", () => {
  it("defaults to kilo-run; pool fleet-wide; a host's own level wins either way", () => {
    expect(smokeArg().level).toBe("kilo-run");
    expect(smokeArg({ smokeCheck: { level: "pool" } }).level).toBe("pool");
    expect(smokeArg({}, { smokeCheck: { level: "pool" } }).level).toBe("pool");
    expect(smokeArg({ smokeCheck: { level: "pool" } }, { smokeCheck: { level: "kilo-run" } }).level).toBe("kilo-run");
    // JSON text, as `pulumi config set --path` hands it over, with two hosts: one canary.
    const r = parse({
      smokeCheck: JSON.stringify({ level: "pool", timeoutSeconds: 60 }),
      hosts: JSON.stringify([
        { name: "canary", local: true, smokeCheck: { level: "kilo-run" } },
        { name: "rest", local: true },
      ]),
    });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const specs = resolveHosts({
      stack: {
        "kilo-fleet:poolerBaseUrl": "http://localhost:4000/v1",
        "kilo-fleet:smokeCheck": JSON.stringify({ level: "pool", timeoutSeconds: 60 }),
        "kilo-fleet:hosts": JSON.stringify([
          { name: "canary", local: true, smokeCheck: { level: "kilo-run" } },
          { name: "rest", local: true },
        ]),
      },
    }).specs;
    expect(specs.map((s) => s.smokeCheck)).toEqual([
      { enabled: true, timeoutSeconds: 60, level: "kilo-run" },
      { enabled: true, timeoutSeconds: 60, level: "pool" },
    ]);
  });

  it("refuses other values and unknown per-host keys, with a hint", () => {
    const bad = parse({ smokeCheck: { level: "full" } });
    expect(bad.ok).toBe(false);
    if (!bad.ok)
      expect(bad.errors).toContainEqual({
        key: "kilo-fleet:smokeCheck.level",
        message: 'must be "kilo-run" or "pool"',
      });
    const host = parse({ hosts: [{ name: "a", local: true, smokeCheck: { levle: "pool" } }] });
    expect(host.ok).toBe(false);
    if (!host.ok) expect(host.errors.map((e) => e.message).join("\n")).toMatch(/unknown key \(did you mean level\?\)/);
  });

  it("the smoke step's argument is its own settings; the models' limits reach it through the deployed kilo.jsonc", () => {
    const extra = {
      models: { a: { limit: { context: 1000, output: 10 } }, b: { limit: { context: 2000, input: 1500, output: 10 } } },
      model: "a",
    };
    expect(smokeArg(extra)).toEqual({ host: "test-host", timeoutSeconds: 180, level: "kilo-run" });
    const built = buildSettings(extra);
    const target = smokeTarget(JSON.stringify(deployScripts(built).kiloConfig), "kilo.jsonc");
    expect(target.model).toBe("codex-pooler/a");
    expect(target.models).toEqual({
      a: { limit: { context: 1000, output: 10 } },
      b: { limit: { context: 2000, input: 1500, output: 10 } },
    });
  });
});
