/**
 * `KiloHost`: one developer machine (this one, or one reached over SSH) with the Kilo Code CLI
 * installed, configured for a Codex Pooler, and the Pool API key in the user's shell environment.
 * Usable on its own from any Pulumi program (example: docs/configuration.md). Children, in order:
 * `<name>-tool` → (`<name>-tool-copy`, SSH only) → `-install` → `-config` → `-env` → `-smoke`, each one
 * short command running the host tool (deployer/hostSteps.ts). How their inputs are laid out so that a
 * change re-runs only the steps that use it (triggers, create-before-delete of the tool, the smoke
 * check's HMAC trigger, secrets only on stdin): docs/design.md, "How the step inputs are laid out".
 */
import { createHmac } from "node:crypto";
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { sha256Hex } from "../common/digest";
import { DISPLAY_PATHS } from "../common/hostPaths";
import { type InstallResult, parseResult, type StepName } from "../common/result";
import { type HostSpec, type HostSpecSsh, warningText } from "./hostSpec";
import { hostStepCommands, type StepCommands } from "./hostSteps";
import { hostToolArtifact } from "./hostTool";
import type { KiloConfig } from "./kiloConfig";
import type { KiloHostArgs, SmokeCheckLevel } from "./kiloHostArgs";
import { shippedLock } from "./kiloLock";
import { resolveHosts } from "./resolveHosts";
import { compactPrivateKey } from "./sshKey";

export const KILO_HOST_TYPE = "kilo-fleet:index:KiloHost";

/** The steps of a host, in order; each is a child named `<host>-<step>` (plus `<host>-tool-copy` over SSH). */
export const HOST_STEPS = ["tool", "install", "config", "env", "smoke"] as const;
/** A step's role: one of HOST_STEPS, or `policy` (between env and smoke, only for a host with a policy). */
export type HostStep = (typeof HOST_STEPS)[number] | "policy";

/** The earlier names of the SSH and smoke check argument types. */
export type {
  Install,
  InstallMethod,
  KiloHostArgs,
  KiloModel,
  KiloModelLimit,
  KiloModelModalities,
  SmokeCheck,
  SmokeCheck as KiloHostSmokeCheckArgs,
  SmokeCheckLevel,
  SshHost,
  SshHost as KiloHostSshArgs,
} from "./kiloHostArgs";

/** What a passing smoke check reported (a failing one fails the deploy instead). */
export interface SmokeOutput {
  /** Always true: a failing check fails the deploy. */
  pass: boolean;
  /** How much the check did. */
  level: SmokeCheckLevel;
  /** The kilo version the check ran. */
  kiloVersion: string;
  /** How long the check took. */
  seconds: number;
  /** What the check found worth saying (e.g. a limit over the pool's window). */
  warnings?: string[];
}

type Step = command.local.Command | command.remote.Command;

/**
 * The smoke trigger's stand-in for the key: HMAC-SHA256 keyed with the API key over a label naming
 * project, stack and host (see the module comment for why).
 */
export function keyFingerprint(apiKey: string, label: string): string {
  // 64 bits tell a changed key apart; a longer digest would only make the state larger.
  const mac = createHmac("sha256", apiKey).update(`kilo-fleet smoke trigger v1\n${label}`, "utf8").digest("hex");
  return `key=hmac-sha256:${mac.slice(0, 16)}`;
}

/** A step's result from its stdout; a step that printed none fails the deploy, naming the step. */
function resultOf<S extends StepName>(name: string, step: S, stdout: string | undefined) {
  const r = parseResult(stdout ?? "", step);
  if (r === undefined) throw new Error(`KiloHost "${name}": the ${step} step printed no kilo-fleet-result line`);
  return r;
}

/** A KiloHost's steps. `toolCopy` exists for SSH hosts; `smoke` is undefined when the smoke check is disabled. */
export interface KiloHostSteps {
  tool: Step;
  toolCopy?: command.remote.CopyToRemote;
  install: Step;
  config: Step;
  env: Step;
  /** kilo's managed config; undefined without a policy. */
  policy?: Step;
  smoke?: Step;
}

