/**
 * The managed block in a shell startup file: pure text functions (unit-tested, and bundled into the host
 * tool). The block sits between two exact marker lines; inserting it and removing it again gives back
 * the original bytes, given the `RcInsertion` record kept in kilo-fleet's state.
 */
import { shQuote } from "../common/shellQuote";

export const BLOCK_START = "# >>> kilo-fleet: managed block, do not edit (removed by kilo-fleet on destroy) >>>";
export const BLOCK_END = "# <<< kilo-fleet <<<";

export type RcSyntax = "sh" | "fish";
export type RcPlacement = "top" | "bottom";

/** How the block went in, so that removing it restores the file byte for byte. */
export interface RcInsertion {
  /** The file did not exist: the block created it alone. */
  created: boolean;
  /** The file did not end in a newline: one was added before the block. */
  addedNewline: boolean;
}

/** Quotes a value as one fish word: in fish single quotes only `\\` and `\'` are special. */
export function fishWord(value: string): string {
  return `'${value.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
}

/**
 * An absolute path as a shell word that follows `$HOME` when the path is under it. The same text works
 * in sh and fish: `"$HOME"'/rest'`.
 */
export function homeWord(absPath: string, home: string, syntax: RcSyntax): string {
  const q = syntax === "fish" ? fishWord : shQuote;
  if (home !== "" && home !== "/" && absPath.startsWith(`${home}/`)) return `"$HOME"${q(absPath.slice(home.length))}`;
  return q(absPath);
}

/** The block's text (marker lines included, ending in a newline). */
export function renderRcBlock(syntax: RcSyntax, envFileWord: string, binDirWord: string): string {
  const body =
    syntax === "fish"
      ? [
          `if not contains -- ${binDirWord} $PATH`,
          `    set -gx PATH ${binDirWord} $PATH`,
          "end",
          `if test -r ${envFileWord}`,
          `    source ${envFileWord}`,
          "end",
        ]
      : [
          `case ":$PATH:" in *:${binDirWord}:*) ;; *) PATH=${binDirWord}":$PATH"; export PATH ;; esac`,
          `if [ -r ${envFileWord} ]; then . ${envFileWord}; fi`,
        ];
  return [BLOCK_START, ...body, BLOCK_END, ""].join("\n");
}

interface Found {
  start: number;
  end: number;
}

/** Finds the block's byte range (from its start marker to after its end marker's newline). */
export function findBlock(text: string, file = "the file"): Found | undefined {
  const lines = text.split("\n");
  let offset = 0;
  let start = -1;
  let startLine = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].endsWith("\r") ? lines[i].slice(0, -1) : lines[i];
    const next = offset + lines[i].length + (i < lines.length - 1 ? 1 : 0);
    if (line === BLOCK_START) {
      if (start !== -1)
        throw new Error(`${file} line ${i + 1}: a second kilo-fleet start marker before the end marker`);
      start = offset;
      startLine = i + 1;
    } else if (line === BLOCK_END && start !== -1) {
      return { start, end: next };
    }
    offset = next;
  }
  if (start !== -1) {
    throw new Error(
      `${file} line ${startLine}: kilo-fleet block has no end marker ("${BLOCK_END}"); fix the file and deploy again`,
    );
  }
  return undefined;
}

export interface UpsertResult {
  text: string;
  insertion: RcInsertion;
}

/**
 * Puts `block` into `text` (undefined: the file does not exist). An existing block is replaced in place;
 * otherwise it goes at the top or bottom. `previous` is the record of an earlier insertion, kept.
 */
export function upsertRcBlock(
  text: string | undefined,
  block: string,
  placement: RcPlacement,
  previous?: RcInsertion,
  file?: string,
): UpsertResult {
  if (text !== undefined) {
    const found = findBlock(text, file);
    if (found) {
      return {
        text: text.slice(0, found.start) + block + text.slice(found.end),
        insertion: previous ?? { created: false, addedNewline: false },
      };
    }
  }
  if (text === undefined) return { text: block, insertion: { created: true, addedNewline: false } };
  if (text === "") return { text: block, insertion: { created: false, addedNewline: false } };
  if (placement === "top") return { text: block + text, insertion: { created: false, addedNewline: false } };
  if (text.endsWith("\n")) return { text: text + block, insertion: { created: false, addedNewline: false } };
  return { text: `${text}\n${block}`, insertion: { created: false, addedNewline: true } };
}

/**
 * Removes the block. Returns the restored text, `null` when the file should be removed (the block
 * created it alone and nothing else is in it), or `undefined` when there is no block.
 */
export function removeRcBlock(text: string, insertion?: RcInsertion, file?: string): string | null | undefined {
  const found = findBlock(text, file);
  if (!found) return undefined;
  let before = text.slice(0, found.start);
  const after = text.slice(found.end);
  if (insertion?.addedNewline && after === "" && before.endsWith("\n")) before = before.slice(0, -1);
  const out = before + after;
  if (insertion?.created && out === "") return null;
  return out;
}
