import { describe, expect, it } from "vitest";
import { MAX_ARG_BYTES } from "../common/argLimit";
import { warningText } from "../deployer/hostSpec";
import { resolveHosts } from "../deployer/resolveHosts";
import { ENCRYPTED, formatErrors, formatKeyPath, parseSettings, SEED_MODEL, type Settings } from "../deployer/settings";

const BASE = "http://localhost:4000/v1";

/** The raw config Pulumi would hand over: `kilo-fleet:` keys, `poolerBaseUrl` set unless overridden. */
function raw(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const out: Record<string, unknown> = { "kilo-fleet:poolerBaseUrl": BASE };
  for (const [k, v] of Object.entries(extra)) out[`kilo-fleet:${k}`] = v;
  return out;
}

/** Every error as one `key: message` line (empty when the config is valid). */
function errorLines(extra: Record<string, unknown>): string[] {
  const r = parseSettings(raw(extra));
  return r.ok ? [] : formatErrors(r.errors).split("\n");
}

/** The warnings validate prints and `pulumi up` logs, as `key: message` lines. */
function warningsOf(extra: Record<string, unknown> = {}): string[] {
  const r = resolveHosts({ stack: raw(extra) });
  expect(r.errors).toEqual([]);
  return r.warnings.map(warningText);
}

function settingsOf(extra: Record<string, unknown> = {}): Settings {
  const r = parseSettings(raw(extra));
  if (!r.ok) throw new Error(formatErrors(r.errors));
  return r.settings;
}

/** A well-formed ed25519 host key line (the blob of a throwaway key). */
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICpwKafbufgN/DFRTNy7UXTcX9APmrEuh7+tZoozMi4I";
/** An SSH host entry, its host key pinned unless `ssh` says otherwise. */
const sshHost = (name: string, ssh: Record<string, unknown> = {}) => ({
  name,
  ssh: { host: "h", user: "u", hostKey: HOST_KEY, ...ssh },
});

describe("defaults", () => {
  it("fills every default when only poolerBaseUrl is set", () => {
    const s = settingsOf();
    expect(s).toEqual({
      poolerBaseUrl: BASE,
      providerId: "codex-pooler",
      apiKeyEnvVar: "CODEX_POOLER_API_KEY",
      kiloVersion: "7.7.7",
      model: "gpt-5.5",
      models: { "gpt-5.5": SEED_MODEL },
      compactionThresholdPercent: 75,
      kiloSettings: {},
      smokeCheck: { enabled: true, timeoutSeconds: 180, level: "kilo-run" },
      install: { method: "package" },
      become: "none",
      policyEnv: { telemetryOff: true, shareOff: true },
      ssh: { connectTimeoutSeconds: 10, connectAttempts: 3 },
      hosts: [{ name: "local", local: true }],
    });
  });

  it("gives each parse its own copy of the default models", () => {
    const a = settingsOf();
    (a.models["gpt-5.5"] as { name?: string }).name = "changed";
    expect(settingsOf().models["gpt-5.5"].name).toBe(SEED_MODEL.name);
  });

  it("fills smokeCheck fields missing from a partial object", () => {
    expect(settingsOf({ smokeCheck: { enabled: false } }).smokeCheck).toEqual({
      enabled: false,
      timeoutSeconds: 180,
      level: "kilo-run",
    });
  });

  it("install.method: package by default, npm when asked, per host too; anything else refused in one line", () => {
    expect(settingsOf({ install: {} }).install).toEqual({ method: "package" });
    expect(settingsOf({ install: { method: "npm" } }).install).toEqual({ method: "npm" });
    const s = settingsOf({
      hosts: [
        { name: "a", local: true, install: { method: "npm" } },
        { name: "b", local: true },
      ],
    });
    expect(s.hosts[0].install).toEqual({ method: "npm" });
    expect(s.hosts[1].install).toBeUndefined();
    // As JSON text, the way the Pulumi runtime hands structured keys over.
    expect(settingsOf({ install: JSON.stringify({ method: "npm" }) }).install).toEqual({ method: "npm" });
    expect(errorLines({ install: { method: "brew" } })).toEqual([
      'kilo-fleet:install.method: must be "package" or "npm"',
    ]);
    expect(errorLines({ install: { methd: "npm" } })).toEqual([
      "kilo-fleet:install.methd: unknown key (did you mean method?)",
    ]);
    expect(errorLines({ hosts: [{ name: "a", local: true, install: { method: "apt" } }] })).toEqual([
      'kilo-fleet:hosts[0].install.method: must be "package" or "npm"',
    ]);
  });

  it("ignores keys of other namespaces", () => {
    expect(parseSettings({ ...raw(), "aws:region": "x", "pulumi:tags": {} }).ok).toBe(true);
  });
});