interface Plain {
  spec: HostSpec;
  kiloConfig: KiloConfig;
  steps: KiloHostSteps;
}
/** A KiloHost's plain values, kept beside it: the component's schema lists only its Output properties. */
const PLAIN = new WeakMap<KiloHost, Plain>();

/**
 * The Kilo Code CLI on one developer machine (this one, or one reached over SSH), configured for a Codex Pooler,
 * with the Pool API key in the user's shell environment.
 */
export class KiloHost extends pulumi.ComponentResource {
  /** This host's resolved settings (no secrets). */
  get spec(): HostSpec {
    return (PLAIN.get(this) as Plain).spec;
  }
  /** The managed kilo.jsonc keys, as rendered for this host (plain JSON, no secret). */
  get kiloConfig(): KiloConfig {
    return (PLAIN.get(this) as Plain).kiloConfig;
  }
  /** The steps, each a child resource. */
  get steps(): KiloHostSteps {
    return (PLAIN.get(this) as Plain).steps;
  }
  /** The kilo version the install step reports. */
  readonly kiloVersion: pulumi.Output<string>;
  /** Where kilo.jsonc is on the host. */
  readonly configPath: pulumi.Output<string>;
  /** Where the 0600 env file with the key is on the host (`~` is the host user's HOME). */
  readonly envFilePath: pulumi.Output<string>;
  /** The smoke check's result; undefined when the smoke check is disabled. Not secret. */
  readonly smoke: pulumi.Output<SmokeOutput | undefined>;

