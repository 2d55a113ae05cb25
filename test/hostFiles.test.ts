/**
 * The host tool's file hygiene, run for real (the bundled tool, as the scripts run it) on temporary HOMEs:
 * the kilo.jsonc backup keeps the original's mode, the env files are never written through a symlink,
 * delete leaves no key behind even when the env file became a symlink, a config dir outside HOME is
 * warned about, and the CA certificates file (written, exported as NODE_EXTRA_CA_CERTS, removed).
 */
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CA_ENV_VAR, caEnvVars, npmCaBundle } from "../components/host/caFile";
import { ENV_FILE_HEADER } from "../components/host/envFile";
import { hostToolSource } from "../components/hostScripts/tool";
import { SHELL_RC_FILES } from "../components/settings";
import { makePrivateCa } from "../harness/privateCa";

const root = mkdtempSync(join(tmpdir(), "kilo-fleet-hostfiles-"));
const toolFile = join(root, "tool.cjs");
writeFileSync(toolFile, hostToolSource());
const ca = makePrivateCa();
afterAll(() => {
  ca.cleanup();
  rmSync(root, { recursive: true, force: true });
});

let n = 0;
function home() {
  const h = join(root, `h${n++}`, "home");
  mkdirSync(h, { recursive: true });
  return h;
}
const paths = (h: string) => ({
  configDir: join(h, ".config", "kilo"),
  envFile: join(h, ".config", "kilo", "codex-pooler.env"),
  fishEnvFile: join(h, ".config", "kilo", "codex-pooler.env.fish"),
  stateDir: join(h, ".local", "state", "kilo-fleet"),
});

