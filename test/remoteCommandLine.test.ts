/**
 * remoteCommandLine: the command string remote.Command hands to the user's login shell. Every login
 * shell (bash, dash, zsh, fish) must pass the script to /bin/sh unchanged, with stdin and the exit
 * status intact, on Linux and on macOS's base64 (`-D`) or with only openssl.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { remoteCommandLine } from "../cli/remoteCommandLine";
import { MAX_ARG_BYTES } from "../common/argLimit";
import { ensureLoginShells } from "../harness/sshd";

const LOGIN_SHELLS = ["bash", "dash", "zsh", "fish"];
const dir = mkdtempSync(join(tmpdir(), "kilo-fleet-rcl-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeAll(() => ensureLoginShells());

/** A script that exercises what sh must see unchanged: quotes, backslashes, heredocs, $, non-ASCII, stdin. */
const SCRIPT = `set -u
kf_x='single '"'"' quote'
printf '%s|' "$kf_x" "back\\\\slash" 'tab\\there' "é日本🙂" "\${HOME:+home-set}"
cat <<'EOF'
heredoc $HOME \`date\` \\n !
EOF
IFS= read -r kf_first
printf '[%s]' "$kf_first"
cat
printf '\\n'
exit 7
`;
const STDIN = "first line: $(touch nothing) 'x' \\ \nsecond line\nthird, no newline";
const EXPECTED =
  "single ' quote|back\\slash|tab\\there|é日本🙂|home-set|heredoc $HOME `date` \\n !\n" +
  "[first line: $(touch nothing) 'x' \\ ]second line\nthird, no newline\n";

function runUnder(shell: string, line: string, env?: NodeJS.ProcessEnv) {
  return spawnSync(shell, ["-c", line], { input: STDIN, encoding: "utf8", env: env ?? process.env });
}

describe("remoteCommandLine", () => {
  test("the script itself, under sh, prints what the tests expect", () => {
    const r = runUnder("/bin/sh", SCRIPT);
    expect(r.stdout).toBe(EXPECTED);
    expect(r.status).toBe(7);
  });

  test("is one line of safe characters for every login shell: no backslash, newline, ! or inner quote", () => {
    const line = remoteCommandLine(SCRIPT);
    expect(line).toMatch(/^exec \/bin\/sh -c '[^'\\!\n\r`]*'$/);
    expect(line.slice("exec /bin/sh -c '".length, -1)).toMatch(/^[A-Za-z0-9+/=;$(){}|%"_ ->&.:@,]*$/);
  });

  for (const shell of LOGIN_SHELLS) {
    test(`${shell} -c passes the script to sh unchanged, with stdin and the exit status`, () => {
      const r = runUnder(shell, remoteCommandLine(SCRIPT));
      expect(r.stdout).toBe(EXPECTED);
      expect(r.status).toBe(7);
    });
  }

  test("macOS base64 (-D only) and a host with only openssl decode the same script", () => {
    const fake = join(dir, "bin-D");
    const opensslOnly = join(dir, "bin-openssl");
    for (const d of [fake, opensslOnly]) {
      rmSync(d, { recursive: true, force: true });
      mkdirSync(d, { recursive: true });
      for (const t of ["cat", "openssl", "printf"]) symlinkSync(`/usr/bin/${t}`, join(d, t));
    }
    // Old macOS: `base64 -D` decodes, `-d` is an unknown option.
    writeFileSync(
      join(fake, "base64"),
      '#!/bin/sh\nif [ "$1" = -D ]; then exec /usr/bin/base64 -d; fi\necho "base64: invalid option -- $1" >&2\nexit 64\n',
    );
    chmodSync(join(fake, "base64"), 0o755);
    for (const d of [fake, opensslOnly]) {
      for (const shell of ["bash", "fish"]) {
        const r = runUnder(`/usr/bin/${shell}`, remoteCommandLine(SCRIPT), { ...process.env, PATH: d });
        expect(r.stdout, `${d} ${shell}: ${r.stderr}`).toBe(EXPECTED);
        expect(r.status).toBe(7);
      }
    }
  });

  test("a script too large for one argument is refused when built, not on the host", () => {
    expect(() => remoteCommandLine(`: ${"x".repeat(MAX_ARG_BYTES)}`)).toThrow(/argument limit/);
    expect(() => remoteCommandLine("a\0b")).toThrow(/NUL/);
  });
});
