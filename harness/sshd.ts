/**
 * A private sshd for tests: runs host scripts over SSH exactly as `remote.Command` does.
 *
 * API
 *   ensureAptPackages([{ pkg: "openssh-server", bin: "/usr/sbin/sshd" }, ...])
 *       Installs missing Debian packages with apt-get (`apt-get update` first when the install fails).
 *       Throws with the reason when that is impossible: tests fail, never skip.
 *   const server = await startSshd({ shell: "/bin/bash" })
 *       Installs openssh-server if /usr/sbin/sshd is missing, creates a throwaway user (`useradd`, unlocked
 *       with `usermod -p '*'`, login shell `shell`, its own HOME under a temp dir), generates an ed25519
 *       host key and a client key, and starts `sshd -D` on a free 127.0.0.1 port with its own config
 *       (UsePAM no, StrictModes no, PidFile and AuthorizedKeysFile in the temp dir, AllowUsers the user).
 *   server.run(commandLine, stdin?, { timeoutMs? }) → Promise<{ code, stdout, stderr }>
 *       `ssh -T -p PORT -i KEY ... user@127.0.0.1 <commandLine>`: one command string, stdin piped then
 *       closed, no TTY, non-interactive, strict host key checking against the generated host key.
 *   server.spawn(commandLine) → ChildProcess (stdin left open: write it yourself, e.g. slowly)
 *   server.setShell(shell)   changes the user's login shell (usermod -s), e.g. "/usr/bin/fish"
 *   server.asUser(argv)      runs a local command as the user (setpriv), e.g. to prepare files in HOME
 *   server.port, .user, .uid, .gid, .home, .privateKey (PEM text), .privateKeyPath, .hostPublicKey
 *       ("ssh-ed25519 AAAA..." for remote.Command's hostKey / kilo-fleet:hosts[].ssh.hostKey)
 *   await server.stop()      stops sshd (by its pid), deletes the user and the temp dir
 *   startSshd({ jumpHost: true })
 *       A bastion: TCP forwarding allowed and logged (LogLevel DEBUG1, sshd's stderr: server.log()), so a test
 *       sees each connection forwarded through it (`direct-tcpip`, its target host and port).
 *   startSshd({ noNode: true })
 *       The session's PATH (sshd_config `SetEnv PATH=…`) is one directory of symlinks to every /usr/bin
 *       tool except node, nodejs, npm, npx and corepack: a host without Node.js (server.noNodePath).
 *
 *   startSshd({ privateSystem: { debs: [file] } })
 *       sshd (and so every session) runs as root in a private mount namespace (`unshare -m`, propagation
 *       private) whose /etc, /usr, /var and /run are overlays on a tmpfs: what a test writes there (the
 *       managed config in /etc/kilo, /etc/sudoers.d, packages installed with `dpkg -i` from `debs`) is seen
 *       by that sshd's sessions only, and is gone with the namespace, even when the test runner is killed.
 *       The machine's own /etc/kilo is never seen or changed. `server.inNamespace(script)` runs
 *       `/bin/sh -c script` as root inside it (nsenter). privateSystemDebs(["sudo"]) gives `debs`.
 *
 * node and npm for the user: this machine's node is /usr/bin/node (npm /usr/bin/npm), on sshd's default
 * non-interactive PATH (/usr/local/bin:/usr/bin:/bin:/usr/games), as on a developer machine with a
 * distribution or Homebrew node. When `command -v node` is elsewhere, startSshd symlinks node, npm and npx
 * into the user's ~/.local/bin (where the preflight finds them). Nothing of the test runner's environment
 * reaches the session (sshd passes no environment; npm there runs with the user's own settings). Where the
 * runner needs NODE_EXTRA_CA_CERTS (a TLS-inspecting proxy), the user gets the same trust the way a
 * developer would configure it: `cafile=<that bundle>` in ~/.npmrc (option `npmrc` overrides; "" for none).
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface SshServer {
  port: number;
  user: string;
  uid: number;
  gid: number;
  home: string;
  privateKey: string;
  privateKeyPath: string;
  hostPublicKey: string;
  /** With `noNode`: the session's PATH (a directory without node and npm). */
  noNodePath?: string;
  run(commandLine: string, stdin?: string | Buffer, opts?: { timeoutMs?: number }): Promise<RunResult>;
  spawn(commandLine: string): ChildProcess;
  setShell(shell: string): void;
  /** Writes a local file to the user's HOME over SFTP, as remote.CopyToRemote does. */
  copyToRemote(localFile: string, remotePath: string): void;
  asUser(argv: string[], opts?: { input?: string }): RunResult;
  /** Writes files under the user's HOME as the user (parents made); throws, with the reason, when one fails. */
  writeAsUser(files: Record<string, string>): void;
  /** With `privateSystem`: runs `/bin/sh -c script` as root in sshd's mount namespace. */
  inNamespace(script: string): RunResult;
  /** What sshd logged (with `jumpHost`: every forwarded connection). */
  log(): string;
  stop(): Promise<void>;
}

