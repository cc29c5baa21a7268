import type { V1Secret } from '@kubernetes/client-node';
import type { Informers } from './informers.ts';
import type { KubeWriter } from './kube.ts';

/** Where the TLS step reads Secrets and tells what it wrote. */
export interface SecretSource {
  /** The Secret, or undefined when it does not exist. */
  read(namespace: string, name: string): Promise<V1Secret | undefined>;
  /** What the API server answered a write of a Secret with (it carries the new resourceVersion). */
  wrote(secret: V1Secret): void;
}

/** A Secret read from the API server; undefined when it does not exist. */
export type ReadSecret = (namespace: string, name: string) => Promise<V1Secret | undefined>;

/** GET through the writer's one read (a missing Secret resolves undefined). */
export function readSecretWith(writer: Pick<KubeWriter, 'core'>): ReadSecret {
  return (namespace, name) =>
    writer.core.readNamespacedSecret({ name, namespace }).catch((err: unknown) => {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    });
}

/** Every read a GET (the unit tests' store, and a TLS step without informers). */
export function liveSecrets(read: ReadSecret): SecretSource {
  return { read, wrote: () => undefined };
}

/** How long a written Secret is kept beside the cache at most. */
const FORGET_AFTER_MS = 5 * 60_000;

/** resourceVersion as a number, or undefined when it is not one (it is opaque by contract; etcd's revision in practice). */
function revision(s: V1Secret | undefined): bigint | undefined {
  const rv = s?.metadata?.resourceVersion;
  if (rv === undefined || !/^\d+$/.test(rv)) return undefined;
  return BigInt(rv);
}

/**
 * The operator's own TLS Secrets from the Secret informer, as client-go's MutationCache serves them:
 * what this process wrote is served until the watch delivers that version or a later one (the next
 * reconcile must not see the certificate it replaced a second ago, nor a CA rotation's old phase).
 * A Secret the cache does not hold is read from the API server: the TLS step creates a Secret it
 * finds missing, and a CA Secret made twice would split the members' trust, so "missing" is never
 * taken from a cache that may lag. At 100 topologies this takes the six GETs of every reconcile off
 * the API server (docs/bench/operator.md).
 */
export class SecretCache implements SecretSource {
  private readonly informers: Pick<Informers, 'get'>;
  private readonly live: ReadSecret;
  private readonly now: () => number;
  /** Secrets this process wrote or read live, newer than the cache when they were stored, and when. */
  private readonly newer = new Map<string, { secret: V1Secret; at: number }>();

  constructor(informers: Pick<Informers, 'get'>, live: ReadSecret, now: () => number = Date.now) {
    this.informers = informers;
    this.live = live;
    this.now = now;
  }

  async read(namespace: string, name: string): Promise<V1Secret | undefined> {
    const key = `${namespace}/${name}`;
    const cached = this.informers.get<V1Secret>('Secret', name, namespace);
    if (cached === undefined) {
      this.newer.delete(key);
      const fresh = await this.live(namespace, name);
      if (fresh !== undefined) this.remember(fresh);
      return fresh;
    }
    const mine = this.newer.get(key)?.secret;
    if (mine === undefined) return cached;
    const [have, wrote] = [revision(cached), revision(mine)];
    // Not comparable: the cache is the authority, as in client-go.
    if (have === undefined || wrote === undefined || have >= wrote) {
      this.newer.delete(key);
      return cached;
    }
    return mine;
  }

  wrote(secret: V1Secret): void {
    this.remember(secret);
  }

  /** Entries kept (for tests). */
  get size(): number {
    return this.newer.size;
  }

  private remember(secret: V1Secret): void {
    const { namespace, name } = secret.metadata ?? {};
    if (namespace === undefined || name === undefined || revision(secret) === undefined) return;
    const now = this.now();
    // A watch lags by seconds; an entry this old belongs to a Secret nobody reads any more (a deleted topology's).
    for (const [k, e] of this.newer) if (e.at < now - FORGET_AFTER_MS) this.newer.delete(k);
    this.newer.set(`${namespace}/${name}`, { secret, at: now });
  }
}
