// Readers for the few fields the proxy takes from members' JSON gateway answers. The proxy runs on
// every worker node, so it does not load zod (about 17 MiB of resident memory, measured in
// docs/bench/proxy-memory.md) for three small shapes; a field of the wrong type reads as absent,
// as a failed safeParse did.

/** The value as a plain object, or undefined when it is not one. */
export function objectOf(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/** A string field, or undefined when absent or not a string. */
export function stringField(o: Record<string, unknown> | undefined, key: string): string | undefined {
  const v = o?.[key];
  return typeof v === 'string' ? v : undefined;
}

/** A uint64 field as its decimal string: the gateway writes them as strings, some encoders as numbers. */
export function uint64Field(o: Record<string, unknown> | undefined, key: string): string | undefined {
  const v = o?.[key];
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined;
}