describe("poolerBaseUrl", () => {
  it("is required", () => {
    const r = parseSettings({});
    expect(r.ok).toBe(false);
    expect(r.ok ? "" : formatErrors(r.errors)).toMatch(/^kilo-fleet:poolerBaseUrl: is required/);
  });

  it.each([
    ["http://localhost:4000/v1/chat/completions", /not the \/chat\/completions endpoint.*appends \/chat\/completions/],
    ["https://p.example.com/v1/responses", /must not point at \/responses.*chat-completions client/],
    ["https://p.example.com/backend-api/codex", /must not point at \/backend-api\/codex/],
    ["https://p.example.com/backend-api/codex/v1", /must not point at \/backend-api\/codex/],
    ["https://p.example.com", /must end in \/v1/],
    ["https://p.example.com/v2", /must end in \/v1/],
    ["https://p.example.com/v1/", /must not end in a slash/],
    ["ftp://p.example.com/v1", /must use http or https/],
    ["not a url", /must be an http\(s\) URL ending in \/v1/],
    ["https://user:pw@p.example.com/v1", /credentials/],
  ])("refuses %s with the reason", (url, reason) => {
    const lines = errorLines({ poolerBaseUrl: url });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^kilo-fleet:poolerBaseUrl: /);
    expect(lines[0]).toMatch(reason);
  });

  it("names the /v1 base to write instead", () => {
    expect(errorLines({ poolerBaseUrl: "https://p.example.com/v1/chat/completions" })[0]).toContain(
      '"https://p.example.com/v1"',
    );
  });

  it("accepts the local and the deployed form", () => {
    expect(errorLines({ poolerBaseUrl: "http://localhost:4000/v1" })).toEqual([]);
    expect(errorLines({ poolerBaseUrl: "https://codex-pooler.example.com/v1" })).toEqual([]);
  });

  it("warns about plain http to a host that is not this machine", () => {
    expect(warningsOf({ poolerBaseUrl: "http://pooler.internal:4000/v1" }).join("\n")).toMatch(
      /^kilo-fleet:poolerBaseUrl: plain http/,
    );
    expect(warningsOf()).toEqual([]);
  });
});

describe("secrets", () => {
  it("codexPoolerApiKey is optional for validate/render", () => {
    expect(settingsOf().codexPoolerApiKey).toBeUndefined();
  });

  it("an encrypted stack-file value stands in as a placeholder, never the ciphertext", () => {
    const s = settingsOf({ codexPoolerApiKey: { secure: "v1:AAAAfake" }, sshPrivateKey: { secure: "v1:BBBBfake" } });
    expect(s.codexPoolerApiKey).toBe(ENCRYPTED);
    expect(s.sshPrivateKey).toBe(ENCRYPTED);
  });

  it.each(["codexPoolerApiKey", "sshPrivateKey"])("%s may not be empty", (key) => {
    expect(errorLines({ [key]: "" })).toEqual([`kilo-fleet:${key}: must not be empty`]);
  });

  it("never echoes a secret value in an error", () => {
    const lines = errorLines({ codexPoolerApiKey: 12345678 }).join("\n");
    expect(lines).toMatch(/^kilo-fleet:codexPoolerApiKey: /);
    expect(lines).not.toContain("12345678");
  });
});

describe("simple keys", () => {
  it.each([
    ["providerId", "codex/pooler", /must match \[a-z0-9\]\[a-z0-9-_.\]\* \(no '\/'\)/],
    ["providerId", "-pooler", /must match/],
    ["providerId", "Pooler", /must match/],
    ["apiKeyEnvVar", "1KEY", /must be a shell variable name/],
    ["apiKeyEnvVar", "MY-KEY", /must be a shell variable name/],
    ["kiloVersion", "7.7", /must be an exact version such as "7.7.7", or "latest"/],
    ["kiloVersion", "^7.7.7", /must be an exact version/],
    ["kiloVersion", "v7.7.7", /must be an exact version/],
    ["npmRegistry", "registry.example.com", /must be an http\(s\) URL/],
    ["npmRegistry", "ftp://registry.example.com", /must use http or https, not ftp/],
  ])("%s: refuses %j", (key, value, reason) => {
    const lines = errorLines({ [key]: value });
    expect(lines).toHaveLength(1);
    expect(lines[0].startsWith(`kilo-fleet:${key}: `)).toBe(true);
    expect(lines[0]).toMatch(reason);
  });

  it("accepts valid values", () => {
    const s = settingsOf({
      providerId: "my-pool_1.x",
      apiKeyEnvVar: "_POOL_KEY",
      kiloVersion: "7.8.0-beta.1",
      npmRegistry: "https://registry.example.com/npm/",
    });
    expect([s.providerId, s.apiKeyEnvVar, s.kiloVersion, s.npmRegistry]).toEqual([
      "my-pool_1.x",
      "_POOL_KEY",
      "7.8.0-beta.1",
      "https://registry.example.com/npm/",
    ]);
  });

  it("latest is allowed with a warning that kilo is not pinned", () => {
    const w = warningsOf({ kiloVersion: "latest" });
    expect(w).toHaveLength(1);
    expect(w[0]).toMatch(/^kilo-fleet:kiloVersion: "latest" means kilo is not pinned/);
  });

  it("a pinned fleet has no such warning", () => {
    expect(warningsOf({ kiloVersion: "7.7.7" })).toEqual([]);
  });

  it("a per-host latest also warns, naming the host's key", () => {
    expect(warningsOf({ hosts: [{ name: "a", local: true, kiloVersion: "latest" }] })).toEqual([
      expect.stringMatching(/^kilo-fleet:hosts\[0\]\.kiloVersion: "latest" means kilo is not pinned/),
    ]);
  });
});

