import { makeInformer, type Informer, type KubeConfig, type KubernetesObject, type ObjectCache } from '@kubernetes/client-node';
import type { Logger } from '../telemetry/logger.ts';
import { listObjects } from './kube.ts';

/** A kind the operator watches: where to list it and whether only its own objects. */
export interface WatchedKind {
  apiVersion: string;
  kind: string;
  plural: string;
  namespaced: boolean;
  /** Only objects carrying this label selector (the operator's own). */
  labelSelector?: string;
}

/** The label every object the operator creates carries. */
export const MANAGED_SELECTOR = 'app.kubernetes.io/managed-by=etcd-topology';

/**
 * One informer (list + watch + cache) per watched kind. An informer that fails is restarted after a
 * pause, as client-go's reflector does, and every change calls onChange with the object.
 */
export class Informers {
  private readonly informers = new Map<string, Informer<KubernetesObject> & ObjectCache<KubernetesObject>>();
  private readonly synced = new Set<string>();
  private stopped = false;

  constructor(
    kc: KubeConfig,
    kinds: readonly WatchedKind[],
    namespace: string | undefined,
    onChange: (kind: string, obj: KubernetesObject) => void,
    log: Logger,
  ) {
    for (const k of kinds) {
      const ns = k.namespaced ? namespace : undefined;
      const group = k.apiVersion.includes('/') ? `/apis/${k.apiVersion}` : `/api/${k.apiVersion}`;
      const path = `${group}${ns ? `/namespaces/${ns}` : ''}/${k.plural}`;
      // As the watch delivers objects (JSON, with kind): a cache filled by a list must hold the same.
      const list = () => listObjects(kc, path, k, k.labelSelector);
      const informer = makeInformer<KubernetesObject>(kc, path, list, k.labelSelector);
      const notify = (obj: KubernetesObject): void => onChange(k.kind, obj);
      informer.on('add', notify);
      informer.on('update', notify);
      informer.on('delete', notify);
      informer.on('connect', () => this.synced.add(k.kind));
      informer.on('error', (err: unknown) => {
        this.synced.delete(k.kind);
        if (this.stopped) return;
        log.warn({ err, kind: k.kind }, 'Lost the watch; restarting it');
        setTimeout(() => void informer.start().catch(() => undefined), 2000).unref();
      });
      this.informers.set(k.kind, informer);
    }
  }

  /** Starts every informer; resolves once each has listed once. */
  async start(): Promise<void> {
    await Promise.all([...this.informers.entries()].map(async ([kind, i]) => {
      await i.start();
      this.synced.add(kind);
    }));
  }

  /** True once every informer has listed at least once and none is broken. */
  get hasSynced(): boolean {
    return this.synced.size === this.informers.size;
  }

  /** The cached object of a kind, or undefined. */
  get<T extends KubernetesObject>(kind: string, name: string, namespace?: string): T | undefined {
    return this.cache(kind).get(name, namespace) as T | undefined;
  }

  /** The cached objects of a kind, optionally in one namespace. */
  list<T extends KubernetesObject>(kind: string, namespace?: string): T[] {
    return this.cache(kind).list(namespace) as T[];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
  }

  private cache(kind: string): ObjectCache<KubernetesObject> {
    const i = this.informers.get(kind);
    if (!i) throw new Error(`no informer for kind ${kind}`);
    return i;
  }
}
