/**
 * Hostile settings (issue 6, and issue 9's transport): values with quotes, `\`, `%` and percent-escapes
 * such as `%27` (the step argument's own escape), `$()`, backticks, newlines, globs, redirections, option
 * look-alikes, printf formats, an old heredoc delimiter, NUL, non-ASCII and kilo's own `{env:}` syntax, in
 * every configured value that reaches a host. Each is either refused by parseSettings (an error naming the
 * key) or reaches the host byte-exact, and nothing executes: the payloads `touch` canary files in this
 * test's temp dir, which must never exist.
 *
 * Every step but the tool's is one line `/bin/sh <tool> <sub> '<json>'` (deployer/hostSteps.ts), run by
 * `/bin/sh -c` locally and by the user's login shell over SSH (`<shell> -c '<line>'`, as sshd runs a
 * remote.Command's command; an SSH host's lines are the local host's). Each set of settings is run:
 * 1. under /bin/sh, dash, bash, zsh and fish (installed when missing), with a recorder in the tool's
 *    place: the install (install.method npm), config, env and smoke steps' create and the deletes must
 *    each hand the tool exactly the subcommand and the line's JSON word, byte for byte, meaning what the
 *    inputs say; and install.method package's `install-package` line its words, byte for byte, the
 *    registry word being the same URL as the input (normalized: that step downloads, so it is not run);
 * 2. with the real tool (install.method npm), shipped to a fresh temp HOME per shell (`shipTool`) and a
 *    PATH directory holding a node link and a stand-in npm beside it (the tool's header takes npm from beside node and hands it to
 *    `install` as `KILO_FLEET_NPM`): under every shell, install (npm's `--registry` exactly) and config
 *    (kilo.jsonc byte-identical to the one written under /bin/sh); under /bin/sh also env and the tool's
 *    `smoke` subcommand against a stand-in pooler of the set's own mounted at the hostile base URL, and
 *    what the host holds: kilo.jsonc's values exactly the inputs, the key (itself hostile) sourced back
 *    exactly by sh, dash, bash, zsh and fish, and the smoke check's stand-in kilo given exactly
 *    `--model <provider>/<model>` and the key.
 * SSH host names and users go into @pulumi/command's connection, not a command line: checked through
 * index.ts under Pulumi mocks. Host names must match [a-z0-9-]+, so every hostile one is refused.
 */
import { spawnSync } from "node:child_process";
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
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { parse as parseJsonc } from "jsonc-parser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TOOL_DIR_IN_HOME } from "../../common/hostPaths";
import { valueAt } from "../../common/kiloConfigMerge";
import { shQuote } from "../../common/shellQuote";
import { decodeStepArg } from "../../common/stepArgs";
import { hostToolArtifact } from "../../deployer/hostTool";
import { managedKeyPaths } from "../../deployer/kiloConfig";
import { resolveHosts } from "../../deployer/resolveHosts";
import { parseSettings, type Settings } from "../../deployer/settings";
import { type FakePooler, startFakePooler } from "../../harness/fakePooler";
import { type Built, deployScripts, scriptEnv, shipTool } from "../../harness/hostHome";
import { evaluateIndex, stackConfig, TEST_HOST_KEY, unwrapSecrets } from "../../harness/pulumiMocks";
import { runScript } from "../../harness/reliability";
import { ensureAptPackages } from "../../harness/sshd";

/** The shells a step's line meets: local.Command's /bin/sh, and each login shell an SSH user may have. */
const LOGIN_SHELLS = ["/bin/sh", "/bin/dash", "/bin/bash", "/usr/bin/zsh", "/usr/bin/fish"];

