/** `caCertificates`: PEM checked block by block with node:crypto, private keys refused, per-host override. */
import { generateKeyPairSync } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import {
  caCertificatesProblems,
  caCertificatesWarnings,
  normalizeCaCertificates,
  pemBlocks,
} from "../deployer/caCertificates";
import { resolveHosts } from "../deployer/resolveHosts";
import { formatErrors, parseSettings } from "../deployer/settings";
import { makePrivateCa } from "../harness/privateCa";

const ca = makePrivateCa({ name: "ca-one" });
const ca2 = makePrivateCa({ name: "ca-two" });
afterAll(() => {
  ca.cleanup();
  ca2.cleanup();
});

const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICpwKafbufgN/DFRTNy7UXTcX9APmrEuh7+tZoozMi4I";
const parse = (extra: Record<string, unknown>) =>
  parseSettings({ "kilo-fleet:poolerBaseUrl": "http://localhost:4000/v1", ...extra });

describe("caCertificatesProblems", () => {
  it("accepts one certificate, a bundle of two, and text between blocks", () => {
    expect(caCertificatesProblems(ca.caCert)).toEqual([]);
    expect(caCertificatesProblems(`${ca.caCert}${ca2.caCert}`)).toEqual([]);
    expect(caCertificatesProblems(`# corporate roots\nsubject=CN = x\n${ca.caCert}\n\n${ca2.caCert}`)).toEqual([]);
    expect(pemBlocks(`${ca.caCert}${ca2.caCert}`).map((b) => b.index)).toEqual([1, 2]);
  });

  it("names the bad block: corrupt base64, a truncated block, a non-certificate", () => {
    const lines = ca2.caCert.split("\n");
    lines[3] = lines[3].replace(/^..../, "!!!!");
    const corrupt = lines.join("\n");
    expect(caCertificatesProblems(`${ca.caCert}${corrupt}`)).toEqual([
      expect.stringMatching(/^block 2 is not a valid X\.509 certificate/),
    ]);
    const cut = ca2.caCert.slice(0, ca2.caCert.indexOf("-----END"));
    expect(caCertificatesProblems(`${ca.caCert}${cut}`)).toEqual([
      "has 2 BEGIN lines but 1 complete PEM blocks (a block is cut short)",
    ]);
    const pub = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ type: "spki", format: "pem" });
    expect(caCertificatesProblems(`${ca.caCert}${pub}`)).toEqual(["block 2 is a PUBLIC KEY, not a CERTIFICATE"]);
    expect(caCertificatesProblems("just text")).toEqual([expect.stringMatching(/at least one PEM certificate/)]);
  });

  it("refuses a private key anywhere in the text, and says nothing of its contents", () => {
    for (const key of [
      ca.serverKey,
      generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey.export({ type: "pkcs1", format: "pem" }) as string,
    ]) {
      const problems = caCertificatesProblems(`${ca.caCert}${key}`);
      expect(problems).toEqual([expect.stringMatching(/^contains a PRIVATE KEY block: only certificates belong here/)]);
      const body = key.split("\n")[1];
      expect(problems.join("")).not.toContain(body.slice(0, 20));
    }
  });

  it("warns about an expired certificate, and normalizes to the blocks alone", () => {
    expect(caCertificatesWarnings(ca.caCert)).toEqual([]);
    expect(caCertificatesWarnings(ca.caCert, new Date(Date.now() + 400 * 86400_000))).toEqual([
      expect.stringMatching(/^block 1 \(CN=ca-one CA\) expired on /),
    ]);
    expect(normalizeCaCertificates(`# c\r\n${ca.caCert.replace(/\n/g, "\r\n")}junk\n${ca2.caCert}`)).toBe(
      `${ca.caCert}${ca2.caCert}`,
    );
  });
});

describe("caCertificates in the settings", () => {
  it("fleet-wide, overridable per host; each host's spec has its own", () => {
    const r = parse({
      "kilo-fleet:caCertificates": ca.caCert,
      "kilo-fleet:hosts": JSON.stringify([
        { name: "a", local: true },
        { name: "b", ssh: { host: "h", user: "u", hostKey: HOST_KEY }, caCertificates: ca2.caCert },
      ]),
    });
    if (!r.ok) throw new Error(formatErrors(r.errors));
    const specs = resolveHosts({
      stack: {
        "kilo-fleet:poolerBaseUrl": "http://localhost:4000/v1",
        "kilo-fleet:caCertificates": ca.caCert,
        "kilo-fleet:hosts": JSON.stringify([
          { name: "a", local: true },
          { name: "b", ssh: { host: "h", user: "u", hostKey: HOST_KEY }, caCertificates: ca2.caCert },
        ]),
      },
    }).specs;
    expect(specs[0].caCertificates).toBe(ca.caCert);
    expect(specs[1].caCertificates).toBe(ca2.caCert);
    const [none] = resolveHosts({ stack: { "kilo-fleet:poolerBaseUrl": "http://localhost:4000/v1" } }).specs;
    expect(none).not.toHaveProperty("caCertificates");
  });

  it("errors name the key: fleet or the host's", () => {
    const r = parse({
      "kilo-fleet:caCertificates": `${ca.caCert}${ca.serverKey}`,
      "kilo-fleet:hosts": JSON.stringify([{ name: "a", local: true, caCertificates: "nope" }]),
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(formatErrors(r.errors).split("\n")).toEqual([
      expect.stringMatching(/^kilo-fleet:caCertificates: contains a PRIVATE KEY block/),
      expect.stringMatching(/^kilo-fleet:hosts\[0\]\.caCertificates: must hold at least one PEM certificate/),
    ]);
  });
});
