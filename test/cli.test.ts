/** The offline CLI, run as a subprocess the way `npm run kilo-fleet -- …` runs it. */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { COMMANDS } from "../cli/kilo-fleet";
import { EXIT } from "../cli/shared";
import { loadProject, readStackConfig } from "../cli/stackFile";
import { renderKiloConfig, renderKiloConfigText } from "../deployer/kiloConfig";
import { resolveHosts } from "../deployer/resolveHosts";
import { ENCRYPTED, parseSettings } from "../deployer/settings";

const ROOT = join(__dirname, "..");
const TSX = join(ROOT, "node_modules", ".bin", "tsx");
const scratch = mkdtempSync(join(tmpdir(), "kilo-fleet-cli-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function cli(...args: string[]) {
  const run = spawnSync(TSX, [join(ROOT, "cli", "kilo-fleet.ts"), ...args], {
    cwd: ROOT,
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

let fileCount = 0;
/** Writes a stack file into the scratch directory and returns its path. */
function stackFile(yaml: string): string {
  const path = join(scratch, `Pulumi.t${fileCount++}.yaml`);
  writeFileSync(path, yaml);
  return path;
}

const USAGE_LINE = "usage: kilo-fleet validate [--stack NAME | --file PATH ...]";
const FAKE_CIPHERTEXT = "v1:AAAAAAAAfakeCiphertextForTestsOnly==";

const BROKEN = `config:
  kilo-fleet:poolerBaseUrl: https://p.example.com/v1/chat/completions
  kilo-fleet:modle: gpt-5.5
  kilo-fleet:permission: ask
  kilo-fleet:hosts:
    - name: a
      local: true
    - name: b
      ssh: {host: b.example.com, user: dev, port: 70000, hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICpwKafbufgN/DFRTNy7UXTcX9APmrEuh7+tZoozMi4I"}
`;

describe("validate", () => {
  it("with no argument validates every stacks/Pulumi.*.yaml: dev and prod pass", () => {
    const r = cli("validate");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("stacks/Pulumi.dev.yaml: valid (1 host)");
    expect(r.stdout).toMatch(/stacks\/Pulumi\.prod\.yaml: valid \([23] hosts\)/);
  });

  it("--stack picks one stack", () => {
    const r = cli("validate", "--stack", "prod");
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain("Pulumi.dev.yaml");
  });

  it("exits 1 with every error as `key: reason` on stderr", () => {
    const r = cli("validate", "--file", stackFile(BROKEN));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("4 errors");
    expect(r.stderr).toContain("kilo-fleet:hosts[1].ssh.port: must be 1-65535");
    expect(r.stderr).toContain("kilo-fleet:modle: unknown key (did you mean model?)");
    expect(r.stderr).toMatch(/kilo-fleet:poolerBaseUrl: must be the pooler's \/v1 base/);
    expect(r.stderr).toMatch(/kilo-fleet:permission: must be an object such as \{"bash": "allow"\}/);
  });

  it("reports each file: a valid one passes, the invalid one fails the run", () => {
    const good = stackFile("config:\n  kilo-fleet:poolerBaseUrl: http://localhost:4000/v1\n");
    const r = cli("validate", "--file", good, "--file", stackFile(BROKEN));
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`${good}: valid (1 host)`);
  });

  it("prints warnings on stderr and still passes", () => {
    const r = cli(
      "validate",
      "--file",
      stackFile("config:\n  kilo-fleet:poolerBaseUrl: http://localhost:4000/v1\n  kilo-fleet:kiloVersion: latest\n"),
    );
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: kilo-fleet:kiloVersion: "latest" means kilo is not pinned/);
  });

  it("reads secure: values without decrypting or printing them", () => {
    const path = stackFile(`config:
  kilo-fleet:poolerBaseUrl: http://localhost:4000/v1
  kilo-fleet:codexPoolerApiKey:
    secure: ${FAKE_CIPHERTEXT}
  kilo-fleet:kiloSettings:
    share:
      secure: ${FAKE_CIPHERTEXT}
`);
    const v = cli("validate", "--file", path);
    expect(v.code).toBe(0);
    expect(v.stderr).not.toContain("codexPoolerApiKey: not set");
    const r = cli("render", "--file", path);
    expect(r.code).toBe(0);
    for (const out of [v.stdout, v.stderr, r.stdout, r.stderr]) expect(out).not.toContain("fakeCiphertext");
  });

  it("refuses a plaintext API key in a stack file, without printing it", () => {
    const r = cli(
      "validate",
      "--file",
      stackFile(
        "config:\n  kilo-fleet:poolerBaseUrl: http://localhost:4000/v1\n  kilo-fleet:codexPoolerApiKey: sk-plain-oops\n",
      ),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("kilo-fleet:codexPoolerApiKey: is stored in plain text in the stack file");
    expect(r.stdout + r.stderr).not.toContain("sk-plain-oops");
  });

  it("refuses a stack key without namespace", () => {
    const r = cli("validate", "--file", stackFile("config:\n  poolerBaseUrl: http://localhost:4000/v1\n"));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'poolerBaseUrl: stack config keys must be namespaced (write "kilo-fleet:poolerBaseUrl")',
    );
  });

  it("reports a YAML syntax error with its line and column", () => {
    const path = stackFile("config:\n  kilo-fleet:poolerBaseUrl: [unclosed\n");
    const r = cli("validate", "--file", path);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`${path.replaceAll(".", "\\.")}:\\d+:\\d+: `));
  });
});

describe("validate: per-host API keys", () => {
  const SECURE = `{secure: "${FAKE_CIPHERTEXT}"}`;
  const fleet = (keys: string, fleetKey = false) =>
    stackFile(`config:
  kilo-fleet:poolerBaseUrl: http://localhost:4000/v1
${fleetKey ? `  kilo-fleet:codexPoolerApiKey: ${SECURE}\n` : ""}  kilo-fleet:hosts:
    - {name: alice-laptop, local: true}
    - {name: bob-desktop, ssh: {host: 10.0.0.5, user: bob, insecureIgnoreHostKey: true}}
${keys}`);

  it("every host with its own key: valid without codexPoolerApiKey, and nothing secret printed", () => {
    const r = cli(
      "validate",
      "--file",
      fleet(`  kilo-fleet:apiKeys:\n    alice-laptop: ${SECURE}\n    bob-desktop: ${SECURE}\n`),
    );
    expect(r.stderr).not.toMatch(/has no API key/);
    expect(r.code).toBe(0);
    expect(r.stdout + r.stderr).not.toContain("fakeCiphertext");
  });

  it("names each host with no key, and both ways to give it one (a warning: secrets come later)", () => {
    const r = cli("validate", "--file", fleet(`  kilo-fleet:apiKeys:\n    alice-laptop: ${SECURE}\n`));
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(
      `warning: kilo-fleet:apiKeys.bob-desktop: host "bob-desktop" has no API key: give it its own (pulumi config set --secret --path 'apiKeys.bob-desktop' <key>) or set a fleet key for every host without one (pulumi config set --secret codexPoolerApiKey <key>)`,
    );
    expect(r.stderr).not.toContain('host "alice-laptop" has no API key');
    const withFleet = cli("validate", "--file", fleet(`  kilo-fleet:apiKeys:\n    alice-laptop: ${SECURE}\n`, true));
    expect(withFleet.stderr).not.toMatch(/has no API key/);
  });

  it("an entry naming no host is an error, with did-you-mean", () => {
    const r = cli(
      "validate",
      "--file",
      fleet(`  kilo-fleet:apiKeys:\n    alice-laptpo: ${SECURE}\n    zed: ${SECURE}\n`, true),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      "kilo-fleet:apiKeys.alice-laptpo: names no host in kilo-fleet:hosts (did you mean alice-laptop?); hosts: alice-laptop, bob-desktop",
    );
    expect(r.stderr).toMatch(/kilo-fleet:apiKeys\.zed: names no host in kilo-fleet:hosts; hosts: /);
  });

  it("refuses a plaintext entry without printing it, and an apiKeys encrypted as one value", () => {
    const r = cli("validate", "--file", fleet("  kilo-fleet:apiKeys:\n    alice-laptop: test-key-plain-oops\n", true));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      "kilo-fleet:apiKeys.alice-laptop: is stored in plain text in the stack file; set it with: pulumi config set --secret --path 'apiKeys.alice-laptop' …",
    );
    expect(r.stdout + r.stderr).not.toContain("test-key-plain-oops");
    const whole = cli("validate", "--file", fleet(`  kilo-fleet:apiKeys: ${SECURE}\n`, true));
    expect(whole.code).toBe(1);
    expect(whole.stderr).toContain("kilo-fleet:apiKeys: is encrypted as one value");
  });

  it("refuses a plaintext npmToken without printing it", () => {
    const r = cli("validate", "--file", fleet("  kilo-fleet:npmToken: test-token-plain-oops\n", true));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("kilo-fleet:npmToken: is stored in plain text in the stack file");
    expect(r.stdout + r.stderr).not.toContain("test-token-plain-oops");
  });
});

