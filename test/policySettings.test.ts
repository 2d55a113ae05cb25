/**
 * The `policy`, `become` and `policyEnv` settings: what validate refuses (key path named), how a host's
 * policy is resolved from the fleet's and its own, and what its steps get.
 */
import { describe, expect, it } from "vitest";
import { checkArgsFor } from "../cli/doctor";
import { decodeStepArg } from "../common/stepArgs";
import { hostStepCommands, policySha256 } from "../deployer/hostSteps";
import { resolveHosts } from "../deployer/resolveHosts";

const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
const stack = (extra: Record<string, unknown>, hosts?: unknown[]) => ({
  "kilo-fleet:poolerBaseUrl": "https://pooler.example.com/v1",
  "kilo-fleet:hosts": JSON.stringify(
    hosts ?? [
      { name: "a", local: true },
      { name: "b", ssh: { host: "b.lan", user: "bob", hostKey: HOST_KEY } },
    ],
  ),
  ...Object.fromEntries(
    Object.entries(extra).map(([k, v]) => [`kilo-fleet:${k}`, typeof v === "string" ? v : JSON.stringify(v)]),
  ),
});
const errorsOf = (extra: Record<string, unknown>, hosts?: unknown[]) =>
  resolveHosts({ stack: stack(extra, hosts) }).errors.map((e) => `${e.key}: ${e.message}`);

describe("validate refuses a policy kilo would not enforce, naming the key", () => {
  it.each([
    [
      { permission: "allow" },
      'kilo-fleet:policy.permission: must be an object such as {"bash": "deny", "edit": "ask"}; a bare string is every tool at once (write {"*": "…"} if that is meant)',
    ],
    [
      { themes: "dark" },
      "kilo-fleet:policy.themes: is not a kilo.jsonc key kilo 7.7.7 knows (kilo drops unknown keys silently: it would not be enforced)",
    ],
    [
      { autoupdate: false },
      "kilo-fleet:policy.autoupdate: is read by kilo only from the user's own config, never the managed one: pin kiloVersion instead (the env file then sets KILO_DISABLE_AUTOUPDATE=1)",
    ],
    [{ $schema: "x" }, "kilo-fleet:policy.$schema: is always kilo's schema URL (kilo-fleet writes it)"],
    [{ share: "never" }, 'kilo-fleet:policy.share: must be "manual", "auto" or "disabled"'],
    [{ model: "gpt-9" }, 'kilo-fleet:policy.model: "gpt-9" is not a key of models (defined: gpt-5.5)'],
    [
      { provider: { p: { options: { apiKey: "sk-literal" } } } },
      "kilo-fleet:policy.provider.p.options.apiKey: must be an {env:VAR} reference: the managed file is readable by every user, and plain in the state",
    ],
    [{ enabled_providers: "codex-pooler" }, "kilo-fleet:policy.enabled_providers: must be a list of provider ids"],
  ])("%j", (policy, message) => {
    expect(errorsOf({ policy })).toEqual([message]);
  });

  it("per host too, and become", () => {
    expect(errorsOf({}, [{ name: "a", local: true, policy: { permission: "ask", bogus: 1 }, become: "root" }])).toEqual(
      [
        'kilo-fleet:hosts[0].policy.permission: must be an object such as {"bash": "deny", "edit": "ask"}; a bare string is every tool at once (write {"*": "…"} if that is meant)',
        "kilo-fleet:hosts[0].policy.bogus: is not a kilo.jsonc key kilo 7.7.7 knows (kilo drops unknown keys silently: it would not be enforced)",
        'kilo-fleet:hosts[0].become: must be "sudo" or "none"',
      ],
    );
  });
});

