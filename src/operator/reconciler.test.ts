import type { KubernetesObject } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { EtcdAdminClient } from '../etcd/admin-client.ts';
import type { StatusResponse } from '../etcd/responses.ts';
import { createRootLogger } from '../telemetry/logger.ts';
import { ownedObjects, unwantedOwned } from './components/registry.ts';
import { selectorLabels } from './components/meta.ts';
import { context, topology } from './components/testing.ts';
import type { EventRecorder } from './events.ts';
import type { Informers } from './informers.ts';
import type { KubeWriter } from './kube.ts';
import { Reconciler } from './reconciler.ts';

// The reconciler's order of steps with the API server and etcd faked: what it writes, and when, against
// what etcd has answered. The steps themselves are tested on their own and, with a real API server and
// real members, in test/operator.

const KEY = 'etcd/main';
const MEMBER = { ID: '11', name: 'main-member-0', peerURLs: [], clientURLs: [], isLearner: false };
const header = { cluster_id: '7', member_id: MEMBER.ID, revision: 1, raft_term: 2 };
const STATUS: StatusResponse = { header, version: '3.6.0', dbSize: 1, dbSizeInUse: 1, dbSizeQuota: 0, leader: MEMBER.ID, raftIndex: 5, raftTerm: 2, raftAppliedIndex: 5, errors: [], isLearner: false, storageVersion: '' };

/** The caches as a map the fake writer's applies land in, as the informers' watches would bring them. */
class Objects {
  private readonly byKey = new Map<string, KubernetesObject>();
  put(o: KubernetesObject): void {
    this.byKey.set(`${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata!.name!}`, o);
  }
  readonly informers = {
    get: (kind: string, name: string, namespace?: string) => this.byKey.get(`${kind}/${namespace ?? ''}/${name}`),
    list: (kind: string, namespace?: string) => [...this.byKey.values()].filter((o) => o.kind === kind && (namespace === undefined || o.metadata?.namespace === namespace)),
    derived: <T>(_kind: string, _key: string, compute: () => T) => compute(),
  } as unknown as Informers;
}

function fixture(cpu = '100m') {
  const objects = new Objects();
  const spec = (milli: string) => ({ members: { count: 1, resources: { requests: { cpu: milli } } }, proxy: { enabled: false }, tls: { enabled: false } });
  objects.put(topology(spec(cpu)));
  const applied: KubernetesObject[] = [];
  const statusWrites: unknown[] = [];
  const writer = {
    apply: (o: KubernetesObject) => {
      applied.push(o);
      objects.put({ ...o, metadata: { ...o.metadata, namespace: o.metadata?.namespace ?? 'etcd' } });
      return Promise.resolve(o);
    },
    delete: () => Promise.resolve(),
    deletePod: () => Promise.resolve(),
    patchTopologyStatus: (_ns: string, _name: string, patch: unknown) => Promise.resolve(void statusWrites.push(patch)),
    patchPodConditions: () => Promise.resolve(),
  } as unknown as KubeWriter;
  // etcd answers status when the test says so: `answer` releases the calls made so far.
  let pending: (() => void)[] = [];
  let answering = true;
  const statusCalls: string[] = [];
  const admin = {
    setEndpointTls: () => undefined,
    status: (url: string) => {
      statusCalls.push(url);
      return answering ? Promise.resolve(STATUS) : new Promise<StatusResponse>((resolve) => pending.push(() => resolve(STATUS)));
    },
    memberList: () => Promise.resolve({ header, members: [MEMBER] }),
    alarms: () => Promise.resolve({ header, alarms: [] }),
    onFirstAvailable: <T>(urls: readonly string[], call: (url: string) => Promise<T>) => call(urls[0]!),
  } as unknown as EtcdAdminClient;
  const reconciler = new Reconciler({
    informers: objects.informers,
    writer,
    admin,
    events: { record: () => undefined } as unknown as EventRecorder,
    clock: { now: () => new Date('2026-12-04T00:00:00Z') },
    log: createRootLogger({ name: 'test', level: 'silent' }),
    render: { owned: (t, input) => ownedObjects(t, { ...input, ...context }), unwanted: (t, input) => unwantedOwned(t, { ...input, ...context }) },
  });
  const memberPod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: MEMBER.name, namespace: 'etcd', labels: selectorLabels(topology(), 'member') }, status: { phase: 'Running', podIP: '127.0.0.1' } };
  return {
    objects,
    reconciler,
    applied,
    statusCalls,
    statusWrites,
    changeCpu: (milli: string) => objects.put({ ...topology(spec(milli)), metadata: { ...topology().metadata, generation: 2 } }),
    memberStarted: () => objects.put(memberPod),
    /** From now on status is answered only by answer(). */
    hold: () => {
      answering = false;
    },
    answer: () => {
      answering = true;
      for (const release of pending) release();
      pending = [];
    },
  };
}