describe("render", () => {
  it("prints the kilo.jsonc the dev host would get: the seed example", () => {
    const r = cli("render", "--stack", "dev");
    expect(r.code).toBe(0);
    const [spec] = resolveHosts({ stack: { "kilo-fleet:poolerBaseUrl": "http://localhost:4000/v1" } }).specs;
    expect(r.stdout).toBe(renderKiloConfigText(renderKiloConfig(spec)));
  });

  it("--host picks a host of a fleet", () => {
    const r = cli("render", "--stack", "prod", "--host", "build-01");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('"baseURL": "https://codex-pooler.example.com/v1"');
    expect(r.stdout).toContain('"apiKey": "{env:CODEX_POOLER_API_KEY}"');
  });

  it("exits 1 and renders nothing for an invalid stack", () => {
    const r = cli("render", "--file", stackFile(BROKEN), "--host", "a");
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("kilo-fleet:hosts[1].ssh.port: must be 1-65535");
  });
});

describe("usage errors exit 2 with the usage line", () => {
  it.each([
    [[], "no command given"],
    [["deploy"], 'unknown command "deploy"'],
    [["validate", "--bogus"], 'unknown argument "--bogus"'],
    [["validate", "--stack"], "--stack needs a value"],
    [["validate", "--stack", "nope"], 'no stack "nope"'],
    [["validate", "--file", "/nonexistent/Pulumi.x.yaml"], "no such file"],
    [["validate", "--host", "x"], "--host is only for render"],
    [["render"], "render needs exactly one --stack or --file"],
    [["render", "--stack", "dev", "--stack", "prod"], "render needs exactly one --stack or --file"],
    [["render", "--stack", "prod"], "pick one with --host (build-01"],
    [["render", "--stack", "prod", "--host", "nope"], 'no host "nope"'],
    [["hostkeys"], "hostkeys needs exactly one --stack or --file"],
    [["hostkeys", "--stack", "dev", "--stack", "prod"], "hostkeys needs exactly one --stack or --file"],
    [["validate", "--json"], "--json is only for hostkeys"],
  ])("%j", (args, message) => {
    const r = cli(...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stderr).toContain(USAGE_LINE);
  });

  it("--help prints the usage and exits 0", () => {
    const r = cli("--help");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(USAGE_LINE);
  });

  it.each(COMMANDS.map((c) => c.name))("%s --help prints that command's options and the exit codes, exit 0", (name) => {
    const r = cli(name, "--help");
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    const command = COMMANDS.find((c) => c.name === name);
    expect(r.stdout.split("\n")[0]).toBe(`usage: kilo-fleet ${name} ${command?.synopsis}`);
    for (const option of Object.keys(command?.options ?? {})) expect(r.stdout).toContain(`  --${option}`);
    expect(r.stdout).toContain("exit codes: 0 ok, 1 a problem was found, 2 the command line is wrong, 3 something");
  });

  it("docs/cli.md lists every command and the one exit-code table", () => {
    const doc = readFileSync(join(ROOT, "docs", "cli.md"), "utf8");
    for (const c of COMMANDS) expect(doc).toContain(`| \`${c.name}\` `);
    for (const code of Object.values(EXIT)) expect(doc).toMatch(new RegExp(`^\\| ${code} +\\| `, "m"));
    expect(Object.values(EXIT)).toEqual([0, 1, 2, 3]);
  });
});