describe("model and models", () => {
  const custom = { "gpt-5.4-mini": { name: "Mini", limit: { context: 100000, input: 80000, output: 16000 } } };

  it("model must be a key of models", () => {
    expect(errorLines({ models: custom })).toEqual([
      'kilo-fleet:model: "gpt-5.5" is not a key of models (defined: gpt-5.4-mini)',
    ]);
    expect(errorLines({ model: "gpt-6" })).toEqual([
      'kilo-fleet:model: "gpt-6" is not a key of models (defined: gpt-5.5)',
    ]);
  });

  it("a host's model must be a key of models", () => {
    expect(errorLines({ hosts: [{ name: "a", local: true, model: "nope" }] })).toEqual([
      'kilo-fleet:hosts[0].model: "nope" is not a key of models (defined: gpt-5.5)',
    ]);
  });

  it("accepts a custom models map whose keys include model", () => {
    expect(settingsOf({ models: custom, model: "gpt-5.4-mini" }).models).toEqual(custom);
  });

  it("must define at least one model", () => {
    expect(errorLines({ models: {} })).toEqual(["kilo-fleet:models: must define at least one model"]);
  });

  it.each([
    ["input", { context: 1000, input: 1001, output: 10 }],
    ["output", { context: 1000, input: 10, output: 1001 }],
  ])("limit.%s may not exceed limit.context", (which, limit) => {
    expect(errorLines({ models: { "gpt-5.5": { limit } } })).toEqual([
      `kilo-fleet:models["gpt-5.5"].limit.${which}: must not exceed limit.context (1000)`,
    ]);
  });

  it.each([0, -5, 1.5, "100"])("limit values must be positive integers (%j)", (bad) => {
    expect(errorLines({ models: { "gpt-5.5": { limit: { context: 1000, output: bad } } } })).toEqual([
      'kilo-fleet:models["gpt-5.5"].limit.output: must be a positive integer',
    ]);
  });

  it("reports a limit above context together with other errors in the same model", () => {
    const lines = errorLines({ models: { "gpt-5.5": { name: 5, limit: { context: 10, input: 20, output: 1.5 } } } });
    expect(lines).toEqual(
      expect.arrayContaining([
        'kilo-fleet:models["gpt-5.5"].name: must be a string, not a number',
        'kilo-fleet:models["gpt-5.5"].limit.output: must be a positive integer',
        'kilo-fleet:models["gpt-5.5"].limit.input: must not exceed limit.context (10)',
      ]),
    );
    expect(lines).toHaveLength(3);
  });

  it("refuses unknown model fields with a hint", () => {
    expect(errorLines({ models: { "gpt-5.5": { ...SEED_MODEL, tool_calls: true } } })).toEqual([
      'kilo-fleet:models["gpt-5.5"].tool_calls: unknown key (did you mean tool_call?)',
    ]);
  });

  it("refuses an unknown modality", () => {
    const lines = errorLines({ models: { "gpt-5.5": { ...SEED_MODEL, modalities: { input: ["smell"] } } } });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^kilo-fleet:models\["gpt-5\.5"\]\.modalities\.input\[0\]: /);
  });
});

describe("compactionThresholdPercent", () => {
  it.each([-1, 101, 50.5, "seventy"])("refuses %j", (bad) => {
    expect(errorLines({ compactionThresholdPercent: bad })).toEqual([
      "kilo-fleet:compactionThresholdPercent: must be an integer 1-100, or 0 or null to omit compaction",
    ]);
  });

  it("0 omits compaction as null does (languages without null, e.g. Pulumi YAML, say 0)", async () => {
    const { resolveHosts } = await import("../deployer/resolveHosts");
    const { renderKiloConfig } = await import("../deployer/kiloConfig");
    for (const off of [0, null]) {
      const r = resolveHosts({
        kiloHost: "h",
        args: { poolerBaseUrl: "https://p.example.com/v1", apiKey: "k", compactionThresholdPercent: off },
      });
      expect(r.errors).toEqual([]);
      expect(r.specs[0].compactionThresholdPercent).toBeNull();
      expect(renderKiloConfig(r.specs[0])).not.toHaveProperty("compaction");
    }
  });

  it("accepts 1 and 100", () => {
    expect(settingsOf({ compactionThresholdPercent: 1 }).compactionThresholdPercent).toBe(1);
    expect(settingsOf({ compactionThresholdPercent: 100 }).compactionThresholdPercent).toBe(100);
  });

  it("null (structured, JSON text, or Pulumi's empty string for a YAML null) omits compaction", () => {
    expect(settingsOf({ compactionThresholdPercent: null }).compactionThresholdPercent).toBeNull();
    expect(settingsOf({ compactionThresholdPercent: "null" }).compactionThresholdPercent).toBeNull();
    expect(settingsOf({ compactionThresholdPercent: "" }).compactionThresholdPercent).toBeNull();
  });
});