  /**
   * `resolved`: the host's spec as a fleet resolved it (deployer/fleet.ts, which logs its warnings); a
   * KiloHost on its own resolves `args` as a one-host stack.
   */
  constructor(name: string, args: KiloHostArgs, opts?: pulumi.ComponentResourceOptions, resolved?: HostSpec) {
    // Validate before registering anything: invalid arguments leave no half-made host behind.
    const own = resolved
      ? undefined
      : resolveHosts({ kiloHost: name, args: args as unknown as Record<string, unknown> });
    if (own && own.errors.length > 0) {
      throw new pulumi.RunError(
        `KiloHost "${name}": invalid arguments:\n${own.errors.map((e) => `  ${e.key}: ${e.message}`).join("\n")}`,
      );
    }
    const spec = resolved ?? (own?.specs[0] as HostSpec);
    const lock = spec.install.method === "package" ? (args.kiloLock ?? shippedLock()) : undefined;
    const connection = spec.ssh ? sshConnection(name, spec.ssh, args.sshPrivateKey, args.sshJumpPrivateKey) : undefined;
    const tool = hostToolArtifact();
    // Every command before any child: a builder error leaves no half-registered host.
    // The registry token is npm's (install.method npm); the package method's download sends none.
    const npmToken = spec.install.method === "npm" ? args.npmToken : undefined;
    // The proxy's credentials (a secret) ride as a line of the install's and the env step's stdin.
    const proxyCredentials = spec.proxy !== undefined ? args.proxyCredentials : undefined;
    const commands = hostStepCommands(name, spec, tool, connection ? "ssh" : "local", {
      npmToken: npmToken !== undefined,
      ...(lock !== undefined ? { lock } : {}),
      ...(proxyCredentials !== undefined ? { proxyCredentials: true } : {}),
    });
    super(KILO_HOST_TYPE, name, {}, opts);
    const plain: Plain = { spec, kiloConfig: commands.kiloConfig, steps: {} as KiloHostSteps };
    PLAIN.set(this, plain);
    for (const w of own?.warnings ?? []) void pulumi.log.warn(`${name}: ${warningText(w)}`, this);

    const step = (
      role: HostStep,
      cmds: StepCommands,
      dependsOn: pulumi.Resource | undefined,
      extra: {
        stdin?: pulumi.Input<string>;
        triggers?: pulumi.Input<unknown>[];
        sensitive?: boolean;
        after?: pulumi.CustomResourceOptions["dependsOn"];
      } = {},
    ): Step => {
      const resourceOptions: pulumi.CustomResourceOptions = {
        parent: this,
        ...(dependsOn ? { dependsOn: [dependsOn] } : {}),
        ...(extra.after !== undefined ? { dependsOn: extra.after } : {}),
        // The tool step is replaced create-before-delete (see the module comment); the others delete first.
        deleteBeforeReplace: role !== "tool",
        ...(extra.sensitive ? { additionalSecretOutputs: ["stdout", "stderr"] } : {}),
      };
      const inputs = {
        create: cmds.create,
        ...(cmds.update !== undefined ? { update: cmds.update } : {}),
        ...(cmds.delete !== undefined ? { delete: cmds.delete } : {}),
        ...(extra.stdin !== undefined ? { stdin: extra.stdin } : {}),
        ...(extra.triggers !== undefined ? { triggers: extra.triggers } : {}),
        ...(extra.sensitive ? { logging: "none" as const } : {}),
        // The tool step prints nothing, so it has no previous output to hand on; the others' must not reach
        // their update or delete through the environment.
        ...(role !== "tool" ? { addPreviousOutputInEnv: false } : {}),
      };
      const childName = `${name}-${role}`;
      return connection
        ? new command.remote.Command(childName, { connection, ...inputs }, resourceOptions)
        : new command.local.Command(childName, { interpreter: ["/bin/sh", "-c"], ...inputs }, resourceOptions);
    };

    // What the component was told to wait for (a fleet's earlier wave) holds back its first step, and so
    // every step: children do not inherit a component's dependsOn.
    const toolStepResource = step("tool", commands.tool, undefined, {
      triggers: [`tool=${tool.id}`],
      ...(opts?.dependsOn !== undefined ? { after: opts.dependsOn } : {}),
    });
    const toolCopy = connection
      ? new command.remote.CopyToRemote(
          `${name}-tool-copy`,
          { connection, source: new pulumi.asset.FileAsset(tool.assetPath), remotePath: tool.pathInHome },
          { parent: this, dependsOn: [toolStepResource] },
        )
      : undefined;
    // With an npm token, the install handles a secret: it is the step's stdin only, and the step logs nothing.
    // stdin: the step's own secret's line, then the proxy credentials' (hostSteps.ts puts authOnStdin in both).
    const lines = (...xs: (pulumi.Input<string> | undefined)[]) =>
      pulumi.secret(pulumi.all(xs.filter((x) => x !== undefined)).apply((v) => v.join("\n")));
    const installSecrets = npmToken !== undefined || proxyCredentials !== undefined;
    const install = step(
      "install",
      commands.install,
      toolCopy ?? toolStepResource,
      installSecrets ? { stdin: lines(npmToken, proxyCredentials), sensitive: true } : {},
    );
    const config = step("config", commands.config, install);
    const env = step("env", commands.env, config, {
      stdin: proxyCredentials !== undefined ? lines(args.apiKey, proxyCredentials) : pulumi.secret(args.apiKey),
      sensitive: true,
    });
    // Its inputs are the policy and become only (and reconcile): nothing else re-runs it.
    const policy = commands.policy ? step("policy", commands.policy, env) : undefined;
    let smoke: Step | undefined;
    if (commands.smoke) {
      const label = `${pulumi.getProject()}/${pulumi.getStack()}/${name}`;
      const triggers: pulumi.Input<unknown>[] = [
        `kilo=${spec.kiloVersion} ${spec.install.method}`,
        `config=sha256:${sha256Hex(JSON.stringify(commands.kiloConfig)).slice(0, 16)}`,
        pulumi.secret(pulumi.output(args.apiKey).apply((key) => keyFingerprint(key, label))),
        // The check goes through the proxy the env file names: a new proxy re-runs it.
        ...(spec.proxy !== undefined ? [`proxy=${JSON.stringify(spec.proxy)}`] : []),
        // A later wave's kilo-run check updates at level pool (hostSteps.ts): turning kilo-run on replaces it.
        ...(commands.smoke.update !== undefined ? ["smoke=kilo-run"] : []),
      ];
      smoke = step("smoke", commands.smoke, policy ?? env, { triggers, sensitive: true });
    }
    plain.steps = { tool: toolStepResource, toolCopy, install, config, env, policy, smoke };

    // Secret when the install got an npm token (its output is kept secret then); the version is not.
    this.kiloVersion = pulumi.unsecret(
      install.stdout.apply((out) => (resultOf(name, "install", out) as InstallResult).kiloVersion),
    );
    this.configPath = config.stdout.apply(
      (out) => parseResult(out ?? "", "config")?.configPath ?? DISPLAY_PATHS.configFile,
    );
    // The env and smoke stdout are secret (the steps handle the key); only the parsed fields leave them.
    this.envFilePath = pulumi.unsecret(
      env.stdout.apply((out) => parseResult(out ?? "", "env")?.envFilePath ?? DISPLAY_PATHS.envFile),
    );
    this.smoke = smoke
      ? pulumi.unsecret(
          smoke.stdout.apply((out) => {
            const r = parseResult(out ?? "", "smoke");
            // The check's warnings (e.g. a limit over the pool's context_length) are the deploy's: the step
            // itself logs nothing.
            for (const w of r?.warnings ?? []) void pulumi.log.warn(`${name}: smoke check: ${w}`, this);
            return r
              ? {
                  pass: r.pass,
                  level: r.level,
                  kiloVersion: r.kiloVersion,
                  seconds: r.seconds,
                  ...(r.warnings?.length ? { warnings: r.warnings } : {}),
                }
              : undefined;
          }),
        )
      : pulumi.output(undefined);

    // `kiloConfig` is not registered again: the stack exports it, and the config step's input holds it
    // already; a third copy in the state would be as large as the rest of a host's outputs.
    this.registerOutputs({
      kiloVersion: this.kiloVersion,
      configPath: this.configPath,
      envFilePath: this.envFilePath,
      smoke: this.smoke,
    });
  }
}

