import { UsageError } from './errors.ts';

// The part of flag parsing that needs no schema library: splitting argv and the environment into
// raw values, and the checks every command shares. flags.ts validates the raw values with zod; the
// proxy (src/proxy/config.ts) validates its few flags by hand, so that the process on every worker
// node does not load zod (docs/bench/proxy-memory.md).

/** Raw flag values by camelCase key: a string as given, or true for a bare boolean flag. */
export type RawFlags = Record<string, string | boolean>;

/**
 * Splits `--flag value`, `--flag=value` and boolean `--flag` arguments by the camelCase keys given;
 * a flag not on the command line is read from ETCD_TOPOLOGY_<FLAG_NAME>. Boolean strings true/1 and
 * false/0 become booleans. Throws UsageError for an unknown flag or a value-less non-boolean one.
 */
export function scanFlags(
  command: string,
  keys: readonly string[],
  booleans: ReadonlySet<string>,
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): { raw: RawFlags; positionals: string[] } {
  const known = new Map<string, string>(); // kebab-case -> camelCase
  for (const key of keys) known.set(toKebab(key), key);
  const raw: RawFlags = {};
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
  return { raw, positionals };
}

/** The one-line error for a flag whose value is wrong: names the flag, what was given and what is accepted. */
export function invalidFlag(command: string, key: string, given: string | boolean | undefined, accepted: string): UsageError {
  return new UsageError(`${command}: invalid value ${given === undefined ? '(missing)' : JSON.stringify(given)} for --${toKebab(key)}: ${accepted}`);
}

/** camelCase flag key to its --kebab-case name. */
export function toKebab(s: string): string {
  return s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

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

export const DURATION_ACCEPTED = 'expected a duration such as 500ms, 5s, 1m or 1h30m';

/** A HOST:PORT listen address. */
export const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):\d{1,5}$/;
export const HOST_PORT_ACCEPTED = 'expected HOST:PORT, for example 127.0.0.1:9090';

export const URL_LIST_ACCEPTED = 'expected http:// or https:// URLs separated by commas';

/** A comma-separated list of http(s) URLs, trimmed, or the reason it is not one. */
export function parseUrlList(s: string): { urls: string[] } | { error: string } {
  const urls = s.split(',').map((u) => u.trim()).filter((u) => u !== '');
  if (urls.length === 0) return { error: 'expected at least one URL' };
  for (const u of urls) if (!URL.canParse(u) || !/^https?:$/.test(new URL(u).protocol)) return { error: URL_LIST_ACCEPTED };
  return { urls };
}

/** Thrown by a FlagReader: the message says what the flag accepts. */
export class FlagValueError extends Error {}

/** One flag read without a schema library: read() turns the raw value into the flag's value or throws FlagValueError. */
export interface FlagReader<T> {
  readonly boolean?: boolean;
  read(given: string | boolean | undefined): T;
}

/** The values a set of readers produce, by key. */
export type FlagValues<R extends Record<string, FlagReader<unknown>>> = { [K in keyof R]: ReturnType<R[K]['read']> };

/** Like flags.ts's parseFlags, for commands that avoid zod: every problem is one UsageError naming the flag. */
export function readFlags<R extends Record<string, FlagReader<unknown>>>(
  command: string,
  readers: R,
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): { flags: FlagValues<R>; positionals: string[] } {
  const keys = Object.keys(readers);
  const { raw, positionals } = scanFlags(command, keys, new Set(keys.filter((k) => readers[k]!.boolean === true)), argv, env);
  const flags: Record<string, unknown> = {};
  for (const key of keys) {
    try {
      flags[key] = readers[key]!.read(raw[key]);
    } catch (err) {
      if (err instanceof FlagValueError) throw invalidFlag(command, key, raw[key], err.message);
      throw err;
    }
  }
  return { flags: flags as FlagValues<R>, positionals };
}

const text = (given: string | boolean | undefined, accepted: string): string | undefined => {
  if (typeof given === 'boolean') throw new FlagValueError(accepted);
  return given;
};

/** Readers for the flag kinds the commands share; a default is parsed like a given value. */
export const flagReaders = {
  urlList: (): FlagReader<string[]> => ({
    read(given) {
      const s = text(given, URL_LIST_ACCEPTED);
      if (s === undefined) throw new FlagValueError(URL_LIST_ACCEPTED);
      const r = parseUrlList(s);
      if ('error' in r) throw new FlagValueError(r.error);
      return r.urls;
    },
  }),
  duration: (fallback: string): FlagReader<number> => ({
    read(given) {
      const ms = parseDuration(text(given, DURATION_ACCEPTED) ?? fallback);
      if (ms === undefined) throw new FlagValueError(DURATION_ACCEPTED);
      return ms;
    },
  }),
  hostPort: (fallback: string): FlagReader<string> => ({
    read(given) {
      const s = text(given, HOST_PORT_ACCEPTED) ?? fallback;
      if (!HOST_PORT.test(s)) throw new FlagValueError(HOST_PORT_ACCEPTED);
      return s;
    },
  }),
  /** An optional non-empty string; what says what it is, as in "a file path". */
  text: (what: string): FlagReader<string | undefined> => ({
    read(given) {
      const s = text(given, `expected ${what}`);
      if (s === '') throw new FlagValueError(`expected ${what}`);
      return s;
    },
  }),
  file: (): FlagReader<string | undefined> => flagReaders.text('a file path'),
  oneOf: <T extends string>(values: readonly T[], fallback: T): FlagReader<T> => ({
    read(given) {
      const accepted = `expected ${values.slice(0, -1).join(', ')} or ${values[values.length - 1]}`;
      const s = text(given, accepted) ?? fallback;
      if (!(values as readonly string[]).includes(s)) throw new FlagValueError(accepted);
      return s as T;
    },
  }),
  boolean: (fallback: boolean): FlagReader<boolean> => ({
    boolean: true,
    read(given) {
      if (given === undefined) return fallback;
      if (typeof given !== 'boolean') throw new FlagValueError('expected true or false');
      return given;
    },
  }),
  /** A whole number of at least min; what names the unit and an example, as in "a number of bytes, for example 4194304". */
  integer: (fallback: number, min: number, what: { unit: string; example: number }): FlagReader<number> => ({
    read(given) {
      const s = text(given, `expected a number of ${what.unit}, for example ${what.example}`);
      if (s === undefined) return fallback;
      const n = Number(s);
      if (s.trim() === '' || !Number.isFinite(n)) throw new FlagValueError(`expected a number of ${what.unit}, for example ${what.example}`);
      if (!Number.isInteger(n)) throw new FlagValueError(`expected a whole number of ${what.unit}`);
      if (n < min) throw new FlagValueError(`expected at least ${min} ${what.unit}`);
      return n;
    },
  }),
};
