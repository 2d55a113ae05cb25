/**
 * What each host-tool subcommand takes: one JSON argument of a step's own settings, written by the
 * deployer into the step's command line and read by the host tool. One type per subcommand, shared.
 *
 * The JSON travels as one single-quoted shell word, parsed alike by sh, bash, dash, zsh and fish (a login
 * shell over SSH) only when it holds no `'` and no `\` (fish gives `\\` and `\'` meaning inside single
 * quotes). `encodeStepArg` therefore percent-escapes exactly `%`, `'`, `\` and `` ` `` (JSON.stringify has
 * already escaped every control character, so no newline either), then writes JSON's `"` as `` ` ``: the
 * state stores every command as a JSON string, where a `"` costs two bytes, twice per step (input and
 * output). The rest stays readable in a preview.
 */

/**
 * The egress proxy a step's requests go through (`kilo-fleet:proxy`). The URLs carry no credentials: with
 * `authOnStdin`, the proxy's `user:password` (`kilo-fleet:proxyCredentials`, a secret) arrives as a line of
 * the step's stdin, after the step's own secret when it has one (docs/design.md, "The egress proxy").
 */
export interface ProxyArgs {
  /** The proxy for https URLs, `http://host:port`. */
  https: string;
  /** The proxy for plain http URLs; absent: `https`'s. */
  http?: string;
  /** Hosts reached directly, comma-separated (as curl and kilo read NO_PROXY). */
  noProxy?: string;
  /** The proxy's credentials are a line of stdin. */
  authOnStdin?: true;
}

/** The install step with install.method npm: `@kilocode/cli` at `version` under `~/.local`, with npm. */
export interface InstallArgs {
  host: string;
  /** An exact version, or `latest`. */
  version: string;
  /** npm registry URL; absent: npm's configured one. */
  registry?: string;
  /** The registry's auth token arrives on stdin (`kilo-fleet:npmToken`): a temp 0600 npmrc for this install only. */
  tokenOnStdin?: true;
  /** PEM text of `kilo-fleet:caCertificates`: npm's `--cafile` gets node's roots plus these. */
  caCertificates?: string;
  /** npm's requests go through this proxy (its credentials: the stdin line after the token's). */
  proxy?: ProxyArgs;
  /** `kilo-fleet:reconcile`: ignored by the tool; in the argument so a change re-runs the step in place. */
  reconcile?: string;
}

/**
 * The install step with install.method package: the `install-package` subcommand, which the tool's sh
 * header runs itself (host/kilo-package.sh's functions; no JavaScript runtime). Its argument is not JSON but
 * space-separated words, `<version> <registry or -> [--proxy=<url> [--http-proxy=<url>] [--no-proxy=<list>]
 * [--proxy-auth]] <platform>=<integrity>...`:
 *
 *   7.7.7 - linux-x64=sha512-QHb5…jA== darwin-arm64=sha512-…
 *   7.7.7 - --proxy=http://proxy.corp:3128 --proxy-auth linux-x64=sha512-…
 *
 * The host derives each tarball's URL from the registry, as npm does
 * (`<registry>/@kilocode/cli-<platform>/-/cli-<platform>-<version>.tgz`). Its delete is
 * `install-package-delete` (no argument: the host's own record says what to remove).
 */
export interface InstallPackageArgs {
  /** An exact version, or `latest` (then `integrity` is empty: the host asks the registry, unlocked). */
  version: string;
  /** Registry URL; absent: https://registry.npmjs.org. */
  registry?: string;
  /** Platform suffix (`linux-x64`) → `sha512-<base64>`, from the lock file, for `version`. */
  integrity: Record<string, string>;
  /** The download goes through this proxy (curl and wget); with `authOnStdin` its credentials are stdin's line. */
  proxy?: ProxyArgs;
  /** PEM text of `kilo-fleet:caCertificates`: trusted instead of the host's CAs when those refuse the registry. */
  caCertificates?: string;
}

/**
 * `install-package`'s argument (see InstallPackageArgs): one shell word's content, without `'`, `\` or
 * whitespace inside a word. The registry is written as its normalized URL with `'` percent-escaped (the same
 * URL to a server); the other words are checked, not escaped: anything unexpected in them is refused.
 */
