import { describe, expect, it } from 'vitest';
import { waitFor } from '../harness/ports.ts';
import { grpc, type EtcdClients } from './grpc-client.ts';
import { useProxyFixture } from './fixture.ts';

type Watch = grpc.ClientDuplexStream<object, { created: boolean; events: unknown[] }>;

/** A serializable read that fails after 20 s rather than hanging the test. */
const serializableGet = (c: EtcdClients): Promise<unknown> =>
  Promise.race([
    c.unary(c.kv, 'Range', { key: Buffer.from('/k'), serializable: true }),
    new Promise((_, reject) => setTimeout(() => reject(new Error('read still unanswered after 20 s')), 20_000).unref()),
  ]);

/** One watch per member (new upstream watches rotate over the members; one key each, as identical watches share one), with what each has seen. */
async function openWatches(c: EtcdClients, n: number): Promise<{ w: Watch; state: { created: boolean; events: number; error: grpc.ServiceError | undefined; endedAt: number } }[]> {
  const watches = Array.from({ length: n }, (_, i) => {
    const w = (c.watch as unknown as { Watch(): Watch }).Watch();
    const state = { created: false, events: 0, error: undefined as grpc.ServiceError | undefined, endedAt: 0 };
    w.on('data', (r: { created: boolean; events: unknown[] }) => {
      state.created ||= r.created;
      state.events += r.events.length;
    });
    w.on('error', (e: grpc.ServiceError) => {
      state.error = e;
      state.endedAt = Date.now();
    });
    w.write({ create_request: { key: Buffer.from(`/k/${i}`) } });
    return { w, state };
  });
  await waitFor(`${n} watches created`, () => watches.every((x) => x.state.created), { timeoutMs: 5000 });
  return watches;
}

describe('keepalive to members (PING every 10 s of silence, 5 s to answer)', () => {
  // No refresh during the test: the member list's health probes must not be what finds the frozen member.
  const f = useProxyFixture({ size: 3, proxyArgs: ['--refresh-interval=5m', '--failure-wait=5s'] });

  it('keeps quiet, healthy watches open across several PING intervals', async () => {
    const watches = await openWatches(f.c, 3);
    const pingsBefore = (f.proxy.output().match(/Sent a keepalive PING/g) ?? []).length;
    // Longer than interval + timeout, twice: every member connection is pinged at least once.
    await new Promise((r) => setTimeout(r, 22_000));
    expect(watches.map((x) => x.state.error)).toEqual([undefined, undefined, undefined]);
    for (const m of f.cluster.members) {
      expect(f.proxy.output(), m.name).toMatch(new RegExp(`"member":"${m.clientUrl}".*"msg":"Sent a keepalive PING to etcd member"`));
    }
    expect((f.proxy.output().match(/Sent a keepalive PING/g) ?? []).length).toBeGreaterThanOrEqual(pingsBefore + 3);
    expect(f.proxy.output()).not.toMatch(/did not answer a keepalive PING|Received GOAWAY/);
    expect(await f.proxy.metric('etcd_topology_proxy_member_keepalive_failures_total')).toBe(0);
    // Still delivering.
    for (let i = 0; i < watches.length; i++) await f.c.unary(f.c.kv, 'Put', { key: Buffer.from(`/k/${i}`), value: Buffer.from('v') });
    await waitFor('an event on every watch', () => watches.every((x) => x.state.events > 0), { timeoutMs: 5000 });
    for (const x of watches) x.w.cancel();
  });

  it('ends the streams of a frozen member (SIGSTOP) with UNAVAILABLE within about 15 s, and reads go to the others', async () => {
    const watches = await openWatches(f.c, 3);
    const frozen = f.cluster.member('m0');
    const pid = frozen.process!.pid!;
    process.kill(pid, 'SIGSTOP');
    const frozenAt = Date.now();
    try {
      // Reads keep being made throughout; one that lands on the frozen member waits for the keepalive
      // to give up on it and is then sent to another member.
      let reads = 0;
      let slowest = 0;
      while (Date.now() - frozenAt < 20_000 && !watches.some((x) => x.state.error)) {
        const t = Date.now();
        await serializableGet(f.c);
        slowest = Math.max(slowest, Date.now() - t);
        reads++;
      }
      await waitFor('the watch on the frozen member to end', () => watches.some((x) => x.state.error), { timeoutMs: Math.max(1, 20_000 - (Date.now() - frozenAt)) });
      const ended = watches.filter((x) => x.state.error);
      expect(ended).toHaveLength(1);
      expect(ended[0]!.state.error!.code).toBe(grpc.status.UNAVAILABLE);
      expect(ended[0]!.state.endedAt - frozenAt).toBeLessThan(17_000);
      expect(reads).toBeGreaterThan(0);
      expect(slowest).toBeLessThan(17_000);
      // The proxy's log reaches the test through a pipe, a moment after the stream ended.
      const gaveUp = new RegExp(`"member":"${frozen.clientUrl}".*"msg":"etcd member did not answer a keepalive PING; closing the connection"`);
      await waitFor('the proxy to log that the frozen member did not answer', () => gaveUp.test(f.proxy.output()), { timeoutMs: 5000 });
      expect(await f.proxy.metric('etcd_topology_proxy_member_keepalive_failures_total', { member: frozen.clientUrl })).toBeGreaterThanOrEqual(1);
      expect(await f.proxy.metric('etcd_topology_proxy_member_keepalive_failures_total')).toBe(await f.proxy.metric('etcd_topology_proxy_member_keepalive_failures_total', { member: frozen.clientUrl }));
      // New reads succeed on the others, promptly: the frozen member is held off.
      for (let i = 0; i < 20; i++) {
        const t = Date.now();
        await serializableGet(f.c);
        expect(Date.now() - t).toBeLessThan(1000);
      }
      // The two other watches are untouched.
      expect(watches.filter((x) => !x.state.error)).toHaveLength(2);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    for (const x of watches) x.w.cancel();
  });
});
