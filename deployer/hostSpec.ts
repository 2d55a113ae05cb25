/**
 * One resolved spec per host: fleet defaults and the host's own overrides, applied once. `hostSpec` makes
 * it from a stack's settings; `parseHostArgs` makes it from a `KiloHost`'s arguments, validating them with
 * the very field schemas (and messages) of the stack settings, keyed by the argument's own path
 * (`ssh.port`, `models["gpt-5.5"].limit.input`). Defaults live in the schema and nowhere else.
 */
import * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import {
  type HostSettings,
  hostOverrides,
  isLoopbackHost,
  type ModelSettings,
  type Settings,
  type SettingsError,
  type ShellName,
  SSH_CONNECT_DEFAULTS,
  settingsSchema,
  sshConnection,
} from "./settings";

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
}

/** One host, resolved: no defaults left to apply, no secrets. */
export interface HostSpec {
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
  /** Any text; part of every step's inputs, so changing it re-runs every step of the host in place. */
  reconcile?: string;
  /** Explicit shells, or undefined for "those whose rc file exists, plus sh". */
  shells?: ShellName[];
  /** Absent: the machine running Pulumi. */
  ssh?: HostSpecSsh;
}

/** The spec of `host` in a stack's settings. */
export function hostSpec(settings: Settings, host: HostSettings): HostSpec {
  const caCertificates = host.caCertificates ?? settings.caCertificates;
  const reconcile = host.reconcile ?? settings.reconcile;
  return {
    poolerBaseUrl: settings.poolerBaseUrl,
    providerId: settings.providerId,
    apiKeyEnvVar: settings.apiKeyEnvVar,
    kiloVersion: host.kiloVersion ?? settings.kiloVersion,
    model: host.model ?? settings.model,
    models: settings.models,
    compactionThresholdPercent: settings.compactionThresholdPercent,
    ...(settings.permission !== undefined ? { permission: settings.permission } : {}),
    kiloSettings: settings.kiloSettings,
    smokeCheck: { ...settings.smokeCheck, ...(host.smokeCheck?.level ? { level: host.smokeCheck.level } : {}) },
    install: { method: host.install?.method ?? settings.install.method },
    ...(settings.npmRegistry !== undefined ? { npmRegistry: settings.npmRegistry } : {}),
    ...(caCertificates !== undefined ? { caCertificates } : {}),
    ...(reconcile !== undefined ? { reconcile } : {}),
    ...(host.shells !== undefined ? { shells: host.shells } : {}),
    ...(host.ssh !== undefined
      ? {
          ssh: {
            host: host.ssh.host,
            user: host.ssh.user,
            port: host.ssh.port ?? 22,
            ...(host.ssh.hostKey !== undefined ? { hostKey: host.ssh.hostKey } : {}),
            ...(host.ssh.insecureIgnoreHostKey === true ? { insecureIgnoreHostKey: true } : {}),
            connectTimeoutSeconds: host.ssh.connectTimeoutSeconds ?? settings.ssh.connectTimeoutSeconds,
            connectAttempts: host.ssh.connectAttempts ?? settings.ssh.connectAttempts,
          },
        }
      : {}),
  };
}

const s = settingsSchema.shape;
/** A KiloHost's settings: the stack's fields for one host (the same schemas, so the same rules and defaults). */
const hostArgsSchema = z.strictObject({
  poolerBaseUrl: s.poolerBaseUrl,
  providerId: s.providerId,
  apiKeyEnvVar: s.apiKeyEnvVar,
  kiloVersion: s.kiloVersion,
  model: s.model,
  models: s.models,
  compactionThresholdPercent: s.compactionThresholdPercent,
  permission: s.permission,
  kiloSettings: s.kiloSettings,
  smokeCheck: s.smokeCheck,
  install: s.install,
  npmRegistry: s.npmRegistry,
  caCertificates: s.caCertificates,
  reconcile: s.reconcile,
  shells: hostOverrides.shells,
  ssh: sshConnection.optional(),
});

/** Placeholders that pass the SSH field rules, standing in for values not known until deploy. */
const UNKNOWN_SSH: Record<string, unknown> = { host: "unknown.invalid", user: "unknown", port: 22 };

/** `ssh.port`, `models["gpt-5.5"].limit.input`: an argument path as a person writes it. */
export function formatArgPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(String(p))) out += out === "" ? String(p) : `.${String(p)}`;
    else out += `[${JSON.stringify(String(p))}]`;
  }
  return out || "(arguments)";
}

export type HostArgsResult = { ok: true; spec: HostSpec } | { ok: false; errors: SettingsError[] };

/**
 * Validates a KiloHost's settings (everything but the secrets and the lock) and applies the defaults. SSH
 * fields that are Outputs or Promises are checked when they are plain values and passed through as they are
 * otherwise.
 */
