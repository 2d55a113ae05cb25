/**
 * The host tool's file hygiene, run for real (the shipped tool, as the steps run it) on temporary HOMEs:
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
import { encodeStepArg, type StepArgs, type Subcommand } from "../common/stepArgs";
import { hostToolArtifact } from "../deployer/hostTool";
import { scriptEnv } from "../harness/hostHome";
import { makePrivateCa } from "../harness/privateCa";
import { npmCaBundle } from "../host/caFile";
import { CA_ENV_VAR, caEnvVars, ENV_FILE_HEADER } from "../host/envFile";

const root = mkdtempSync(join(tmpdir(), "kilo-fleet-hostfiles-"));
const toolFile = hostToolArtifact().file;
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

/** The shipped tool's subcommand with its one JSON argument, run by node as the header would (HOME = h). */
function tool<S extends Subcommand>(
  h: string,
  sub: S,
  args: StepArgs[S],
  stdin = "",
  env: Record<string, string> = {},
) {
  const tmp = join(h, "..", "tmp");
  mkdirSync(tmp, { recursive: true });
  const r = spawnSync(process.execPath, [toolFile, sub, encodeStepArg(args)], {
    input: stdin,
    encoding: "utf8",
    timeout: 30_000,
    env: scriptEnv(h, tmp, { KILO_FLEET_TEST_SYSTEM_DIR: join(h, "no-etc-kilo"), ...env }),
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const envApply = (h: string, key: string, extra: Partial<StepArgs["env-apply"]> = {}, shells = ["sh"]) =>
  tool(h, "env-apply", { var: "CODEX_POOLER_API_KEY", pinned: true, shells, ...extra }, `${key}\n`);
const envDelete = (h: string) => tool(h, "env-delete", {});

describe("the kilo.jsonc backup keeps the original's mode", () => {
  it.each([0o600, 0o640, 0o644])("original %o", (mode) => {
    const h = home();
    const file = join(paths(h).configDir, "kilo.jsonc");
    mkdirSync(paths(h).configDir, { recursive: true });
    writeFileSync(file, '{ "share": "disabled" }\n');
    chmodSync(file, mode);
    const r = tool(h, "config-apply", { managed: { model: "codex-pooler/gpt-5.5" } });
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
    const r = envApply(h, "test-key-symlink-2", {}, ["sh", "fish"]);
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
    const r = envApply(h, "test-key-ca-1", { caCertificates: ca.caCert }, ["sh", "fish"]);
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

    expect(envApply(h, "test-key-ca-1", { caCertificates: ca.caCert }).code).toBe(0);
    expect(existsSync(caFile)).toBe(true);
    const d = envDelete(h);
    expect(d.code, d.stderr).toBe(0);
    expect(existsSync(caFile)).toBe(false);
    expect(existsSync(p.stateDir)).toBe(false);
  });

  it("refuses a private key, and a symlink at the CA file's path, writing nothing", () => {
    const h = home();
    const p = paths(h);
    const r = envApply(h, "test-key-ca-2", { caCertificates: `${ca.caCert}${ca.serverKey}` });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("kilo-fleet: refusing to write the CA certificates: the text holds a PRIVATE KEY block\n");
    expect(existsSync(p.envFile)).toBe(false);
    mkdirSync(p.configDir, { recursive: true });
    symlinkSync(join(h, "elsewhere.pem"), join(p.configDir, "ca-certificates.pem"));
    const s = envApply(h, "test-key-ca-2", { caCertificates: ca.caCert });
    expect(s.code).toBe(1);
    expect(s.stderr).toContain("refusing to write the CA certificates through a symlink");
    expect(existsSync(join(h, "elsewhere.pem"))).toBe(false);
  });

  it("the install subcommand: npm gets --cafile (node's roots plus the CA certificates) and, with a token on stdin, the npmrc on its stdin as --userconfig /dev/stdin (never a file); the token never in argv", () => {
    const h = home();
    const rec = join(h, "..", "npm-record");
    mkdirSync(rec);
    // A stand-in npm: records its argv, the files it was given and their modes, then "installs" kilo.
    const fakeNpm = join(h, "..", "fake-npm");
    writeFileSync(
      fakeNpm,
      `#!/bin/sh
printf '%s\\n' "$@" > '${rec}/argv'
prev=
for a in "$@"; do
  case $prev in
  --cafile) cp "$a" '${rec}/cafile'; stat -c %a "$a" > '${rec}/cafile.mode' ;;
  --userconfig) cat "$a" > '${rec}/npmrc'; printf %s "$a" > '${rec}/npmrc.path'
    grep -rl "$KF_TEST_TOKEN" "$HOME" "$TMPDIR" > '${rec}/copies' ;;
  --prefix) prefix=$a ;;
  esac
  prev=$a
done
mkdir -p "$prefix/lib/node_modules/@kilocode/cli" "$prefix/bin"
printf '{"version":"7.7.7"}' > "$prefix/lib/node_modules/@kilocode/cli/package.json"
printf '#!/bin/sh\\n' > "$prefix/bin/kilo"; chmod 755 "$prefix/bin/kilo"
`,
      { mode: 0o755 },
    );
    const token = "npm_TESTTOKENabcdef123456";
    const r = tool(
      h,
      "install",
      {
        host: "t",
        version: "7.7.7",
        registry: "https://npm.example.com/sub/",
        tokenOnStdin: true,
        caCertificates: ca.caCert,
      },
      `${token}\n`,
      { KILO_FLEET_NPM: fakeNpm, KF_TEST_TOKEN: token },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(rec, "cafile"), "utf8")).toBe(npmCaBundle(ca.caCert));
    expect(readFileSync(join(rec, "cafile.mode"), "utf8").trim()).toBe("644");
    expect(readFileSync(join(rec, "npmrc"), "utf8")).toBe(`//npm.example.com/sub/:_authToken=${token}\n`);
    expect(readFileSync(join(rec, "npmrc.path"), "utf8")).toBe("/dev/stdin");
    // While npm ran, no file under HOME or TMPDIR held the token (a kill -9 then would leave none).
    expect(readFileSync(join(rec, "copies"), "utf8")).toBe("");
    expect(readFileSync(join(rec, "argv"), "utf8")).not.toContain(token);
    expect(r.stdout + r.stderr).not.toContain(token);
    // A private key among the CA certificates: refused before npm runs.
    rmSync(join(rec, "argv"));
    const bad = tool(h, "install", { host: "t", version: "7.7.8", caCertificates: `${ca.caCert}${ca.serverKey}` }, "", {
      KILO_FLEET_NPM: fakeNpm,
    });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("PRIVATE KEY");
    expect(existsSync(join(rec, "argv"))).toBe(false);
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
