/**
 * The commands of a host's steps: pure functions, a step's own settings in, short command text out.
 *
 * Every step but the first is one line naming the shipped tool, a subcommand and one JSON argument:
 *
 *   /bin/sh ~/.local/share/kilo-fleet/tool-<id>.cjs config-apply '{"managed":{…}}'
 *
 * The same line works as a local.Command script (`/bin/sh -c`) and as a remote.Command command, which the
 * user's login shell parses: sh, bash, dash, zsh and fish all read a leading `~/` and a single-quoted word
 * without `'` or `\` alike, and `encodeStepArg` guarantees the JSON word has neither.
 *
 * The first step, `tool`, puts the tool in place: locally it copies the build's file (temp + rename); on an
 * SSH host it makes the directory, and a `CopyToRemote` of the file follows it. Its delete removes its own
 * file only, and the directories it made once no other tool version is left in them.
 */
import { fileDigest } from "../common/digest";
import { TOOL_DIR_IN_HOME, toolFileName } from "../common/hostPaths";
import { renderPolicyFile } from "../common/policyFile";
import { shQuote } from "../common/shellQuote";
import {
  encodeInstallPackageArg,
  encodeStepArg,
  type ProxyArgs,
  type StepArgs,
  type Subcommand,
} from "../common/stepArgs";
import type { HostSpec } from "./hostSpec";
import type { HostToolArtifact } from "./hostTool";
import { KILO_CONFIG_SCHEMA_URL, type KiloConfig, renderKiloConfig } from "./kiloConfig";
import { type KiloLock, lockedIntegrity, shippedLock } from "./kiloLock";

/** One step's commands. `update` is always `create` (every command is idempotent). */
export interface StepCommands {
  create: string;
  /** What an in-place update runs instead of `create` (only a later wave's smoke check has one). */
  update?: string;
  delete?: string;
}

/**
 * The tool's path on the host as one shell word: `~/…` (sh, bash, dash, zsh, fish and tcsh all expand a
 * leading tilde, and none splits what it expands to, so a HOME with spaces is one word).
 */
export function toolWord(id: string): string {
  return `~/${TOOL_DIR_IN_HOME}/${toolFileName(id)}`;
}

