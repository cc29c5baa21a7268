import { writeSync } from 'node:fs';
import os from 'node:os';
import { UsageError } from '../errors.ts';

// The process's logger: JSON lines on stdout in pino's shape ({"level":30,"time":...,"pid":...,
// "hostname":...,"name":...,<bindings>,<fields>,"msg":...}, numeric levels, `err` serialised with its
// type, message and stack including those of its causes), written synchronously as pino does by
// default. It replaced pino itself, which with the 8 packages it loads cost the idle proxy (one on
// every node) 1.8 MiB of RSS: docs/bench/proxy-memory.md.

const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity } as const;
export type LevelName = keyof typeof LEVELS;
type Method = Exclude<LevelName, 'silent'>;

/** Logs `msg`, or `fields` and `msg`; an Error in place of fields is logged as `err` (with its message as msg if none is given). */
export interface LogFn {
  (msg: string): void;
  (fields: object, msg?: string): void;
}

export interface Logger {
  readonly level: LevelName;
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  fatal: LogFn;
  /** A logger whose every line carries bindings too (after the parent's). */
  child(bindings: Record<string, unknown>): Logger;
}

// Never log credentials that may ride along in headers or configs: these keys of any field's object.
const SECRET_KEYS = new Set(['authorization', 'token', 'password']);
const CENSOR = '[redacted]';

/** Creates the process's one root logger; components take children with their own keys. */
export function createRootLogger(options: { level?: string; name: string }, write: (line: string) => void = writeStdout): Logger {
  const level = options.level ?? process.env['LOG_LEVEL'] ?? 'info';
  if (!(level in LEVELS)) {
    throw new UsageError(`${options.level === undefined ? 'LOG_LEVEL' : 'log level'} "${level}" is not a level; accepted: ${Object.keys(LEVELS).join(', ')}`);
  }
  const prefix = `"pid":${process.pid},"hostname":${JSON.stringify(os.hostname())},"name":${JSON.stringify(options.name)}`;
  return new JsonLogger(level as LevelName, prefix, write);
}

class JsonLogger implements Logger {
  readonly level: LevelName;
  readonly trace: LogFn;
  readonly debug: LogFn;
  readonly info: LogFn;
  readonly warn: LogFn;
  readonly error: LogFn;
  readonly fatal: LogFn;
  /** `"pid":...,"hostname":...,"name":...` and the bindings, serialised once. */
  private readonly prefix: string;
  private readonly write: (line: string) => void;

  constructor(level: LevelName, prefix: string, write: (line: string) => void) {
    this.level = level;
    this.prefix = prefix;
    this.write = write;
    const threshold = LEVELS[level];
    const method = (name: Method): LogFn => {
      const n = LEVELS[name];
      if (n < threshold) return noop;
      return (fields: object | string, msg?: string) => this.line(n, fields, msg);
    };
    this.trace = method('trace');
    this.debug = method('debug');
    this.info = method('info');
    this.warn = method('warn');
    this.error = method('error');
    this.fatal = method('fatal');
  }

  child(bindings: Record<string, unknown>): Logger {
    const more = fieldsJson(bindings);
    return new JsonLogger(this.level, more === '' ? this.prefix : `${this.prefix},${more}`, this.write);
  }

  private line(level: number, fields: object | string, msg: string | undefined): void {
    let text = msg;
    let body = '';
    if (typeof fields === 'string') text = fields;
    else if (isErrorLike(fields)) {
      body = `"err":${stringify(serializeError(fields))}`;
      text ??= fields.message;
    } else body = fieldsJson(fields as Record<string, unknown>);
    this.write(`{"level":${level},"time":${Date.now()},${this.prefix}${body === '' ? '' : `,${body}`}${text === undefined ? '' : `,"msg":${JSON.stringify(text)}`}}\n`);
  }
}

const noop: LogFn = () => undefined;

/** The fields of one line (or a child's bindings) as JSON members without braces: `err` serialised, secrets censored. */
function fieldsJson(fields: Record<string, unknown>): string {
  const out: string[] = [];
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined || typeof value === 'function' || typeof value === 'symbol') continue;
    const v = key === 'err' && isErrorLike(value) ? serializeError(value) : censor(value);
    out.push(`${JSON.stringify(key)}:${stringify(v)}`);
  }
  return out.join(',');
}

/** A copy of an object field with its secret keys censored (one level down, as pino's `*.token` paths). */
function censor(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || isErrorLike(value)) return value;
  let copy: Record<string, unknown> | undefined;
  for (const key of Object.keys(value)) {
    if (SECRET_KEYS.has(key)) (copy ??= { ...(value as Record<string, unknown>) })[key] = CENSOR;
  }
  return copy ?? value;
}

interface ErrorLike {
  message: string;
  name?: string;
  stack?: string;
  cause?: unknown;
}

function isErrorLike(value: unknown): value is ErrorLike {
  return value !== null && typeof value === 'object' && typeof (value as { message?: unknown }).message === 'string' && (value instanceof Error || 'stack' in value);
}

/** As pino's err serialiser: type, message and stack with those of each cause appended, and the error's own fields (code, ...). */
export function serializeError(err: ErrorLike): Record<string, unknown> {
  const out: Record<string, unknown> = {
    type: typeof err.constructor === 'function' && err.constructor.name !== '' ? err.constructor.name : err.name,
    message: withCauses(err, (e) => e.message, ': '),
    stack: withCauses(err, (e) => e.stack ?? '', '\ncaused by: '),
  };
  if (err instanceof AggregateError) out['aggregateErrors'] = (err.errors as unknown[]).filter(isErrorLike).map(serializeError);
  for (const key of Object.keys(err)) {
    if (key === 'cause' || out[key] !== undefined) continue;
    const value = (err as unknown as Record<string, unknown>)[key];
    out[key] = isErrorLike(value) ? serializeError(value) : value;
  }
  return out;
}

function withCauses(err: ErrorLike, part: (e: ErrorLike) => string, joint: string): string {
  const seen = new Set<ErrorLike>();
  let text = part(err);
  for (let e: unknown = err.cause; isErrorLike(e) && !seen.has(e); e = e.cause) {
    seen.add(e);
    const p = part(e);
    if (p !== '') text += joint + p;
  }
  return text;
}

/** JSON.stringify that never throws: a circular reference becomes "[Circular]", a bigint its digits. */
function stringify(value: unknown): string {
  try {
    return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) ?? 'null';
  } catch {
    const ancestors: object[] = [];
    return JSON.stringify(value, function (this: unknown, _k, v: unknown) {
      if (typeof v === 'bigint') return v.toString();
      if (v === null || typeof v !== 'object') return v;
      while (ancestors.length > 0 && ancestors.at(-1) !== this) ancestors.pop();
      if (ancestors.includes(v)) return '[Circular]';
      ancestors.push(v);
      return v;
    }) ?? 'null';
  }
}

/** Writes a whole line to stdout now, as pino's default synchronous destination does (retrying while a non-blocking pipe is full). */
function writeStdout(line: string): void {
  let buf = Buffer.from(line);
  while (buf.length > 0) {
    try {
      buf = buf.subarray(writeSync(1, buf));
    } catch (err) {
      // A closed stdout (EPIPE, ...) loses the line; it never takes the process down.
      if ((err as { code?: string }).code !== 'EAGAIN') return;
    }
  }
}
