/** Per-host API keys (deployer/apiKeys.ts): names only, never values; the key each host deploys with. */
import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import {
  apiKeyEntryErrors,
  apiKeyErrors,
  apiKeyHostNames,
  apiKeyPath,
  keyForHost,
  missingApiKeyErrors,
  perHostApiKeys,
} from "../deployer/apiKeys";

const HOSTS = ["alice-laptop", "bob-desktop", "carol-box"];

describe("structure", () => {
  it("reads the host names from every form of the setting, never needing a value", () => {
    expect(apiKeyHostNames('{"alice-laptop":"[encrypted]","bob-desktop":"x"}')).toEqual([
      "alice-laptop",
      "bob-desktop",
    ]);
    expect(apiKeyHostNames({ a: { secure: "v1:x" } })).toEqual(["a"]);
    for (const none of [undefined, "", "[encrypted]", "[1]", [], null, 5]) expect(apiKeyHostNames(none)).toEqual([]);
    expect(apiKeyPath("alice-laptop")).toBe("apiKeys.alice-laptop");
    expect(apiKeyPath("a.b")).toBe('apiKeys["a.b"]');
  });

  it("an entry naming no host: one error each, with did-you-mean and the hosts", () => {
    expect(apiKeyEntryErrors(["alice-laptop", "bob-dekstop", "zzz"], HOSTS)).toEqual([
      {
        key: "kilo-fleet:apiKeys.bob-dekstop",
        message:
          "names no host in kilo-fleet:hosts (did you mean bob-desktop?); hosts: alice-laptop, bob-desktop, carol-box. Remove it (pulumi config rm --path 'apiKeys.bob-dekstop') or rename it to the host it is for",
      },
      expect.objectContaining({
        key: "kilo-fleet:apiKeys.zzz",
        message: expect.stringMatching(/^names no host in kilo-fleet:hosts; hosts:/),
      }),
    ]);
  });

  it("a host without a key is an error only when there is no fleet key, naming the host and both fixes", () => {
    expect(missingApiKeyErrors(HOSTS, ["alice-laptop"], true)).toEqual([]);
    const errors = missingApiKeyErrors(HOSTS, ["alice-laptop"], false);
    expect(errors.map((e) => e.key)).toEqual(["kilo-fleet:apiKeys.bob-desktop", "kilo-fleet:apiKeys.carol-box"]);
    expect(errors[0].message).toBe(
      `host "bob-desktop" has no API key: give it its own (pulumi config set --secret --path 'apiKeys.bob-desktop' <key>) or set a fleet key for every host without one (pulumi config set --secret codexPoolerApiKey <key>)`,
    );
    expect(
      apiKeyErrors(HOSTS, JSON.stringify({ "alice-laptop": "k", "bob-desktop": "k", "carol-box": "k" }), false),
    ).toEqual({
      entries: [],
      missing: [],
    });
  });
});

describe("the key each host deploys with", () => {
  it("its own entry, else the fleet key, else none", () => {
    const own = pulumi.secret("test-key-alice");
    const fleet = pulumi.secret("test-key-fleet");
    expect(keyForHost("alice-laptop", { codexPoolerApiKey: fleet, apiKeys: { "alice-laptop": own } })).toBe(own);
    expect(keyForHost("bob-desktop", { codexPoolerApiKey: fleet, apiKeys: { "alice-laptop": own } })).toBe(fleet);
    expect(keyForHost("bob-desktop", { apiKeys: { "alice-laptop": own } })).toBeUndefined();
    expect(keyForHost("toString", { codexPoolerApiKey: fleet, apiKeys: {} })).toBe(fleet);
  });

  it("perHostApiKeys: one secret Output per host, each holding only that host's key", async () => {
    const whole = pulumi.secret({ "alice-laptop": "test-key-a", "bob-desktop": "test-key-b" });
    const per = perHostApiKeys(["alice-laptop", "bob-desktop"], whole, pulumi);
    const value = (o: pulumi.Output<string>) => new Promise<string>((resolve) => o.apply(resolve));
    expect(await value(per["alice-laptop"])).toBe("test-key-a");
    expect(await value(per["bob-desktop"])).toBe("test-key-b");
    expect(await pulumi.isSecret(per["alice-laptop"])).toBe(true);
  });
});
