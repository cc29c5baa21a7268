import type { KubernetesObject } from '@kubernetes/client-node';
import { Gauge, type Registry } from '../telemetry/lean-metrics.ts';
import type { Logger } from '../telemetry/logger.ts';
import { listObjects } from './kube.ts';
import type { KubeClient, WatchEvent } from './kube-client.ts';

/** A kind the operator watches: where to list it and whether only its own objects. */
export interface WatchedKind {
  apiVersion: string;
  kind: string;
  plural: string;
  namespaced: boolean;
  /** Only objects carrying this label selector (the operator's own). */
  labelSelector?: string;
  /**
   * What the controller reacts to in an object of this kind; an update that leaves it the same is
   * cached but not passed on (a kubelet's or kwok's heartbeat on a Node).
   */
  changes?: (obj: KubernetesObject) => string;
}

/** A Node as the reconciler reads it: labels, taints, cordon, readiness; not heartbeats or images. */
export function nodeChanges(obj: KubernetesObject): string {
  const node = obj as KubernetesObject & { spec?: { unschedulable?: boolean; taints?: unknown[] }; status?: { conditions?: { type: string; status: string }[] } };
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready')?.status;
  return JSON.stringify([node.metadata?.labels ?? {}, node.spec?.unschedulable ?? false, node.spec?.taints ?? [], ready ?? '']);
}

/**
 * Drops what the operator never reads and the API server repeats in every object: managedFields; of a
 * Node everything but its name, labels, cordon, taints and the type, status and reason of its
 * conditions (its image list is the largest part of a real node's status; at 1,000 nodes the rest,
 * annotations, addresses, capacity, heartbeat times, was still megabytes of a cache nobody reads).
 */
export function trim<T extends KubernetesObject>(obj: T): T {
  if (obj.metadata?.managedFields) delete obj.metadata.managedFields;
  if (obj.kind !== 'Node') return obj;
  const node = obj as KubernetesObject & { spec?: { unschedulable?: boolean; taints?: unknown[] }; status?: { conditions?: { type: string; status: string; reason?: string }[] } };
  const { name, uid, resourceVersion, labels, deletionTimestamp } = node.metadata ?? {};
  return {
    apiVersion: node.apiVersion,
    kind: node.kind,
    metadata: { name, uid, resourceVersion, labels, ...(deletionTimestamp ? { deletionTimestamp } : {}) },
    spec: { ...(node.spec?.unschedulable !== undefined ? { unschedulable: node.spec.unschedulable } : {}), ...(node.spec?.taints ? { taints: node.spec.taints } : {}) },
    status: { conditions: (node.status?.conditions ?? []).map((c) => ({ type: c.type, status: c.status, ...(c.reason !== undefined ? { reason: c.reason } : {}) })) },
  } as unknown as T;
}

