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
  settingsSchema,
  sshConnection,
} from "./settings";

/** How to reach an SSH host; each field may come from another resource (e.g. an instance's `publicIp`). */
export interface HostSpecSsh {
  host: pulumi.Input<string>;
  user: pulumi.Input<string>;
  port: pulumi.Input<number>;
  hostKey?: pulumi.Input<string>;
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
  /** Explicit shells, or undefined for "those whose rc file exists, plus sh". */
  shells?: ShellName[];
  /** Absent: the machine running Pulumi. */
  ssh?: HostSpecSsh;
}

/** The spec of `host` in a stack's settings. */
export function hostSpec(settings: Settings, host: HostSettings): HostSpec {
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
    ...(host.shells !== undefined ? { shells: host.shells } : {}),
    ...(host.ssh !== undefined
      ? {
          ssh: {
            host: host.ssh.host,
            user: host.ssh.user,
            port: host.ssh.port ?? 22,
            ...(host.ssh.hostKey !== undefined ? { hostKey: host.ssh.hostKey } : {}),
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
  const { apiKey: _apiKey, sshPrivateKey: _sshKey, kiloLock: _lock, ...settings } = args;
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
    ...(d.shells !== undefined ? { shells: d.shells } : {}),
  };
  if (d.ssh) {
    const ssh = { ...d.ssh, ...deferred } as Record<string, unknown>;
    spec.ssh = {
      host: ssh.host as pulumi.Input<string>,
      user: ssh.user as pulumi.Input<string>,
      port: (ssh.port ?? 22) as pulumi.Input<number>,
      ...(ssh.hostKey !== undefined ? { hostKey: ssh.hostKey as pulumi.Input<string> } : {}),
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
  if (spec.ssh && spec.ssh.hostKey === undefined) {
    warnings.push("ssh.hostKey: not set, so the server's host key is not pinned (get it with ssh-keyscan)");
  }
  return warnings;
}
