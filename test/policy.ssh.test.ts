/**
 * The policy step for real: over the loopback sshd, a throwaway user whose passwordless sudo (Debian's
 * sudo, `dpkg -i`'d by the setup) writes the real /etc/kilo, and the real kilo 7.7.7 resolving its
 * effective config: a user kilo.jsonc, a project kilo.jsonc and KILO_CONFIG_CONTENT lose to the policy.
 * The same user whose sudo wants a password, without sudo, or without become, gets one line and nothing
 * is written. sshd runs in a private mount namespace (harness/sshd.ts `privateSystem`) whose /etc,
 * /usr, /var and /run are overlays: other test files running kilo never see this /etc/kilo, and the
 * machine's own /etc/kilo (and its packages) stay as they were, even when this test fails or is killed.
 * No API key exists in this file: `kilo debug config` prints resolved {env:…} values.
 */
import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { doctor, type HostReport } from "../cli/doctor";
import { parseResult } from "../common/result";
import { shQuote } from "../common/shellQuote";
import type { HostSpec } from "../deployer/hostSpec";
import { hostStepCommands, policyStep } from "../deployer/hostSteps";
import { hostToolArtifact } from "../deployer/hostTool";
import { resolveHosts } from "../deployer/resolveHosts";
import { ensureKilo, testCacheDir } from "../harness/kilo";
import { privateSystemDebs, type SshServer, startSshd } from "../harness/sshd";
import { renderPolicyFile } from "../host/policy";

const tool = hostToolArtifact();
const HOST = "dev-box-1";
let server: SshServer;
/** The host as a stack with a policy and become: sudo resolves it, and its steps' commands. */
let spec: HostSpec;
let steps: ReturnType<typeof hostStepCommands>;
/** The stack's policy: a pool model, another provider's small model, permission and share. */
const STACK_POLICY = {
  model: "gpt-5.5",
  small_model: "codex-pooler/gpt-5.5-mini",
  permission: { bash: "deny", edit: "ask" },
  share: "disabled",
};

/** The machine's own /etc/kilo (most likely absent), before anything ran. */
const machineEtcKilo = () =>
  existsSync("/etc/kilo")
    ? readdirSync("/etc/kilo").map((n) => [n, readFileSync(join("/etc/kilo", n), "latin1")])
    : null;
const machineBefore = machineEtcKilo();

/** Root's view of the namespace's /etc/kilo: `name mode uid:gid` lines and each file's bytes. */
function nsEtcKilo(): string {
  const r = server.inNamespace(
    'cd /etc/kilo 2>/dev/null || { echo absent; exit 0; }; for f in . .* *; do [ -e "$f" ] || continue; case $f in ..) continue;; esac; stat -c "%n %a %u:%g" "$f"; [ -f "$f" ] && cat "$f" && echo "<eof>"; done',
  );
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}

const sudoers = (line: string) =>
  server.inNamespace(
    `printf '%s\\n' ${shQuote(line)} > /etc/sudoers.d/kilo-fleet-test && chmod 0440 /etc/sudoers.d/kilo-fleet-test`,
  );

beforeAll(async () => {
  server = await startSshd({
    shell: "/bin/bash",
    privateSystem: { debs: privateSystemDebs(["sudo"], testCacheDir()) },
  });
  const resolved = resolveHosts({
    stack: {
      "kilo-fleet:poolerBaseUrl": "http://127.0.0.1:9/v1",
      "kilo-fleet:policy": JSON.stringify(STACK_POLICY),
      "kilo-fleet:become": "sudo",
      "kilo-fleet:hosts": JSON.stringify([
        { name: HOST, ssh: { host: "127.0.0.1", port: server.port, user: server.user, hostKey: server.hostPublicKey } },
      ]),
    },
  });
  expect(resolved.errors).toEqual([]);
  spec = resolved.specs[0];
  steps = hostStepCommands(HOST, spec, tool, "ssh");
  // The tool where its step puts it, and the cached kilo in the user's npm prefix (hard links: the user
  // cannot read root's cache, and a copy would cost 300 MB).
  expect(server.asUser(["mkdir", "-p", tool.pathInHome.replace(/\/[^/]+$/, "")]).code).toBe(0);
  server.copyToRemote(tool.file, tool.pathInHome);
  const kilo = ensureKilo();
  const dest = join(server.home, ".local/lib/node_modules/@kilocode");
  mkdirSync(dest, { recursive: true });
  execFileSync("cp", ["-al", join(kilo.prefix, "lib/node_modules/@kilocode/cli"), dest]);
  mkdirSync(join(server.home, ".local/bin"), { recursive: true });
  symlinkSync("../lib/node_modules/@kilocode/cli/bin/kilo", join(server.home, ".local/bin/kilo"));
  execFileSync("chown", ["-R", "--no-dereference", `${server.uid}:${server.gid}`, join(server.home, ".local")]);
});
afterAll(async () => {
  await server?.stop();
  // The machine never saw the namespace's /etc/kilo.
  expect(machineEtcKilo()).toEqual(machineBefore);
});