function sh(cmd: string, args: string[], what: string): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) {
    throw new Error(`${what} failed (${cmd} ${args.join(" ")}): ${(r.stderr || r.stdout || String(r.error)).trim()}`);
  }
  return r.stdout;
}

/** The login shells the step tests run under besides sh, bash and dash: zsh and fish (installed when missing). */
export function ensureLoginShells(): void {
  ensureAptPackages([
    { pkg: "zsh", bin: "/usr/bin/zsh" },
    { pkg: "fish", bin: "/usr/bin/fish" },
  ]);
}

/** Installs Debian packages whose binary is missing; throws with the reason when it cannot. */
export function ensureAptPackages(wanted: { pkg: string; bin: string }[]): void {
  const missing = wanted.filter((w) => !existsSync(w.bin));
  if (missing.length === 0) return;
  const pkgs = missing.map((m) => m.pkg);
  if (process.getuid?.() !== 0) {
    throw new Error(`${pkgs.join(", ")} missing and the tests are not root, so apt-get cannot install them`);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const install = () =>
    spawnSync("apt-get", ["install", "-y", "--no-install-recommends", ...pkgs], { env, encoding: "utf8" });
  let r = install();
  if (r.status !== 0) {
    const u = spawnSync("apt-get", ["update"], { env, encoding: "utf8" });
    if (u.status !== 0) throw new Error(`apt-get update failed: ${(u.stderr || String(u.error)).trim()}`);
    r = install();
  }
  if (r.status !== 0)
    throw new Error(`apt-get install ${pkgs.join(" ")} failed: ${(r.stderr || String(r.error)).trim()}`);
  for (const m of missing)
    if (!existsSync(m.bin)) throw new Error(`apt-get installed ${m.pkg} but ${m.bin} is missing`);
}

/**
 * OpenSSH options that trust exactly `knownHosts` (no config file, no global known_hosts, strict checking,
 * batch mode: nothing to accept) and offer exactly the identity `key`.
 */
export function strictSshOptions(key: string, knownHosts: string): string[] {
  return [
    "-F",
    "/dev/null",
    "-i",
    key,
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    `UserKnownHostsFile=${knownHosts}`,
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "ConnectTimeout=10",
  ];
}

/** A port on 127.0.0.1 nobody listens on right now (bound, noted, closed): for sshd, or as a closed port. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const addr = s.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, deadline: number, alive: () => string | undefined): Promise<void> {
  for (;;) {
    const dead = alive();
    if (dead) throw new Error(dead);
    const ok = await new Promise<boolean>((resolve) => {
      const c = createConnection({ host: "127.0.0.1", port });
      c.once("connect", () => {
        c.destroy();
        resolve(true);
      });
      c.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`sshd did not listen on 127.0.0.1:${port} in time`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Tools a host without Node.js lacks. */
const NODE_TOOLS = ["node", "nodejs", "npm", "npx", "corepack"];

/**
 * Debian packages' .deb files for `privateSystem.debs`, downloaded once (`apt-get download`, which
 * installs nothing) into the test cache: the machine's packages never change.
 */
export function privateSystemDebs(pkgs: string[], cacheDir: string): string[] {
  const dir = join(cacheDir, "debs");
  mkdirSync(dir, { recursive: true });
  return pkgs.map((pkg) => {
    const find = () => readdirSync(dir).find((n) => n.startsWith(`${pkg}_`) && n.endsWith(".deb"));
    if (find() === undefined) {
      const get = () => spawnSync("apt-get", ["download", pkg], { cwd: dir, encoding: "utf8" });
      let r = get();
      if (r.status !== 0) {
        const u = spawnSync("apt-get", ["update"], { encoding: "utf8" });
        if (u.status !== 0) throw new Error(`apt-get update failed: ${(u.stderr || String(u.error)).trim()}`);
        r = get();
      }
      if (r.status !== 0) throw new Error(`apt-get download ${pkg} failed: ${(r.stderr || String(r.error)).trim()}`);
    }
    const name = find();
    if (name === undefined) throw new Error(`apt-get download ${pkg} left no .deb in ${dir}`);
    return join(dir, name);
  });
}

/**
 * Removes a throwaway user. userdel refuses while a process of the user still runs (a session's leftover
 * child): those are killed first, so no test leaves a user behind; one that still cannot go is said on stderr.
 */
function removeUser(user: string): void {
  if (spawnSync("userdel", [user], { encoding: "utf8" }).status === 0) return;
  spawnSync("pkill", ["-KILL", "-u", user]);
  let why = "";
  for (let i = 0; i < 20; i++) {
    const r = spawnSync("userdel", [user], { encoding: "utf8" });
    if (r.status === 0) return;
    why = r.stderr.trim();
    spawnSync("sleep", ["0.1"]);
  }
  process.stderr.write(`harness/sshd: could not remove the test user ${user}: ${why}\n`);
}

/** The namespace's setup, then sshd in it (sh execs it: the same pid). Args: tmpfs dir, sshd config, debs. */
const PRIVATE_SYSTEM_SH = `set -e
ns=$1; config=$2; shift 2
mount -t tmpfs -o mode=0755 kilo-fleet-test "$ns"
for d in etc usr var run; do
  mkdir "$ns/$d" "$ns/$d.work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$ns/$d,workdir=$ns/$d.work" "/$d"
done
if [ $# -gt 0 ]; then DEBIAN_FRONTEND=noninteractive dpkg -i "$@" >"$ns/dpkg.log" 2>&1 || { cat "$ns/dpkg.log" >&2; exit 1; }; fi
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e -f "$config"
`;

export async function startSshd(
  options: {
    shell?: string;
    npmrc?: string;
    noNode?: boolean;
    privateSystem?: { debs: string[] };
    jumpHost?: boolean;
  } = {},
): Promise<SshServer> {
  ensureAptPackages([
    { pkg: "openssh-server", bin: "/usr/sbin/sshd" },
    { pkg: "openssh-client", bin: "/usr/bin/ssh" },
  ]);
  if (process.getuid?.() !== 0) throw new Error("startSshd needs root (useradd, sshd)");
  const dir = mkdtempSync(join(tmpdir(), "kilo-fleet-sshd-"));
  chmodSync(dir, 0o755);
  const home = join(dir, "home");
  const user = `kft${randomBytes(4).toString("hex")}`;
  const shell = options.shell ?? "/bin/bash";
  let sshd: ChildProcess | undefined;
  let created = false;
  const cleanup = async () => {
    if (sshd && sshd.exitCode === null) {
      const exited = new Promise((r) => sshd?.once("exit", r));
      sshd.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
    }
    if (created) removeUser(user);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    sh("useradd", ["-M", "-d", home, "-s", shell, "-U", user], "useradd");
    created = true;
    // A useradd account is locked ("!" password): sshd refuses it even for keys without PAM.
    sh("usermod", ["-p", "*", user], "usermod -p '*'");
    const uid = Number(sh("id", ["-u", user], "id -u").trim());
    const gid = Number(sh("id", ["-g", user], "id -g").trim());
    mkdirSync(home, { mode: 0o755 });
    sh("chown", [`${uid}:${gid}`, home], "chown home");

    const hostKey = join(dir, "ssh_host_ed25519_key");
    sh(
      "ssh-keygen",
      ["-q", "-t", "ed25519", "-N", "", "-C", "kilo-fleet-test-host", "-f", hostKey],
      "ssh-keygen (host)",
    );
    const clientKey = join(dir, "client_ed25519");
    sh(
      "ssh-keygen",
      ["-q", "-t", "ed25519", "-N", "", "-C", "kilo-fleet-test-client", "-f", clientKey],
      "ssh-keygen (client)",
    );
    const authorized = join(dir, "authorized_keys");
    writeFileSync(authorized, readFileSync(`${clientKey}.pub`), { mode: 0o644 });
    const hostPublicKey = readFileSync(`${hostKey}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" ");

    let noNodePath: string | undefined;
    if (options.noNode) {
      noNodePath = join(dir, "path-without-node");
      mkdirSync(noNodePath, { mode: 0o755 });
      for (const name of readdirSync("/usr/bin")) {
        if (!NODE_TOOLS.includes(name)) symlinkSync(join("/usr/bin", name), join(noNodePath, name));
      }
    }

    const port = await freePort();
    const knownHosts = join(dir, "known_hosts");
    writeFileSync(knownHosts, `[127.0.0.1]:${port} ${hostPublicKey}\n`);
    const config = join(dir, "sshd_config");
    writeFileSync(
      config,
      [
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${hostKey}`,
        `PidFile ${join(dir, "sshd.pid")}`,
        `AuthorizedKeysFile ${authorized}`,
        "UsePAM no",
        "StrictModes no",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin no",
        `AllowUsers ${user}`,
        "PrintMotd no",
        "PrintLastLog no",
        "X11Forwarding no",
        // A jump host logs each forwarded connection (debug1: server_request_direct_tcpip … target …).
        options.jumpHost ? "LogLevel DEBUG1" : "LogLevel ERROR",
        ...(options.jumpHost ? ["AllowTcpForwarding yes"] : []),
        // remote.CopyToRemote writes files over SFTP.
        "Subsystem sftp internal-sftp",
        ...(noNodePath ? [`SetEnv PATH=${noNodePath}`] : []),
        "",
      ].join("\n"),
    );
    mkdirSync("/run/sshd", { recursive: true, mode: 0o755 }); // privilege separation directory
    let sshdLog = "";
    if (options.privateSystem) {
      const ns = join(dir, "private-system");
      mkdirSync(ns, { mode: 0o700 });
      sshd = spawn(
        "unshare",
        [
          "-m",
          "--propagation",
          "private",
          "/bin/sh",
          "-c",
          PRIVATE_SYSTEM_SH,
          "sh",
          ns,
          config,
          ...options.privateSystem.debs,
        ],
        { stdio: ["ignore", "ignore", "pipe"] },
      );
    } else {
      sshd = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", config], { stdio: ["ignore", "ignore", "pipe"] });
    }
    sshd.stderr?.on("data", (d) => {
      sshdLog += String(d);
    });
    const proc = sshd;
    // A private system installs its packages first (dpkg: seconds).
    await waitForPort(port, Date.now() + (options.privateSystem ? 120_000 : 10_000), () =>
      proc.exitCode !== null ? `sshd exited (${proc.exitCode}): ${sshdLog.trim()}` : undefined,
    );

    const nodePath = execFileSync("sh", ["-c", "command -v node"], { encoding: "utf8" }).trim();
    const defaultPath = ["/usr/local/bin", "/usr/bin", "/bin", "/usr/games"];
    if (!options.noNode && !defaultPath.includes(dirname(nodePath))) {
      const bin = join(home, ".local", "bin");
      mkdirSync(bin, { recursive: true });
      for (const t of ["node", "npm", "npx"]) {
        if (existsSync(join(dirname(nodePath), t))) symlinkSync(join(dirname(nodePath), t), join(bin, t));
      }
      sh("chown", ["-R", `${uid}:${gid}`, join(home, ".local")], "chown .local");
    }

    const ca = process.env.NODE_EXTRA_CA_CERTS;
    const npmrc = options.npmrc ?? (ca ? `cafile=${ca}\n` : "");
    if (npmrc !== "") {
      writeFileSync(join(home, ".npmrc"), npmrc, { mode: 0o644 });
      sh("chown", [`${uid}:${gid}`, join(home, ".npmrc")], "chown .npmrc");
    }

    const sshArgs = (commandLine: string) => [
      "-T",
      "-p",
      String(port),
      ...strictSshOptions(clientKey, knownHosts),
      "-o",
      "LogLevel=ERROR",
      `${user}@127.0.0.1`,
      commandLine,
    ];
    const spawnSsh = (commandLine: string) => spawn("ssh", sshArgs(commandLine), { stdio: ["pipe", "pipe", "pipe"] });
    // The same options for sftp (its port flag is -P); the last two ssh arguments become the destination.
    const sftpArgs = () => {
      const a = sshArgs("").slice(0, -2);
      a.splice(a.indexOf("-p"), 2, "-P", String(port));
      return [...a.filter((x) => x !== "-T"), "-b", "-", `${user}@127.0.0.1`];
    };
    const asUser = (argv: string[], opts?: { input?: string }): RunResult => {
      const r = spawnSync(
        "setpriv",
        [`--reuid=${uid}`, `--regid=${gid}`, "--clear-groups", "--", "env", `HOME=${home}`, `USER=${user}`, ...argv],
        { encoding: "utf8", input: opts?.input ?? "", cwd: home },
      );
      return { code: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    return {
      port,
      user,
      uid,
      gid,
      home,
      privateKey: readFileSync(clientKey, "utf8"),
      privateKeyPath: clientKey,
      hostPublicKey,
      ...(noNodePath ? { noNodePath } : {}),
      spawn: spawnSsh,
      run(commandLine, stdin, opts) {
        return new Promise((resolve, reject) => {
          const child = spawnSsh(commandLine);
          const out: Buffer[] = [];
          const err: Buffer[] = [];
          child.stdout?.on("data", (d: Buffer) => out.push(d));
          child.stderr?.on("data", (d: Buffer) => err.push(d));
          const timer = setTimeout(() => {
            child.kill("SIGKILL");
            reject(new Error(`ssh command timed out after ${opts?.timeoutMs ?? 120_000} ms`));
          }, opts?.timeoutMs ?? 120_000);
          child.once("error", reject);
          child.once("close", (code) => {
            clearTimeout(timer);
            resolve({ code, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") });
          });
          child.stdin?.on("error", () => {});
          child.stdin?.end(stdin ?? "");
        });
      },
      copyToRemote(localFile: string, remotePath: string) {
        // As remote.CopyToRemote does: one SFTP put; a relative path is relative to the login directory,
        // and the parent directory must exist.
        const r = spawnSync("sftp", sftpArgs(), { input: `put ${localFile} ${remotePath}\n`, encoding: "utf8" });
        if (r.status !== 0) throw new Error(`sftp put ${remotePath} failed: ${r.stderr || r.stdout}`);
      },
      setShell(newShell: string) {
        sh("usermod", ["-s", newShell, user], "usermod -s");
      },
      asUser,
      writeAsUser(files: Record<string, string>) {
        for (const [rel, text] of Object.entries(files)) {
          const r = asUser(["sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1"', "sh", rel], { input: text });
          if (r.code !== 0) throw new Error(`writing ~/${rel} as ${user} failed: ${r.stderr}`);
        }
      },
      inNamespace(script: string) {
        if (!options.privateSystem || proc.pid === undefined) throw new Error("inNamespace needs privateSystem");
        const r = spawnSync("nsenter", ["-t", String(proc.pid), "-m", "/bin/sh", "-c", script], { encoding: "utf8" });
        return { code: r.status, stdout: r.stdout, stderr: r.stderr };
      },
      log: () => sshdLog,
      stop: cleanup,
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
}