type WithContainers = KubernetesObject & { spec?: { template?: { spec?: { containers?: { resources?: { requests?: Record<string, string> } }[] } } } };
const cpuOf = (o: WithContainers | undefined): string | undefined => o?.spec?.template?.spec?.containers?.[0]?.resources?.requests?.['cpu'];
const statefulSets = (applied: readonly KubernetesObject[]): KubernetesObject[] => applied.filter((o) => o.kind === 'StatefulSet');

/** Lets the event loop run until check holds (the reconcile awaits only the fakes' promises). */
async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`never happened: ${what}`);
}

describe('Reconciler', () => {
  it('applies a spec change to the member StatefulSet while etcd has not answered yet, from the member set it reported last', async () => {
    const f = fixture();
    await f.reconciler.reconcile(KEY);
    f.memberStarted();
    await f.reconciler.reconcile(KEY);
    expect(cpuOf(statefulSets(f.applied).at(-1))).toBe('100m');

    f.hold();
    f.changeCpu('250m');
    const round = f.reconciler.reconcile(KEY, 'spec');
    await until(() => cpuOf(statefulSets(f.applied).at(-1)) === '250m', 'the StatefulSet applied with the new CPU request');
    // etcd was asked before the apply and is still waited for: the round has not ended.
    const settled = await Promise.race([round.then(() => true), new Promise((r) => setImmediate(() => r(false)))]);
    expect(settled).toBe(false);
    expect(f.statusCalls.at(-1)).toBe('http://127.0.0.1:2379');
    f.answer();
    await round;
  });

  it('stops a round that waits for etcd when a newer spec arrives, without writing status; the next round applies it', async () => {
    const f = fixture();
    await f.reconciler.reconcile(KEY);
    f.memberStarted();
    await f.reconciler.reconcile(KEY);
    f.hold();
    const [statusWrites, asked] = [f.statusWrites.length, f.statusCalls.length];
    const superseded = new AbortController();
    const round = f.reconciler.reconcile(KEY, 'routine', superseded.signal);
    await until(() => f.statusCalls.length === asked + 1, 'the round asking etcd');
    f.changeCpu('400m');
    superseded.abort();
    expect(await round).toEqual({ superseded: true });
    expect(f.statusWrites.length).toBe(statusWrites);
    // etcd still has not answered the stopped round; the next one applies the new spec all the same.
    const next = f.reconciler.reconcile(KEY, 'spec');
    await until(() => cpuOf(statefulSets(f.applied).at(-1)) === '400m', 'the StatefulSet applied with the newer spec');
    f.answer();
    await next;
    expect(f.statusWrites.length).toBe(statusWrites + 1);
  });

  it('after a restart, holds an existing StatefulSet until etcd has reported its members, then looks again soon and applies it', async () => {
    const before = fixture();
    await before.reconciler.reconcile(KEY);
    before.memberStarted();
    await before.reconciler.reconcile(KEY);
    // A new operator process over the same objects, with another spec than the live StatefulSet's.
    before.changeCpu('300m');
    const after = fixture('300m');
    for (const o of [...before.applied, ...before.objects.informers.list('Pod')]) after.objects.put(o);
    after.objects.put(before.objects.informers.get('EtcdTopology', 'main', 'etcd')!);

    const first = await after.reconciler.reconcile(KEY);
    expect(statefulSets(after.applied)).toEqual([]);
    expect(first.requeueAfterMs).toBe(1_000);
    const second = await after.reconciler.reconcile(KEY);
    expect(cpuOf(statefulSets(after.applied).at(-1))).toBe('300m');
    expect(second.requeueAfterMs).toBeGreaterThan(1_000);
  });
});
