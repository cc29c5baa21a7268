import type { KubernetesObject, V1Secret } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { Informers } from './informers.ts';
import { SecretCache } from './secret-cache.ts';

const secret = (name: string, rv: string, value = rv): V1Secret => ({ metadata: { name, namespace: 'etcd', resourceVersion: rv }, data: { v: value } });

/** A Secret cache as the informer holds it, and the API server's own copies behind it. */
function setup() {
  const cached = new Map<string, V1Secret>();
  const server = new Map<string, V1Secret>();
  const gets: string[] = [];
  let now = 0;
  const informers = { get: <T extends KubernetesObject>(_kind: string, name: string) => cached.get(name) as T | undefined } as Pick<Informers, 'get'>;
  const cache = new SecretCache(
    informers,
    (_ns, name) => {
      gets.push(name);
      return Promise.resolve(server.get(name));
    },
    () => now,
  );
  return { cached, server, gets, cache, advance: (ms: number) => (now += ms) };
}

describe('SecretCache', () => {
  it('serves a cached Secret without a request', async () => {
    const s = setup();
    s.cached.set('main-ca', secret('main-ca', '10'));
    expect((await s.cache.read('etcd', 'main-ca'))?.data).toEqual({ v: '10' });
    expect(s.gets).toEqual([]);
  });

  it('asks the API server before saying a Secret is missing (the cache may lag behind its creation)', async () => {
    const s = setup();
    expect(await s.cache.read('etcd', 'main-ca')).toBeUndefined();
    s.server.set('main-ca', secret('main-ca', '11'));
    expect((await s.cache.read('etcd', 'main-ca'))?.data).toEqual({ v: '11' });
    expect(s.gets).toEqual(['main-ca', 'main-ca']);
  });

  it('serves what this process wrote until the watch delivers that version or a later one', async () => {
    const s = setup();
    s.cached.set('main-server-tls', secret('main-server-tls', '20', 'old'));
    s.cache.wrote(secret('main-server-tls', '25', 'renewed'));
    expect((await s.cache.read('etcd', 'main-server-tls'))?.data).toEqual({ v: 'renewed' });
    s.cached.set('main-server-tls', secret('main-server-tls', '25', 'renewed'));
    expect((await s.cache.read('etcd', 'main-server-tls'))?.data).toEqual({ v: 'renewed' });
    expect(s.cache.size).toBe(0);
    // Someone else's later write wins over ours.
    s.cache.wrote(secret('main-server-tls', '30', 'ours'));
    s.cached.set('main-server-tls', secret('main-server-tls', '31', 'theirs'));
    expect((await s.cache.read('etcd', 'main-server-tls'))?.data).toEqual({ v: 'theirs' });
    expect(s.gets).toEqual([]);
  });

  it('does not serve a written Secret that has since been deleted: a cache miss asks the API server', async () => {
    const s = setup();
    s.cache.wrote(secret('main-peer-tls', '40'));
    expect(await s.cache.read('etcd', 'main-peer-tls')).toBeUndefined();
    expect(s.gets).toEqual(['main-peer-tls']);
  });

  it('trusts the cache when resource versions are not numbers, and forgets old writes', async () => {
    const s = setup();
    s.cached.set('a', secret('a', 'x1', 'cached'));
    s.cache.wrote(secret('a', 'x2', 'written'));
    expect((await s.cache.read('etcd', 'a'))?.data).toEqual({ v: 'cached' });
    s.cache.wrote(secret('b', '5'));
    s.advance(6 * 60_000);
    s.cache.wrote(secret('c', '6'));
    expect(s.cache.size).toBe(1);
  });
});