function tool(args: string[], stdin = "") {
  const r = spawnSync(process.execPath, [toolFile, ...args], { input: stdin, encoding: "utf8", timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
function envArgs(h: string, extra: string[] = [], shells = "sh") {
  const p = paths(h);
  return [
    `home=${h}`,
    `config-dir=${p.configDir}`,
    `env-file=${p.envFile}`,
    `fish-env-file=${p.fishEnvFile}`,
    `bin-dir=${join(h, ".local", "bin")}`,
    `state-dir=${p.stateDir}`,
    `rc-files=${JSON.stringify(SHELL_RC_FILES)}`,
    "var=CODEX_POOLER_API_KEY",
    "pinned=1",
    `shells=${shells}`,
    ...extra,
  ];
}
const envApply = (h: string, key: string, extra: string[] = [], shells = "sh") =>
  tool(["env-apply", ...envArgs(h, extra, shells)], `${key}\n`);
const envDelete = (h: string) => tool(["env-delete", ...envArgs(h)]);
function configArgs(h: string) {
  const dir = paths(h).configDir;
  return [
    `home=${h}`,
    `config-file=${join(dir, "kilo.jsonc")}`,
    `backup-file=${join(dir, "kilo.jsonc.kilo-fleet-backup")}`,
    `state-dir=${paths(h).stateDir}`,
    `system-dir=${join(h, "no-etc-kilo")}`,
    `paths=${JSON.stringify([["model"]])}`,
    `managed=${JSON.stringify({ model: "codex-pooler/gpt-5.5" })}`,
  ];
}

describe("the kilo.jsonc backup keeps the original's mode", () => {
  it.each([0o600, 0o640, 0o644])("original %o", (mode) => {
    const h = home();
    const file = join(paths(h).configDir, "kilo.jsonc");
    mkdirSync(paths(h).configDir, { recursive: true });
    writeFileSync(file, '{ "share": "disabled" }\n');
    chmodSync(file, mode);
    const r = tool(["config-apply", ...configArgs(h)]);
    expect(r.code, r.stderr).toBe(0);
    const backup = `${file}.kilo-fleet-backup`;
    expect(readFileSync(backup, "utf8")).toBe('{ "share": "disabled" }\n');
    expect(statSync(backup).mode & 0o777).toBe(mode);
  });
});

describe("the env files are never written through a symlink", () => {
  it("a symlinked env file is refused with one line naming it; nothing is written anywhere", () => {
    const h = home();
    const p = paths(h);
    mkdirSync(p.configDir, { recursive: true });
    const target = join(h, "dotfiles-env");
    writeFileSync(target, "# mine\n");
    symlinkSync(target, p.envFile);
    const r = envApply(h, "test-key-symlink-1");
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `kilo-fleet: refusing to write the API key through a symlink: ${p.envFile} is a symlink (to ${target}); remove it and deploy again\n`,
    );
    expect(readFileSync(target, "utf8")).toBe("# mine\n");
    expect(existsSync(p.stateDir)).toBe(false);
    expect(r.stdout + r.stderr).not.toContain("test-key-symlink-1");
  });

  it("so is a symlinked fish env file when fish is among the shells", () => {
    const h = home();
    const p = paths(h);
    mkdirSync(p.configDir, { recursive: true });
    symlinkSync(join(h, "nowhere"), p.fishEnvFile);
    const r = envApply(h, "test-key-symlink-2", [], "sh,fish");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${p.fishEnvFile} is a symlink (to ${join(h, "nowhere")})`);
    expect(existsSync(join(h, "nowhere"))).toBe(false);
  });
});

describe("delete never leaves a key behind", () => {
  it("an env file moved into a dotfiles dir and linked back: delete removes the link and the file it points to", () => {
    const h = home();
    const p = paths(h);
    expect(envApply(h, "test-key-moved-1").code).toBe(0);
    const moved = join(h, "dotfiles", "codex-pooler.env");
    mkdirSync(join(h, "dotfiles"));
    renameSync(p.envFile, moved);
    symlinkSync(moved, p.envFile);
    const r = envDelete(h);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(moved)).toBe(false);
    expect(() => lstatSync(p.envFile)).toThrow();
    expect(r.stdout).toContain("dotfiles/codex-pooler.env");
  });

  it("a link to a file that is not kilo-fleet's: only the link goes, the file stays", () => {
    const h = home();
    const p = paths(h);
    expect(envApply(h, "test-key-foreign-1").code).toBe(0);
    const foreign = join(h, "my-env");
    writeFileSync(foreign, "export EDITOR=vi\n");
    rmSync(p.envFile);
    symlinkSync(foreign, p.envFile);
    expect(envDelete(h).code).toBe(0);
    expect(readFileSync(foreign, "utf8")).toBe("export EDITOR=vi\n");
    expect(() => lstatSync(p.envFile)).toThrow();
  });

  it("a dangling link is removed", () => {
    const h = home();
    const p = paths(h);
    expect(envApply(h, "test-key-dangling-1").code).toBe(0);
    rmSync(p.envFile);
    symlinkSync(join(h, "gone"), p.envFile);
    expect(envDelete(h).code).toBe(0);
    expect(() => lstatSync(p.envFile)).toThrow();
  });
});

describe("a config dir outside HOME", () => {
  it("is warned about on stderr (one kilo-fleet: warning: line), and the deploy goes on", () => {
    const h = home();
    const outside = join(h, "..", "dotfiles-repo", "kilo");
    mkdirSync(outside, { recursive: true });
    mkdirSync(join(h, ".config"));
    symlinkSync(outside, paths(h).configDir);
    const r = envApply(h, "test-key-outside-1");
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split("\n").filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^kilo-fleet: warning: .*\.config\/kilo resolves to .*dotfiles-repo\/kilo, outside /);
    expect(lines[0]).toContain("keep codex-pooler.env out of version control");
    const inside = home();
    expect(envApply(inside, "test-key-inside-1").stderr).toBe("");
  });
});

describe("the CA certificates file", () => {
  it("is written 0644 beside the env file, exported as NODE_EXTRA_CA_CERTS, and removed when unset or on delete", () => {
    const h = home();
    const p = paths(h);
    const pemFile = join(h, "..", "ca-input.pem");
    writeFileSync(pemFile, ca.caCert);
    const r = envApply(h, "test-key-ca-1", [`ca-file=${pemFile}`], "sh,fish");
    expect(r.code, r.stderr).toBe(0);
    const caFile = join(p.configDir, "ca-certificates.pem");
    expect(readFileSync(caFile, "utf8")).toBe(ca.caCert);
    expect(statSync(caFile).mode & 0o777).toBe(0o644);
    expect(readFileSync(p.envFile, "utf8")).toContain(`\nexport NODE_EXTRA_CA_CERTS='${caFile}'\n`);
    expect(readFileSync(p.fishEnvFile, "utf8")).toContain(`\nset -gx NODE_EXTRA_CA_CERTS '${caFile}'\n`);
    const sourced = spawnSync("sh", ["-c", `. '${p.envFile}' && printf %s "$NODE_EXTRA_CA_CERTS"`], {
      encoding: "utf8",
    });
    expect(sourced.stdout).toBe(caFile);

    expect(envApply(h, "test-key-ca-1").code).toBe(0);
    expect(existsSync(caFile)).toBe(false);
    expect(readFileSync(p.envFile, "utf8")).not.toContain(CA_ENV_VAR);

    expect(envApply(h, "test-key-ca-1", [`ca-file=${pemFile}`]).code).toBe(0);
    expect(existsSync(caFile)).toBe(true);
    const d = envDelete(h);
    expect(d.code, d.stderr).toBe(0);
    expect(existsSync(caFile)).toBe(false);
    expect(existsSync(p.stateDir)).toBe(false);
  });

  it("refuses a private key, and a symlink at the CA file's path, writing nothing", () => {
    const h = home();
    const p = paths(h);
    const pemFile = join(h, "..", "ca-with-key.pem");
    writeFileSync(pemFile, `${ca.caCert}${ca.serverKey}`);
    const r = envApply(h, "test-key-ca-2", [`ca-file=${pemFile}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("kilo-fleet: refusing to write the CA certificates: the text holds a PRIVATE KEY block\n");
    expect(existsSync(p.envFile)).toBe(false);
    writeFileSync(pemFile, ca.caCert);
    mkdirSync(p.configDir, { recursive: true });
    symlinkSync(join(h, "elsewhere.pem"), join(p.configDir, "ca-certificates.pem"));
    const s = envApply(h, "test-key-ca-2", [`ca-file=${pemFile}`]);
    expect(s.code).toBe(1);
    expect(s.stderr).toContain("refusing to write the CA certificates through a symlink");
    expect(existsSync(join(h, "elsewhere.pem"))).toBe(false);
  });

  it("the tool's npm-ca-bundle writes node's roots plus the CA certificates, 0644; refuses a private key", () => {
    const dir = mkdtempSync(join(root, "bundle-"));
    const pem = join(dir, "ca.pem");
    writeFileSync(pem, ca.caCert);
    const out = join(dir, "npm-ca.pem");
    const r = tool(["npm-ca-bundle", `home=${dir}`, `ca-file=${pem}`, `out=${out}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(out, "utf8")).toBe(npmCaBundle(ca.caCert));
    expect(statSync(out).mode & 0o777).toBe(0o644);
    writeFileSync(pem, `${ca.caCert}${ca.serverKey}`);
    const bad = tool(["npm-ca-bundle", `home=${dir}`, `ca-file=${pem}`, `out=${join(dir, "x.pem")}`]);
    expect(bad.code).toBe(1);
    expect(existsSync(join(dir, "x.pem"))).toBe(false);
  });

  it("npmCaBundle: the roots first, then the custom certificates; caEnvVars only with a file", () => {
    expect(npmCaBundle(`${ca.caCert}\n`, ["ROOT-A\n", "ROOT-B"])).toBe(`ROOT-A\nROOT-B\n${ca.caCert.trim()}\n`);
    expect(npmCaBundle(ca.caCert).split("-----BEGIN CERTIFICATE-----").length).toBeGreaterThan(100);
    expect(caEnvVars(undefined)).toEqual([]);
    expect(caEnvVars("/h/.config/kilo/ca-certificates.pem")).toEqual([
      ["NODE_EXTRA_CA_CERTS", "/h/.config/kilo/ca-certificates.pem"],
    ]);
    expect(ENV_FILE_HEADER.startsWith("# kilo-fleet:")).toBe(true);
  });
});