const root = mkdtempSync(join(tmpdir(), "kilo-fleet-hostile-"));
const canary = join(root, "canary");
mkdirSync(canary);
/** On PATH for the real runs: a node link and a stand-in npm beside it, which the tool's header takes. */
const fakeBin = join(root, "bin");
let pooler: FakePooler;
/** The hostile sets' own stand-in poolers. */
const poolers: FakePooler[] = [];
beforeAll(async () => {
  ensureAptPackages([
    { pkg: "dash", bin: "/bin/dash" },
    { pkg: "bash", bin: "/bin/bash" },
    { pkg: "zsh", bin: "/usr/bin/zsh" },
    { pkg: "fish", bin: "/usr/bin/fish" },
  ]);
  mkdirSync(fakeBin);
  writeFileSync(join(fakeBin, "kilo-impl"), KILO);
  chmodSync(join(fakeBin, "kilo-impl"), 0o755);
  symlinkSync(process.execPath, join(fakeBin, "node"));
  writeFileSync(join(fakeBin, "npm"), fakeNpm(join(fakeBin, "kilo-impl")));
  chmodSync(join(fakeBin, "npm"), 0o755);
  pooler = await startFakePooler({ keys: "unused" });
});
afterAll(async () => {
  await pooler?.stop();
  for (const p of poolers) await p.stop();
  rmSync(root, { recursive: true, force: true });
});

/** Hostile strings; each that could run something would create its own canary file. */
const C = canary;
const PAYLOADS: string[] = [
  `$(touch ${C}/p1)`,
  `\`touch ${C}/p2\``,
  `'; touch ${C}/p3; '`,
  `"; touch ${C}/p4; echo "`,
  `$(touch\${IFS}${C}/p5)`,
  `\\'$(touch ${C}/p6)\\'"\\"`,
  "* ? [a-z] ~ ~root {a,b} !! $HOME ${HOME} $$ $0 $@ \\",
  "模型-ñ-😀-Ω-\u202e-\u00a0-ß",
  `a\ntouch ${C}/p9\nb`,
  "%s%n%x%%",
  "-rf --model x --dir / --",
  "{env:HOME} {file:/etc/passwd}",
  `</dev/null >${C}/p13`,
  `; touch ${C}/p14 #`,
  `&& touch ${C}/p15 || true`,
  "\nKILO_FLEET_TOOL_END\n",
  "x\u0000y",
  "\r\n\t",
  `'"'"'$(touch ${C}/p19)'"'"'`,
  `${"long-".repeat(1500)}$(touch ${C}/p20)`,
  // The step argument's transport: one single-quoted word in which `%`, `'` and `\` are percent-escaped.
  "'",
  "\\",
  "%",
  "%27",
  `%27; touch ${C}/p25; %27`,
  "%5C%27%25 100% %2 %zz %% %%27",
  `\\'$(touch ${C}/p27)\\'`,
  "\\\\'\\\\ \\%27",
  "\u2028\u2029\u0085 é 日本 ü%C3%BC",
  `$'\\x27' \`touch ${C}/p30\` "$(touch ${C}/p30b)"`,
  `'\\''$(touch ${C}/p31)'\\''`,
  `\\\n$(touch ${C}/p32)`,
];
/**
 * The stand-in kilo (what the stand-in npm installs as ~/.local/bin/kilo): records its argv and the key it
 * got in the HOME it was installed in (the smoke check gives kilo a HOME of its own), and passes.
 */
const KILO = `#!/bin/sh
if [ "$1" = "--version" ]; then echo 7.7.7; exit 0; fi
rec=\${0%/.local/bin/kilo}
for a in "$@"; do printf '%s\\0' "$a"; done > "$rec/kilo-argv"
printf '%s' "$CODEX_POOLER_API_KEY" > "$rec/kilo-key"
dir=; prev=
for a in "$@"; do [ "$prev" = "--dir" ] && dir=$a; prev=$a; done
cd "$dir" || exit 9
printf 'kilo ok' > kilo-ok.txt
printf '%s\\n' '{"type":"tool_use","part":{"type":"tool","tool":"write","state":{"status":"completed","input":{"filePath":"kilo-ok.txt","content":"kilo ok"}}}}'
printf '%s\\n' '{"type":"text","part":{"type":"text","text":"kilo ok"}}'
`;

/** Writes its arguments NUL-separated to $HOME/tool-argv: stands in for the tool to see what it receives. */
const RECORDER = `#!/bin/sh
for a in "$@"; do printf '%s\\0' "$a"; done > "$HOME/tool-argv"
`;