describe("permission", () => {
  it('refuses a bare string like "ask" with the object form as the hint', () => {
    expect(errorLines({ permission: "ask" })).toEqual([
      'kilo-fleet:permission: must be an object such as {"bash": "allow"}; a bare string like "ask" is not a valid shape',
    ]);
  });

  it("refuses a list", () => {
    expect(errorLines({ permission: ["bash"] })[0]).toMatch(/^kilo-fleet:permission: must be an object/);
  });

  it("accepts the object form", () => {
    expect(settingsOf({ permission: { bash: "allow", edit: "ask" } }).permission).toEqual({
      bash: "allow",
      edit: "ask",
    });
  });
});

describe("kiloSettings", () => {
  it("accepts extra top-level keys", () => {
    expect(settingsOf({ kiloSettings: { share: "disabled" } }).kiloSettings).toEqual({ share: "disabled" });
  });

  it.each(["$schema", "model", "enabled_providers", "provider", "compaction", "autoupdate", "permission"])(
    "may not override the managed key %s",
    (key) => {
      const lines = errorLines({ kiloSettings: { share: "disabled", [key]: "x" } });
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/is managed by kilo-fleet; set it through its own config key instead/);
      expect(lines[0].startsWith(formatKeyPath(["kiloSettings", key]))).toBe(true);
    },
  );

  it("must be an object", () => {
    expect(errorLines({ kiloSettings: "share" })[0]).toMatch(/^kilo-fleet:kiloSettings: must be an object/);
  });
});

describe("smokeCheck", () => {
  it.each([
    [{ enabled: "yes" }, "kilo-fleet:smokeCheck.enabled: must be true or false"],
    [{ timeoutSeconds: 5 }, "kilo-fleet:smokeCheck.timeoutSeconds: must be an integer 10-3600"],
    [{ timeoutSeconds: 3601 }, "kilo-fleet:smokeCheck.timeoutSeconds: must be an integer 10-3600"],
    [{ timeout: 60 }, "kilo-fleet:smokeCheck.timeout: unknown key (did you mean timeoutSeconds?)"],
  ])("refuses %j", (value, line) => {
    expect(errorLines({ smokeCheck: value })).toEqual([line]);
  });
});

