/**
 * `caCertificates`: PEM text with one or more CA certificates a host must trust (a TLS-inspecting proxy's
 * CA, or the CA that signed an internal pooler). Checked with node:crypto's `X509Certificate`, block by
 * block; a private key is refused outright (it would be copied to every host). Pure: no I/O.
 */
import { X509Certificate } from "node:crypto";

/** Far more than any CA bundle; the file is written to every host. */
export const CA_CERTIFICATES_MAX_BYTES = 1_000_000;

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g;

export interface PemBlock {
  /** 1-based position among the PEM blocks of the text. */
  index: number;
  /** The label, e.g. `CERTIFICATE`. */
  label: string;
  /** The whole block, BEGIN and END lines included. */
  text: string;
}

/** The PEM blocks of `text`, in order. */
export function pemBlocks(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  for (const m of text.matchAll(BLOCK)) out.push({ index: out.length + 1, label: m[1], text: m[0] });
  return out;
}

/**
 * Why `text` is not a usable `caCertificates` value (one message per problem, none quoting the text), or
 * an empty list. Each message names the block (`block 2`), never its contents.
 */
export function caCertificatesProblems(text: string): string[] {
  if (Buffer.byteLength(text, "utf8") > CA_CERTIFICATES_MAX_BYTES) {
    return [`must be at most ${CA_CERTIFICATES_MAX_BYTES} bytes of PEM text`];
  }
  // Checked before anything else: a private key must never be echoed, copied or half-accepted.
  if (/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text)) {
    return [
      "contains a PRIVATE KEY block: only certificates belong here (it is copied to every host); remove the key, and treat it as leaked if this stack was shared",
    ];
  }
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text)) {
    return ["must be PEM text (no control characters other than newlines)"];
  }
  const blocks = pemBlocks(text);
  const begins = text.match(/-----BEGIN [^\n]*-----/g) ?? [];
  if (blocks.length === 0) {
    return ['must hold at least one PEM certificate ("-----BEGIN CERTIFICATE-----" ... "-----END CERTIFICATE-----")'];
  }
  const problems: string[] = [];
  if (begins.length !== blocks.length) {
    problems.push(`has ${begins.length} BEGIN lines but ${blocks.length} complete PEM blocks (a block is cut short)`);
  }
  for (const b of blocks) {
    if (b.label !== "CERTIFICATE") {
      problems.push(`block ${b.index} is a ${b.label}, not a CERTIFICATE`);
      continue;
    }
    const end = /-----END ([A-Z0-9 ]+)-----$/.exec(b.text)?.[1];
    if (end !== b.label) {
      problems.push(`block ${b.index} begins as ${b.label} but ends as ${end}`);
      continue;
    }
    try {
      new X509Certificate(b.text);
    } catch (e) {
      const reason = String((e as Error).message ?? e).split("\n")[0];
      problems.push(`block ${b.index} is not a valid X.509 certificate (${reason})`);
    }
  }
  return problems;
}

/** Warnings for a valid value: certificates that are expired or not yet valid (`now` for tests). */
export function caCertificatesWarnings(text: string, now: Date = new Date()): string[] {
  const out: string[] = [];
  for (const b of pemBlocks(text)) {
    if (b.label !== "CERTIFICATE") continue;
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(b.text);
    } catch {
      continue;
    }
    const subject = cert.subject.replace(/\n/g, ", ");
    if (new Date(cert.validTo) < now) out.push(`block ${b.index} (${subject}) expired on ${cert.validTo}`);
    else if (new Date(cert.validFrom) > now)
      out.push(`block ${b.index} (${subject}) is not valid before ${cert.validFrom}`);
  }
  return out;
}

/** The PEM text as written to the host: the certificate blocks only, one after another, newline-terminated. */
export function normalizeCaCertificates(text: string): string {
  return `${pemBlocks(text)
    .map((b) => b.text.replace(/\r\n/g, "\n"))
    .join("\n")}\n`;
}
