import { z } from 'zod';
import { DURATION_ACCEPTED, HOST_PORT, HOST_PORT_ACCEPTED, invalidFlag, parseDuration, scanFlags, URL_LIST_ACCEPTED } from './flag-core.ts';

export { parseDuration, toKebab } from './flag-core.ts';

/**
 * Parses `--flag value`, `--flag=value` and boolean `--flag` / `--flag=false` arguments against a zod
 * object schema whose keys are the camelCase flag names. A flag not given on the command line is read
 * from ETCD_TOPOLOGY_<FLAG_NAME> (for example --refresh-interval from ETCD_TOPOLOGY_REFRESH_INTERVAL).
 * Every problem becomes one UsageError that names the flag and what it accepts.
 */
export function parseFlags<S extends z.ZodObject>(
  command: string,
  schema: S,
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): { flags: z.infer<S>; positionals: string[] } {
  const keys = Object.keys(schema.shape);
  const booleans = new Set(keys.filter((k) => isBoolean(schema.shape[k] as z.ZodType)));
  const { raw, positionals } = scanFlags(command, keys, booleans, argv, env);
  const result = schema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = String(issue.path[0] ?? '');
    throw invalidFlag(command, key, raw[key], issue.message);
  }
  return { flags: result.data, positionals };
}

function isBoolean(t: z.ZodType): boolean {
  let cur: z.ZodType = t;
  // Unwrap default/optional wrappers to find the base type.
  for (;;) {
    const def = (cur as unknown as { def: { type: string; innerType?: z.ZodType } }).def;
    if (def.type === 'boolean') return true;
    if (def.innerType === undefined) return false;
    cur = def.innerType;
  }
}

/** A Go-style duration ("500ms", "5s", "1m30s", "2h") as milliseconds; give defaults with `.prefault("30s")`, which parses them too. */
export const duration = z.string().transform((s, ctx) => {
  const ms = parseDuration(s);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: DURATION_ACCEPTED });
    return z.NEVER;
  }
  return ms;
});

/** A HOST:PORT listen address. */
export const hostPort = z.string().regex(HOST_PORT, HOST_PORT_ACCEPTED);

/** A comma-separated list of http(s) URLs. */
export const urlList = z
  .string()
  .transform((s) => s.split(',').map((u) => u.trim()).filter((u) => u !== ''))
  .pipe(z.array(z.url({ protocol: /^https?$/, error: URL_LIST_ACCEPTED })).min(1, 'expected at least one URL'));

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** One namespace name (a DNS-1123 label). */
export const namespaceName = z.string().max(63, 'expected a namespace name of at most 63 characters').regex(DNS_LABEL, 'expected a namespace name: lowercase letters, digits and \'-\'');

/**
 * A comma-separated list of namespace names (DNS-1123 labels), each once. An empty list is refused
 * rather than read as "every namespace": leaving the flag out says that.
 */
export const namespaceList = z.string().transform((s, ctx) => {
  const names = s.split(',').map((n) => n.trim());
  const bad = names.find((n) => n.length > 63 || !DNS_LABEL.test(n));
  if (bad !== undefined) {
    const what = bad === '' ? 'an empty name' : JSON.stringify(bad);
    ctx.addIssue({ code: 'custom', message: `${what} is not a namespace name; expected names of lowercase letters, digits and '-' (at most 63) separated by commas, such as team-a,team-b, or no flag for every namespace` });
    return z.NEVER;
  }
  const repeated = names.find((n, i) => names.indexOf(n) !== i);
  if (repeated !== undefined) {
    ctx.addIssue({ code: 'custom', message: `namespace ${JSON.stringify(repeated)} is listed twice; expected each namespace once` });
    return z.NEVER;
  }
  return names;
});
