import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { duration, hostPort, namespaceList, parseDuration, parseFlags, urlList } from './flags.ts';

const schema = z.object({
  endpoints: urlList,
  refreshInterval: duration.prefault('30s'),
  leaderElect: z.boolean().default(true),
  metricsAddr: hostPort.optional(),
});

describe('parseFlags', () => {
  it('reads space and equals forms, booleans and defaults', () => {
    const { flags, positionals } = parseFlags('proxy', schema, ['--endpoints', 'http://a:1,http://b:2', '--leader-elect=false', 'node-1']);
    expect(flags).toEqual({ endpoints: ['http://a:1', 'http://b:2'], refreshInterval: 30_000, leaderElect: false });
    expect(positionals).toEqual(['node-1']);
  });

  it('falls back to ETCD_TOPOLOGY_<FLAG> and prefers the command line', () => {
    const env = { ETCD_TOPOLOGY_ENDPOINTS: 'http://env:1', ETCD_TOPOLOGY_REFRESH_INTERVAL: '1m' };
    expect(parseFlags('proxy', schema, [], env).flags.refreshInterval).toBe(60_000);
    expect(parseFlags('proxy', schema, ['--endpoints=http://cli:1'], env).flags.endpoints).toEqual(['http://cli:1']);
  });

  it.each([
    [['--nope'], /unknown flag --nope; accepted: --endpoints/],
    [['--endpoints'], /flag --endpoints needs a value/],
    [['--endpoints', 'ftp://x'], /invalid value "ftp:\/\/x" for --endpoints/],
    [['--endpoints', 'http://a:1', '--refresh-interval', 'soon'], /--refresh-interval: expected a duration/],
    [['--endpoints', 'http://a:1', '--metrics-addr', 'nope'], /--metrics-addr: expected HOST:PORT/],
    [[], /invalid value \(missing\) for --endpoints/],
  ])('rejects %j with one line naming the flag', (argv, message) => {
    expect(() => parseFlags('proxy', schema, argv, {})).toThrow(message);
  });
});

describe('namespaceList', () => {
  const schema = z.object({ namespaces: namespaceList.optional() });

  it('reads names separated by commas, spaces around them ignored', () => {
    expect(parseFlags('operator', schema, ['--namespaces', 'team-a, b2']).flags.namespaces).toEqual(['team-a', 'b2']);
    expect(parseFlags('operator', schema, [], { ETCD_TOPOLOGY_NAMESPACES: 'apps' }).flags.namespaces).toEqual(['apps']);
    expect(parseFlags('operator', schema, [], {}).flags.namespaces).toBeUndefined();
  });

  it.each([
    ['--namespaces=', /invalid value "" for --namespaces: an empty name is not a namespace name; expected names of lowercase letters/],
    ['--namespaces=a,,b', /--namespaces: an empty name is not a namespace name/],
    ['--namespaces=a,Team', /--namespaces: "Team" is not a namespace name; expected .* separated by commas, such as team-a,team-b, or no flag for every namespace/],
    ['--namespaces=a/b', /--namespaces: "a\/b" is not a namespace name/],
    [`--namespaces=${'x'.repeat(64)}`, /is not a namespace name; expected .*at most 63/],
    ['--namespaces=a,b,a', /--namespaces: namespace "a" is listed twice; expected each namespace once/],
  ])('refuses %s with one line naming the flag', (arg, message) => {
    expect(() => parseFlags('operator', schema, [arg], {})).toThrow(message);
  });
});

describe('parseDuration', () => {
  it.each([
    ['500ms', 500], ['5s', 5000], ['1m30s', 90_000], ['2h', 7_200_000], ['1.5s', 1500],
  ])('%s is %d ms', (s, ms) => expect(parseDuration(s)).toBe(ms));
  it.each(['', '5', 's', '5x', '5s junk'])('%j is not a duration', (s) => expect(parseDuration(s)).toBeUndefined());
});
