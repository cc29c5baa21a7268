/**
 * Orders two strings by UTF-16 code unit (as Go's sort.Strings orders bytes of ASCII), for the names,
 * timestamps and keys the operator sorts. String.prototype.localeCompare would load ICU's collation
 * data into the process, about 3 MiB of resident memory (docs/bench/operator-memory.md), to order
 * strings that are ASCII anyway; eslint.config.js forbids it in src.
 */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