export function parseHostArgs(args: Record<string, unknown>): HostArgsResult {
  const { apiKey: _apiKey, sshPrivateKey: _sshKey, npmToken: _npmToken, kiloLock: _lock, ...settings } = args;
  const input: Record<string, unknown> = { ...settings };
  const deferred: Record<string, unknown> = {};
  if (settings.ssh !== null && typeof settings.ssh === "object" && !Array.isArray(settings.ssh)) {
    const ssh: Record<string, unknown> = { ...(settings.ssh as Record<string, unknown>) };
    for (const [k, v] of Object.entries(ssh)) {
      if (pulumi.Output.isInstance(v) || v instanceof Promise) {
        deferred[k] = v;
        if (k in UNKNOWN_SSH) ssh[k] = UNKNOWN_SSH[k];
        else delete ssh[k];
      }
    }
    input.ssh = ssh;
  }
  const result = hostArgsSchema.safeParse(input);
  const errors: SettingsError[] = result.success
    ? []
    : result.error.issues.flatMap((issue) =>
        issue.code === "unrecognized_keys"
          ? issue.keys.map((k) => ({ key: formatArgPath([...issue.path, k]), message: "unknown argument" }))
          : [{ key: formatArgPath(issue.path), message: issue.message }],
      );
  if (result.success && !(result.data.model in result.data.models)) {
    errors.push({
      key: "model",
      message: `"${result.data.model}" is not a key of models (defined: ${Object.keys(result.data.models).join(", ")})`,
    });
  }
  // The stack's rule, for KiloHost as a library too: an SSH host pins its server's key, or says it does not.
  if (result.success && result.data.ssh) {
    const pinned = result.data.ssh.hostKey !== undefined || "hostKey" in deferred;
    const insecure = result.data.ssh.insecureIgnoreHostKey === true;
    if (pinned && insecure) {
      errors.push({
        key: "ssh.insecureIgnoreHostKey",
        message: "must not be true when hostKey is set (the pinned key would be ignored); remove one of them",
      });
    } else if (!pinned && !insecure) {
      errors.push({
        key: "ssh.hostKey",
        message:
          "is required: pin the server's host key (one `ssh-keyscan` line, e.g. from `npm run kilo-fleet -- hostkeys`), or anyone who can answer for the host receives the API key; to accept any host key instead, set ssh.insecureIgnoreHostKey: true",
      });
    }
  }
  if (!result.success || errors.length > 0) return { ok: false, errors };
  const d = result.data;
  const spec: HostSpec = {
    poolerBaseUrl: d.poolerBaseUrl,
    providerId: d.providerId,
    apiKeyEnvVar: d.apiKeyEnvVar,
    kiloVersion: d.kiloVersion,
    model: d.model,
    models: d.models,
    compactionThresholdPercent: d.compactionThresholdPercent,
    ...(d.permission !== undefined ? { permission: d.permission } : {}),
    kiloSettings: d.kiloSettings,
    smokeCheck: d.smokeCheck,
    install: d.install,
    ...(d.npmRegistry !== undefined ? { npmRegistry: d.npmRegistry } : {}),
    ...(d.caCertificates !== undefined ? { caCertificates: d.caCertificates } : {}),
    ...(d.reconcile !== undefined ? { reconcile: d.reconcile } : {}),
    ...(d.shells !== undefined ? { shells: d.shells } : {}),
  };
  if (d.ssh) {
    const ssh = { ...d.ssh, ...deferred } as Record<string, unknown>;
    spec.ssh = {
      host: ssh.host as pulumi.Input<string>,
      user: ssh.user as pulumi.Input<string>,
      port: (ssh.port ?? 22) as pulumi.Input<number>,
      ...(ssh.hostKey !== undefined ? { hostKey: ssh.hostKey as pulumi.Input<string> } : {}),
      ...(d.ssh.insecureIgnoreHostKey === true ? { insecureIgnoreHostKey: true } : {}),
      connectTimeoutSeconds: d.ssh.connectTimeoutSeconds ?? SSH_CONNECT_DEFAULTS.connectTimeoutSeconds,
      connectAttempts: d.ssh.connectAttempts ?? SSH_CONNECT_DEFAULTS.connectAttempts,
    };
  }
  return { ok: true, spec };
}

/** What a platform engineer should know about a host's spec, one line each (not errors). */
export function specWarnings(spec: HostSpec): string[] {
  const warnings: string[] = [];
  if (spec.kiloVersion === "latest") {
    warnings.push(
      `kiloVersion: "latest" means this host is not pinned: it drifts as Kilo releases, and kilo may update itself${
        spec.install.method === "package" ? "; it is installed unlocked (no sha512 from the lock file to check)" : ""
      }`,
    );
  }
  const pooler = new URL(spec.poolerBaseUrl);
  if (pooler.protocol === "http:" && !isLoopbackHost(pooler.hostname)) {
    warnings.push(
      `poolerBaseUrl: plain http to ${pooler.hostname}: the API key crosses the network unencrypted (use https for a deployed pooler)`,
    );
  }
  if (spec.ssh?.insecureIgnoreHostKey === true) {
    const where = typeof spec.ssh.host === "string" ? spec.ssh.host : "the host";
    warnings.push(
      `ssh.insecureIgnoreHostKey: the server's host key is not checked, so anyone who can answer for ${where} receives the API key; pin it instead (ssh.hostKey, from \`npm run kilo-fleet -- hostkeys\` or ssh-keyscan)`,
    );
  }
  return warnings;
}