/** The SSH connection of a host: the spec's fields, plus the private key (secret) or the agent. */
function sshConnection(
  name: string,
  ssh: HostSpecSsh,
  privateKey: pulumi.Input<string> | undefined,
  jumpPrivateKey?: pulumi.Input<string>,
): command.types.input.remote.ConnectionArgs {
  const compact = (k: pulumi.Input<string>) => pulumi.secret(pulumi.output(k).apply((x) => compactPrivateKey(x)));
  const jumpKey = jumpPrivateKey ?? privateKey;
  if (privateKey === undefined && !process.env.SSH_AUTH_SOCK) {
    throw new pulumi.RunError(
      `KiloHost "${name}": cannot reach the host over SSH: no sshPrivateKey was given and no SSH agent is running (SSH_AUTH_SOCK is not set)`,
    );
  }
  return {
    host: ssh.host,
    port: ssh.port,
    user: ssh.user,
    ...(ssh.hostKey !== undefined ? { hostKey: ssh.hostKey } : {}),
    // pulumi-command 1.2.1 dials until `dials > dialErrorLimit`: N attempts is a limit of N-1.
    perDialTimeout: ssh.connectTimeoutSeconds,
    dialErrorLimit: ssh.connectAttempts - 1,
    // An ed25519 key in OpenSSH's format travels as the same key in PKCS#8 (a third of the size, in every
    // remote step's inputs and outputs): deployer/sshKey.ts.
    ...(privateKey !== undefined ? { privateKey: compact(privateKey) } : {}),
    // The jump host (ssh.proxy): pinned, with the same dial limits; its own key, else the host's, else the agent.
    ...(ssh.proxy !== undefined
      ? {
          proxy: {
            host: ssh.proxy.host,
            port: ssh.proxy.port,
            user: ssh.proxy.user,
            hostKey: ssh.proxy.hostKey,
            perDialTimeout: ssh.connectTimeoutSeconds,
            dialErrorLimit: ssh.connectAttempts - 1,
            ...(jumpKey !== undefined ? { privateKey: compact(jumpKey) } : {}),
          },
        }
      : {}),
  };
}
