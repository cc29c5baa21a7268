import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createRootLogger } from '../telemetry/logger.ts';
import { KubeClient } from './kube-client.ts';
import { decide, defaultLeaseTimings, invalidTimings, LeaderElector, observe, renewAttemptTimeout, renewDeadlinePassed, timeoutMessage, type V1Lease } from './leader-election.ts';

const lease = (holder: string | undefined, renewSecond = 5, transitions = 0): V1Lease => ({
  spec: { holderIdentity: holder, leaseDurationSeconds: 15, renewTime: new Date(`2026-01-01T00:00:${String(renewSecond).padStart(2, '0')}Z`), leaseTransitions: transitions },
});

describe('observe', () => {
  const first = observe(undefined, lease('b', 5), 1000);
  it.each([
    ['the first read starts the observation', undefined, lease('b', 5), 1000, 1000],
    ['the same record keeps the time it was first seen', first, lease('b', 5), 9000, 1000],
    ['a renewal (new renewTime) restarts it', first, lease('b', 6), 9000, 9000],
    ['a new holder restarts it', first, lease('c', 5), 9000, 9000],
    ['a transition count change restarts it', first, lease('b', 5, 1), 9000, 9000],
    ['a released lease restarts it', first, lease(undefined, 5), 9000, 9000],
  ])('%s', (_what, previous, read, nowMs, expectedAt) => {
    expect(observe(previous, read, nowMs).atMs).toBe(expectedAt);
  });
});

describe('decide', () => {
  const seenAt = (atMs: number, l: V1Lease | undefined) => observe(undefined, l, atMs);
  it.each([
    ['no lease yet', undefined, 'a', 0, 1000, 'take'],
    ['a released lease', lease(undefined), 'a', 0, 1000, 'take'],
    ['our own lease', lease('a'), 'a', 0, 1000, 'renew'],
    ["another's lease just seen", lease('b'), 'a', 1000, 1000, 'wait'],
    ["another's lease seen unchanged for less than the lease duration", lease('b'), 'a', 1000, 15_999, 'wait'],
    ["another's lease seen unchanged for the lease duration", lease('b'), 'a', 1000, 16_000, 'take'],
    // The renewTime the holder wrote says nothing here: its clock may be hours off.
    ["another's lease with a renewTime far in the past, just seen", { spec: { holderIdentity: 'b', renewTime: new Date('2000-01-01T00:00:00Z') } }, 'a', 1000, 2000, 'wait'],
  ] as const)('%s → %s', (_what, read, identity, seenMs, nowMs, expected) => {
    expect(decide(read, identity, seenAt(seenMs, read), nowMs, 15_000)).toBe(expected);
  });

  it('a standby that keeps seeing renewals never takes the lease', () => {
    let observed = observe(undefined, lease('b', 0), 0);
    for (let s = 1; s < 60; s++) {
      observed = observe(observed, lease('b', s), s * 2000);
      expect(decide(lease('b', s), 'a', observed, s * 2000, 15_000)).toBe('wait');
    }
  });
});

describe('renewDeadlinePassed', () => {
  it.each([
    ['just renewed', 1000, 1000, false],
    ['one failed retry later', 1000, 3000, false],
    ['the last instant before the deadline', 1000, 10_999, false],
    ['at the deadline', 1000, 11_000, true],
    ['past the deadline', 1000, 20_000, true],
  ])('%s → %s', (_what, lastRenewed, now, expected) => {
    expect(renewDeadlinePassed(lastRenewed, now, 10_000)).toBe(expected);
  });
});

describe('invalidTimings', () => {
  it.each([
    ["client-go's defaults", defaultLeaseTimings, undefined],
    ['short but ordered', { leaseDurationMs: 4000, renewDeadlineMs: 3000, retryPeriodMs: 500 }, undefined],
    ['renew deadline equal to the lease duration', { leaseDurationMs: 15_000, renewDeadlineMs: 15_000, retryPeriodMs: 2000 }, 'leader-elect-renew-deadline'],
    ['renew deadline longer than the lease duration', { leaseDurationMs: 15_000, renewDeadlineMs: 20_000, retryPeriodMs: 2000 }, 'leader-elect-renew-deadline'],
    ['retry period equal to the renew deadline', { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 10_000 }, 'leader-elect-retry-period'],
    ['retry period of zero', { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 0 }, 'leader-elect-retry-period'],
    ['lease duration under a second', { leaseDurationMs: 900, renewDeadlineMs: 500, retryPeriodMs: 100 }, 'leader-elect-lease-duration'],
  ])('%s → %s', (_what, timings, flag) => {
    expect(invalidTimings(timings)?.flag).toBe(flag);
  });
});