/** The policy step's create and delete, exactly as KiloHost runs them over SSH. */
const apply = () => server.run(steps.policy?.create ?? "false");
const remove = () => server.run(steps.policy?.delete ?? "false");

describe("the policy in the real /etc/kilo, through sudo -n, over SSH", () => {
  test("passwordless sudo: written root-owned 0644 in a 0755 dir; twice = once; kilo's effective config is the policy's; delete leaves /etc/kilo as it was", async () => {
    expect(sudoers(`${server.user} ALL=(ALL) NOPASSWD: ALL`).code).toBe(0);
    const before = nsEtcKilo();
    expect(before).toBe("absent\n");
    const r = await apply();
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(parseResult(r.stdout, "policy")).toEqual({
      step: "policy",
      path: "/etc/kilo/kilo.jsonc",
      status: "created",
    });
    const first = nsEtcKilo();
    expect(first).toContain(". 755 0:0\n");
    expect(first).toContain(`kilo.jsonc 644 0:0\n${renderPolicyFile(spec.policy ?? {})}<eof>`);
    expect(first).toContain(".kilo-fleet-policy.json 600 0:0\n");
    // The machine's /etc/kilo is not the namespace's.
    expect(machineEtcKilo()).toEqual(machineBefore);

    const again = await apply();
    expect(again.code).toBe(0);
    expect(parseResult(again.stdout, "policy")?.status).toBe("unchanged");
    expect(nsEtcKilo()).toBe(first);

    // What the user and a project set, and KILO_CONFIG_CONTENT, lose to the policy; a key the policy
    // does not set stays the project's. No key variable anywhere: apiKey resolves to "".
    const mine = `{ "model": "user/own", "share": "auto", "permission": { "bash": "allow" }, "enabled_providers": ["openai"] }\n`;
    const project = `{ "model": "project/own", "permission": { "edit": "allow" }, "username": "project-user" }\n`;
    server.writeAsUser({ ".config/kilo/kilo.jsonc": mine, "proj/kilo.jsonc": project });
    const content = JSON.stringify({ model: "content/own", share: "manual", permission: { bash: "allow" } });
    const dbg = await server.run(
      `cd proj && env -u CODEX_POOLER_API_KEY KILO_CONFIG_CONTENT=${shQuote(content)} ~/.local/bin/kilo debug config`,
    );
    expect(dbg.code, dbg.stderr).toBe(0);
    const effective = JSON.parse(dbg.stdout) as Record<string, unknown>;
    expect(effective.model).toBe("codex-pooler/gpt-5.5");
    expect(effective.small_model).toBe("codex-pooler/gpt-5.5-mini");
    expect(effective.share).toBe("disabled");
    expect(effective.enabled_providers).toEqual(["codex-pooler"]);
    expect(effective.permission).toEqual({ bash: "deny", edit: "ask" });
    expect(effective.provider).toEqual({
      "codex-pooler": { options: { baseURL: "http://127.0.0.1:9/v1", apiKey: "" } },
    });
    expect(effective.username).toBe("project-user");

    const d = await remove();
    expect(d.stderr).toBe("");
    expect(d.code).toBe(0);
    expect(d.stdout).toContain("removed /etc/kilo/kilo.jsonc");
    expect(nsEtcKilo()).toBe(before);
  }, 120_000);

  test("a managed file that was there is put back byte for byte (owner and mode too)", async () => {
    expect(sudoers(`${server.user} ALL=(ALL) NOPASSWD: ALL`).code).toBe(0);
    const mk = server.inNamespace(
      "mkdir -m 0755 /etc/kilo && printf '%s' '{\"model\":\"corp/m\"} ' > /etc/kilo/kilo.jsonc && chown 0:4 /etc/kilo/kilo.jsonc && chmod 0640 /etc/kilo/kilo.jsonc",
    );
    expect(mk.code, mk.stderr).toBe(0);
    const before = nsEtcKilo();
    const r = await apply();
    expect(r.code, r.stderr).toBe(0);
    expect(parseResult(r.stdout, "policy")?.replaced).toBe(true);
    expect(nsEtcKilo()).toContain(`kilo.jsonc 644 0:0\n${renderPolicyFile(spec.policy ?? {})}<eof>`);
    const d = await remove();
    expect(d.code, d.stderr).toBe(0);
    expect(nsEtcKilo()).toBe(before);
    expect(before).toContain('kilo.jsonc 640 0:4\n{"model":"corp/m"} <eof>');
    expect(server.inNamespace("rm -r /etc/kilo").code).toBe(0);
  }, 60_000);

  test("sudo wanting a password, no sudo, no become: one line naming the host and the setting, nothing written", async () => {
    expect(sudoers(`${server.user} ALL=(ALL) ALL`).code).toBe(0);
    const pw = await apply();
    expect(pw.code).toBe(1);
    expect(pw.stdout).toBe("");
    expect(pw.stderr).toBe(
      `kilo-fleet: policy on ${HOST}: become: sudo, but sudo -n refused (sudo: a password is required); nothing was written (allow this user passwordless sudo, or deploy the policy as root)\n`,
    );
    expect(nsEtcKilo()).toBe("absent\n");

    const none = await server.run(policyStep(tool.id, HOST, spec.policy ?? {}, undefined).create);
    expect(none.code).toBe(1);
    expect(none.stderr).toBe(
      `kilo-fleet: policy on ${HOST}: writing kilo's managed config (/etc/kilo) needs root: set become: sudo for this host, or deploy it as root; nothing was written\n`,
    );

    // sudo gone from the host (hidden in the namespace: /dev/null over it is not executable).
    expect(server.inNamespace("mount --bind /dev/null /usr/bin/sudo").code).toBe(0);
    try {
      const gone = await apply();
      expect(gone.code).toBe(1);
      expect(gone.stderr).toBe(
        `kilo-fleet: policy on ${HOST}: become: sudo is set, but this host has no sudo; nothing was written (install sudo, or deploy the policy as root)\n`,
      );
    } finally {
      expect(server.inNamespace("umount /usr/bin/sudo").code).toBe(0);
    }
    expect(nsEtcKilo()).toBe("absent\n");
    expect(statSync(server.home).uid).toBe(server.uid);
  }, 60_000);

  test("root needs no become: the step as root (no sudo) writes and removes the policy alike", () => {
    const asRoot = (cmd: string | undefined) =>
      server.inNamespace(`cd /root && HOME=/root ${(cmd ?? "false").replace("~/", `${server.home}/`)}`);
    const plain = policyStep(tool.id, HOST, spec.policy ?? {}, undefined);
    const r = asRoot(plain.create);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(parseResult(r.stdout, "policy")?.status).toBe("created");
    expect(nsEtcKilo()).toContain(`kilo.jsonc 644 0:0\n${renderPolicyFile(spec.policy ?? {})}<eof>`);
    const d = asRoot(plain.delete);
    expect(d.code, d.stderr).toBe(0);
    expect(nsEtcKilo()).toBe("absent\n");
  });

  test("on a host without node the tool runs on kilo as Bun, and its sudo re-run does too", async () => {
    expect(sudoers(`${server.user} ALL=(ALL) NOPASSWD: ALL`).code).toBe(0);
    // As header.sh runs the tool when no node is found: kilo's Bun binary, BUN_BE_BUN=1.
    const bun = "~/.local/lib/node_modules/@kilocode/cli/node_modules/@kilocode/cli-linux-x64/bin/kilo";
    const onBun = (cmd: string | undefined) =>
      server.run((cmd ?? "false").replace("/bin/sh ", `BUN_BE_BUN=1 BUN_RUNTIME_TRANSPILER_CACHE_PATH=0 ${bun} `));
    const r = await onBun(steps.policy?.create);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(parseResult(r.stdout, "policy")?.status).toBe("created");
    expect(nsEtcKilo()).toContain(`kilo.jsonc 644 0:0\n${renderPolicyFile(spec.policy ?? {})}<eof>`);
    const d = await onBun(steps.policy?.delete);
    expect(d.code, d.stderr).toBe(0);
    expect(nsEtcKilo()).toBe("absent\n");
  });

  test("kilo-fleet doctor over SSH (as the user) checks the real /etc/kilo against the policy and names the bypasses", async () => {
    expect(sudoers(`${server.user} ALL=(ALL) NOPASSWD: ALL`).code).toBe(0);
    expect((await apply()).code).toBe(0);
    const scratch = mkdtempSync(join(tmpdir(), "kilo-fleet-policy-doctor-"));
    try {
      const stack = join(scratch, "Pulumi.policy.yaml");
      writeFileSync(
        stack,
        [
          "config:",
          "  kilo-fleet:poolerBaseUrl: http://127.0.0.1:9/v1",
          `  kilo-fleet:policy: '${JSON.stringify(STACK_POLICY)}'`,
          "  kilo-fleet:become: sudo",
          "  kilo-fleet:hosts:",
          `    - name: ${HOST}`,
          `      ssh: { host: 127.0.0.1, port: ${server.port}, user: ${server.user}, hostKey: "${server.hostPublicKey}" }`,
          "",
        ].join("\n"),
      );
      const policyFindings = async () => {
        let stdout = "";
        const code = await doctor(["--file", stack, "--identity", server.privateKeyPath, "--json"], {
          env: process.env,
          stdout: (t) => {
            stdout += t;
          },
          stderr: () => {},
          stderrIsTTY: false,
          projectDir: join(__dirname, ".."),
          tool,
        });
        const host = (JSON.parse(stdout) as { hosts: HostReport[] }).hosts[0];
        expect(host.status, `${code}`).not.toBe("unreachable");
        // Exit 1 (a problem found) exactly when something is named.
        expect(code).toBe(host.drift.length > 0 ? 1 : 0);
        return host.drift.filter((d) => d.item === "policy").map((d) => d.what);
      };
      expect(await policyFindings()).toEqual([]);
      // /etc/kilo world-writable: anyone could replace the policy.
      expect(server.inNamespace("chmod 0777 /etc/kilo").code).toBe(0);
      try {
        expect(await policyFindings()).toEqual([
          "/etc/kilo is mode 0777 owned by uid 0, expected owned by root and not group- or world-writable (whoever can write it can replace the policy)",
        ]);
      } finally {
        server.inNamespace("chmod 0755 /etc/kilo");
      }
      // Another managed file that sets a policy key, and KILO_PERMISSION in a startup file.
      expect(server.inNamespace(`printf '{"model":"other/m"}\\n' > /etc/kilo/opencode.json`).code).toBe(0);
      expect(server.asUser(["sh", "-c", `printf 'export KILO_PERMISSION={}\\n' >> .profile`]).code).toBe(0);
      expect(await policyFindings()).toEqual([
        "/etc/kilo/opencode.json is a managed file too and sets model: kilo may take those from it instead of the policy",
        "~/.profile line 1 sets KILO_PERMISSION, so kilo lays it over the policy's permission",
      ]);
    } finally {
      server.inNamespace("rm -f /etc/kilo/opencode.json");
      server.asUser(["rm", "-f", ".profile"]);
      rmSync(scratch, { recursive: true, force: true });
    }
    expect((await remove()).code).toBe(0);
    expect(nsEtcKilo()).toBe("absent\n");
  }, 60_000);
});
