/**
 * The largest single argument a host can execute: Linux's MAX_ARG_STRLEN is 128 KiB, the terminating NUL
 * included (macOS allows more). A step's command reaches the host as one argument (`/bin/sh -c <command>`
 * locally, the login shell's `-c` over SSH), and so does `doctor`'s remote command line.
 */
export const MAX_ARG_BYTES = 128 * 1024 - 1;

/** Whether `text` fits in one argument of a command a host executes. */
export function fitsInOneArgument(text: string): boolean {
  return Buffer.byteLength(text, "utf8") <= MAX_ARG_BYTES;
}
