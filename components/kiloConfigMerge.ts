/**
 * Merges kilo-fleet's managed keys into a user's kilo.jsonc, on text, and strips them out again.
 *
 * Pure functions over strings with jsonc-parser's `modify`/`applyEdits`, so comments, the user's own
 * keys and what kilo writes into the file itself (`permission`, `$schema`) stay byte-for-byte. This
 * module is also bundled and run on each host by the config script (see `hostTool.ts`): it must not
 * import anything but jsonc-parser.
 */
import {
  applyEdits,
  createScanner,
  type FormattingOptions,
  findNodeAtLocation,
  getNodeValue,
  modify,
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

/** The header comment naming the keys kilo-fleet owns. */
export function kiloConfigHeader(paths: readonly KeyPath[], eol = "\n"): string {
  return [
    `${HEADER_PREFIX} this file is managed by kilo-fleet (Pulumi). It owns these keys and rewrites them on every deploy:`,
    `${HEADER_PREFIX}   ${paths.map((p) => p.join(".")).join(", ")}`,
    `${HEADER_PREFIX} everything else here is yours and is kept as it is.`,
  ]
    .map((l) => l + eol)
    .join("");
}

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

function formatting(text: string): FormattingOptions {
  const indent = /\n([ \t]+)"/.exec(text)?.[1];
  if (indent?.startsWith("\t")) return { insertSpaces: false, tabSize: 1, eol: detectEol(text) };
  return { insertSpaces: true, tabSize: indent ? indent.length : 2, eol: detectEol(text) };
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
function parseObject(text: string) {
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
  const options = { formattingOptions: formatting(body) };
  parseObject(body);

  const wanted = new Set(paths.map((p) => JSON.stringify(p)));
  for (const stale of previousPaths) {
    if (!wanted.has(JSON.stringify(stale))) body = removePath(body, stale, options);
  }
  for (const path of paths) {
    const value = valueAt(managed, path);
    const node = findNodeAtLocation(parseObject(body) as NonNullable<ReturnType<typeof parseTree>>, [...path]);
    if (value === undefined) {
      if (node) body = removePath(body, path, options);
      continue;
    }
    if (node && sameJson(getNodeValue(node), value)) continue;
    body = applyEdits(body, modify(body, [...path], value, options));
  }
  return kiloConfigHeader(paths, eol) + body;
}

/** Removes `path`, and its parent object when that removal leaves it empty. */
function removePath(text: string, path: KeyPath, options: { formattingOptions: FormattingOptions }): string {
  const root = parseObject(text);
  if (!root || !findNodeAtLocation(root, [...path])) return text;
  let out = applyEdits(text, modify(text, [...path], undefined, options));
  if (path.length > 1) {
    const parentPath = path.slice(0, -1);
    const parent = findNodeAtLocation(parseObject(out) as NonNullable<typeof root>, [...parentPath]);
    if (parent?.type === "object" && (parent.children ?? []).length === 0) {
      out = applyEdits(out, modify(out, [...parentPath], undefined, options));
    }
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
  const options = { formattingOptions: formatting(body) };
  parseObject(body);
  for (const p of [...paths].sort((a, b) => b.length - a.length)) body = removePath(body, p, options);

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