describe("hosts", () => {
  it.each([
    [[], "kilo-fleet:hosts: must list at least one host"],
    [
      [{ name: "Web_1", local: true }],
      "kilo-fleet:hosts[0].name: must match [a-z0-9-]+ (lower-case letters, digits, '-')",
    ],
    [[{ local: true }], "kilo-fleet:hosts[0].name: is required"],
    [[{ name: "a" }], 'kilo-fleet:hosts[0]: needs "local: true" or "ssh: {host, user}"'],
    [[{ ...sshHost("a"), local: true }], "kilo-fleet:hosts[0]: must be either local: true or ssh: {...}, not both"],
    [[{ name: "a", ssh: { host: "h", hostKey: HOST_KEY } }], "kilo-fleet:hosts[0].ssh.user: is required"],
    [[{ name: "a", ssh: { user: "u", hostKey: HOST_KEY } }], "kilo-fleet:hosts[0].ssh.host: is required"],
    [
      [{ name: "a", ssh: { host: "h x", user: "u", hostKey: HOST_KEY } }],
      "kilo-fleet:hosts[0].ssh.host: must not contain whitespace or control characters",
    ],
    [[{ name: "a", local: true }, sshHost("b", { port: 0 })], "kilo-fleet:hosts[1].ssh.port: must be 1-65535"],
    [[{ name: "a", local: true }, sshHost("b", { port: 65536 })], "kilo-fleet:hosts[1].ssh.port: must be 1-65535"],
    [
      [sshHost("a", { hostKey: "not a key" })],
      'kilo-fleet:hosts[0].ssh.hostKey: must be one public key line such as "ssh-ed25519 AAAA..." (see ssh-keyscan)',
    ],
    [[sshHost("a", { prot: 22 })], "kilo-fleet:hosts[0].ssh.prot: unknown key (did you mean port?)"],
    [
      [{ name: "a", local: true, shells: ["tcsh"] }],
      "kilo-fleet:hosts[0].shells[0]: must be one of bash, zsh, sh, fish",
    ],
    [[{ name: "a", local: true, shells: [] }], "kilo-fleet:hosts[0].shells: must list at least one shell"],
    [
      [{ name: "a", local: true, kiloVersion: "7" }],
      'kilo-fleet:hosts[0].kiloVersion: must be an exact version such as "7.7.7", or "latest"',
    ],
    [
      [
        { name: "a", local: true },
        { name: "a", local: true },
      ],
      'kilo-fleet:hosts[1].name: duplicate host name "a" (also hosts[0])',
    ],
  ])("refuses %j", (hosts, line) => {
    expect(errorLines({ hosts })).toEqual([line]);
  });

  it("local: false is refused, and the host then has no connection", () => {
    expect(errorLines({ hosts: [{ name: "a", local: false }] })).toEqual([
      "kilo-fleet:hosts[0].local: must be true",
      'kilo-fleet:hosts[0]: needs "local: true" or "ssh: {host, user}"',
    ]);
  });

  it("reports a bad name and a missing connection at once", () => {
    expect(errorLines({ hosts: [{ name: "BAD" }] })).toHaveLength(2);
  });

  it("accepts an ssh host with a pinned host key without a warning", () => {
    expect(warningsOf({ hosts: [sshHost("pinned", { port: 2222, hostKey: `${HOST_KEY} comment` })] })).toEqual([]);
  });

  it("refuses an ssh host without hostKey, naming the key, the ssh-keyscan line and the hostkeys command", () => {
    const lines = errorLines({
      hosts: [
        { name: "a", local: true },
        sshHost("b"),
        { name: "c", ssh: { host: "build-02.internal.example.com", user: "dev", port: 2222 } },
      ],
    });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^kilo-fleet:hosts\[2\]\.ssh\.hostKey: is required: /);
    expect(lines[0]).toContain("`ssh-keyscan -p 2222 -t ed25519 build-02.internal.example.com`");
    expect(lines[0]).toContain("`npm run kilo-fleet -- hostkeys --stack NAME`");
    expect(lines[0]).toContain("pulumi config set --path 'hosts[2].ssh.hostKey' '<type> <base64>'");
    expect(lines[0]).toContain("hosts[2].ssh.insecureIgnoreHostKey: true");
  });

  it("reports a missing hostKey together with the host's other errors", () => {
    expect(
      errorLines({ hosts: [{ name: "a", ssh: { host: "h", user: "u", port: 0 } }] }).map((l) => l.split(": ")[0]),
    ).toEqual(["kilo-fleet:hosts[0].ssh.port", "kilo-fleet:hosts[0].ssh.hostKey"]);
  });

  it("insecureIgnoreHostKey: true accepts an unpinned host, with a warning naming the key and the fix", () => {
    const r = resolveHosts({
      stack: raw({ hosts: [{ name: "a", ssh: { host: "10.0.0.9", user: "u", insecureIgnoreHostKey: true } }] }),
    });
    expect(r.errors).toEqual([]);
    expect(r.warnings.map(warningText)).toEqual([
      "kilo-fleet:hosts[0].ssh.insecureIgnoreHostKey: the server's host key is not checked, so anyone who can answer for 10.0.0.9 receives the API key; pin it instead (ssh-keyscan -p 22 -t ed25519 10.0.0.9)",
    ]);
    expect(r.specs[0].ssh?.insecureIgnoreHostKey).toBe(true);
  });

  it("insecureIgnoreHostKey: false is no exemption, and true together with a hostKey is refused", () => {
    expect(errorLines({ hosts: [{ name: "a", ssh: { host: "h", user: "u", insecureIgnoreHostKey: false } }] })).toEqual(
      [expect.stringMatching(/^kilo-fleet:hosts\[0\]\.ssh\.hostKey: is required/)],
    );
    expect(errorLines({ hosts: [sshHost("a", { insecureIgnoreHostKey: true })] })).toEqual([
      "kilo-fleet:hosts[0].ssh.insecureIgnoreHostKey: must not be true when hostKey is set (the pinned key would be ignored); remove one of them",
    ]);
    expect(errorLines({ hosts: [sshHost("a", { insecureIgnoreHostKey: "yes" })] })).toContain(
      "kilo-fleet:hosts[0].ssh.insecureIgnoreHostKey: must be true or false",
    );
  });

  it("quotes a host the shell would misread in the ssh-keyscan line", () => {
    const lines = errorLines({ hosts: [{ name: "a", ssh: { host: "h$(id)", user: "u" } }] });
    expect(lines[0]).toContain("`ssh-keyscan -p 22 -t ed25519 'h$(id)'`");
  });

  it("refuses a host or user starting with '-' (ssh would read it as an option), naming the key", () => {
    const lines = errorLines({
      hosts: [{ name: "a", ssh: { host: "-oProxyCommand=x", user: "-V", insecureIgnoreHostKey: true } }],
    });
    expect(lines).toEqual([
      "kilo-fleet:hosts[0].ssh.host: must not start with '-' (ssh would read it as an option)",
      "kilo-fleet:hosts[0].ssh.user: must not start with '-' (ssh would read it as an option)",
    ]);
  });
});

describe("unknown keys", () => {
  it('refuses kilo-fleet:modle with "did you mean model"', () => {
    expect(errorLines({ modle: "gpt-5.5" })).toEqual(["kilo-fleet:modle: unknown key (did you mean model?)"]);
  });

  it("gives no hint when nothing is close", () => {
    expect(errorLines({ zzzzzzzzzz: 1 })).toEqual(["kilo-fleet:zzzzzzzzzz: unknown key"]);
  });

  it("hints inside hosts too", () => {
    expect(errorLines({ hosts: [{ name: "a", local: true, modle: "x" }] })).toEqual([
      "kilo-fleet:hosts[0].modle: unknown key (did you mean model?)",
    ]);
  });
});