/** The stand-in npm: records its argv, answers `view` with 7.7.7, and installs the stand-in kilo. */
const fakeNpm = (kiloImpl: string) => `#!/bin/sh
for a in "$@"; do printf '%s\\0' "$a"; done > "$HOME/npm-argv"
if [ "$1" = "view" ]; then echo 7.7.7; exit 0; fi
prefix=; prev=
for a in "$@"; do [ "$prev" = "--prefix" ] && prefix=$a; prev=$a; done
[ -n "$prefix" ] || exit 7
mkdir -p "$prefix/lib/node_modules/@kilocode/cli" "$prefix/bin"
printf '{"name":"@kilocode/cli","version":"7.7.7"}' > "$prefix/lib/node_modules/@kilocode/cli/package.json"
cp ${shQuote(kiloImpl)} "$prefix/bin/kilo"
`;

/** A NUL-separated argv file, each argument decoded as UTF-8. */
const readArgv = (file: string): string[] => {
  if (!existsSync(file)) return [];
  const parts = readFileSync(file).toString("latin1").split("\0");
  parts.pop();
  return parts.map((a) => Buffer.from(a, "latin1").toString("utf8"));
};

/** Settings and their first host, as the component gets them. */
const builtFrom = (settings: Settings): Built => {
  const resolved = resolveHosts({ stack: raw(settings) });
  if (resolved.errors.length > 0) throw new Error(resolved.errors.map((e) => `${e.key}: ${e.message}`).join("\n"));
  return { settings, spec: resolved.specs[0] };
};

const hasControl = (s: string) => /[\u0000-\u001f\u007f]/.test(s);
const hasSpace = (s: string) => /\s/.test(s);

const raw = (o: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(o).map(([k, v]) => [`kilo-fleet:${k}`, v]));

interface Tally {
  refused: number;
  exact: number;
  findings: string[];
}
const tally: Tally = { refused: 0, exact: 0, findings: [] };

/** Parses; a refusal must name `key` (startsWith, for map keys spelled in brackets). */
function parseOrRefuse(
  settings: Record<string, unknown>,
  key: string,
  what: string,
): { ok: true; settings: Settings } | { ok: false } {
  const r = parseSettings(raw({ poolerBaseUrl: pooler.url, ...settings }));
  if (r.ok) return { ok: true, settings: r.settings };
  if (r.errors.some((e) => e.key.startsWith(key))) tally.refused++;
  else tally.findings.push(`${what}: refused without naming ${key}: ${JSON.stringify(r.errors)}`);
  return { ok: false };
}

