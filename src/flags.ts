import { z } from 'zod';
import { UsageError } from './errors.ts';

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
  const known = new Map<string, string>(); // kebab-case -> camelCase
  for (const key of Object.keys(schema.shape)) known.set(toKebab(key), key);
  const booleans = new Set(Object.keys(schema.shape).filter((k) => isBoolean(schema.shape[k] as z.ZodType)));

  const raw: Record<string, string | boolean> = {};
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const key = known.get(name);
    if (key === undefined) {
      throw new UsageError(`${command}: unknown flag --${name}; accepted: ${[...known.keys()].map((k) => `--${k}`).join(', ')}`);
    }
    if (eq !== -1) raw[key] = arg.slice(eq + 1);
    else if (booleans.has(key)) raw[key] = true;
    else {
      const value = argv[i + 1];
      if (value === undefined) throw new UsageError(`${command}: flag --${name} needs a value`);
      raw[key] = value;
      i++;
    }
  }
  for (const [kebab, key] of known) {
    const envName = `ETCD_TOPOLOGY_${kebab.replaceAll('-', '_').toUpperCase()}`;
    if (raw[key] === undefined && env[envName] !== undefined && env[envName] !== '') raw[key] = env[envName];
  }
  for (const key of booleans) {
    const v = raw[key];
    if (typeof v === 'string') {
      if (v === 'true' || v === '1') raw[key] = true;
      else if (v === 'false' || v === '0') raw[key] = false;
    }
  }

  const result = schema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = String(issue.path[0] ?? '');
    const given = raw[key];
    throw new UsageError(
      `${command}: invalid value ${given === undefined ? '(missing)' : JSON.stringify(given)} for --${toKebab(key)}: ${issue.message}`,
    );
  }
  return { flags: result.data, positionals };
}

/** camelCase flag key to its --kebab-case name. */
export function toKebab(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
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
    ctx.addIssue({ code: 'custom', message: 'expected a duration such as 500ms, 5s, 1m or 1h30m' });
    return z.NEVER;
  }
  return ms;
});

/** Parses a Go-style duration into milliseconds, or undefined when it is not one. */
export function parseDuration(s: string): number | undefined {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let matched = 0;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    total += Number(m[1]) * unit[m[2]!]!;
    matched = re.lastIndex;
  }
  return matched === s.length && s.length > 0 ? total : undefined;
}

/** A HOST:PORT listen address. */
export const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):\d{1,5}$/, 'expected HOST:PORT, for example 127.0.0.1:9090');

/** A comma-separated list of http(s) URLs. */
export const urlList = z
  .string()
  .transform((s) => s.split(',').map((u) => u.trim()).filter((u) => u !== ''))
  .pipe(z.array(z.url({ protocol: /^https?$/, error: 'expected http:// or https:// URLs separated by commas' })).min(1, 'expected at least one URL'));

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