describe("stack files read as Pulumi would", () => {
  const projectDir = mkdtempSync(join(scratch, "project-"));
  writeFileSync(
    join(projectDir, "Pulumi.yaml"),
    `name: kilo-fleet
runtime: nodejs
stackConfigDir: stacks
config:
  poolerBaseUrl:
    type: string
  model:
    type: string
    default: mini
  compactionThresholdPercent: 50
`,
  );
  const project = loadProject(projectDir);

  it("applies Pulumi.yaml defaults where the stack sets nothing, and notes required keys", () => {
    expect(project.stackConfigDir).toBe(join(projectDir, "stacks"));
    expect(project.required).toEqual(["kilo-fleet:poolerBaseUrl"]);
    const { raw } = readStackConfig(stackFile("config:\n  kilo-fleet:compactionThresholdPercent: 60\n"), project);
    expect(raw).toEqual({ "kilo-fleet:model": "mini", "kilo-fleet:compactionThresholdPercent": "60" });
  });

  it("passes every value as the runtime's string: scalars as text, a YAML null as '', structures as JSON", () => {
    const { raw } = readStackConfig(
      stackFile(`config:
  kilo-fleet:kiloVersion: 7.7.7
  kilo-fleet:compactionThresholdPercent: null
  kilo-fleet:smokeCheck: {enabled: false}
  kilo-fleet:sshPrivateKey:
    secure: ${FAKE_CIPHERTEXT}
  aws:region: eu-west-1
`),
      project,
    );
    expect(raw).toEqual({
      "kilo-fleet:kiloVersion": "7.7.7",
      "kilo-fleet:compactionThresholdPercent": "",
      "kilo-fleet:smokeCheck": '{"enabled":false}',
      "kilo-fleet:sshPrivateKey": ENCRYPTED,
      "aws:region": "eu-west-1",
      "kilo-fleet:model": "mini",
    });
    const parsed = parseSettings({
      ...raw,
      "kilo-fleet:poolerBaseUrl": "http://localhost:4000/v1",
      "kilo-fleet:model": "gpt-5.5",
    });
    expect(parsed.ok).toBe(true);
    expect(parsed.ok && parsed.settings.compactionThresholdPercent).toBeNull();
  });
});