describe("hostile settings", () => {
  it("keys with a strict shape refuse every hostile value, naming the key", () => {
    for (const p of PAYLOADS) {
      for (const [key, settings] of [
        ["kilo-fleet:hosts[0].name", { hosts: [{ name: p, local: true }] }],
        ["kilo-fleet:providerId", { providerId: p }],
        ["kilo-fleet:apiKeyEnvVar", { apiKeyEnvVar: p }],
        ["kilo-fleet:kiloVersion", { kiloVersion: p }],
        ["kilo-fleet:hosts[0].kiloVersion", { hosts: [{ name: "h", local: true, kiloVersion: p }] }],
        ["kilo-fleet:hosts[0].shells[0]", { hosts: [{ name: "h", local: true, shells: [p] }] }],
        ["kilo-fleet:hosts[0].ssh.hostKey", { hosts: [{ name: "h", ssh: { host: "h.lan", user: "u", hostKey: p } }] }],
        ["kilo-fleet:npmRegistry", { npmRegistry: p }],
        ["kilo-fleet:poolerBaseUrl", { poolerBaseUrl: p }],
      ] as const) {
        const r = parseOrRefuse(settings, key, `${key} = ${JSON.stringify(p).slice(0, 60)}`);
        if (r.ok) tally.findings.push(`${key} accepted ${JSON.stringify(p).slice(0, 60)}`);
      }
      // Control characters: refused where a value is a name, a model id or a URL.
      if (hasControl(p)) {
        const m = `m${p}`;
        parseOrRefuse(
          { model: m, models: { [m]: { limit: { context: 10, output: 5 } } } },
          "kilo-fleet:model",
          "model id",
        );
        parseOrRefuse(
          { models: { ok: { name: p, limit: { context: 10, output: 5 } } }, model: "ok" },
          "kilo-fleet:models",
          "model name",
        );
        parseOrRefuse(
          { hosts: [{ name: "h", ssh: { host: p, user: "u" } }] },
          "kilo-fleet:hosts[0].ssh.host",
          "ssh host",
        );
        parseOrRefuse(
          { hosts: [{ name: "h", ssh: { host: "h", user: p } }] },
          "kilo-fleet:hosts[0].ssh.user",
          "ssh user",
        );
      }
    }
    expect(tally.findings).toEqual([]);
  });

  it("ssh host names and users either are refused or reach the connection byte-exact", async () => {
    const hosts: { name: string; ssh: { host: string; user: string; hostKey: string } }[] = [];
    PAYLOADS.forEach((p, i) => {
      if (hasControl(p) || hasSpace(p)) {
        parseOrRefuse(
          { hosts: [{ name: "h", ssh: { host: p, user: "u" } }] },
          "kilo-fleet:hosts[0].ssh.host",
          "ssh host",
        );
        parseOrRefuse(
          { hosts: [{ name: "h", ssh: { host: "h", user: p } }] },
          "kilo-fleet:hosts[0].ssh.user",
          "ssh user",
        );
      } else hosts.push({ name: `h${i}`, ssh: { host: `${p}.lan`, user: `u${p}`, hostKey: TEST_HOST_KEY } });
    });
    const e = await evaluateIndex(stackConfig({ poolerBaseUrl: pooler.url, hosts }));
    expect(e.error).toBeUndefined();
    for (const h of hosts) {
      const remote = e.resources.filter((r) => r.type === "command:remote:Command" && r.name.startsWith(`${h.name}-`));
      expect(remote.length, h.name).toBeGreaterThan(0);
      for (const r of remote) {
        const c = unwrapSecrets(r.inputs.connection) as { host: string; user: string };
        if (c.host === h.ssh.host && c.user === h.ssh.user) tally.exact += 2;
        else
          tally.findings.push(
            `${r.name}: connection ${JSON.stringify([c.host, c.user])} is not ${JSON.stringify([h.ssh.host, h.ssh.user])}`,
          );
      }
    }
    expect(tally.findings).toEqual([]);
  });

  it("model ids and names, the pooler URL, permission, kiloSettings, npmRegistry and the key reach the host byte-exact under every login shell; nothing runs", {
    timeout: 400_000,
  }, async () => {
    let sets = 0;
    let realRuns = 0;
    let transported = 0;
    for (let i = 0; i < PAYLOADS.length; i += 2) {
      const ps = PAYLOADS.slice(i, i + 2);
      const [p, q] = [ps[0], ps[1] ?? ps[0]];
      const modelId = hasControl(p) ? `m-${i}` : `m-${p}`;
      // The key, itself hostile: p's printable ASCII (an HTTP header, where the key ends up, carries no
      // control character and nothing beyond Latin-1).
      const key = `test-key-${i}-${p.replace(/[^\u0020-\u007e]/g, "")}`;
      // A stand-in pooler of this set's own, mounted where the (hostile) base URL points, knowing the key
      // and serving the model: the smoke check asks the pool before it runs kilo. Control characters in
      // the URL and in top-level kilo.jsonc keys are refused (K1, K2 below).
      const urlPath = hasControl(p) ? "" : `/${p}`;
      const setPooler = await startFakePooler({
        keys: key,
        models: [modelId],
        pathPrefix: new URL(`http://127.0.0.1${urlPath}/v1`).pathname.replace(/\/v1$/, ""),
      });
      poolers.push(setPooler);
      const url = `${setPooler.url.slice(0, setPooler.url.indexOf("/", "http://".length))}${urlPath}/v1`;
      const topKey = (prefix: string, v: string) => (hasControl(v) ? `${prefix}${i}` : `${prefix}${v}`);
      const registry = `https://registry.example.com/${q}`;
      const input: Record<string, unknown> = {
        poolerBaseUrl: url,
        npmRegistry: registry,
        model: modelId,
        models: { [modelId]: { name: hasControl(q) ? `n-${i}` : `n-${q}`, limit: { context: 1000, output: 100 } } },
        permission: { bash: { [`${p} *`]: "deny", "*": q }, [topKey("x-", q)]: p },
        kiloSettings: { [topKey("k-", p)]: q, [topKey("j-", q)]: { arr: [p, { [q]: p }], n: 1 } },
        // npm: the tool's `install` subcommand, run for real below with the stand-in npm. The default
        // method (package) is checked by its line's transport only (it downloads from the registry).
        install: { method: "npm" },
        hosts: [{ name: "h", local: true }],
      };
      let r = parseSettings(raw(input));
      // The URL and registry: refused (naming the key) or kept; anything refused is taken out and counted.
      for (const [k, fallback] of [
        ["poolerBaseUrl", setPooler.url],
        ["npmRegistry", undefined],
      ] as const) {
        if (!r.ok && r.errors.some((e) => e.key === `kilo-fleet:${k}`)) {
          tally.refused++;
          if (fallback) input[k] = fallback;
          else delete input[k];
          r = parseSettings(raw(input));
        }
      }
      if (!r.ok) {
        tally.findings.push(`set ${i}: refused ${JSON.stringify(r.errors)}`);
        continue;
      }
      sets++;
      const built = builtFrom(r.settings);
      const where = `set ${i} (${JSON.stringify(p).slice(0, 40)})`;
      let local: ReturnType<typeof deployScripts>;
      let ssh: ReturnType<typeof deployScripts>;
      try {
        local = deployScripts(built);
        ssh = deployScripts(built, "ssh");
      } catch (e) {
        // Accepted by parseSettings, yet the steps cannot be built: neither refused nor passed through.
        tally.findings.push(`${where}: the step commands cannot be built: ${(e as Error).message}`);
        continue;
      }
      const smokeStep = local.smoke;
      if (!smokeStep) throw new Error("the smoke check is on by default");

      // What each step's JSON argument must say, built here from the inputs (the config step's: the
      // rendered set, whose values are checked against the inputs in kilo.jsonc below). `args` lists the
      // fields checked; the argument's whole word must arrive byte-exact as the line spells it.
      // The config step's argument leaves `$schema` out (always kilo's schema URL: the tool puts it back).
      const { $schema: _schema, ...managed } = local.kiloConfig;
      const steps: { what: string; line: string; sub: string; args: Record<string, unknown> }[] = [
        {
          what: "install",
          line: local.install.create,
          sub: "install",
          args: {
            host: "h",
            version: "7.7.7",
            registry: input.npmRegistry,
          },
        },
        { what: "config", line: local.config.create, sub: "config-apply", args: { managed } },
        {
          what: "env",
          line: local.env.create,
          sub: "env-apply",
          args: { var: "CODEX_POOLER_API_KEY", pinned: true, shells: "default" },
        },
        {
          what: "smoke",
          line: smokeStep.create,
          sub: "smoke",
          args: { host: "h", timeoutSeconds: 180 },
        },
        ...(["install", "config", "env"] as const).map((k) => ({
          what: `${k} delete`,
          line: local[k].delete ?? "",
          sub: `${k}-delete`,
          args: {},
        })),
      ];
      // An SSH host's steps are the same lines (its login shell parses them): only the tool step differs.
      for (const k of ["install", "config", "env", "smoke"] as const) {
        if (!isDeepStrictEqual(ssh[k], local[k])) tally.findings.push(`${where}: the ${k} step differs for SSH`);
      }

      // 1. Transport: a recorder in the tool's place records its argv, under every login shell.
      const recHome = join(root, `rec-${i}`);
      mkdirSync(join(recHome, TOOL_DIR_IN_HOME), { recursive: true });
      writeFileSync(join(recHome, hostToolArtifact().pathInHome), RECORDER);
      const recEnv = scriptEnv(recHome, root);
      for (const shell of LOGIN_SHELLS) {
        for (const s of steps) {
          rmSync(join(recHome, "tool-argv"), { force: true });
          const run = await runScript(s.line, recEnv, { shell });
          const got = run.code === 0 ? readArgv(join(recHome, "tool-argv")) : [];
          // The line ends with the argument as one single-quoted word; a delete's has none.
          const takesArg = s.line.endsWith("'");
          const word = takesArg ? s.line.slice(s.line.lastIndexOf(" '") + 2, -1) : undefined;
          let args: Record<string, unknown> = {};
          try {
            args = got.length === 2 ? (decodeStepArg(got[1]) as Record<string, unknown>) : {};
          } catch {
            // not JSON: a finding below
          }
          const meant = Object.entries(s.args).every(([k, v]) => isDeepStrictEqual(args[k], v));
          const whole = takesArg ? got.length === 2 && got[1] === word : got.length === 1;
          if (got[0] === s.sub && whole && meant) transported++;
          else
            tally.findings.push(
              `${where}: under ${shell} the ${s.what} step's tool got ${JSON.stringify(got).slice(0, 160)} (exit ${run.code}: ${run.stderr.trim().slice(0, 160)})`,
            );
        }
      }

      // The install step with install.method package: `install-package '<version> <registry> <platform>=…'`,
      // which the tool's header reads as words. Its registry word is the input's URL as the URL parser
      // normalizes it, `'` percent-escaped: the same URL to a server.
      const pkgSettings = parseSettings(raw({ ...input, install: { method: "package" } }));
      if (!pkgSettings.ok)
        tally.findings.push(`${where}: install.method package refused ${JSON.stringify(pkgSettings.errors)}`);
      else {
        let line = "";
        try {
          line = deployScripts(builtFrom(pkgSettings.settings)).install.create;
        } catch (e) {
          tally.findings.push(`${where}: the install-package step cannot be built: ${(e as Error).message}`);
        }
        const word = line.slice(line.lastIndexOf(" '") + 2, -1);
        for (const shell of line ? LOGIN_SHELLS : []) {
          rmSync(join(recHome, "tool-argv"), { force: true });
          const run = await runScript(line, recEnv, { shell });
          const got = run.code === 0 ? readArgv(join(recHome, "tool-argv")) : [];
          const words = got[1]?.split(" ") ?? [];
          const registryOk =
            input.npmRegistry === undefined
              ? words[1] === "-"
              : words[1] === new URL(String(input.npmRegistry)).href.replace(/'/g, "%27");
          if (got.length === 2 && got[0] === "install-package" && got[1] === word && words[0] === "7.7.7" && registryOk)
            transported++;
          else
            tally.findings.push(
              `${where}: under ${shell} the install-package step's tool got ${JSON.stringify(got).slice(0, 160)} (exit ${run.code})`,
            );
        }
      }

      // 2. The real tool under every login shell, on a fresh HOME each, with a stand-in npm beside a node
      // link on PATH (so the tool's header takes both): install (npm's `--registry` exactly) and config
      // (kilo.jsonc byte-identical to the one written under /bin/sh). Under /bin/sh (local.Command's) also
      // env and smoke, and every check of what the host holds: kilo.jsonc's values against the inputs, the
      // key read back by every shell, and the smoke check's stand-in kilo's `--model` and key.
      let reference: string | undefined;
      for (const shell of LOGIN_SHELLS) {
        const tag = `${where}, ${shell}`;
        const full = reference === undefined;
        const sh = shell.split("/").pop();
        const home = join(root, `home-${i}-${sh}`);
        const tmp = join(root, `tmp-${i}-${sh}`);
        mkdirSync(join(home, ".config/fish"), { recursive: true });
        mkdirSync(tmp);
        const env = scriptEnv(home, tmp, { PATH: `${fakeBin}:${process.env.PATH ?? "/usr/bin:/bin"}` });
        shipTool(env);
        const must = async (what: string, line: string, stdin = "") => {
          const run = await runScript(line, env, { stdin, shell });
          realRuns++;
          if (run.code !== 0) tally.findings.push(`${tag}: ${what} failed: ${run.stderr.trim()}`);
          return run;
        };
        const inst = await must("install", local.install.create);
        if (inst.code === 0) {
          const argv = readArgv(join(home, "npm-argv"));
          const got = argv.includes("--registry") ? argv[argv.indexOf("--registry") + 1] : undefined;
          if (got === input.npmRegistry) tally.exact++;
          else tally.findings.push(`${tag}: npm --registry ${JSON.stringify(got)}`);
        }
        await must("config", local.config.create);
        const jsonc = join(home, ".config/kilo/kilo.jsonc");
        const jsoncText = existsSync(jsonc) ? readFileSync(jsonc, "utf8") : "";
        if (jsoncText === "") tally.findings.push(`${tag}: no kilo.jsonc`);
        if (!full) {
          if (jsoncText === reference) tally.exact++;
          else tally.findings.push(`${tag}: kilo.jsonc differs from the one written under ${LOGIN_SHELLS[0]}`);
          continue;
        }
        reference = jsoncText;
        await must("env", local.env.create, `${key}\n`);
        const smoke = await must("smoke", smokeStep.create);
        // kilo.jsonc: every managed value exactly as rendered, and the raw inputs exactly.
        const parsed = (parseJsonc(jsoncText, [], { allowTrailingComma: true }) ?? {}) as Record<string, unknown>;
        for (const kp of managedKeyPaths(managed)) {
          if (isDeepStrictEqual(valueAt(parsed, kp), valueAt(managed, kp))) tally.exact++;
          else tally.findings.push(`${tag}: kilo.jsonc ${kp.join(".")} differs`);
        }
        const checks: [string, unknown, unknown][] = [
          ["model", parsed.model, `codex-pooler/${modelId}`],
          ["baseURL", valueAt(parsed, ["provider", "codex-pooler", "options", "baseURL"]), input.poolerBaseUrl],
          ["models", valueAt(parsed, ["provider", "codex-pooler", "models"]), input.models],
          ["permission", parsed.permission, input.permission],
          ...Object.entries(input.kiloSettings as Record<string, unknown>).map(
            ([k, v]) => [`kiloSettings ${JSON.stringify(k).slice(0, 30)}`, parsed[k], v] as [string, unknown, unknown],
          ),
        ];
        for (const [what, got, want] of checks) {
          if (isDeepStrictEqual(got, want)) tally.exact++;
          else tally.findings.push(`${tag}: kilo.jsonc ${what} is ${JSON.stringify(got)?.slice(0, 80)}, not the input`);
        }
        // Every shell reads the key back exactly from the env file it sources.
        for (const reader of LOGIN_SHELLS) {
          const fish = reader.endsWith("fish");
          const file = join(home, ".config/kilo", fish ? "codex-pooler.env.fish" : "codex-pooler.env");
          const code = fish
            ? `source ${shQuote(file)}; printf '%s' "$CODEX_POOLER_API_KEY"`
            : `. ${shQuote(file)} && printf '%s' "$CODEX_POOLER_API_KEY"`;
          const out = spawnSync(reader, ["-c", code], { env, encoding: "utf8" });
          if (out.stdout === key) tally.exact++;
          else tally.findings.push(`${tag}: ${reader} reads the key as ${JSON.stringify(out.stdout)}: ${out.stderr}`);
        }
        // The smoke check's kilo got exactly `--model <provider>/<model>` and the key.
        if (smoke.code === 0) {
          const argv = readArgv(join(home, "kilo-argv"));
          const model = argv[argv.indexOf("--model") + 1];
          if (model === `codex-pooler/${modelId}`) tally.exact++;
          else tally.findings.push(`${tag}: smoke --model ${JSON.stringify(model)}`);
          if (readFileSync(join(home, "kilo-key"), "utf8") === key) tally.exact++;
          else tally.findings.push(`${tag}: kilo got another key`);
        }
      }
    }
    const ran = readdirSync(canary);
    console.log(
      `[reliability] hostile settings: ${PAYLOADS.length} payloads, ${tally.refused} refused by validation (naming the key), ${transported} step arguments received exactly by the tool through ${LOGIN_SHELLS.map((s) => s.split("/").pop()).join("/")} -c, ${tally.exact} byte-exact pass-throughs checked on the host (${sets} settings sets, ${realRuns} real tool runs), ${ran.length} canaries created, ${tally.findings.length} findings`,
    );
    expect(ran).toEqual([]);
    expect(tally.findings).toEqual([]);
    expect(sets).toBeGreaterThanOrEqual(8);
    // 7 steps with a JSON argument, and the install-package step.
    expect(transported).toBe(sets * LOGIN_SHELLS.length * 8);
  });
  it("findings once outside the host code stay fixed (K1-K3, found by this suite in issue 6)", async () => {
    // Each check states the property that must hold.
    const known: string[] = [];
    const fixed: string[] = [];
    const check = (name: string, holds: boolean) => (holds ? fixed : known).push(name);

    // K1: a kiloSettings key with a line break is accepted, and the header comment that lists the managed
    // keys (kiloConfigMerge.ts) writes it raw: the rest of the key leaves the `//` comment, kilo.jsonc no
    // longer parses (and a crafted key can put text of its choice into the file).
    {
      const k1Key = 'a\n"x": 1,\n//';
      const r = parseSettings(raw({ poolerBaseUrl: pooler.url, kiloSettings: { [k1Key]: 1 } }));
      let holds = !r.ok && r.errors.some((e) => e.key.startsWith("kilo-fleet:kiloSettings"));
      if (r.ok) {
        const home = join(root, "home-k1");
        mkdirSync(home);
        const env = scriptEnv(home, root);
        shipTool(env);
        const run = await runScript(deployScripts(builtFrom(r.settings)).config.create, env);
        const errors: unknown[] = [];
        const text = run.code === 0 ? readFileSync(join(home, ".config/kilo/kilo.jsonc"), "utf8") : "";
        const parsed = parseJsonc(text, errors as never, { allowTrailingComma: true });
        holds = run.code === 0 && errors.length === 0 && isDeepStrictEqual(parsed?.[`a\n"x": 1,\n//`], 1);
      }
      check(
        "K1 kiloSettings key with a line break: accepted, and kilo.jsonc's header comment breaks (file no longer parses)",
        holds,
      );
    }
    // K2: poolerBaseUrl may hold a NUL (the URL parser percent-encodes it): accepted, and the smoke
    // step's builder then throws a generic error instead of a settings error naming the key.
    {
      const r = parseSettings(raw({ poolerBaseUrl: `${pooler.url.replace(/\/v1$/, "")}/x\u0000y/v1` }));
      let holds = !r.ok && r.errors.some((e) => e.key === "kilo-fleet:poolerBaseUrl");
      if (r.ok) {
        try {
          holds = deployScripts(builtFrom(r.settings)).smoke !== undefined;
        } catch {
          holds = false;
        }
      }
      check("K2 poolerBaseUrl with a NUL: accepted by parseSettings, the smoke step cannot be built", holds);
    }
    // K3: a `__proto__` key (JSON text from `pulumi config`) in kiloSettings, permission or models is
    // silently dropped by the schema: neither refused nor written.
    for (const k of ["kiloSettings", "permission"]) {
      const r = parseSettings(
        raw({
          poolerBaseUrl: pooler.url,
          // As `pulumi config` hands a structured value to the program: JSON text.
          [k]: '{"__proto__": {"x": 1}, "ok": "y"}',
        }),
      );
      const holds =
        (!r.ok && r.errors.some((e) => e.key.startsWith(`kilo-fleet:${k}`))) ||
        (r.ok && Object.keys((r.settings as Record<string, unknown>)[k] as object).includes("__proto__"));
      check(`K3 ${k}.__proto__: silently dropped (neither refused nor written)`, holds);
    }
    console.log(
      `[reliability] hostile settings, known findings outside the host code: ${known.length}${known.map((k) => `\n  - ${k}`).join("")}${fixed.length ? `\n  fixed since: ${fixed.join("; ")}` : ""}`,
    );
    expect(known).toEqual([]);
    expect(fixed).toHaveLength(4);
  });
});