type InformerEvent = 'add' | 'update' | 'delete' | 'connect' | 'error';
const keyOf = (obj: KubernetesObject): string => `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;

/** Stamps every change of every cache with a number no other change has (Informers.derived compares them). */
let cacheClock = 0;

/**
 * One list + watch + cache of a collection, as client-go's reflector: start() lists (the cache then
 * holds exactly the list: vanished objects are deleted, changed ones updated), emits connect, and
 * watches from the list's resourceVersion, resuming after the server ends a watch and listing again
 * when the version is too old (410 Gone). Any other failure emits error and stops; start() again.
 */
export class ListWatchInformer {
  private readonly objects = new Map<string, KubernetesObject>();
  /** The stamp of the cache's last change (a new informer's cache is a change too: it may replace one that failed). */
  private changes = ++cacheClock;
  /** list()'s answers since the last change, by namespace ('' for all): frozen, shared by every caller. */
  private readonly lists = new Map<string, readonly KubernetesObject[]>();
  private readonly handlers = new Map<InformerEvent, ((obj: KubernetesObject) => void)[]>();
  private readonly client: KubeClient;
  private readonly kind: WatchedKind;
  private readonly path: string;
  private abort: AbortController | undefined;

  constructor(client: KubeClient, kind: WatchedKind, path: string) {
    this.client = client;
    this.kind = kind;
    this.path = path;
  }

  on(event: 'error', fn: (err: unknown) => void): void;
  on(event: Exclude<InformerEvent, 'error'>, fn: (obj: KubernetesObject) => void): void;
  on(event: InformerEvent, fn: (arg: never) => void): void {
    this.handlers.set(event, [...(this.handlers.get(event) ?? []), fn as (obj: KubernetesObject) => void]);
  }

  /**
   * Lists, emits connect once the cache holds the list, and then watches in the background. A list
   * that fails emits error instead (start() never rejects: whoever handles error starts it again).
   */
  async start(): Promise<void> {
    this.abort?.abort();
    const abort = (this.abort = new AbortController());
    let resourceVersion: string;
    try {
      resourceVersion = await this.relist();
    } catch (err) {
      this.emit('error', err);
      return;
    }
    if (abort.signal.aborted) return;
    this.emit('connect', undefined);
    void this.watchFrom(resourceVersion, abort.signal);
  }

  stop(): Promise<void> {
    this.abort?.abort();
    this.abort = undefined;
    return Promise.resolve();
  }

  get(name: string, namespace?: string): KubernetesObject | undefined {
    return this.objects.get(`${namespace ?? ''}/${name}`);
  }

  /**
   * The cached objects (of one namespace). Every reconcile lists them, at 1,000 nodes and 100
   * topologies hundreds of times a second, so the answer is kept until the cache changes; it is frozen,
   * since every caller shares it.
   */
  list(namespace?: string): readonly KubernetesObject[] {
    const scope = namespace ?? '';
    let list = this.lists.get(scope);
    if (list === undefined) {
      const all = [...this.objects.values()];
      list = Object.freeze(namespace === undefined ? all : all.filter((o) => o.metadata?.namespace === namespace));
      this.lists.set(scope, list);
    }
    return list;
  }

  /** The stamp of the cache's last change (to tell whether something derived from it is still current). */
  get version(): number {
    return this.changes;
  }

  private store(key: string, obj: KubernetesObject): void {
    this.objects.set(key, obj);
    this.changed();
  }

  private remove(key: string): void {
    this.objects.delete(key);
    this.changed();
  }

  private changed(): void {
    this.changes = ++cacheClock;
    this.lists.clear();
  }

  private emit(event: InformerEvent, arg: unknown): void {
    for (const fn of this.handlers.get(event) ?? []) (fn as (a: unknown) => void)(arg);
  }

  /** Replaces the cache with a fresh list, emitting what changed; resolves the list's resourceVersion. */
  private async relist(): Promise<string> {
    const result = await listObjects(this.client, this.path, this.kind, this.kind.labelSelector);
    const seen = new Set<string>();
    for (const item of result.items) {
      const obj = trim(item);
      const key = keyOf(obj);
      seen.add(key);
      const prior = this.objects.get(key);
      this.store(key, obj);
      if (!prior) this.emit('add', obj);
      else if (prior.metadata?.resourceVersion !== obj.metadata?.resourceVersion) this.emit('update', obj);
    }
    for (const [key, prior] of this.objects) {
      if (seen.has(key)) continue;
      this.remove(key);
      this.emit('delete', prior);
    }
    return result.metadata?.resourceVersion ?? '';
  }

  private async watchFrom(startVersion: string, signal: AbortSignal): Promise<void> {
    let resourceVersion = startVersion;
    try {
      while (!signal.aborted) {
        let gone = false;
        await this.client.watch<KubernetesObject>(
          this.path,
          { labelSelector: this.kind.labelSelector, resourceVersion },
          (e: WatchEvent<KubernetesObject>) => {
            if (signal.aborted || gone) return;
            if (e.type === 'ERROR') {
              // The only ERROR a watch sends in practice: 410, the version is compacted away.
              gone = true;
              return;
            }
            resourceVersion = e.object.metadata?.resourceVersion ?? resourceVersion;
            if (e.type === 'BOOKMARK') return;
            const obj = trim({ ...e.object, apiVersion: this.kind.apiVersion, kind: this.kind.kind });
            const key = keyOf(obj);
            if (e.type === 'DELETED') {
              this.remove(key);
              this.emit('delete', obj);
              return;
            }
            const known = this.objects.has(key);
            this.store(key, obj);
            this.emit(known ? 'update' : 'add', obj);
          },
          signal,
        );
        if (gone && !signal.aborted) resourceVersion = await this.relist();
      }
    } catch (err) {
      if (!signal.aborted) this.emit('error', err);
    }
  }
}

/** The label every object the operator creates carries. */
export const MANAGED_SELECTOR = 'app.kubernetes.io/managed-by=etcd-topology';

/**
 * The pods the operator reads: its members (readiness gates, replacements) and its backup and restore
 * Jobs' pods (their outcome). Not the proxies, one per node per topology: with them the cache would
 * grow with the cluster while nothing reads it (the proxy DaemonSet's status counts them).
 */
export const POD_SELECTOR = `${MANAGED_SELECTOR},app.kubernetes.io/component in (member,backup)`;

/** The claims the operator reads: its members' data volumes, not the user's backup volumes. */
export const CLAIM_SELECTOR = `${MANAGED_SELECTOR},app.kubernetes.io/component=member`;

/** The Secrets the operator reads from its cache: the built-in CA's, which it made (not the user's own TLS Secrets). */
export const SECRET_SELECTOR = `${MANAGED_SELECTOR},app.kubernetes.io/component=member`;

type CachedInformer = ListWatchInformer;

/** Where one informer lists: a namespace, or '' for every namespace (and for cluster-scoped kinds). */
type Scope = string;
const EVERY_NAMESPACE: Scope = '';

/**
 * One informer (list + watch + cache) per watched kind, and per namespace when the operator watches a
 * list of namespaces (the API has no multi-namespace list; this is what controller-runtime's
 * multi-namespace cache does too). An informer that fails is restarted after a pause, as client-go's
 * reflector does, and every change calls onChange with the object.
 */
export class Informers {
  private readonly informers = new Map<string, Map<Scope, CachedInformer>>();
  private readonly synced = new Set<CachedInformer>();
  /** Per kind: the cache version the values were computed from, and the values by key. */
  private readonly memos = new Map<string, { version: number; values: Map<string, unknown> }>();
  private count = 0;
  private stopped = false;

  /**
   * namespaces: the namespaces of namespaced kinds to watch; undefined watches every namespace. With a
   * registry, etcd_topology_operator_cached_objects{kind} says how many objects each cache holds.
   */
  constructor(
    client: KubeClient,
    kinds: readonly WatchedKind[],
    namespaces: readonly string[] | undefined,
    onChange: (kind: string, obj: KubernetesObject) => void,
    log: Logger,
    registry?: Registry,
  ) {
    for (const k of kinds) {
      const scopes = new Map<Scope, CachedInformer>();
      for (const scope of k.namespaced && namespaces ? namespaces : [EVERY_NAMESPACE]) {
        scopes.set(scope, this.makeInformer(client, k, scope, onChange, log));
        this.count++;
      }
      this.informers.set(k.kind, scopes);
    }
    if (registry) this.registerGauge(registry);
  }

  /**
   * Starts every informer; resolves once each has listed once. A list that fails (the API server
   * starting, a CRD's storage still initializing: 429) is tried again every 2 s until it succeeds, as
   * controller-runtime waits for its caches to sync before any reconcile.
   */
  async start(): Promise<void> {
    await Promise.all(
      [...this.informers.values()].flatMap((scopes) => [...scopes.values()]).map(
        (i) =>
          new Promise<void>((resolve) => {
            i.on('connect', () => resolve());
            void i.start();
          }),
      ),
    );
  }

  /** True once every informer has listed at least once and none is broken. */
  get hasSynced(): boolean {
    return this.synced.size === this.count;
  }

  /** The cached object of a kind, or undefined (also when its namespace is not watched). */
  get<T extends KubernetesObject>(kind: string, name: string, namespace?: string): T | undefined {
    return this.scope(kind, namespace)?.get(name, namespace) as T | undefined;
  }

  /** The cached objects of a kind, optionally in one namespace. */
  list<T extends KubernetesObject>(kind: string, namespace?: string): readonly T[] {
    if (namespace !== undefined) return (this.scope(kind, namespace)?.list(namespace) ?? []) as readonly T[];
    const scopes = [...this.scopes(kind).values()];
    return (scopes.length === 1 ? scopes[0]!.list() : scopes.flatMap((i) => i.list())) as readonly T[];
  }

  /**
   * A value computed from the cache of a kind (every namespace watched), kept until that cache
   * changes: what every reconcile would otherwise compute again over 1,000 nodes.
   */
  derived<T>(kind: string, key: string, compute: () => T): T {
    const version = Math.max(0, ...[...this.scopes(kind).values()].map((i) => i.version));
    let memo = this.memos.get(kind);
    // Values of an older cache are dropped all at once, so that none outlives what it was for (a deleted topology's).
    if (memo?.version !== version) this.memos.set(kind, (memo = { version, values: new Map() }));
    if (memo.values.has(key)) return memo.values.get(key) as T;
    const value = compute();
    memo.values.set(key, value);
    return value;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.informers.values()].flatMap((scopes) => [...scopes.values()]).map((i) => i.stop()));
  }

  private makeInformer(
    client: KubeClient,
    k: WatchedKind,
    scope: Scope,
    onChange: (kind: string, obj: KubernetesObject) => void,
    log: Logger,
  ): CachedInformer {
    const ns = scope === EVERY_NAMESPACE ? undefined : scope;
    const group = k.apiVersion.includes('/') ? `/apis/${k.apiVersion}` : `/api/${k.apiVersion}`;
    const path = `${group}${ns ? `/namespaces/${ns}` : ''}/${k.plural}`;
    const informer = new ListWatchInformer(client, k, path);
    const notify = (obj: KubernetesObject): void => onChange(k.kind, obj);
    const { changes } = k;
    if (changes) {
      // The last digest passed on, per object: an update that keeps it is not news.
      const seen = new Map<string, string>();
      const notifyChanged = (obj: KubernetesObject): void => {
        const digest = changes(obj);
        if (seen.get(keyOf(obj)) === digest) return;
        seen.set(keyOf(obj), digest);
        notify(obj);
      };
      informer.on('add', notifyChanged);
      informer.on('update', notifyChanged);
      informer.on('delete', (obj) => {
        seen.delete(keyOf(obj));
        notify(obj);
      });
    } else {
      informer.on('add', notify);
      informer.on('update', notify);
      informer.on('delete', notify);
    }
    informer.on('connect', () => this.synced.add(informer));
    informer.on('error', (err: unknown) => {
      this.synced.delete(informer);
      if (this.stopped) return;
      log.warn({ err, kind: k.kind, namespace: ns ?? '(all)' }, 'Lost the watch; restarting it');
      setTimeout(() => void informer.start().catch(() => undefined), 2000).unref();
    });
    return informer;
  }

  private registerGauge(registry: Registry): void {
    const informers = this.informers;
    new Gauge({
      name: 'etcd_topology_operator_cached_objects',
      help: 'Objects in the informer caches, by kind.',
      labelNames: ['kind'],
      registers: [registry],
      collect() {
        for (const [kind, scopes] of informers) this.set({ kind }, [...scopes.values()].reduce((n, i) => n + i.list().length, 0));
      },
    });
  }

  private scopes(kind: string): Map<Scope, CachedInformer> {
    const scopes = this.informers.get(kind);
    if (!scopes) throw new Error(`no informer for kind ${kind}`);
    return scopes;
  }

  /** The informer holding a kind's objects of one namespace; undefined when that namespace is not watched. */
  private scope(kind: string, namespace: string | undefined): CachedInformer | undefined {
    const scopes = this.scopes(kind);
    return scopes.get(EVERY_NAMESPACE) ?? (namespace === undefined ? undefined : scopes.get(namespace));
  }
}