describe('renewAttemptTimeout', () => {
  it.each([
    ['the whole deadline left: half the renew deadline', 10_000, 10_000, 5000],
    ['less than half left: what is left', 3000, 10_000, 3000],
    ['a short renew deadline: at least 1 s', 1500, 1500, 1000],
    ['the deadline passed: 1 ms', -50, 10_000, 1],
  ])('%s', (_what, left, deadline, expected) => {
    expect(renewAttemptTimeout(left, deadline)).toBe(expected);
  });
});

describe('timeoutMessage', () => {
  it('says how long the attempt really waited, and the limit', () => {
    expect(timeoutMessage(2001.4, 2000)).toBe("no answer from the API server after 2001ms (the attempt's limit was 2000ms)");
  });
  it('says so when the timer fired late (a stalled event loop), instead of claiming the limit passed', () => {
    expect(timeoutMessage(4312, 1)).toBe("no answer from the API server after 4312ms (the attempt's limit was 1ms; the timer fired 4311ms late, so this process was stalled)");
  });
});

/**
 * A Lease endpoint on 127.0.0.1 for one LeaderElector: the first read finds no lease, the create
 * succeeds, and then each request is answered (a read with the lease as created, a replace with
 * it) or left unanswered as answerAfterCreate(n) says for the n-th request after the create.
 */
async function leaseServer(answerAfterCreate: (n: number) => boolean) {
  const requests: { method: string; closed: boolean }[] = [];
  let created = -1;
  const lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'l', namespace: 'ns', resourceVersion: '1' }, spec: { holderIdentity: 'me', leaseDurationSeconds: 3 } };
  const json = (res: http.ServerResponse, code: number, body: object) => res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  const server = http.createServer((req, res) => {
    const r = { method: req.method!, closed: false };
    requests.push(r);
    res.on('close', () => (r.closed = true));
    req.resume();
    if (created < 0) {
      if (req.method === 'GET') return json(res, 404, { kind: 'Status', apiVersion: 'v1', code: 404, reason: 'NotFound' });
      created = requests.length;
      return json(res, 201, lease);
    }
    if (answerAfterCreate(requests.length - 1 - created)) json(res, 200, lease);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = new KubeClient({ server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, tls: { rejectUnauthorized: false } });
  return {
    client,
    /** The requests after the create. */
    afterCreate: () => requests.slice(created),
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await client.close();
    },
  };
}

describe('LeaderElector against an API server that stops answering', () => {
  const logger = createRootLogger({ name: 'test', level: 'silent' });

  it('aborts a renewal it gave up on, so that nothing it wrote lands after it stopped leading', async () => {
    const api = await leaseServer(() => false);
    const elector = new LeaderElector({ client: api.client, namespace: 'ns', name: 'l', identity: 'me', logger, timings: { leaseDurationMs: 3000, renewDeadlineMs: 1500, retryPeriodMs: 500 } });
    const events: string[] = [];
    try {
      await new Promise<void>((resolve) => elector.start(() => events.push('started'), () => (events.push('stopped'), resolve())));
      expect(events).toEqual(['started', 'stopped']);
      // Every renewal read was given up on by the deadline: its request was aborted, not left to land later.
      await new Promise((r) => setTimeout(r, 100));
      const renewals = api.afterCreate();
      expect(renewals.length).toBeGreaterThan(0);
      expect(renewals.map((r) => `${r.method} ${r.closed ? 'aborted' : 'still open'}`)).toEqual(renewals.map(() => 'GET aborted'));
    } finally {
      await elector.stop();
      await api.close();
    }
  });

  it('gives a renewal request that is never answered half the renew deadline, and renews with the next one', async () => {
    // The first renewal read hangs; every later request is answered.
    const api = await leaseServer((n) => n > 0);
    const elector = new LeaderElector({ client: api.client, namespace: 'ns', name: 'l', identity: 'me', logger, timings: { leaseDurationMs: 4000, renewDeadlineMs: 3000, retryPeriodMs: 200 } });
    const events: string[] = [];
    try {
      elector.start(() => events.push('started'), () => events.push('stopped'));
      // Past the renew deadline of the first renewal: it was aborted after 1.5 s and the next succeeded.
      await new Promise((r) => setTimeout(r, 3800));
      expect(events).toEqual(['started']);
      expect(elector.isLeader).toBe(true);
      const after = api.afterCreate();
      expect(after[0]).toEqual({ method: 'GET', closed: true });
      expect(after.slice(1, 3).map((r) => r.method)).toEqual(['GET', 'PUT']);
    } finally {
      await elector.stop();
      await api.close();
    }
  });
});
