import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { etcdTopologySchema, type EtcdTopology } from '../api/etcd-topology.ts';
import type { EtcdAdminClient } from '../etcd/admin-client.ts';
import { EtcdError } from '../etcd/errors.ts';
import type { MemberHealth } from '../quorum/members.ts';
import { createRootLogger } from '../telemetry/logger.ts';
import type { EventRecorder } from './events.ts';
import { TopologyMetrics } from './topology-metrics.ts';
import { DEFRAG_COOLDOWN_MS, defragBackoffMs, defragDeadlineMs, Upkeep } from './upkeep.ts';

const MiB = 2 ** 20;
const KEY = 'etcd/main';
const target = { apiVersion: 'etcdtopology.io/v1alpha1', kind: 'EtcdTopology', name: 'main', namespace: 'etcd' };
const log = createRootLogger({ name: 'test', level: 'silent' });
const members: MemberHealth[] = [0, 1, 2].map((i) => ({ id: String(1000 + i), name: `main-member-${i}`, isLearner: false, healthy: true, isLeader: i === 0, raftIndex: 10, revision: 77, dbSize: 90 * MiB }));
const urls = new Map(members.map((m, i) => [m.name, `http://10.0.0.${i}:2379`]));
const topology = (spec: Record<string, unknown> = {}): EtcdTopology =>
  etcdTopologySchema.parse({ apiVersion: 'etcdtopology.io/v1alpha1', kind: 'EtcdTopology', metadata: { name: 'main', namespace: 'etcd' }, spec: { members: { quotaBackendBytes: '100Mi' }, ...spec } });

/** A controllable admin client: defragmentations resolve or reject when the test says so. */
function harness({ after = 10 * MiB }: { after?: number } = {}) {
  const calls: string[] = [];
  let finish: { resolve: () => void; reject: (e: Error) => void } | undefined;
  const admin = {
    defragment: (url: string, o?: { timeoutMs?: number }) => {
      calls.push(`defragment ${url} ${o?.timeoutMs}`);
      return new Promise<void>((resolve, reject) => (finish = { resolve, reject }));
    },
    status: () => Promise.resolve({ dbSize: after }),
    compact: (url: string, rev: number) => {
      calls.push(`compact ${url} ${rev}`);
      return Promise.resolve();
    },
    disarmAlarm: (url: string, id: string, alarm: string) => {
      calls.push(`disarm ${url} ${id} ${alarm}`);
      return Promise.resolve();
    },
  };
  const events: string[] = [];
  const recorder = { record: (_t: unknown, type: string, reason: string, message: string) => events.push(`${type} ${reason}: ${message}`) };
  let now = Date.parse('2026-06-01T10:00:00Z');
  const requeued: string[] = [];
  const registry = new Registry();
  const metrics = new TopologyMetrics(registry);
  const upkeep = new Upkeep({
    admin: admin as unknown as EtcdAdminClient,
    events: recorder as unknown as EventRecorder,
    clock: { now: () => new Date(now) },
    log,
    metrics,
    requeue: (k) => requeued.push(k),
  });
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 10; i++) await Promise.resolve();
    await new Promise((r) => setImmediate(r));
  };
  return {
    upkeep, calls, events, requeued, registry, settle,
    advance: (ms: number) => (now += ms),
    finish: () => finish!,
  };
}
const defragStep = (member: string) => ({ action: 'Defragment' as const, member, id: '1001', dbSize: 90 * MiB, reason: 'DatabaseNearQuota' as const, message: `defragmenting ${member}` });