describe("all errors at once", () => {
  it("reports every broken rule in one result", () => {
    const lines = errorLines({
      poolerBaseUrl: "https://p.example.com/v1/chat/completions",
      modle: "x",
      providerId: "a/b",
      apiKeyEnvVar: "1X",
      kiloVersion: "7.7",
      compactionThresholdPercent: 101,
      permission: "ask",
      kiloSettings: { model: "x" },
      smokeCheck: { enabled: "yes" },
      npmRegistry: "nope",
      model: "missing",
      hosts: [{ name: "a", local: true }, sshHost("b", { port: 70000 }), { name: "a", local: true }],
    });
    const keys = lines.map((l) => l.slice(0, l.indexOf(": ")));
    expect(keys.sort()).toEqual(
      [
        "kilo-fleet:poolerBaseUrl",
        "kilo-fleet:modle",
        "kilo-fleet:providerId",
        "kilo-fleet:apiKeyEnvVar",
        "kilo-fleet:kiloVersion",
        "kilo-fleet:compactionThresholdPercent",
        "kilo-fleet:permission",
        "kilo-fleet:kiloSettings.model",
        "kilo-fleet:smokeCheck.enabled",
        "kilo-fleet:npmRegistry",
        "kilo-fleet:model",
        "kilo-fleet:hosts[1].ssh.port",
        "kilo-fleet:hosts[2].name",
      ].sort(),
    );
    expect(lines).toContain("kilo-fleet:hosts[1].ssh.port: must be 1-65535");
  });
});

describe("input forms", () => {
  const structured = {
    kiloVersion: "7.7.7",
    compactionThresholdPercent: 60,
    permission: { bash: "allow" },
    kiloSettings: { share: "disabled" },
    smokeCheck: { enabled: false, timeoutSeconds: 60 },
    hosts: [{ name: "local", local: true }, sshHost("box", { port: 2222 })],
  };

  it("Pulumi-runtime strings (structured values as JSON text) and YAML structures give the same settings", () => {
    const asRuntime = Object.fromEntries(
      Object.entries(structured).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]),
    );
    expect(Object.values(asRuntime).every((v) => typeof v === "string")).toBe(true);
    const fromStrings = settingsOf(asRuntime);
    expect(fromStrings).toEqual(settingsOf(structured));
    expect(fromStrings.hosts[1].ssh?.port).toBe(2222);
    expect(fromStrings.compactionThresholdPercent).toBe(60);
  });

  it("a structured key holding text that is not JSON is refused with the shape wanted", () => {
    expect(errorLines({ hosts: "[{oops" })).toEqual(["kilo-fleet:hosts: must be a list, not a string"]);
  });
});

describe("formatKeyPath and the resolved specs", () => {
  it("spells paths the way pulumi config set --path does", () => {
    expect(formatKeyPath(["hosts", 1, "ssh", "port"])).toBe("kilo-fleet:hosts[1].ssh.port");
    expect(formatKeyPath(["models", "gpt-5.5", "limit"])).toBe('kilo-fleet:models["gpt-5.5"].limit');
    expect(formatKeyPath([])).toBe("kilo-fleet");
  });

  it("applies per-host overrides and the ssh port default", () => {
    const { specs, errors } = resolveHosts({
      stack: raw({
        models: { "gpt-5.5": SEED_MODEL, small: { limit: { context: 10, output: 5 } } },
        hosts: [sshHost("box"), { name: "me", local: true, kiloVersion: "7.8.0", model: "small", shells: ["zsh"] }],
      }),
    });
    expect(errors).toEqual([]);
    expect(specs[0]).toMatchObject({ name: "box", kiloVersion: "7.7.7", model: "gpt-5.5" });
    expect(specs[0].ssh).toEqual({
      host: "h",
      user: "u",
      port: 22,
      hostKey: HOST_KEY,
      connectTimeoutSeconds: 10,
      connectAttempts: 3,
    });
    expect(specs[0]).not.toHaveProperty("shells");
    expect(specs[1]).toMatchObject({ name: "me", kiloVersion: "7.8.0", model: "small", shells: ["zsh"] });
    expect(specs[1]).not.toHaveProperty("ssh");
  });
});

describe("values that would not survive the trip to a host", () => {
  it("refuses control characters and whitespace in poolerBaseUrl (the URL parser would quietly encode them)", () => {
    for (const bad of [
      "http://localhost:4000/x\u0000y/v1",
      "http://localhost:4000/v1\n",
      " http://localhost:4000/v1",
    ]) {
      expect(errorLines({ poolerBaseUrl: bad })).toEqual([
        "kilo-fleet:poolerBaseUrl: must not contain whitespace or control characters",
      ]);
    }
  });

  it("refuses kiloSettings and permission keys with newlines or control characters", () => {
    expect(errorLines({ kiloSettings: { 'a\n"x": 1': 1 } })).toEqual([
      'kilo-fleet:kiloSettings["a\\n\\"x\\": 1"]: keys must be non-empty, without control characters or newlines',
    ]);
    expect(errorLines({ permission: { "ba\u0007sh": "allow" } })[0]).toMatch(
      /^kilo-fleet:permission\[.*\]: keys must be non-empty, without control characters or newlines$/,
    );
  });

  it("refuses __proto__ keys anywhere instead of dropping them silently", () => {
    expect(errorLines({ kiloSettings: '{"__proto__": {"x": 1}, "share": "disabled"}' })).toEqual([
      "kilo-fleet:kiloSettings.__proto__: is not allowed as a key",
    ]);
    expect(errorLines({ permission: '{"bash": "allow", "__proto__": {}}' })).toEqual([
      "kilo-fleet:permission.__proto__: is not allowed as a key",
    ]);
  });
});

