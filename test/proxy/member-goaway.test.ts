import { describe, expect, it } from 'vitest';
import { waitFor } from '../harness/ports.ts';
import { grpc } from './grpc-client.ts';
import { useProxyFixture } from './fixture.ts';

type Watch = grpc.ClientDuplexStream<object, { created: boolean; events: { kv: { value: Buffer } }[] }>;

describe('a member that shuts down gracefully (HTTP/2 GOAWAY, then the connection closes)', () => {
  const f = useProxyFixture({ size: 3, proxyArgs: ['--refresh-interval=1s', '--failure-wait=5s'] });

  it('ends the streams it carried with UNAVAILABLE, keeps the others, and every read succeeds meanwhile', async () => {
    // Three keys, so three upstream watches (identical watches would share one), one per member in rotation.
    const watches = Array.from({ length: 3 }, (_, i) => {
      const w = (f.c.watch as unknown as { Watch(): Watch }).Watch();
      const state = { created: false, events: 0, error: undefined as grpc.ServiceError | undefined };
      w.on('data', (r: { created: boolean; events: unknown[] }) => {
        state.created ||= r.created;
        state.events += r.events.length;
      });
      w.on('error', (e: grpc.ServiceError) => (state.error = e));
      w.write({ create_request: { key: Buffer.from(`/g/${i}`) } });
      return { w, state, key: `/g/${i}` };
    });
    await waitFor('three watches created, one per member', () => watches.every((x) => x.state.created), { timeoutMs: 5000 });

    const leaving = f.cluster.member('m2').process!;
    const exited = new Promise((r) => leaving.once('exit', r));
    leaving.kill('SIGTERM');
    // Reads keep succeeding while the member says GOAWAY, drains and goes.
    let reads = 0;
    const deadline = Date.now() + 15_000;
    while (leaving.exitCode === null && leaving.signalCode === null && Date.now() < deadline) {
      await f.c.unary(f.c.kv, 'Range', { key: Buffer.from('/g'), serializable: true });
      reads++;
    }
    await exited;
    for (let i = 0; i < 10; i++) await f.c.unary(f.c.kv, 'Range', { key: Buffer.from('/g'), serializable: true });
    expect(reads).toBeGreaterThan(0);
    // The member did say GOAWAY on the proxy's connection before it went.
    const goaway = new RegExp(`"member":"${f.cluster.member('m2').clientUrl}".*"msg":"Received GOAWAY"`);
    await waitFor('the GOAWAY in the proxy log', () => goaway.test(f.proxy.output()), { timeoutMs: 5000 });

    await waitFor('the watch on the stopped member to end', () => watches.some((x) => x.state.error), { timeoutMs: 15_000 });
    const ended = watches.filter((x) => x.state.error);
    expect(ended).toHaveLength(1);
    expect(ended[0]!.state.error!.code).toBe(grpc.status.UNAVAILABLE);
    // The two others still deliver events (once the survivors have a leader for the put).
    const before = watches.map((x) => x.state.events);
    const alive = watches.filter((x) => !x.state.error);
    await waitFor('a put after the stop', () => f.c.unary(f.c.kv, 'Put', { key: Buffer.from(alive[0]!.key), value: Buffer.from('v') }).then(() => true), { timeoutMs: 15_000 });
    for (const x of alive.slice(1)) await f.c.unary(f.c.kv, 'Put', { key: Buffer.from(x.key), value: Buffer.from('v') });
    await waitFor('events on the surviving watches', () => alive.every((x) => x.state.events > before[watches.indexOf(x)]!), { timeoutMs: 5000 });
    for (const x of watches) x.w.cancel();
  });
});
