import { describe, expect, it } from 'vitest';
import { UsageError } from '../errors.ts';
import { loadConfig } from './config.ts';

const base = ['--endpoints', 'http://127.0.0.1:2379', '--listen-client-urls', 'http://127.0.0.1:23790'];

describe('proxy flags', () => {
  it('applies the defaults of the CLI contract', () => {
    const c = loadConfig(base, {});
    expect(c).toMatchObject({ mode: 'readwrite', refreshInterval: 30_000, failureWait: 5_000, drainTimeout: 10_000, metricsAddr: '127.0.0.1:9379' });
    expect(c.endpoints).toEqual(['http://127.0.0.1:2379']);
  });

  it('reads flags from ETCD_TOPOLOGY_* when not given', () => {
    const c = loadConfig(['--endpoints=http://a:1,http://b:2'], { ETCD_TOPOLOGY_LISTEN_CLIENT_URLS: 'http://127.0.0.1:1', ETCD_TOPOLOGY_MODE: 'readonly', ETCD_TOPOLOGY_FAILURE_WAIT: '1m' });
    expect(c).toMatchObject({ mode: 'readonly', failureWait: 60_000, endpoints: ['http://a:1', 'http://b:2'], listenClientUrls: ['http://127.0.0.1:1'] });
  });

  it.each([
    [['--mode', 'writeonly'], /--mode/],
    [['--refresh-interval', 'soon'], /--refresh-interval/],
    [['--metrics-addr', 'nope'], /--metrics-addr/],
    [['--cert', '/x'], /--cert and --key/],
    [['--listen-client-urls', 'https://127.0.0.1:1'], /--listen-cert/],
    [['--listen-client-urls', 'http://127.0.0.1'], /give a port/],
    [['--cacert', '/no/such/file'], /--cacert \/no\/such\/file: ENOENT/],
    [['--bogus', '1'], /unknown flag --bogus/],
    [['--watch-coalescing=maybe'], /--watch-coalescing: expected true or false/],
    [['--watch-client-buffer', 'lots'], /--watch-client-buffer: expected a number of bytes/],
    [['--watch-client-buffer', '100'], /--watch-client-buffer: expected at least 65536 bytes/],
  ])('rejects %j with one line naming the flag', (extra, message) => {
    const argv = [...base];
    // A later --listen-client-urls replaces the base one.
    if (extra[0] === '--listen-client-urls') argv.splice(2, 2);
    expect(() => loadConfig([...argv, ...extra], {})).toThrow(UsageError);
    expect(() => loadConfig([...argv, ...extra], {})).toThrow(message);
  });

  it('turns watch coalescing on by default, off with --watch-coalescing=false', () => {
    expect(loadConfig(base, {})).toMatchObject({ watchCoalescing: true, watchClientBuffer: 4 * 1024 * 1024 });
    expect(loadConfig([...base, '--watch-coalescing=false', '--watch-client-buffer=262144'], {})).toMatchObject({ watchCoalescing: false, watchClientBuffer: 262_144 });
    expect(loadConfig(base, { ETCD_TOPOLOGY_WATCH_COALESCING: 'false' }).watchCoalescing).toBe(false);
  });

  it('shares its ports only with --reuse-port, and names its pod template with --revision', () => {
    expect(loadConfig(base, {})).toMatchObject({ reusePort: false, revision: undefined });
    expect(loadConfig([...base, '--reuse-port=true', '--revision=5d8c1f0a2b3c'], {})).toMatchObject({ reusePort: true, revision: '5d8c1f0a2b3c' });
    expect(() => loadConfig([...base, '--reuse-port=yes'], {})).toThrow(/--reuse-port: expected true or false/);
    expect(() => loadConfig([...base, '--revision='], {})).toThrow(/--revision: expected a name for this proxy's pod template/);
  });

  it('requires --endpoints', () => {
    expect(() => loadConfig(['--listen-client-urls', 'http://127.0.0.1:1'], {})).toThrow(/--endpoints/);
  });
});
