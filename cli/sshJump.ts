/**
 * The hop to a jump host (`ssh.proxy`) for the CLI's own ssh connections (`doctor`, `hostkeys`): a ProxyCommand
 * running `ssh -W` to the jump host, as strict as any hop (batch mode, its pinned key alone trusted), whose log
 * says why the hop failed when it did.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { shQuote } from "../common/shellQuote";
import { lastLine, readIfAny } from "./shared";

/** A jump host (`ssh.proxy`): its address and its pinned key. */
export interface JumpHost {
  host: string;
  user: string;
  port: number;
  hostKey: string;
}

/** A hop through a jump host, for one connection to a host behind it. */
export interface JumpHop {
  /** `-o ProxyCommand=…`: goes among the options of the ssh that connects to the host. */
  options: string[];
  /**
   * Why the hop failed, in its own words (its `-E` log: refused, the jump host's key, its login, the forward to
   * the host), naming the jump host and `ssh.proxy`; undefined when the hop said nothing. Ask once that ssh ended.
   */
  failure(): string | undefined;
}

/** A known_hosts line for a pinned key (`[host]:port` unless port 22). */
export function knownHostsLine(host: string, port: number, hostKey: string): string {
  const [type, key] = hostKey.trim().split(/\s+/);
  return `${port === 22 ? host : `[${host}]:${port}`} ${type} ${key}\n`;
}

/** `the jump host HOST:PORT (ssh.proxy)`: how a message names it. */
export function jumpHostName(jump: { host: string; port: number }): string {
  return `the jump host ${jump.host}:${jump.port} (ssh.proxy)`;
}

/**
 * The hop to `jump` for a connection to `target`: writes the jump host's pinned key and (later) the hop's log
 * into `dir` (the caller's temporary directory, removed by the caller). `identity`: the key the hop offers (default:
 * the operator's agent and keys); `noConfigFile`: the hop reads no ssh config (`-F /dev/null`).
 */
export function jumpHop(
  jump: JumpHost,
  target: { host: string; port: number },
  options: { dir: string; timeoutSeconds: number; ssh?: string; identity?: string; noConfigFile?: boolean },
): JumpHop {
  const known = join(options.dir, "jump_known_hosts");
  const log = join(options.dir, "jump.log");
  writeFileSync(known, knownHostsLine(jump.host, jump.port, jump.hostKey), { mode: 0o600 });
  const hop = [
    options.ssh ?? "ssh",
    ...(options.noConfigFile ? ["-F", "/dev/null"] : []),
    ...["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no"],
    ...["-o", "CheckHostIP=no", "-o", `ConnectTimeout=${options.timeoutSeconds}`, "-o", "LogLevel=ERROR"],
    ...["-o", `UserKnownHostsFile=${known}`, "-o", "GlobalKnownHostsFile=/dev/null"],
    ...(options.identity ? ["-i", options.identity, "-o", "IdentitiesOnly=yes"] : []),
    ...["-E", log, "-p", String(jump.port), "-l", jump.user, "-W", "%h:%p", "--", jump.host],
  ];
  // ssh runs it with the user's shell: every word quoted, a literal % doubled (ssh's own escapes).
  const word = (w: string) => (w === "%h:%p" ? w : shQuote(w).replace(/%/g, "%%"));
  return {
    options: ["-o", `ProxyCommand=${hop.map(word).join(" ")}`],
    failure() {
      const said = lastLine(readIfAny(log));
      if (said === undefined) return undefined;
      if (said === "stdio forwarding failed") {
        return `${jumpHostName(jump)} could not connect to ${target.host}:${target.port} (${said})`;
      }
      return `${jumpHostName(jump)}: ${said}`;
    },
  };
}
