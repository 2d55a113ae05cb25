/**
 * One resolved host: `HostSpec` is what a stack's config (or a KiloHost's arguments) comes to for one host,
 * with the fleet settings and the host's overrides applied once (deployer/resolveHosts.ts makes it).
 */
import type * as pulumi from "@pulumi/pulumi";
import type { ModelSettings, ShellName } from "./settings";

/** How to reach an SSH host; each field may come from another resource (e.g. an instance's `publicIp`). */
export interface HostSpecSsh {
  host: pulumi.Input<string>;
  user: pulumi.Input<string>;
  port: pulumi.Input<number>;
  hostKey?: pulumi.Input<string>;
  /** Accept any host key: true only when `hostKey` is absent (a spec without either is refused). */
  insecureIgnoreHostKey?: boolean;
  /** Seconds one dial may take (the connection's `perDialTimeout`). */
  connectTimeoutSeconds: number;
  /** Dials before the step fails (the connection's `dialErrorLimit` is this minus one). */
  connectAttempts: number;
  /** The jump host (`ssh.proxy`, or the host's), pinned by `hostKey`. */
  proxy?: { host: string; user: string; port: number; hostKey: string };
}

/** One host, resolved: no defaults left to apply, no secrets. */
export interface HostSpec {
  /** The host's name (a stack's `hosts[i].name`, or the KiloHost's resource name). */
  name: string;
  poolerBaseUrl: string;
  providerId: string;
  apiKeyEnvVar: string;
  kiloVersion: string;
  model: string;
  models: Record<string, ModelSettings>;
  compactionThresholdPercent: number | null;
  permission?: Record<string, unknown>;
  kiloSettings: Record<string, unknown>;
  smokeCheck: { enabled: boolean; timeoutSeconds: number; level: "kilo-run" | "pool" };
  /** `package`: kilo's platform package, installed by sh (no node on the host); `npm`: npm install. */
  install: { method: "package" | "npm" };
  npmRegistry?: string;
  /** PEM text of the CA certificates the host trusts (npm's install and kilo), or absent. */
  caCertificates?: string;
  /** The egress proxy (`proxy`, or the host's): the download, npm, the pool checks and kilo go through it. */
  proxy?: { https: string; http?: string; noProxy?: string };
  /** Any text; part of every step's inputs, so changing it re-runs every step of the host in place. */
  reconcile?: string;
  /** kilo's managed config for this host (rendered keys, without `$schema`); absent: no policy. */
  policy?: Record<string, unknown>;
  /** The policy step runs through `sudo -n` (a non-root user); absent: as the user (who must be root). */
  become?: "sudo";
  /** With a policy: what the env file adds (what the managed config cannot enforce). */
  policyEnv?: { telemetryOff: boolean; shareOff: boolean };
  /** Explicit shells, or undefined for "those whose rc file exists, plus sh". */
  shells?: ShellName[];
  /** Absent: the machine running Pulumi. */
  ssh?: HostSpecSsh;
  /** `hosts[i].wave` when above 0 (absent: wave 0, the first). */
  wave?: number;
}

/** Something a platform engineer should know (not an error): the key it is about, and what. */
export interface SettingsWarning {
  key: string;
  message: string;
  /** The host it concerns, when it concerns one host only. */
  host?: string;
}

/** A warning as validate prints it and `pulumi up` logs it: `key: message`. */
export const warningText = (w: SettingsWarning): string => `${w.key}: ${w.message}`;
