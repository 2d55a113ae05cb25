/**
 * Hostile settings (issue 6): values with quotes, `$()`, backticks, newlines, globs, redirections, option
 * look-alikes, printf formats, the tool's heredoc delimiter, NUL, non-ASCII and kilo's own `{env:}` syntax,
 * in every configured value that reaches a host. Each is either refused by parseSettings (an error naming
 * the key) or reaches the host byte-exact, and nothing executes: the payloads `touch` canary files in
 * this test's temp dir, which must never exist.
 *
 * Run for real on a temp HOME: the config script (kilo.jsonc holds each value exactly), the env script
 * (the key, itself hostile, sourced back exactly by sh, dash, bash, zsh and fish), the smoke script with a
 * stand-in kilo that records its argv and environment (`--model` exactly `<provider>/<model>`, the key
 * exactly), and the install script with a stand-in npm (`--registry` exactly). SSH host names and users
 * go into @pulumi/command's connection, not a script: checked through index.ts under Pulumi mocks.
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
import { configScript, envScript, installScript, smokeScript } from "../../deployer/hostScripts";
import { managedKeyPaths, renderKiloConfig } from "../../deployer/kiloConfig";
import { valueAt } from "../../common/kiloConfigMerge";
import { parseSettings, resolveHost, type Settings } from "../../deployer/settings";
import { shQuote } from "../../common/shellQuote";
import { type FakePooler, startFakePooler } from "../../harness/fakePooler";
import { scriptEnv } from "../../harness/hostHome";
import { evaluateIndex, stackConfig, TEST_HOST_KEY, unwrapSecrets } from "../../harness/pulumiMocks";
import { runScript } from "./support";

const root = mkdtempSync(join(tmpdir(), "kilo-fleet-hostile-"));
const canary = join(root, "canary");
mkdirSync(canary);
let pooler: FakePooler;
beforeAll(async () => {
  pooler = await startFakePooler({ keys: "unused" });
});
afterAll(async () => {
  await pooler?.stop();
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
];
/** The stand-in kilo (what the stand-in npm installs): records its argv and the key it got, and passes. */
const KILO = `#!/bin/sh
if [ "$1" = "--version" ]; then echo 7.7.7; exit 0; fi
for a in "$@"; do printf '%s\\0' "$a"; done > "$HOME/kilo-argv"
printf '%s' "$CODEX_POOLER_API_KEY" > "$HOME/kilo-key"
dir=; prev=
for a in "$@"; do [ "$prev" = "--dir" ] && dir=$a; prev=$a; done
cd "$dir" || exit 9
printf 'kilo ok' > kilo-ok.txt
printf '%s\\n' '{"type":"tool_use","part":{"type":"tool","tool":"write","state":{"status":"completed","input":{"filePath":"kilo-ok.txt","content":"kilo ok"}}}}'
printf '%s\\n' '{"type":"text","part":{"type":"text","text":"kilo ok"}}'
`;

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

  it("model ids and names, the pooler URL, permission, kiloSettings, npmRegistry and the key reach the host byte-exact; nothing runs", {
    timeout: 120_000,
  }, async () => {
    const base = pooler.url.replace(/\/v1$/, "");
    const shells = ["/bin/sh", "/bin/dash", "/bin/bash", "/usr/bin/zsh", "/usr/bin/fish"].filter((s) => existsSync(s));
    expect(shells).toContain("/bin/sh");
    let sets = 0;
    for (let i = 0; i < PAYLOADS.length; i += 2) {
      const ps = PAYLOADS.slice(i, i + 2);
      const [p, q] = [ps[0], ps[1] ?? ps[0]];
      const modelId = hasControl(p) ? `m-${i}` : `m-${p}`;
      // Control characters in the URL and in top-level kilo.jsonc keys are refused (K1, K2 below).
      const url = hasControl(p) ? `${base}/v1` : `${base}/${p}/v1`;
      const topKey = (prefix: string, v: string) => (hasControl(v) ? `${prefix}${i}` : `${prefix}${v}`);
      const registry = `https://registry.example.com/${q}`;
      const input: Record<string, unknown> = {
        poolerBaseUrl: url,
        npmRegistry: registry,
        model: modelId,
        models: { [modelId]: { name: hasControl(q) ? `n-${i}` : `n-${q}`, limit: { context: 1000, output: 100 } } },
        permission: { bash: { [`${p} *`]: "deny", "*": q }, [topKey("x-", q)]: p },
        kiloSettings: { [topKey("k-", p)]: q, [topKey("j-", q)]: { arr: [p, { [q]: p }], n: 1 } },
        hosts: [{ name: "h", local: true }],
      };
      let r = parseSettings(raw(input));
      // The URL and registry: refused (naming the key) or kept; anything refused is taken out and counted.
      for (const [k, fallback] of [
        ["poolerBaseUrl", `${base}/v1`],
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
      const settings = r.settings;
      const host = resolveHost(settings, settings.hosts[0]);
      const key = hasControl(p) ? `test-key-${i}-${q.replace(/[\u0000-\u001f\u007f]/g, "")}` : `test-key-${p}`;
      const home = join(root, `home-${i}`);
      const tmp = join(root, `tmp-${i}`);
      mkdirSync(join(home, ".config/fish"), { recursive: true });
      mkdirSync(tmp);
      const env = scriptEnv(home, tmp);
      const where = `set ${i} (${JSON.stringify(p).slice(0, 40)})`;
      const must = async (what: string, build: () => string, stdin = "", extra: NodeJS.ProcessEnv = {}) => {
        let script: string;
        try {
          script = build();
        } catch (e) {
          // Accepted by parseSettings, yet the script cannot be built: neither refused nor passed through.
          tally.findings.push(`${where}: the ${what} script cannot be built: ${(e as Error).message}`);
          return { code: -1, stdout: "", stderr: "" };
        }
        const run = await runScript(script, { ...env, ...extra }, { stdin });
        if (run.code !== 0) tally.findings.push(`${where}: ${what} failed: ${run.stderr.trim()}`);
        return run;
      };

      // install, with a stand-in npm beside a node link: its argv is recorded.
      const fakeBin = join(root, `bin-${i}`);
      mkdirSync(fakeBin);
      writeFileSync(join(fakeBin, "kilo-impl"), KILO);
      chmodSync(join(fakeBin, "kilo-impl"), 0o755);
      symlinkSync(process.execPath, join(fakeBin, "node"));
      writeFileSync(
        join(fakeBin, "npm"),
        `#!/bin/sh
for a in "$@"; do printf '%s\\0' "$a"; done > "$HOME/npm-argv"
prefix=; prev=
for a in "$@"; do [ "$prev" = "--prefix" ] && prefix=$a; prev=$a; done
mkdir -p "$prefix/lib/node_modules/@kilocode/cli" "$prefix/bin"
printf '{"version":"7.7.7"}' > "$prefix/lib/node_modules/@kilocode/cli/package.json"
cp ${shQuote(join(fakeBin, "kilo-impl"))} "$prefix/bin/kilo"
`,
      );
      chmodSync(join(fakeBin, "npm"), 0o755);
      const withFakeNpm = { PATH: `${fakeBin}:${process.env.PATH ?? "/usr/bin:/bin"}` };
      const inst = await must("install", () => installScript(settings, host).create, "", withFakeNpm);
      if (inst.code === 0 && settings.npmRegistry !== undefined) {
        const argv = readFileSync(join(home, "npm-argv"), "latin1").split("\0");
        const got = argv[argv.indexOf("--registry") + 1];
        if (Buffer.from(got, "latin1").toString("utf8") === registry) tally.exact++;
        else tally.findings.push(`${where}: npm --registry ${JSON.stringify(got)}`);
      }

      await must("config", () => configScript(settings, host).create);
      await must("env", () => envScript(settings, host).create, `${key}\n`);
      const smoke = await must("smoke", () => smokeScript(settings, host).create);

      // kilo.jsonc: every managed value exactly as rendered, and the raw inputs exactly.
      const jsonc = join(home, ".config/kilo/kilo.jsonc");
      const jsoncText = existsSync(jsonc) ? readFileSync(jsonc, "utf8") : "";
      const parsed = (parseJsonc(jsoncText, [], { allowTrailingComma: true }) ?? {}) as Record<string, unknown>;
      if (jsoncText === "") tally.findings.push(`${where}: no kilo.jsonc`);
      const managed = renderKiloConfig(settings, host);
      for (const kp of managedKeyPaths(managed)) {
        if (isDeepStrictEqual(valueAt(parsed, kp), valueAt(managed, kp))) tally.exact++;
        else tally.findings.push(`${where}: kilo.jsonc ${kp.join(".")} differs`);
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
        else tally.findings.push(`${where}: kilo.jsonc ${what} is ${JSON.stringify(got)?.slice(0, 80)}, not the input`);
      }
      // The smoke check's kilo got exactly `--model <provider>/<model>` and the key.
      if (smoke.code === 0) {
        const argv = readFileSync(join(home, "kilo-argv"), "utf8").split("\0");
        const model = argv[argv.indexOf("--model") + 1];
        if (model === `codex-pooler/${modelId}`) tally.exact++;
        else tally.findings.push(`${where}: smoke --model ${JSON.stringify(model)}`);
        if (readFileSync(join(home, "kilo-key"), "utf8") === key) tally.exact++;
        else tally.findings.push(`${where}: kilo got another key`);
      }
      // Every shell reads the key back exactly from the env file it sources.
      for (const sh of shells) {
        const fish = sh.endsWith("fish");
        const file = join(home, ".config/kilo", fish ? "codex-pooler.env.fish" : "codex-pooler.env");
        const code = fish
          ? `source ${shQuote(file)}; printf '%s' "$CODEX_POOLER_API_KEY"`
          : `. ${shQuote(file)} && printf '%s' "$CODEX_POOLER_API_KEY"`;
        const out = spawnSync(sh, ["-c", code], { env, encoding: "utf8" });
        if (out.stdout === key) tally.exact++;
        else tally.findings.push(`${where}: ${sh} reads the key as ${JSON.stringify(out.stdout)}: ${out.stderr}`);
      }
    }
    const ran = readdirSync(canary);
    console.log(
      `[reliability] hostile settings: ${PAYLOADS.length} payloads, ${tally.refused} refused by validation (naming the key), ${tally.exact} byte-exact pass-throughs checked on the host (${sets} real config/env/smoke/install runs, shells ${shells.map((s) => s.split("/").pop()).join("/")}), ${ran.length} canaries created, ${tally.findings.length} findings`,
    );
    expect(ran).toEqual([]);
    expect(tally.findings).toEqual([]);
    expect(sets).toBeGreaterThanOrEqual(8);
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
        const run = await runScript(
          configScript(r.settings, resolveHost(r.settings, r.settings.hosts[0])).create,
          scriptEnv(home, root),
        );
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
    // script's builder then throws a generic error instead of a settings error naming the key.
    {
      const r = parseSettings(raw({ poolerBaseUrl: `${pooler.url.replace(/\/v1$/, "")}/x\u0000y/v1` }));
      let holds = !r.ok && r.errors.some((e) => e.key === "kilo-fleet:poolerBaseUrl");
      if (r.ok) {
        try {
          smokeScript(r.settings, resolveHost(r.settings, r.settings.hosts[0]));
          holds = true;
        } catch {
          holds = false;
        }
      }
      check("K2 poolerBaseUrl with a NUL: accepted by parseSettings, the smoke script cannot be built", holds);
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
