import { describe, expect, it } from 'vitest';
import { UsageError } from './errors.ts';
import { flagReaders as f, parseUrlList, readFlags } from './flag-core.ts';

const readers = {
  endpoints: f.urlList(),
  wait: f.duration('5s'),
  addr: f.hostPort('127.0.0.1:9379'),
  cert: f.file(),
  mode: f.oneOf(['readwrite', 'readonly'], 'readwrite'),
  fast: f.boolean(false),
  buffer: f.integer(1024, 512, { unit: 'bytes', example: 4096 }),
};

describe('readFlags', () => {
  it('reads given values, defaults, booleans and the environment', () => {
    const { flags, positionals } = readFlags('proxy', readers, ['--endpoints=http://a:1, http://b:2', '--fast', 'x', '--buffer', '2048'], { ETCD_TOPOLOGY_WAIT: '1m' });
    expect(flags).toEqual({ endpoints: ['http://a:1', 'http://b:2'], wait: 60_000, addr: '127.0.0.1:9379', cert: undefined, mode: 'readwrite', fast: true, buffer: 2048 });
    expect(positionals).toEqual(['x']);
    expect(readFlags('proxy', readers, ['--endpoints=http://a:1', '--fast=false'], { ETCD_TOPOLOGY_FAST: 'true' }).flags.fast).toBe(false);
    expect(readFlags('proxy', readers, ['--endpoints=http://a:1'], { ETCD_TOPOLOGY_FAST: '1' }).flags.fast).toBe(true);
  });

  it.each([
    [[], /invalid value \(missing\) for --endpoints: expected http:\/\/ or https:\/\/ URLs/],
    [['--endpoints=ftp://a'], /invalid value "ftp:\/\/a" for --endpoints: expected http:\/\/ or https:\/\/ URLs/],
    [['--endpoints=,'], /--endpoints: expected at least one URL/],
    [['--endpoints=http://a:1', '--wait=soon'], /invalid value "soon" for --wait: expected a duration such as 500ms/],
    [['--endpoints=http://a:1', '--addr=nope'], /--addr: expected HOST:PORT/],
    [['--endpoints=http://a:1', '--cert='], /invalid value "" for --cert: expected a file path/],
    [['--endpoints=http://a:1', '--mode=writeonly'], /--mode: expected readwrite or readonly/],
    [['--endpoints=http://a:1', '--fast=maybe'], /invalid value "maybe" for --fast: expected true or false/],
    [['--endpoints=http://a:1', '--buffer=lots'], /--buffer: expected a number of bytes, for example 4096/],
    [['--endpoints=http://a:1', '--buffer=1.5'], /--buffer: expected a whole number of bytes/],
    [['--endpoints=http://a:1', '--buffer=100'], /--buffer: expected at least 512 bytes/],
    [['--endpoints=http://a:1', '--nope'], /unknown flag --nope; accepted: --endpoints, --wait/],
    [['--endpoints'], /flag --endpoints needs a value/],
  ])('rejects %j with one UsageError naming the flag', (argv, message) => {
    expect(() => readFlags('proxy', readers, argv, {})).toThrow(UsageError);
    expect(() => readFlags('proxy', readers, argv, {})).toThrow(message);
  });
});

describe('parseUrlList', () => {
  it('accepts http and https URLs separated by commas', () => {
    expect(parseUrlList('http://a:1,https://b:2')).toEqual({ urls: ['http://a:1', 'https://b:2'] });
    expect(parseUrlList('http://a:1,not a url')).toEqual({ error: 'expected http:// or https:// URLs separated by commas' });
  });
});
