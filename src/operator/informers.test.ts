import type { KubernetesObject } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { KubeHttpError, type KubeClient, type WatchEvent } from './kube-client.ts';
import { createRootLogger } from '../telemetry/logger.ts';
import { Informers, ListWatchInformer, nodeChanges, trim, type WatchedKind } from './informers.ts';

const node = (over: { labels?: Record<string, string>; unschedulable?: boolean; ready?: string; heartbeat?: string; images?: number } = {}): KubernetesObject =>
  ({
    metadata: { name: 'n', resourceVersion: String(Math.random()), labels: over.labels ?? { 'etcdtopology.io/role': 'central' } },
    spec: { unschedulable: over.unschedulable },
    status: {
      conditions: [{ type: 'Ready', status: over.ready ?? 'True', lastHeartbeatTime: over.heartbeat ?? '2026-01-01T00:00:00Z' }],
      images: Array.from({ length: over.images ?? 0 }, (_, i) => ({ names: [`img-${i}`] })),
    },
  }) as KubernetesObject;

describe('nodeChanges', () => {
  it('ignores heartbeats, images and resource versions', () => {
    expect(nodeChanges(node({ heartbeat: '2026-01-01T00:00:10Z', images: 3 }))).toBe(nodeChanges(node()));
  });

  it.each([
    ['a label', { labels: { other: 'x' } }],
    ['a cordon', { unschedulable: true }],
    ['readiness', { ready: 'Unknown' }],
  ])('sees %s change', (_, over) => {
    expect(nodeChanges(node(over))).not.toBe(nodeChanges(node()));
  });
});

describe('trim', () => {
  it("drops managedFields, and a Node's image list", () => {
    const n = trim({ ...node({ images: 2 }), kind: 'Node', metadata: { name: 'n', managedFields: [{ manager: 'kubelet' }] } });
    expect(n.metadata?.managedFields).toBeUndefined();
    expect((n as { status?: { images?: unknown } }).status?.images).toBeUndefined();
  });

  it('keeps of a Node only what the reconciler and nodeChanges read', () => {
    const full = {
      ...node({ images: 2, unschedulable: true }),
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'n', uid: 'u', resourceVersion: '7', labels: { a: 'b' }, annotations: { 'kwok.x-k8s.io/node': 'fake' } },
      spec: { unschedulable: true, taints: [{ key: 'k', effect: 'NoSchedule' }], podCIDR: '10.0.0.0/24' },
    } as KubernetesObject;
    const before = nodeChanges(full);
    const n = trim(structuredClone(full));
    expect(n).toEqual({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'n', uid: 'u', resourceVersion: '7', labels: { a: 'b' } },
      spec: { unschedulable: true, taints: [{ key: 'k', effect: 'NoSchedule' }] },
      status: { conditions: [{ type: 'Ready', status: 'True' }] },
    });
    expect(nodeChanges(n)).toBe(before);
  });
});

const pod = (name: string, rv: string, extra: Record<string, unknown> = {}): KubernetesObject => ({ metadata: { name, namespace: 'ns', resourceVersion: rv, ...extra } });
type Step = { list: KubernetesObject[]; rv: string } | { watch: WatchEvent<KubernetesObject>[]; then?: 'end' | 'fail'; after?: Promise<void> };

/**
 * A scripted API server behind the informer: each list answers the next list step, each watch plays
 * the next watch step's events and then ends (the server's timeout) or fails; the last one stays open.
 */
function scriptedClient(steps: Step[]) {
  const asked: string[] = [];
  const next = <T extends Step>(want: 'list' | 'watch'): T => {
    const i = steps.findIndex((s) => want in s);
    if (i === -1) throw new Error(`no ${want} step left`);
    return steps.splice(i, 1)[0] as T;
  };
  const client = {
    call: (method: string, path: string, options: { query?: Record<string, string | undefined> }) => {
      asked.push(`${method} ${path} labelSelector=${options.query?.['labelSelector'] ?? ''}`);
      const s = next<{ list: KubernetesObject[]; rv: string }>('list');
      return Promise.resolve({ metadata: { resourceVersion: s.rv }, items: s.list.map((o) => structuredClone(o)) });
    },
    watch: async (path: string, query: Record<string, string | undefined>, onEvent: (e: WatchEvent<KubernetesObject>) => void, signal: AbortSignal) => {
      asked.push(`WATCH ${path} from ${query['resourceVersion']}`);
      if (!steps.some((s) => 'watch' in s)) return new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
      const s = next<{ watch: WatchEvent<KubernetesObject>[]; then?: 'end' | 'fail'; after?: Promise<void> }>('watch');
      await s.after;
      for (const e of s.watch) onEvent(structuredClone(e));
      if (s.then === 'fail') throw new KubeHttpError('GET', path, 500, 'boom');
    },
  };
  return { client: client as unknown as KubeClient, asked };
}

const podKind: WatchedKind = { apiVersion: 'v1', kind: 'Pod', plural: 'pods', namespaced: true, labelSelector: 'app=x' };
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 10));

function record(informer: ListWatchInformer): string[] {
  const seen: string[] = [];
  for (const e of ['add', 'update', 'delete'] as const) informer.on(e, (o) => seen.push(`${e} ${o.metadata?.name ?? ''}@${o.metadata?.resourceVersion ?? ''}`));
  informer.on('connect', () => seen.push('connect'));
  informer.on('error', (err) => seen.push(`error ${(err as Error).message}`));
  return seen;
}

