import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../errors.ts';
import { createRootLogger } from './logger.ts';

function capture(level: string): { lines: () => Record<string, unknown>[]; raw: string[]; log: ReturnType<typeof createRootLogger> } {
  const raw: string[] = [];
  const log = createRootLogger({ name: 'etcd-topology-proxy', level }, (line) => raw.push(line));
  return { raw, log, lines: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('the JSON-lines logger (pino\'s shape)', () => {
  it('writes one line per call: level, time, pid, hostname, name, the bindings, the fields, msg, in that order', () => {
    const { raw, log } = capture('info');
    const before = Date.now();
    log.child({ component: 'leader' }).child({ member: 'm1' }).info({ term: 3 }, 'Learned the etcd leader');
    expect(raw).toHaveLength(1);
    expect(raw[0]!.endsWith('}\n')).toBe(true);
    const line = JSON.parse(raw[0]!) as Record<string, unknown>;
    expect(Object.keys(line)).toEqual(['level', 'time', 'pid', 'hostname', 'name', 'component', 'member', 'term', 'msg']);
    expect(line).toMatchObject({ level: 30, pid: process.pid, hostname: os.hostname(), name: 'etcd-topology-proxy', component: 'leader', member: 'm1', term: 3, msg: 'Learned the etcd leader' });
    expect(line['time']).toBeGreaterThanOrEqual(before);
  });

  it('drops what is below its level and numbers levels as pino does', () => {
    const { lines, log } = capture('warn');
    log.trace('t');
    log.debug('d');
    log.info('i');
    log.warn('w');
    log.error({ a: 1 }, 'e');
    log.fatal('f');
    expect(lines().map((l) => [l['level'], l['msg']])).toEqual([[40, 'w'], [50, 'e'], [60, 'f']]);
    const silent = capture('silent');
    silent.log.fatal('nothing');
    expect(silent.raw).toEqual([]);
    expect(capture('trace').log.level).toBe('trace');
  });

  it('serialises err with its type, the messages and stacks of its causes, and its own fields', () => {
    const { lines, log } = capture('info');
    const inner = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    const outer = Object.assign(new TypeError('etcd member failed', { cause: inner }), { code: 'ETOP_ETCD_UNAVAILABLE' });
    log.warn({ err: outer }, 'Failed');
    log.error(inner);
    const [first, second] = lines() as { err: Record<string, unknown>; msg: string }[];
    expect(first!.err).toMatchObject({ type: 'TypeError', message: 'etcd member failed: connect ECONNREFUSED', code: 'ETOP_ETCD_UNAVAILABLE' });
    expect(first!.err['stack']).toMatch(/^TypeError: etcd member failed\n[\s\S]*\ncaused by: Error: connect ECONNREFUSED\n/);
    expect(first!.err).not.toHaveProperty('cause');
    expect(second).toMatchObject({ msg: 'connect ECONNREFUSED', err: { type: 'Error', code: 'ECONNREFUSED' } });
  });

  it('censors authorization, token and password one level inside a field, in lines and in bindings', () => {
    const { lines, log } = capture('info');
    const headers = { authorization: 'Bearer secret', token: 't', accept: 'json' };
    log.child({ config: { password: 'p', user: 'u' } }).info({ headers, url: 'x' }, 'Called');
    const line = lines()[0]!;
    expect(line['headers']).toEqual({ authorization: '[redacted]', token: '[redacted]', accept: 'json' });
    expect(line['config']).toEqual({ password: '[redacted]', user: 'u' });
    // The caller's object is not changed.
    expect(headers.authorization).toBe('Bearer secret');
  });

  it('writes a line for circular fields and bigints instead of throwing', () => {
    const { lines, log } = capture('info');
    const loop: Record<string, unknown> = { a: 1 };
    loop['self'] = loop;
    log.info({ loop, big: 12n }, 'odd');
    expect(lines()[0]).toMatchObject({ loop: { a: 1, self: '[Circular]' }, big: '12', msg: 'odd' });
  });

  it('refuses an unknown level, naming it and the accepted ones', () => {
    expect(() => createRootLogger({ name: 'x', level: 'verbose' })).toThrow(UsageError);
    expect(() => createRootLogger({ name: 'x', level: 'verbose' })).toThrow('log level "verbose" is not a level; accepted: trace, debug, info, warn, error, fatal, silent');
  });
});