describe("apiKeys, npmToken: secrets the settings never hold", () => {
  it("apiKeys: an object of host name to key; every value becomes the placeholder", () => {
    for (const form of [
      { a: "test-key-1", b: { secure: "v1:abc" } },
      JSON.stringify({ a: "test-key-1", b: ENCRYPTED }),
    ]) {
      const s = settingsOf({ apiKeys: form, hosts: [{ name: "a", local: true }, sshHost("b")] });
      expect(s.apiKeys).toEqual({ a: ENCRYPTED, b: ENCRYPTED });
      expect(JSON.stringify(s)).not.toContain("test-key-1");
    }
  });

  it("apiKeys: a bad value is refused by its key, never echoed", () => {
    const lines = errorLines({ apiKeys: { a: "test-key-x\nmore", b: "", c: 5 } });
    expect(lines).toEqual([
      "kilo-fleet:apiKeys.a: must be one line without control characters",
      "kilo-fleet:apiKeys.b: must not be empty",
      "kilo-fleet:apiKeys.c: must be a secret string (pulumi config set --secret ...)",
    ]);
    expect(lines.join("\n")).not.toContain("test-key-x");
    expect(errorLines({ apiKeys: ["x"] })[0]).toMatch(/^kilo-fleet:apiKeys: must be an object from host name/);
  });

  it("npmToken: one line, held only as the placeholder", () => {
    expect(settingsOf({ npmToken: "test-token-1" }).npmToken).toBe(ENCRYPTED);
    expect(errorLines({ npmToken: "test-token-1\r\n" })).toEqual([
      "kilo-fleet:npmToken: must be one line without control characters",
    ]);
  });
});

describe("npmRegistry hygiene", () => {
  it.each([
    ["https://user:test-token-9@npm.example.com/", /must not carry credentials .*npmToken secret/],
    ["https://:test-token-9@npm.example.com/", /must not carry credentials/],
    ["https://npm.example.com/?token=test-token-9", /must not carry a query or fragment.*npmToken/],
    ["https://npm.example.com/ x", /whitespace/],
  ])("refuses %s, naming npmToken and never echoing the URL", (url, reason) => {
    const lines = errorLines({ npmRegistry: url });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^kilo-fleet:npmRegistry: /);
    expect(lines[0]).toMatch(reason);
    expect(lines[0]).not.toContain("test-token-9");
  });

  it("warns about plain http to another machine, not to loopback or over https", () => {
    const warn = (url: string) => warningsOf({ npmRegistry: url });
    expect(warn("http://npm.corp.example.com/")).toEqual([
      expect.stringMatching(/^kilo-fleet:npmRegistry: plain http to npm\.corp\.example\.com: /),
    ]);
    expect(warn("http://127.0.0.1:4873/")).toEqual([]);
    expect(warn("https://npm.corp.example.com/")).toEqual([]);
  });
});

describe("apiKeyEnvVar: names that change how shells, loaders or runtimes behave are refused", () => {
  it.each([
    "PATH",
    "HOME",
    "SHELL",
    "IFS",
    "ENV",
    "BASH_ENV",
    "LD_PRELOAD",
    "DYLD_INSERT_LIBRARIES",
    "NODE_OPTIONS",
    "BUN_OPTIONS",
    "PYTHONPATH",
    "path",
  ])("%s, naming the key and why", (name) => {
    expect(errorLines({ apiKeyEnvVar: name })).toEqual([
      expect.stringMatching(
        new RegExp(`^kilo-fleet:apiKeyEnvVar: is refused: "${name}" changes how shells, loaders or runtimes behave`),
      ),
    ]);
  });

  it.each(["KILO_API_KEY", "XDG_CONFIG_HOME"])("%s: a name kilo-fleet or kilo sets itself", (name) => {
    expect(errorLines({ apiKeyEnvVar: name })).toEqual([
      expect.stringMatching(new RegExp(`^kilo-fleet:apiKeyEnvVar: is refused: "${name}" is a name kilo-fleet or kilo`)),
    ]);
  });

  it("accepts a name of the team's own", () => {
    expect(errorLines({ apiKeyEnvVar: "TEAM_POOL_KEY" })).toEqual([]);
  });
});

describe("a step the host could not execute (one argument over the exec limit)", () => {
  const big = "x".repeat(140 * 1024);

  it("is refused by the resolver validate and pulumi up use, naming the key that made it large", () => {
    const r = resolveHosts({ stack: raw({ kiloSettings: { share: "disabled", notes: big } }) });
    expect(r.specs).toEqual([]);
    expect(r.errors).toEqual([
      {
        key: "kilo-fleet:kiloSettings.notes",
        message: expect.stringMatching(
          new RegExp(`^makes host "local"'s config step \\d+ bytes, over the ${MAX_ARG_BYTES}-byte limit`),
        ),
      },
    ]);
  });

  it("names the model entry when a model made it large", () => {
    const models = { "gpt-5.5": { ...SEED_MODEL, name: big } };
    const r = resolveHosts({ stack: raw({ models, hosts: [{ name: "a", local: true }] }) });
    expect(r.errors.map((e) => e.key)).toEqual(['kilo-fleet:models["gpt-5.5"]']);
  });

  it("passes what fits", () => {
    expect(resolveHosts({ stack: raw({ kiloSettings: { notes: "x".repeat(100 * 1024) } }) }).errors).toEqual([]);
  });
});