describe("a host's policy", () => {
  it("the fleet's, with the host's keys over it (false: none); the pool provider by default; become per host", () => {
    const r = resolveHosts({
      stack: stack({ policy: { model: "gpt-5.5", share: "disabled", permission: { bash: "deny" } }, become: "sudo" }, [
        { name: "a", local: true, become: "none" },
        { name: "b", ssh: { host: "b.lan", user: "bob", hostKey: HOST_KEY }, policy: { permission: { bash: "ask" } } },
        { name: "c", local: true, policy: false },
      ]),
    });
    expect(r.errors).toEqual([]);
    const [a, b, c] = r.specs;
    expect(a.policy).toEqual({
      provider: {
        "codex-pooler": { options: { baseURL: "https://pooler.example.com/v1", apiKey: "{env:CODEX_POOLER_API_KEY}" } },
      },
      enabled_providers: ["codex-pooler"],
      model: "codex-pooler/gpt-5.5",
      permission: { bash: "deny" },
      share: "disabled",
    });
    expect(a.become).toBeUndefined();
    expect(a.policyEnv).toEqual({ telemetryOff: true, shareOff: true });
    expect(b.policy?.permission).toEqual({ bash: "ask" });
    expect(b.become).toBe("sudo");
    expect(c.policy).toBeUndefined();
    expect(c.policyEnv).toBeUndefined();

    // The steps: the policy step's argument is the policy and become; env and smoke get theirs.
    const steps = hostStepCommands(b.name, b, { id: "0123456789ab", file: "/tool" }, "ssh");
    expect(steps.policy?.delete).toBe(
      `/bin/sh ~/.local/share/kilo-fleet/tool-0123456789ab.cjs policy-delete '{\`host\`:\`b\`,\`become\`:\`sudo\`}'`,
    );
    expect(steps.policy?.create).toContain(`policy-apply '{\`host\`:\`b\`,\`policy\`:{\`provider\`:`);
    expect(steps.env.create).toContain("`telemetryOff`:true,`shareOff`:true");
    // The smoke check gets the policy file's hash, not a second copy of the policy in the state.
    expect(steps.smoke?.create).toContain(`\`policySha256\`:\`${policySha256(b.policy ?? {})}\``);
    expect(steps.smoke?.create).not.toContain('"provider"');
    const none = hostStepCommands(c.name, c, { id: "0123456789ab", file: "/tool" }, "local");
    expect(none.policy).toBeUndefined();
    expect(none.env.create).not.toContain("telemetryOff");
  });

  it("a KiloHost's arguments are checked alike, keyed by the argument", () => {
    const r = resolveHosts({
      kiloHost: "h",
      args: { poolerBaseUrl: "https://p.example/v1", policy: { permission: "deny" } },
    });
    expect(r.errors.map((e) => e.key)).toEqual(["policy.permission"]);
  });
});

describe("around the policy", () => {
  it("validate warns about a host whose policy step could not get root; doctor gets the policy", () => {
    const r = resolveHosts({
      stack: stack({ policy: { share: "disabled" } }, [
        { name: "b", ssh: { host: "b.lan", user: "bob", hostKey: HOST_KEY } },
        { name: "r", ssh: { host: "r.lan", user: "root", hostKey: HOST_KEY } },
        { name: "s", ssh: { host: "s.lan", user: "sam", hostKey: HOST_KEY }, become: "sudo" },
      ]),
    });
    expect(r.errors).toEqual([]);
    expect(r.warnings.filter((w) => w.key.includes("become"))).toEqual([
      {
        key: "kilo-fleet:become",
        message:
          'host "b" has a policy, which needs root to write kilo\'s managed config, and its SSH user bob is not root: set become to "sudo" (passwordless sudo), or its policy step fails',
        host: "b",
      },
    ]);
    const args = checkArgsFor(r.specs[2], false, undefined);
    expect(args.policy).toEqual(r.specs[2].policy);
    expect([args.telemetryOff, args.shareOff]).toEqual([true, true]);
  });
});

describe("a hostile policy value", () => {
  it("travels as one quoted word: no ' or \\ in the command, the same JSON on the host", () => {
    const nasty = 'it\'s a \\ test; $(rm -rf ~) `x` "q" %27';
    const r = resolveHosts({
      stack: stack({ policy: { instructions: [nasty], username: nasty } }, [{ name: "a", local: true }]),
    });
    expect(r.errors).toEqual([]);
    const steps = hostStepCommands("a", r.specs[0], { id: "0123456789ab", file: "/tool" }, "local");
    const create = steps.policy?.create ?? "";
    const word = /policy-apply '([^']*)'$/.exec(create)?.[1];
    expect(word).toBeDefined();
    expect(create.split("'").length).toBe(3);
    expect(create).not.toContain("\\");
    const back = decodeStepArg(word ?? "") as { policy: { instructions: string[]; username: string } };
    expect(back.policy.instructions).toEqual([nasty]);
    expect(back.policy.username).toBe(nasty);
  });
});