describe('Upkeep: defragmentation', () => {
  it('starts without waiting, reports it in flight, then records bytes freed, an Event, a metric and a requeue', async () => {
    const h = harness();
    expect(await h.upkeep.perform(defragStep('main-member-1'), KEY, members, urls, target, log)).toBe(true);
    expect(h.calls).toEqual([`defragment http://10.0.0.1:2379 ${defragDeadlineMs(90 * MiB)}`]);
    expect(h.upkeep.input(KEY, topology(), []).inFlight).toBe('main-member-1');
    expect(h.upkeep.defragmenting(KEY)).toBe('main-member-1');
    // A second one is refused while the first runs: never two at once.
    expect(await h.upkeep.perform(defragStep('main-member-2'), KEY, members, urls, target, log)).toBe(false);
    h.advance(4000);
    h.finish().resolve();
    await h.settle();
    expect(h.upkeep.defragmenting(KEY)).toBeUndefined();
    expect(h.upkeep.lastDefragmentations(KEY).get('main-member-1')).toEqual({ time: '2026-06-01T10:00:04Z', bytesFreed: 80 * MiB });
    expect(h.events.at(-1)).toBe('Normal Defragmented: defragmented main-member-1 in 4.0s: 90.0 MiB -> 10.0 MiB (DatabaseNearQuota)');
    expect(h.requeued).toEqual([KEY]);
    // It freed most of the file: the rule may take it again whenever it qualifies.
    expect(h.upkeep.input(KEY, topology(), []).coolingDown).toEqual([]);
    expect(await h.registry.getSingleMetricAsString('etcd_topology_defragmentations_total')).toContain('etcd_topology_defragmentations_total{namespace="etcd",name="main",member="main-member-1",result="success"} 1');
  });

  it('leaves a member alone for a while after a defragmentation that freed little (steady churn), not after one that paid off', async () => {
    const h = harness({ after: 80 * MiB });
    await h.upkeep.perform(defragStep('main-member-1'), KEY, members, urls, target, log);
    h.finish().resolve();
    await h.settle();
    expect(h.upkeep.lastDefragmentations(KEY).get('main-member-1')?.bytesFreed).toBe(10 * MiB);
    expect(h.upkeep.input(KEY, topology(), []).coolingDown).toEqual(['main-member-1']);
    h.advance(DEFRAG_COOLDOWN_MS - 1);
    expect(h.upkeep.input(KEY, topology(), []).coolingDown).toEqual(['main-member-1']);
    h.advance(1);
    expect(h.upkeep.input(KEY, topology(), []).coolingDown).toEqual([]);
  });

  it('backs a failed member off with a Warning, doubling on each failure, and never in a tight loop', async () => {
    const h = harness();
    for (const [failures, wait] of [[1, 60_000], [2, 120_000]] as const) {
      await h.upkeep.perform(defragStep('main-member-1'), KEY, members, urls, target, log);
      h.finish().reject(new EtcdError('ETOP_ETCD_UNAVAILABLE', { endpoint: 'x', operation: 'defragment', detail: 'no answer within 39000ms' }));
      await h.settle();
      expect(h.events.at(-1)).toMatch(new RegExp(`^Warning DefragmentationFailed: defragmentation of main-member-1 failed .*no answer within 39000ms; leaving it alone for ${wait / 60_000} min$`));
      expect(h.upkeep.input(KEY, topology(), []).backingOff, `after failure ${failures}`).toEqual(['main-member-1']);
      h.advance(wait - 1000);
      expect(h.upkeep.input(KEY, topology(), []).backingOff).toEqual(['main-member-1']);
      h.advance(1000);
      expect(h.upkeep.input(KEY, topology(), []).backingOff).toEqual([]);
    }
    expect(defragBackoffMs(10)).toBe(60 * 60_000);
  });

  it('scales the deadline with the database: 30 s plus 1 s per 10 MiB, at most 30 min', () => {
    expect(defragDeadlineMs(0)).toBe(30_000);
    expect(defragDeadlineMs(16 * MiB)).toBe(32_000);
    expect(defragDeadlineMs(8 * 2 ** 30)).toBe(30_000 + 820_000);
    expect(defragDeadlineMs(64 * 2 ** 30)).toBe(30 * 60_000);
  });

  it('turns the spec into the rule: quota and reclaim in bytes, the window evaluated now (UTC)', () => {
    const h = harness();
    const rule = (spec: Record<string, unknown>) => h.upkeep.input(KEY, topology({ maintenance: { defragmentation: spec } }), []).rule;
    expect(rule({})).toEqual({ enabled: true, quotaBackendBytes: 100 * MiB, quotaUsageAbove: 0.8, minReclaimBytes: 64 * MiB, inWindow: true });
    expect(rule({ window: '* 10 * * *' }).inWindow).toBe(true);
    expect(rule({ window: '* 11-23 * * *' }).inWindow).toBe(false);
  });
});