describe("validate follows kilo's context arithmetic (usable input + output within limit.context)", () => {
  const poolNaive = { ...SEED_MODEL, limit: { context: 258400, input: 258400, output: 64000 } };

  it("the seed's limits fit, with compaction at 75% and without", () => {
    expect(warningsOf()).toEqual([]);
    expect(warningsOf({ compactionThresholdPercent: null })).toEqual([]);
  });

  it("warns when limit.input = the window and there is no threshold, naming the limit.input that fits", () => {
    expect(warningsOf({ models: { "gpt-5.5": poolNaive }, compactionThresholdPercent: null })).toEqual([
      "kilo-fleet:models[\"gpt-5.5\"].limit: kilo compacts at 238400 input tokens, which with limit.output 64000 is 302400, over limit.context 258400: a long session overflows the model's window; set limit.input to 214400 (limit.context − limit.output + kilo's compaction reserve) or set compactionThresholdPercent",
    ]);
  });

  it("a threshold that compacts early enough fits; one that compacts too late does not", () => {
    expect(warningsOf({ models: { "gpt-5.5": poolNaive }, compactionThresholdPercent: 75 })).toEqual([]);
    expect(warningsOf({ models: { "gpt-5.5": poolNaive }, compactionThresholdPercent: 90 })).toEqual([
      expect.stringMatching(
        /^kilo-fleet:models\["gpt-5\.5"\]\.limit: kilo compacts at 232560 input tokens, which with limit\.output 64000 is 296560/,
      ),
    ]);
  });

  it("without limit.input kilo uses limit.context less the capped output: warned when output is over 32000", () => {
    const noInput = { ...SEED_MODEL, limit: { context: 272000, output: 64000 } };
    expect(warningsOf({ models: { "gpt-5.5": noInput }, compactionThresholdPercent: null })).toEqual([
      expect.stringContaining("set limit.input to 228000"),
    ]);
  });
});

describe("proxy (issue 21)", () => {
  it("an http:// proxy URL only, without credentials, path or spaces in noProxy; each error names its key", () => {
    expect(
      errorLines({
        proxy: { https: "http://u:p@proxy.corp:3128", http: "https://proxy.corp", noProxy: "a b" },
        hosts: [{ name: "h", local: true, proxy: { https: "http://proxy.corp:3128/path" } }],
      }),
    ).toEqual([
      "kilo-fleet:proxy.https: must not carry credentials (they would be plain text in the state): set the proxyCredentials secret",
      "kilo-fleet:proxy.http: must be an http:// proxy URL (the tunnel to https servers is CONNECT)",
      "kilo-fleet:proxy.noProxy: must be a comma-separated list of hosts, domains (.corp) or IPs, without spaces",
      "kilo-fleet:hosts[0].proxy.https: must be only scheme, host and port (no path, query or fragment)",
    ]);
    expect(errorLines({ proxy: { http: "http://proxy.corp:3128" } })[0]).toMatch(/^kilo-fleet:proxy\.https: /);
  });

  it("fleet-wide, or per host (the host's replaces the fleet's); proxyCredentials never in the settings", () => {
    const r = resolveHosts({
      stack: raw({
        proxy: { https: "http://proxy.corp:3128", noProxy: ".corp" },
        proxyCredentials: "user:pw-never-in-settings",
        hosts: [
          { name: "a", local: true },
          { name: "b", local: true, proxy: { https: "http://other:8080" } },
        ],
      }),
    });
    expect(r.errors).toEqual([]);
    expect(r.specs.map((s) => s.proxy)).toEqual([
      { https: "http://proxy.corp:3128", noProxy: ".corp" },
      { https: "http://other:8080" },
    ]);
    expect(JSON.stringify(settingsOf({ proxyCredentials: "user:pw-never-in-settings" }))).not.toContain("pw-never");
  });
});

describe("ssh.proxy (issue 21)", () => {
  it("a jump host needs its pinned hostKey, fleet-wide or per host", () => {
    expect(
      errorLines({
        ssh: { proxy: { host: "bastion", user: "jump" } },
        hosts: [
          {
            name: "h",
            ssh: { host: "h", user: "u", hostKey: HOST_KEY, proxy: { host: "-x", user: "j", hostKey: "nope" } },
          },
        ],
      }),
    ).toEqual([
      "kilo-fleet:ssh.proxy.hostKey: is required: the jump host's key, pinned like the host's (see ssh-keyscan)",
      "kilo-fleet:hosts[0].ssh.proxy.host: must not start with '-' (ssh would read it as an option)",
      'kilo-fleet:hosts[0].ssh.proxy.hostKey: must be one public key line such as "ssh-ed25519 AAAA..." (see ssh-keyscan)',
    ]);
  });
});
