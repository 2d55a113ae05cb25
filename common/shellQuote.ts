/**
 * The one function that puts a configured value into a host script. Everything a script interpolates
 * goes through `shQuote`; the fuzz test feeds it hostile strings and checks the shell sees the same bytes.
 */

/** Quotes `value` as one POSIX `sh` word: single quotes, each `'` written as `'\''`. */
export function shQuote(value: string): string {
  if (value.includes("\0")) throw new Error("a value placed in a shell script cannot contain a NUL byte");
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
