/**
 * Merges kilo-fleet's managed keys into a user's kilo.jsonc, on text, and strips them out again.
 *
 * Pure functions over strings with minimal text edits located by jsonc-parser's syntax tree, so comments, the user's own
 * keys and what kilo writes into the file itself (`permission`, `$schema`) stay byte-for-byte. This
 * module is also bundled and run on each host by the config script (see `hostTool.ts`): it must not
 * import anything but jsonc-parser.
 */
import {
  createScanner,
  findNodeAtLocation,
  getNodeValue,
  type Node as JsonNode,
  type ParseError,
  parseTree,
  printParseErrorCode,
  SyntaxKind,
} from "jsonc-parser";

/** A managed key, as a path from the root object: `["model"]`, `["provider", "codex-pooler"]`. */
export type KeyPath = readonly string[];

/** Every line of kilo-fleet's header comment starts with this; nothing else in the file may. */
export const HEADER_PREFIX = "// kilo-fleet:";

export class KiloConfigParseError extends Error {
  constructor(
    readonly line: number,
    readonly column: number,
    readonly reason: string,
  ) {
    super(`invalid JSONC at line ${line}, column ${column}: ${reason}`);
    this.name = "KiloConfigParseError";
  }
}

/** A key as the header prints it: plain when printable ASCII, else JSON-escaped, so it cannot end the comment. */
function headerKey(key: string): string {
  return /^[\x21-\x7e]+$/.test(key)
    ? key
    : JSON.stringify(key).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** The header comment naming the keys kilo-fleet owns. */
export function kiloConfigHeader(paths: readonly KeyPath[], eol = "\n"): string {
  return [
    `${HEADER_PREFIX} this file is managed by kilo-fleet (Pulumi). It owns these keys and rewrites them on every deploy:`,
    `${HEADER_PREFIX}   ${paths.map((p) => p.map(headerKey).join(".")).join(", ")}`,
    `${HEADER_PREFIX} everything else here is yours and is kept as it is.`,
  ]
    .map((l) => l + eol)
    .join("");
}

/** Whether `v` is a JSON object (not null, not an array). */
export const isJsonObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

/** The value at `path` in a plain object, or undefined. */
export function valueAt(obj: unknown, path: KeyPath): unknown {
  let cur: unknown = obj;
  for (const k of path) {
    if (cur === null || typeof cur !== "object" || !Object.hasOwn(cur, k)) return undefined;
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

function detectEol(text: string): string {
  return text.includes("\r\n") ? "\r\n" : "\n";
}

/** The file's end-of-line and one level of indentation, so inserted keys look like their neighbours. */
interface Layout {
  eol: string;
  unit: string;
}

function layoutOf(text: string): Layout {
  const indent = /\n([ \t]+)"/.exec(text)?.[1];
  if (indent?.startsWith("\t")) return { eol: detectEol(text), unit: "\t" };
  return { eol: detectEol(text), unit: indent ? indent : "  " };
}

/** Splits kilo-fleet's header lines off the top of the file. */
function splitHeader(text: string): string {
  let rest = text;
  while (rest.startsWith(HEADER_PREFIX)) {
    const nl = rest.indexOf("\n");
    rest = nl === -1 ? "" : rest.slice(nl + 1);
  }
  return rest;
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset).split("\n");
  return { line: before.length, column: before[before.length - 1].length + 1 };
}

/** Parses JSONC text whose root must be an object; throws KiloConfigParseError with line and column. */
function parseObject(text: string): JsonNode | undefined {
  const errors: ParseError[] = [];
  const root = parseTree(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length > 0) {
    const e = errors[0];
    const { line, column } = lineColumn(text, e.offset);
    throw new KiloConfigParseError(line, column, printParseErrorCode(e.error));
  }
  if (root && root.type !== "object") {
    const { line, column } = lineColumn(text, root.offset);
    throw new KiloConfigParseError(line, column, "the top level must be an object");
  }
  return root;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Returns the new kilo.jsonc text: every path in `paths` set to its value in `managed`, every path of
 * `previousPaths` no longer managed removed, the header comment renewed, all else kept byte-for-byte.
 * A key already holding the wanted value is not touched, so merging twice changes nothing.
 */
export function mergeKiloConfig(
  existing: string | undefined,
  managed: Record<string, unknown>,
  paths: readonly KeyPath[],
  previousPaths: readonly KeyPath[] = [],
): string {
  const eol = existing ? detectEol(existing) : "\n";
  let body = splitHeader(existing ?? "");
  if (body.trim() === "") body = `{}${eol}`;
  // Checked on the whole file (the header is comments), so line numbers match what the user sees.
  else parseObject(existing ?? "");
  const layout = layoutOf(body);

  const wanted = new Set(paths.map((p) => JSON.stringify(p)));
  for (const stale of previousPaths) {
    if (!wanted.has(JSON.stringify(stale))) body = removePath(body, stale);
  }
  for (const path of paths) {
    const value = valueAt(managed, path);
    body = value === undefined ? removePath(body, path) : setPath(body, path, value, layout);
  }
  return kiloConfigHeader(paths, eol) + body;
}

/** The root object of text already known to parse. */
function rootOf(text: string): JsonNode {
  const root = parseObject(text);
  if (!root) throw new KiloConfigParseError(1, 1, "the file holds no object");
  return root;
}

/** The property node named `key` in an object node (the last one, as JSON parsers let it win). */
function propertyOf(object: JsonNode, key: string): JsonNode | undefined {
  return (object.children ?? []).filter((p) => p.children?.[0]?.value === key).pop();
}

/** Sets `path` to `value` by inserting or replacing only that property's text. */
function setPath(text: string, path: KeyPath, value: unknown, layout: Layout): string {
  let object = rootOf(text);
  for (let i = 0; i < path.length; i++) {
    const property = propertyOf(object, path[i]);
    const rest = nest(path.slice(i + 1), value);
    if (!property) return insertProperty(text, object, path[i], rest, layout);
    const current = property.children?.[1];
    if (!current) return text;
    if (i === path.length - 1 || current.type !== "object") {
      if (sameJson(getNodeValue(current), rest)) return text;
      const indent = lineIndent(text, property.offset);
      return replaceRange(text, current.offset, current.offset + current.length, formatValue(rest, indent, layout));
    }
    object = current;
  }
  return text;
}

/** `{a: {b: value}}` for path `[a, b]`; the value itself for an empty path. */
function nest(path: KeyPath, value: unknown): unknown {
  return path.reduceRight<unknown>((inner, key) => ({ [key]: inner }), value);
}

function formatValue(value: unknown, indent: string, layout: Layout): string {
  return JSON.stringify(value, null, layout.unit)
    .split("\n")
    .join(layout.eol + indent);
}

function replaceRange(text: string, start: number, end: number, content: string): string {
  return text.slice(0, start) + content + text.slice(end);
}

/** The leading whitespace of the line holding `offset`. */
function lineIndent(text: string, offset: number): string {
  const lineStart = text.lastIndexOf("\n", offset - 1) + 1;
  return /^[ \t]*/.exec(text.slice(lineStart))?.[0] ?? "";
}

/** Offset just past the last non-whitespace character before `offset` (a token, comma or comment end). */
function endOfPreviousToken(text: string, offset: number): number {
  let i = offset;
  while (i > 0 && /\s/.test(text[i - 1])) i--;
  return i;
}

/** The offset of the comma right after `node` (past whitespace and comments), if there is one. */
function commaAfter(text: string, node: JsonNode): number | undefined {
  const scanner = createScanner(text, true);
  scanner.setPosition(node.offset + node.length);
  let t = scanner.scan();
  while (t === SyntaxKind.LineCommentTrivia || t === SyntaxKind.BlockCommentTrivia) t = scanner.scan();
  return t === SyntaxKind.CommaToken ? scanner.getTokenOffset() : undefined;
}

/** The end of a comma and comments on the same line after `offset` (a line comment must stay on its line). */
function endOfSameLineTrivia(text: string, offset: number): number {
  const scanner = createScanner(text, false);
  scanner.setPosition(offset);
  let end = offset;
  for (let t = scanner.scan(); ; t = scanner.scan()) {
    if (t === SyntaxKind.Trivia) continue;
    const isComment =
      t === SyntaxKind.LineCommentTrivia ||
      (t === SyntaxKind.BlockCommentTrivia && !/[\r\n]/.test(scanner.getTokenValue()));
    if (t !== SyntaxKind.CommaToken && !isComment) return end;
    end = scanner.getTokenOffset() + scanner.getTokenLength();
  }
}

/**
 * Adds `"key": value` as the object's last property, on its own line, touching no other text: the
 * exact inverse of `removeProperty`, so a strip gives back the user's bytes.
 */
function insertProperty(text: string, object: JsonNode, key: string, value: unknown, layout: Layout): string {
  const properties = object.children ?? [];
  const last = properties[properties.length - 1];
  const objectEnd = object.offset + object.length;
  let indent: string;
  if (last && /^[ \t]*$/.test(text.slice(text.lastIndexOf("\n", last.offset - 1) + 1, last.offset))) {
    indent = lineIndent(text, last.offset);
  } else indent = lineIndent(text, object.offset) + layout.unit;
  const property = `${layout.eol}${indent}${JSON.stringify(key)}: ${formatValue(value, indent, layout)}`;

  if (!last) {
    const inner = text.slice(object.offset + 1, objectEnd - 1);
    if (!/[\r\n]/.test(inner) && inner.trim() === "") {
      const closing = `${layout.eol}${lineIndent(text, object.offset)}`;
      return replaceRange(text, object.offset + 1, objectEnd - 1, property + closing);
    }
    const at = endOfPreviousToken(text, objectEnd - 1);
    return replaceRange(text, at, at, property);
  }
  const lastEnd = last.offset + last.length;
  const at = endOfSameLineTrivia(text, lastEnd);
  if (commaAfter(text, last) !== undefined) {
    // A trailing comma is already there: keep that style for the new last property.
    return replaceRange(text, at, at, `${property},`);
  }
  const withProperty = replaceRange(text, at, at, property);
  return replaceRange(withProperty, lastEnd, lastEnd, ",");
}

/** Removes one property node's text: from the end of what precedes it to its end (and one comma). */
function removeProperty(text: string, object: JsonNode, property: JsonNode): string {
  const properties = object.children ?? [];
  const index = properties.indexOf(property);
  const start = endOfPreviousToken(text, property.offset);
  const ownComma = commaAfter(text, property);
  if (ownComma !== undefined) return replaceRange(text, start, ownComma + 1, "");
  const removed = replaceRange(text, start, property.offset + property.length, "");
  const previous = properties[index - 1];
  const previousComma = previous ? commaAfter(text, previous) : undefined;
  return previousComma === undefined ? removed : replaceRange(removed, previousComma, previousComma + 1, "");
}

/** Removes `path`, and its parent object when that removal leaves it empty. */
function removePath(text: string, path: KeyPath): string {
  const parentPath = path.slice(0, -1);
  const parent = parentPath.length === 0 ? rootOf(text) : findNodeAtLocation(rootOf(text), [...parentPath]);
  if (parent?.type !== "object") return text;
  const property = propertyOf(parent, path[path.length - 1]);
  if (!property) return text;
  const out = removeProperty(text, parent, property);
  if (parentPath.length > 0) {
    const emptied = findNodeAtLocation(rootOf(out), [...parentPath]);
    if (emptied?.type === "object" && (emptied.children ?? []).length === 0) return removePath(out, parentPath);
  }
  return out;
}

/** What kilo itself writes into a config that lacks it (measured with kilo 7.7.7). */
const KILO_AUTO_PERMISSION = { bash: "allow" };

export interface StripResult {
  /** The text with the header and every managed path removed. */
  text: string;
  /**
   * Whether anything of the user's is left: a comment, or any key. When `createdByKiloFleet`, kilo's
   * own first-run addition (`"permission": {"bash": "allow"}`) does not count, since kilo-fleet's file
   * caused it.
   */
  userContentLeft: boolean;
}

/** The inverse of `mergeKiloConfig`: strips the header and the managed paths. */
export function stripKiloConfig(text: string, paths: readonly KeyPath[], createdByKiloFleet = false): StripResult {
  let body = splitHeader(text);
  if (body.trim() === "") return { text: body, userContentLeft: false };
  // Checked on the whole file (the header is comments), so line numbers match what the user sees.
  parseObject(text);
  for (const p of [...paths].sort((a, b) => b.length - a.length)) body = removePath(body, p);

  const scanner = createScanner(body, false);
  for (let t = scanner.scan(); t !== SyntaxKind.EOF; t = scanner.scan()) {
    if (t === SyntaxKind.LineCommentTrivia || t === SyntaxKind.BlockCommentTrivia) {
      return { text: body, userContentLeft: true };
    }
  }
  const root = parseObject(body);
  const value = (root ? getNodeValue(root) : {}) as Record<string, unknown>;
  const keys = Object.keys(value).filter(
    (k) => !(createdByKiloFleet && k === "permission" && sameJson(value[k], KILO_AUTO_PERMISSION)),
  );
  return { text: body, userContentLeft: keys.length > 0 };
}

/**
 * The key paths kilo-fleet owns in a rendered config. Under `provider` it owns only its own provider
 * entry, so other providers a user keeps in the file are left alone.
 */
export function managedKeyPaths(config: Record<string, unknown>): KeyPath[] {
  const paths: KeyPath[] = [];
  for (const key of Object.keys(config)) {
    if (key === "provider") {
      for (const id of Object.keys((config.provider as Record<string, unknown> | undefined) ?? {}))
        paths.push(["provider", id]);
    } else paths.push([key]);
  }
  return paths;
}

/** The `$schema` of every kilo.jsonc kilo-fleet writes (the first managed key). */
export const KILO_CONFIG_SCHEMA_URL = "https://app.kilo.ai/config.json";