describe('Upkeep: NOSPACE recovery', () => {
  const nospace = [{ memberId: '1001', alarm: 'NOSPACE' as const }];

  it('compacts once, counts members defragmented since the alarm, disarms, and forgets the recovery', async () => {
    const h = harness();
    // A defragmentation before the alarm does not count for the recovery.
    await h.upkeep.perform(defragStep('main-member-2'), KEY, members, urls, target, log);
    h.finish().resolve();
    await h.settle();
    h.advance(1000);
    expect(h.upkeep.input(KEY, topology(), nospace).recovery).toEqual({ compacted: false, compactionSettled: false, defragmented: [] });
    await h.upkeep.perform({ action: 'Compact', revision: 77, reason: 'NoSpaceRecovery', message: '' }, KEY, members, urls, target, log);
    expect(h.calls.at(-1)).toBe('compact http://10.0.0.0:2379 77');
    h.advance(1000);
    await h.upkeep.perform(defragStep('main-member-1'), KEY, members, urls, target, log);
    h.finish().resolve();
    await h.settle();
    expect(h.upkeep.input(KEY, topology(), nospace).recovery).toEqual({ compacted: true, compactionSettled: false, defragmented: ['main-member-1'] });
    h.advance(29_000);
    expect(h.upkeep.input(KEY, topology(), nospace).recovery?.compactionSettled).toBe(true);
    await h.upkeep.perform({ action: 'DisarmAlarms', memberIds: ['1001'], reason: 'NoSpaceRecovery', message: '' }, KEY, members, urls, target, log);
    expect(h.calls.at(-1)).toBe('disarm http://10.0.0.0:2379 1001 NOSPACE');
    expect(h.events.at(-1)).toMatch(/^Normal NoSpaceRecovered:/);
    expect(h.upkeep.input(KEY, topology(), []).recovery).toBeUndefined();
  });

  it('an alarm back within minutes of a recovery waits 5, then 10 minutes before the next attempt', async () => {
    const h = harness();
    const disarm = () => h.upkeep.perform({ action: 'DisarmAlarms', memberIds: ['1001'], reason: 'NoSpaceRecovery', message: '' }, KEY, members, urls, target, log);
    h.upkeep.input(KEY, topology(), nospace);
    await disarm();
    h.advance(60_000);
    expect(h.upkeep.input(KEY, topology(), nospace).recovery?.retryAfter).toBe('2026-06-01T10:06:00.000Z');
    h.advance(5 * 60_000);
    expect(h.upkeep.input(KEY, topology(), nospace).recovery?.retryAfter).toBeUndefined();
    await disarm();
    h.advance(60_000);
    h.upkeep.input(KEY, topology(), []);
    expect(h.upkeep.input(KEY, topology(), nospace).recovery?.retryAfter).toBe('2026-06-01T10:17:00.000Z');
  });

  it('treats "already compacted" as done', async () => {
    const upkeep = new Upkeep({
      admin: { compact: () => Promise.reject(new EtcdError('ETOP_ETCD_REQUEST', { endpoint: 'x', operation: 'compact', grpcCode: 11, detail: 'mvcc: required revision has been compacted' })) } as unknown as EtcdAdminClient,
      events: { record: () => undefined } as unknown as EventRecorder,
      clock: { now: () => new Date() },
      log,
      requeue: () => undefined,
    });
    upkeep.input(KEY, topology(), nospace);
    expect(await upkeep.perform({ action: 'Compact', revision: 5, reason: 'NoSpaceRecovery', message: '' }, KEY, members, urls, target, log)).toBe(true);
    expect(upkeep.input(KEY, topology(), nospace).recovery?.compacted).toBe(true);
  });
});