export function encodeInstallPackageArg(args: InstallPackageArgs): string {
  const word = (what: string, value: string, ok: RegExp) => {
    if (!ok.test(value)) throw new Error(`kilo-fleet: install-package: ${what} ${JSON.stringify(value)} is not usable`);
    return value;
  };
  // A URL's href has every space, control character and backslash escaped or normalized; only `'` is left.
  const registry = args.registry ? new URL(args.registry).href.replace(/'/g, "%27") : "-";
  const words = [word("version", args.version, /^[0-9A-Za-z.+-]+$/), registry];
  if (args.proxy) {
    const url = (what: string, value: string) =>
      word(what, new URL(value).href.replace(/\/$/, "").replace(/'/g, "%27"), /^https?:\/\/[^\s@]+$/);
    words.push(`--proxy=${url("proxy.https", args.proxy.https)}`);
    if (args.proxy.http !== undefined) words.push(`--http-proxy=${url("proxy.http", args.proxy.http)}`);
    if (args.proxy.noProxy !== undefined) {
      words.push(`--no-proxy=${word("proxy.noProxy", args.proxy.noProxy, /^[A-Za-z0-9.,:*_[\]-]+$/)}`);
    }
    if (args.proxy.authOnStdin) words.push("--proxy-auth");
  }
  if (args.caCertificates !== undefined) {
    // Each certificate's DER in base64 (its PEM body without the line breaks); the host folds it back.
    const ders = [...args.caCertificates.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)];
    if (ders.length === 0) throw new Error("kilo-fleet: install-package: caCertificates holds no certificate");
    const b64 = ders.map((m) => word("caCertificates", m[1].replace(/\s+/g, ""), /^[A-Za-z0-9+/]+={0,2}$/));
    words.push(`--ca=${b64.join(",")}`);
  }
  for (const platform of Object.keys(args.integrity).sort()) {
    words.push(
      `${word("platform", platform, /^[a-z0-9]+(-[a-z0-9]+)+$/)}=${word("integrity", args.integrity[platform], /^sha512-[A-Za-z0-9+/]+={0,2}$/)}`,
    );
  }
  return words.join(" ");
}

/**
 * The config step: merge `managed` into kilo.jsonc (the key paths are derived from it on the host).
 * `$schema` is left out (it is always KILO_CONFIG_SCHEMA_URL): the tool puts it first.
 */
export interface ConfigArgs {
  managed: Record<string, unknown>;
  /** `kilo-fleet:reconcile`: ignored by the tool; in the argument so a change re-runs the step in place. */
  reconcile?: string;
}

/** The env step: the key (on stdin) into the env file, and the managed block into each shell's rc file. */
export interface EnvArgs {
  /** The variable name, e.g. CODEX_POOLER_API_KEY. */
  var: string;
  /** Pinned kilo: the env file also sets KILO_DISABLE_AUTOUPDATE=1. */
  pinned: boolean;
  /** Shell names, or "default" (those whose rc file exists, plus sh). */
  shells: string[] | "default";
  /** PEM text of `kilo-fleet:caCertificates` (public; only when set): the CA file and NODE_EXTRA_CA_CERTS. */
  caCertificates?: string;
  /** The env file also sets KILO_TELEMETRY_LEVEL=off (a policy's default: kilo reads it only from the user). */
  telemetryOff?: true;
  /** The env file also sets KILO_DISABLE_SHARE=1 (a policy's default). */
  shareOff?: true;
  /**
   * The env file also exports HTTPS_PROXY, HTTP_PROXY and NO_PROXY (both cases), so kilo (and the smoke
   * check) use the proxy; with `authOnStdin`, its credentials are the stdin line after the key's.
   */
  proxy?: ProxyArgs;
  /** `kilo-fleet:reconcile`: ignored by the tool; in the argument so a change re-runs the step in place. */
  reconcile?: string;
}

/**
 * The smoke check: its own settings only. What it checks (model, base URL, the key's variable, the models'
 * limits) it reads from the deployed kilo.jsonc (host/smokeTarget.ts).
 */
export interface SmokeArgs {
  /** The host's name, for the failure line and the key setting it names. */
  host: string;
  timeoutSeconds: number;
  /** `kilo-run`: the pool checks, then the seed's `kilo run`; `pool`: the pool checks only (no tokens). */
  level: "kilo-run" | "pool";
  /**
   * With a policy: the first 32 hex digits of the sha256 of the managed file the policy step writes
   * (common/policyFile.ts). The check reads the policy from that file when its hash matches, and kilo's
   * effective model, small_model, providers' baseURL, permission, share and enabled_providers must be its
   * (host/policyCheck.ts), at either level. A hash, not the policy: the state holds the policy once.
   */
  policySha256?: string;
  /** `kilo-fleet:reconcile`: ignored by the tool; in the argument so a change re-runs the step in place. */
  reconcile?: string;
}

/**
 * The read-only drift check (`kilo-fleet doctor`): what the stack expects of this host. Changes nothing.
 * With `compareKey`, a nonce arrives on stdin (never the key): the host answers with an HMAC of it keyed
 * with its own key (common/keyProof.ts), and the deployer compares.
 */
export interface CheckArgs {
  host: string;
  /** The kilo pin: an exact version, or `latest` (then only "installed" is checked). */
  version: string;
  /** The managed kilo.jsonc keys as rendered (the key paths are derived from it, as for config-apply). */
  managed: Record<string, unknown>;
  /** The key's variable name, e.g. CODEX_POOLER_API_KEY. */
  var: string;
  /** Shell names, or "default" (as the env step resolves it). */
  shells: string[] | "default";
  /** Read a nonce from stdin and answer with `keyProof` (the key to compare never reaches the host). */
  compareKey: boolean;
  /**
   * `kilo-fleet:proxy`, which the env file exports too (without credentials: those in the file's proxy URLs
   * are taken as they are, the check cannot know them).
   */
  proxy?: ProxyArgs;
  /**
   * install.method package, pinned: the lock's `sha512-…` integrity per platform for `version`, so the check
   * can tell whether the package kilo-fleet installed (its record) is the locked one. Absent: not checked.
   */
  locked?: Record<string, string>;
  /**
   * With `kilo-fleet:caCertificates`: `fileDigest(caFileText(pem))` (common/digest.ts). The env file also
   * exports NODE_EXTRA_CA_CERTS, naming the CA file beside it.
   */
  caSha256?: string;
  /** The env file's policy settings, as the env step gets them. */
  telemetryOff?: true;
  shareOff?: true;
  /** The policy the managed config should hold (absent: no policy, not checked). */
  policy?: Record<string, unknown>;
}

/**
 * The policy step: `policy` (kilo.jsonc keys) written to kilo's managed config dir (`/etc/kilo`, macOS
 * `/Library/Application Support/kilo`), root-owned. `$schema` is left out: the tool puts it first.
 */
export interface PolicyArgs {
  /** The host's name, for the failure line. */
  host: string;
  policy: Record<string, unknown>;
  /** `sudo`: a non-root user runs the step through `sudo -n` (absent: as the SSH user, who must be root). */
  become?: "sudo";
  /** `kilo-fleet:reconcile`: ignored by the tool; in the argument so a change re-runs the step in place. */
  reconcile?: string;
}

/** The policy step's delete: the host's record says what to remove; only how to become root travels. */
export interface PolicyDeleteArgs {
  host: string;
  become?: "sudo";
}

/**
 * Deletes take no settings (their command has no argument): what to remove comes from the host's own
 * records, and a delete's command is kept in the state long after its settings changed.
 */
export type DeleteArgs = Record<string, never>;

export interface StepArgs {
  install: InstallArgs;
  "install-delete": DeleteArgs;
  "config-apply": ConfigArgs;
  "config-delete": DeleteArgs;
  "env-apply": EnvArgs;
  "env-delete": DeleteArgs;
  "policy-apply": PolicyArgs;
  "policy-delete": PolicyDeleteArgs;
  smoke: SmokeArgs;
  check: CheckArgs;
}
export type Subcommand = keyof StepArgs;
export const SUBCOMMANDS: readonly Subcommand[] = [
  "install",
  "install-delete",
  "config-apply",
  "config-delete",
  "env-apply",
  "env-delete",
  "policy-apply",
  "policy-delete",
  "smoke",
  "check",
];

/** JSON text → one shell-safe word's content (see the module comment). */
export function encodeStepArg(value: unknown): string {
  return JSON.stringify(value)
    .replace(/[%'\\`]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replaceAll('"', "`");
}

/** The inverse of `encodeStepArg`. Throws on malformed input. */
export function decodeStepArg(text: string): unknown {
  if (/%(?![0-9A-Fa-f]{2})/.test(text)) throw new Error("malformed step argument (a bare %)");
  return JSON.parse(
    text
      .replaceAll("`", '"')
      .replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16))),
  );
}