/** `/bin/sh <tool> <sub> '<json>'`. */
export function toolCommand<S extends Subcommand>(id: string, sub: S, args: StepArgs[S]): string {
  const word = encodeStepArg(args);
  if (/['\\]/.test(word)) throw new Error("kilo-fleet: an encoded step argument holds a quote or backslash");
  return `/bin/sh ${toolWord(id)} ${sub} '${word}'`;
}

/**
 * The tool step, as small as it can be (the state holds it twice, and on an SSH host with the connection
 * beside it). `source`: the build's file on this machine, for a local host (an SSH host gets the file by
 * CopyToRemote after this step's create). The directories it makes are listed in `dirs` beside the tool
 * (relative to HOME, deepest first), so the last delete removes exactly those (when empty).
 *
 * The script holds no `'` and no `\` (the result line is a here-document), so on an SSH host it goes to the
 * login shell as `/bin/sh -c '<script>'`, which sh, bash, dash, zsh and fish all read alike.
 */
export function toolStepCommands(
  id: string,
  target: { kind: "local"; source: string } | { kind: "ssh" },
  reconcile?: string,
): StepCommands {
  const file = toolFileName(id);
  // Relative to HOME (`cd`): the paths hold no space, so no word needs quotes. `dirs` lists the
  // directories this step made, deepest first, for the last delete.
  const create = [
    // kilo-fleet:reconcile (encoded, one line, never run): a new value re-runs this step in place.
    ...(reconcile !== undefined ? [`# reconcile ${encodeStepArg(reconcile)}`] : []),
    `cd||exit;n=;for p in .local .local/share ${TOOL_DIR_IN_HOME};do [ -d $p ]||{ mkdir $p||exit;n="$p $n";};done`,
    '[ -z "$n" ]||echo $n >$p/dirs||exit',
    ...(target.kind === "local"
      ? [`s=${shQuote(target.source)};t=$p/${file};cmp -s "$s" $t||{ cp "$s" $t.$$&&mv -f $t.$$ $t;}||exit`]
      : []),
  ].join("\n");
  // Another version's tool still there (an upgrade in progress): it owns the directories now.
  const del = [
    `cd||exit;d=${TOOL_DIR_IN_HOME};rm -f $d/${file};for f in $d/tool-*;do [ -e $f ]&&exit 0;done`,
    "n=$(cat $d/dirs 2>/dev/null)||exit 0;rm -f $d/dirs;rmdir $n 2>/dev/null;exit 0",
  ].join("\n");
  if (target.kind === "local") return { create: `${create}\n`, delete: `${del}\n` };
  for (const script of [create, del]) {
    if (/['\\]/.test(script)) throw new Error("kilo-fleet: the SSH tool step's script holds a quote or backslash");
  }
  return { create: `/bin/sh -c '${create}'`, delete: `/bin/sh -c '${del}'` };
}

/** The shells the env step writes blocks for (and `doctor` checks): the spec's, deduplicated, or "default". */
export function envShells(spec: Pick<HostSpec, "shells">): string[] | "default" {
  return spec.shells ? [...new Set(spec.shells)] : "default";
}

/** The managed keys without `$schema`, which is always kilo's schema URL: the tool puts it back, first. */
function withoutSchema(config: KiloConfig): Record<string, unknown> {
  if (config.$schema !== KILO_CONFIG_SCHEMA_URL) throw new Error("kilo-fleet: kilo.jsonc's $schema is not kilo's");
  const { $schema: _schema, ...rest } = config;
  return rest;
}

/** A step that runs a tool subcommand on create and another, with no argument, on delete. */
export function toolStep<S extends Subcommand>(
  id: string,
  sub: S,
  args: StepArgs[S],
  deleteSub?: "install-delete" | "config-delete" | "env-delete",
): StepCommands {
  const create = toolCommand(id, sub, args);
  return deleteSub ? { create, delete: `/bin/sh ${toolWord(id)} ${deleteSub}` } : { create };
}

/** What the smoke check is given of a policy: the hash of the file the policy step writes. */
export function policySha256(policy: Record<string, unknown>): string {
  return fileDigest(renderPolicyFile(policy));
}

/**
 * The policy step: `policy-apply` with the policy and how to become root (its only inputs, with reconcile),
 * and `policy-delete` with only the latter (the host's record says what to remove or put back).
 */
export function policyStep(
  id: string,
  host: string,
  policy: Record<string, unknown>,
  become: "sudo" | undefined,
  reconcile?: string,
): StepCommands {
  const b = become !== undefined ? { become } : {};
  return {
    create: toolCommand(id, "policy-apply", {
      host,
      policy,
      ...b,
      ...(reconcile !== undefined ? { reconcile } : {}),
    }),
    delete: toolCommand(id, "policy-delete", { host, ...b }),
  };
}

/**
 * The install step with install.method package: `install-package '<version> <registry or -> <platform>=<sha512>…'`,
 * run by the tool's sh header (no JavaScript runtime needed), and `install-package-delete`. Only the
 * locked integrities of the host's version travel: the host derives the tarball URLs from the registry.
 */
export function packageInstallStep(
  id: string,
  spec: Pick<HostSpec, "kiloVersion" | "npmRegistry" | "caCertificates">,
  lock: KiloLock | undefined,
  reconcile?: string,
  proxy?: ProxyArgs,
): StepCommands {
  const word = encodeInstallPackageArg({
    version: spec.kiloVersion,
    ...(spec.npmRegistry !== undefined ? { registry: spec.npmRegistry } : {}),
    integrity: lockedIntegrity(lock, spec.kiloVersion),
    ...(proxy !== undefined ? { proxy } : {}),
    ...(spec.caCertificates !== undefined ? { caCertificates: spec.caCertificates } : {}),
  });
  if (/['\\]/.test(word)) throw new Error("kilo-fleet: the install-package argument holds a quote or backslash");
  // kilo-fleet:reconcile rides as a trailing comment (every login shell ignores it): a new value re-runs the step.
  const note = reconcile !== undefined ? ` # reconcile ${encodeStepArg(reconcile)}` : "";
  return {
    create: `/bin/sh ${toolWord(id)} install-package '${word}'${note}`,
    delete: `/bin/sh ${toolWord(id)} install-package-delete`,
  };
}

/**
 * Every step's commands for one host, and the kilo.jsonc keys its config step manages. `lock`: the kilo lock
 * (install.method package needs the host's version in it; default: the lock kilo-fleet ships).
 */
export function hostStepCommands(
  name: string,
  spec: HostSpec,
  tool: Pick<HostToolArtifact, "id" | "file">,
  kind: "local" | "ssh",
  opts: { npmToken?: boolean; lock?: KiloLock; proxyCredentials?: boolean } = {},
): {
  kiloConfig: KiloConfig;
  tool: StepCommands;
  install: StepCommands;
  config: StepCommands;
  env: StepCommands;
  /** kilo's managed config (spec.policy); absent without a policy. */
  policy?: StepCommands;
  smoke?: StepCommands;
} {
  const kiloConfig = renderKiloConfig(spec);
  // kilo-fleet:reconcile: last in every step's argument (and a comment line of the tool step), so a new
  // value changes every command and @pulumi/command re-runs each one in place.
  const r = spec.reconcile !== undefined ? { reconcile: spec.reconcile } : {};
  // kilo-fleet:proxy, for the steps that reach out (install) or hand it to kilo (env); its credentials, a
  // secret, are a line of those steps' stdin.
  const proxy: ProxyArgs | undefined = spec.proxy && {
    ...spec.proxy,
    ...(opts.proxyCredentials ? { authOnStdin: true as const } : {}),
  };
  const p = proxy !== undefined ? { proxy } : {};
  return {
    kiloConfig,
    tool: toolStepCommands(tool.id, kind === "ssh" ? { kind } : { kind, source: tool.file }, spec.reconcile),
    install:
      spec.install.method === "package"
        ? packageInstallStep(tool.id, spec, opts.lock ?? shippedLock(), spec.reconcile, proxy)
        : toolStep(
            tool.id,
            "install",
            {
              host: name,
              version: spec.kiloVersion,
              ...(spec.npmRegistry !== undefined ? { registry: spec.npmRegistry } : {}),
              ...(opts.npmToken ? { tokenOnStdin: true as const } : {}),
              ...(spec.caCertificates !== undefined ? { caCertificates: spec.caCertificates } : {}),
              ...p,
              ...r,
            },
            "install-delete",
          ),
    config: toolStep(tool.id, "config-apply", { managed: withoutSchema(kiloConfig), ...r }, "config-delete"),
    env: toolStep(
      tool.id,
      "env-apply",
      {
        var: spec.apiKeyEnvVar,
        pinned: spec.kiloVersion !== "latest",
        shells: envShells(spec),
        ...(spec.caCertificates !== undefined ? { caCertificates: spec.caCertificates } : {}),
        ...(spec.policyEnv?.telemetryOff ? { telemetryOff: true as const } : {}),
        ...(spec.policyEnv?.shareOff ? { shareOff: true as const } : {}),
        ...p,
        ...r,
      },
      "env-delete",
    ),
    ...(spec.policy !== undefined
      ? { policy: policyStep(tool.id, name, spec.policy, spec.become, spec.reconcile) }
      : {}),
    ...(spec.smokeCheck.enabled
      ? {
          // What it checks comes from the deployed kilo.jsonc; a config change re-runs it by its trigger.
          smoke: smokeStep(tool.id, name, spec, r),
        }
      : {}),
  };
}

/**
 * The smoke check. A host of a later wave (`wave` > 0) at level `kilo-run` gets an `update` at level `pool`:
 * @pulumi/command runs `update` when only the command changed (a new kilo-fleet, a reconcile) and `create`
 * when a trigger did (kilo, config, key), so a release that only replaces the host tool runs kilo on the
 * hosts of wave 0 alone, and the pool checks elsewhere (docs/design.md, "What re-runs").
 */
function smokeStep(id: string, name: string, spec: HostSpec, r: { reconcile?: string }): StepCommands {
  const args = {
    host: name,
    timeoutSeconds: spec.smokeCheck.timeoutSeconds,
    level: spec.smokeCheck.level,
    ...(spec.policy !== undefined ? { policySha256: policySha256(spec.policy) } : {}),
    ...r,
  };
  const step = toolStep(id, "smoke", args);
  if ((spec.wave ?? 0) === 0 || spec.smokeCheck.level !== "kilo-run") return step;
  return { ...step, update: toolCommand(id, "smoke", { ...args, level: "pool" }) };
}