describe('ListWatchInformer', () => {
  it('lists, then watches from the list version and resumes from the last event or bookmark when the server ends a watch', async () => {
    const { client, asked } = scriptedClient([
      { list: [pod('a', '1', { managedFields: [{}] })], rv: '5' },
      { watch: [{ type: 'ADDED', object: pod('b', '6') }, { type: 'MODIFIED', object: pod('a', '7') }, { type: 'BOOKMARK', object: pod('', '9') }], then: 'end' },
      { watch: [{ type: 'DELETED', object: pod('b', '10') }], then: 'end' },
    ]);
    const informer = new ListWatchInformer(client, podKind, '/api/v1/pods');
    const seen = record(informer);
    await informer.start();
    await settle();
    expect(seen).toEqual(['add a@1', 'connect', 'add b@6', 'update a@7', 'delete b@10']);
    expect(asked).toEqual(['GET /api/v1/pods labelSelector=app=x', 'WATCH /api/v1/pods from 5', 'WATCH /api/v1/pods from 9', 'WATCH /api/v1/pods from 10']);
    expect(informer.list().map((o) => [o.metadata?.name, o.kind, o.apiVersion, o.metadata?.managedFields])).toEqual([['a', 'Pod', 'v1', undefined]]);
    expect(informer.get('a', 'ns')?.metadata?.resourceVersion).toBe('7');
    await informer.stop();
  });

  it('answers list() with one frozen array until the cache changes, and stamps each change with a newer version', async () => {
    const { client } = scriptedClient([
      { list: [pod('a', '1'), { metadata: { name: 'z', namespace: 'other', resourceVersion: '2' } }], rv: '5' },
      { watch: [{ type: 'ADDED', object: pod('b', '6') }], then: 'end' },
    ]);
    const informer = new ListWatchInformer(client, podKind, '/api/v1/pods');
    let listed: readonly KubernetesObject[] = [];
    let version = 0;
    // Read right after the list, before the watch's event (the connect handler runs then).
    informer.on('connect', () => {
      listed = informer.list('ns');
      version = informer.version;
    });
    await informer.start();
    await settle();
    expect(listed.map((o) => o.metadata?.name)).toEqual(['a']);
    expect(Object.isFrozen(listed)).toBe(true);
    const now = informer.list('ns');
    expect(now.map((o) => o.metadata?.name)).toEqual(['a', 'b']);
    expect(informer.list('ns')).toBe(now);
    expect(informer.list().map((o) => o.metadata?.name)).toEqual(['a', 'z', 'b']);
    expect(informer.version).toBeGreaterThan(version);
    // A new informer's cache is newer than any change before it (it may replace one that failed).
    expect(new ListWatchInformer(client, podKind, '/api/v1/pods').version).toBeGreaterThan(informer.version);
    await informer.stop();
  });

  it('lists again when the version is gone (410), passing on only what changed meanwhile', async () => {
    const { client, asked } = scriptedClient([
      { list: [pod('a', '1'), pod('b', '2')], rv: '5' },
      { watch: [{ type: 'ERROR', object: { metadata: {}, code: 410 } as KubernetesObject }], then: 'end' },
      { list: [pod('a', '1'), pod('c', '8')], rv: '20' },
    ]);
    const informer = new ListWatchInformer(client, podKind, '/api/v1/pods');
    const seen = record(informer);
    await informer.start();
    await settle();
    expect(seen).toEqual(['add a@1', 'add b@2', 'connect', 'add c@8', 'delete b@2']);
    expect(asked.at(-1)).toBe('WATCH /api/v1/pods from 20');
    await informer.stop();
  });

  it('emits error (and never rejects) when a list fails', async () => {
    const client = { call: () => Promise.reject(new KubeHttpError('GET', '/api/v1/pods', 429, 'storage is (re)initializing')) } as unknown as KubeClient;
    const informer = new ListWatchInformer(client, podKind, '/api/v1/pods');
    const seen = record(informer);
    await informer.start();
    expect(seen).toEqual(['error list Pod objects at /api/v1/pods failed: the API server answered 429: storage is (re)initializing']);
  });

  it('emits error and stops watching when a watch fails; start() lists again', async () => {
    const { client, asked } = scriptedClient([
      { list: [pod('a', '1')], rv: '5' },
      { watch: [], then: 'fail' },
      { list: [pod('a', '3')], rv: '30' },
    ]);
    const informer = new ListWatchInformer(client, podKind, '/api/v1/pods');
    const seen = record(informer);
    await informer.start();
    await settle();
    expect(seen).toEqual(['add a@1', 'connect', 'error GET /api/v1/pods: HTTP 500']);
    await informer.start();
    await settle();
    expect(seen.slice(3)).toEqual(['update a@3', 'connect']);
    expect(asked.at(-1)).toBe('WATCH /api/v1/pods from 30');
    await informer.stop();
  });
});

describe('Informers.derived', () => {
  it('computes a value from a cache once, and again only after that cache changed', async () => {
    let release = (): void => undefined;
    const { client } = scriptedClient([
      { list: [pod('a', '1')], rv: '5' },
      { watch: [{ type: 'ADDED', object: pod('b', '6') }], then: 'end', after: new Promise((r) => (release = r)) },
    ]);
    const informers = new Informers(client, [podKind], undefined, () => undefined, createRootLogger({ name: 'test', level: 'silent' }));
    let computed = 0;
    const count = (): number => informers.derived('Pod', 'count', () => (computed++, informers.list('Pod').length));
    await informers.start();
    expect(count()).toBe(1);
    expect(count()).toBe(1);
    expect(computed).toBe(1);
    const other = informers.derived('Pod', 'other', () => ['kept until the cache changes']);
    expect(informers.derived('Pod', 'other', () => ['again'])).toBe(other);
    release();
    await settle();
    expect(count()).toBe(2);
    expect(computed).toBe(2);
    // Every value of the older cache went with it.
    expect(informers.derived('Pod', 'other', () => ['again'])).toEqual(['again']);
    await informers.stop();
  });
});
