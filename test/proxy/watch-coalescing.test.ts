import { spawn } from 'node:child_process';
import http2 from 'node:http2';
import { describe, expect, it } from 'vitest';
import { binaries } from '../harness/binaries.ts';
import type { EtcdCluster, EtcdMember } from '../harness/etcd-cluster.ts';
import { waitFor } from '../harness/ports.ts';
import { useProxyFixture } from './fixture.ts';
import { etcdClients, grpc, type EtcdClients } from './grpc-client.ts';

interface Kv { key: Buffer; value: Buffer; mod_revision: string }
interface WatchResponse {
  header: { revision: string } | null;
  watch_id: string;
  created: boolean;
  canceled: boolean;
  compact_revision: string;
  cancel_reason: string;
  events: { type: string; kv: Kv }[];
}
type Duplex = grpc.ClientDuplexStream<object, WatchResponse>;

/** One client Watch stream through the proxy, recording what it receives. */
class WatchClient {
  readonly responses: WatchResponse[] = [];
  error: grpc.ServiceError | undefined;
  readonly call: Duplex;
  constructor(c: EtcdClients) {
    this.call = (c.watch as unknown as { Watch(): Duplex }).Watch();
    this.call.on('data', (r: WatchResponse) => this.responses.push(r));
    this.call.on('error', (e: grpc.ServiceError) => (this.error = e));
  }
  create(key: string, more: object = {}): this {
    this.call.write({ create_request: { key: Buffer.from(key), ...more } });
    return this;
  }
  get created(): WatchResponse[] {
    return this.responses.filter((r) => r.created);
  }
  /** The events received, as "key=value@revision". */
  events(): string[] {
    return this.responses.flatMap((r) => r.events.map((e) => `${e.kv.key.toString()}=${e.kv.value.toString()}@${e.kv.mod_revision}`));
  }
}

/** A gauge summed over the running members' own /metrics. */
async function memberMetric(cluster: EtcdCluster, name: string, members: EtcdMember[] = cluster.members.filter((m) => m.process)): Promise<number> {
  let sum = 0;
  for (const m of members) {
    const text = await (await fetch(`${m.clientUrl}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    sum += Number(line?.split(' ')[1] ?? 0);
  }
  return sum;
}

const put = (c: EtcdClients, key: string, value: string): Promise<{ header: { revision: string } }> => c.unary(c.kv, 'Put', { key: Buffer.from(key), value: Buffer.from(value) });

function closeAll(clients: WatchClient[]): void {
  for (const w of clients) w.call.cancel();
}

describe('watch coalescing through the proxy', () => {
  const f = useProxyFixture({ size: 3 });
  const upstreamWatches = () => f.proxy.metric('etcd_topology_proxy_watch_upstream_watches');

  it('serves 1,000 client watches on 10 keys with 10 upstream watches; every client sees every event once, in order', async () => {
    const channels = Array.from({ length: 10 }, () => etcdClients(f.proxy.target));
    const watchersBefore = await memberMetric(f.cluster, 'etcd_debugging_mvcc_watcher_total');
    const streamsBefore = await memberMetric(f.cluster, 'etcd_debugging_mvcc_watch_stream_total');
    const clients = Array.from({ length: 1000 }, (_, i) => new WatchClient(channels[i % 10]!).create(`/co/${i % 10}`));
    await waitFor('1,000 watches created', () => clients.every((w) => w.created.length === 1), { timeoutMs: 60_000, intervalMs: 100 });
    expect(await f.proxy.metric('etcd_topology_proxy_watch_client_watches')).toBe(1000);
    expect(await upstreamWatches()).toBe(10);
    expect(await memberMetric(f.cluster, 'etcd_debugging_mvcc_watcher_total')).toBe(watchersBefore + 10);
    expect(await memberMetric(f.cluster, 'etcd_debugging_mvcc_watch_stream_total')).toBe(streamsBefore + 10);

    // Two etcdctl watches on one of the keys: clientv3 asks for a leader (hasleader metadata),
    // which the 1,000 did not, so they share an upstream watch of their own.
    const bin = binaries();
    const etcdctls = [0, 1].map(() => spawn(bin.etcdctl, [`--endpoints=${f.proxy.target}`, 'watch', '/co/3']));
    const etcdctlOut = ['', ''];
    etcdctls.forEach((p, i) => p.stdout.on('data', (d: Buffer) => (etcdctlOut[i] += d.toString())));
    await waitFor('etcdctl watching', async () => (await f.proxy.metric('etcd_topology_proxy_watch_client_watches')) === 1002, { timeoutMs: 10_000 });
    expect(await upstreamWatches()).toBe(11);

    const expected = new Map<string, string[]>();
    for (let round = 0; round < 5; round++) {
      for (let k = 0; k < 10; k++) {
        const r = await put(f.c, `/co/${k}`, `v${round}`);
        expected.set(`/co/${k}`, [...(expected.get(`/co/${k}`) ?? []), `/co/${k}=v${round}@${r.header.revision}`]);
      }
    }
    await waitFor('every event at every client', () => clients.every((w) => w.events().length >= 5), { timeoutMs: 30_000, intervalMs: 100 });
    await new Promise((r) => setTimeout(r, 300)); // time for a duplicate to show
    for (let i = 0; i < clients.length; i++) expect(clients[i]!.events(), `client ${i}`).toEqual(expected.get(`/co/${i % 10}`));
    for (const w of clients) expect(w.error).toBeUndefined();
    for (const out of etcdctlOut) {
      await waitFor('etcdctl to print the 5 events', () => (out.match(/^PUT$/gm) ?? []).length === 5, { timeoutMs: 10_000 }).catch(() => undefined);
    }
    for (const out of etcdctlOut) expect(out.split('\n').filter((l) => l.startsWith('v'))).toEqual(['v0', 'v1', 'v2', 'v3', 'v4']);
    // 5 events on each key reached 100 client watches (and 2 etcdctls), each sent once by a member.
    expect(await f.proxy.metric('etcd_topology_proxy_watch_coalesced_events_total')).toBe(10 * 5 * 99 + 5);

    for (const p of etcdctls) p.kill();
    closeAll(clients);
    await waitFor('upstream watches closed with their last clients', async () => (await upstreamWatches()) === 0, { timeoutMs: 10_000 });
    await waitFor('the members to drop the watches', async () => (await memberMetric(f.cluster, 'etcd_debugging_mvcc_watcher_total')) === watchersBefore, { timeoutMs: 10_000 });
    for (const c of channels) c.close();
  });

  it('gives a joining client a created revision at or above what it saw before, and no older event', async () => {
    const first = new WatchClient(f.c).create('/join');
    await waitFor('first created', () => first.created.length === 1, { timeoutMs: 10_000 });
    const written = Number((await put(f.c, '/join', 'before')).header.revision);
    const joiner = new WatchClient(f.c).create('/join');
    await waitFor('joiner created', () => joiner.created.length === 1, { timeoutMs: 10_000 });
    expect(Number(joiner.created[0]!.header!.revision)).toBeGreaterThanOrEqual(written);
    const after = Number((await put(f.c, '/join', 'after')).header.revision);
    await waitFor('the event after the join', () => joiner.events().length === 1 && first.events().length === 2, { timeoutMs: 10_000 });
    expect(joiner.events()).toEqual([`/join=after@${after}`]);
    expect(await upstreamWatches()).toBe(1);
    closeAll([first, joiner]);
  });

  it('ends only the cancelled client: by a cancel request, or by ending its stream', async () => {
    const clients = Array.from({ length: 3 }, () => new WatchClient(f.c).create('/cancel'));
    await waitFor('created', () => clients.every((w) => w.created.length === 1), { timeoutMs: 10_000 });
    clients[0]!.call.write({ cancel_request: { watch_id: clients[0]!.created[0]!.watch_id } });
    await waitFor('the cancel answered', () => clients[0]!.responses.some((r) => r.canceled), { timeoutMs: 10_000 });
    clients[1]!.call.cancel();
    await new Promise((r) => setTimeout(r, 200));
    const rev = (await put(f.c, '/cancel', 'x')).header.revision;
    await waitFor('the event at the remaining client', () => clients[2]!.events().length === 1, { timeoutMs: 10_000 });
    expect(clients[2]!.events()).toEqual([`/cancel=x@${rev}`]);
    expect(clients[0]!.events()).toEqual([]);
    expect(clients[1]!.events()).toEqual([]);
    expect(await f.proxy.metric('etcd_topology_proxy_watch_client_watches')).toBe(1);
    closeAll(clients);
  });

  it('answers a progress request for that client, with a revision at or above the last write and after its events', async () => {
    const quiet = new WatchClient(f.c).create('/progress');
    const asker = new WatchClient(f.c).create('/progress');
    await waitFor('created', () => quiet.created.length === 1 && asker.created.length === 1, { timeoutMs: 10_000 });
    const eventRev = (await put(f.c, '/progress', 'a')).header.revision;
    const other = Number((await put(f.c, '/elsewhere', 'b')).header.revision);
    asker.call.write({ progress_request: {} });
    await waitFor('the progress notification', () => asker.responses.some((r) => r.watch_id === '-1'), { timeoutMs: 10_000 });
    const i = asker.responses.findIndex((r) => r.watch_id === '-1');
    expect(Number(asker.responses[i]!.header!.revision)).toBeGreaterThanOrEqual(other);
    expect(asker.responses[i]!.events).toEqual([]);
    // Its events up to that revision came before it.
    expect(asker.responses.slice(0, i).flatMap((r) => r.events.map((e) => e.kv.mod_revision))).toEqual([eventRev]);
    await new Promise((r) => setTimeout(r, 300));
    expect(quiet.responses.filter((r) => r.watch_id === '-1')).toEqual([]);
    closeAll([quiet, asker]);
  });

  it('sends a compaction below a client’s start revision to that client only', async () => {
    const live = new WatchClient(f.c).create('/compact');
    await waitFor('created', () => live.created.length === 1, { timeoutMs: 10_000 });
    const first = Number((await put(f.c, '/compact', '1')).header.revision);
    await put(f.c, '/compact', '2');
    const third = Number((await put(f.c, '/compact', '3')).header.revision);
    await f.c.unary(f.c.kv, 'Compact', { revision: third, physical: true });
    // A member serves a watch from its own store: a follower that has not applied the writes and
    // the compaction yet takes a watch from `first` as one from its future, and sends the events
    // instead of the compaction (etcd does so without the proxy too; seen in 2 of 16 runs: created
    // at the follower's revision 56, then the events 57-59, from a follower that had not applied
    // them). A linearizable read on each member first makes each apply everything up to it.
    for (const m of f.cluster.members) await f.cluster.etcdctl(['get', '/compact'], m.clientUrl);
    const old = new WatchClient(f.c).create('/compact', { start_revision: first });
    // As etcd does it: created, then cancelled with the compaction's revision.
    await waitFor('the compacted watch cancelled', () => old.responses.some((r) => r.canceled), { timeoutMs: 10_000 });
    expect(old.responses.map((r) => ({ created: r.created, canceled: r.canceled, compact: r.compact_revision }))).toEqual([
      { created: true, canceled: false, compact: '0' },
      { created: false, canceled: true, compact: String(third) },
    ]);
    const rev = (await put(f.c, '/compact', '4')).header.revision;
    await waitFor('the live client keeps receiving', () => live.events().length === 4, { timeoutMs: 10_000 });
    expect(live.events().at(-1)).toBe(`/compact=4@${rev}`);
    expect(live.responses.some((r) => r.canceled)).toBe(false);
    expect(await upstreamWatches()).toBe(1);
    // A watch from the revision after the compaction is served, and joins nothing it should not.
    const fromThird = new WatchClient(f.c).create('/compact', { start_revision: third });
    await waitFor('the events from the compaction on', () => fromThird.events().length === 2, { timeoutMs: 10_000 });
    expect(fromThird.events()).toEqual([`/compact=3@${third}`, `/compact=4@${rev}`]);
    closeAll([live, old, fromThird]);
  });

  it('ends every client of a shared watch with UNAVAILABLE when its member dies, and leaves the others', async () => {
    // Open three groups; find each one's member by its watcher count going up by one. The cases
    // before end their clients without waiting for the members to drop the watches, and a watch a
    // member drops while the counts are read makes them lie (no member seen one up, or the wrong
    // one: 1 of 12 runs failed so): first every watch the proxy still holds is one watcher on a
    // member and no other is left to drop (a failed case before may leave watches open: those count).
    const running = f.cluster.members.filter((m) => m.process);
    const counts = async () => Promise.all(running.map((m) => memberMetric(f.cluster, 'etcd_debugging_mvcc_watcher_total', [m])));
    await waitFor('the members to hold exactly the proxy’s upstream watches', async () => {
      const open = await upstreamWatches();
      return (await counts()).reduce((a, b) => a + b, 0) === open && (await upstreamWatches()) === open;
    }, { timeoutMs: 10_000 });
    const placed: { key: string; clients: WatchClient[]; member: EtcdMember }[] = [];
    for (let g = 0; placed.length < 3 && g < 6; g++) {
      const before = await counts();
      const key = `/kill/${g}`;
      const clients = Array.from({ length: 20 }, () => new WatchClient(f.c).create(key));
      await waitFor('created', () => clients.every((w) => w.created.length === 1), { timeoutMs: 10_000 });
      const after = await counts();
      const member = running[after.findIndex((n, i) => n === before[i]! + 1)];
      expect(member, 'the member that took the upstream watch').toBeDefined();
      placed.push({ key, clients, member: member! });
    }
    const victim = placed[0]!.member;
    const onVictim = placed.filter((p) => p.member === victim);
    const elsewhere = placed.filter((p) => p.member !== victim);
    expect(elsewhere.length).toBeGreaterThan(0);
    await f.cluster.kill(victim.name);
    await waitFor('the clients on the dead member to end', () => onVictim.every((p) => p.clients.every((w) => w.error)), { timeoutMs: 20_000 });
    for (const p of onVictim) for (const w of p.clients) expect(w.error!.code).toBe(grpc.status.UNAVAILABLE);
    await waitFor('a write after the kill', () => put(f.c, '/kill/after', 'x').then(() => true), { timeoutMs: 15_000 });
    for (const p of elsewhere) {
      const rev = (await put(f.c, p.key, 'still')).header.revision;
      await waitFor('the others keep receiving', () => p.clients.every((w) => w.events().includes(`${p.key}=still@${rev}`)), { timeoutMs: 10_000 });
      for (const w of p.clients) expect(w.error).toBeUndefined();
    }
    // A client of the dead member re-creates its watch and gets one.
    const again = new WatchClient(f.c).create('/kill/0');
    await waitFor('a watch again', () => again.created.length === 1, { timeoutMs: 10_000 });
    closeAll([...placed.flatMap((p) => p.clients), again]);
    await f.cluster.restart(victim.name);
  });
});

describe('a slow watch client through the proxy', () => {
  const f = useProxyFixture({ size: 1, proxyArgs: ['--watch-client-buffer=262144'] });

  it('is ended with RESOURCE_EXHAUSTED and a reason, while the other clients get every event', async () => {
    const fast = new WatchClient(f.c).create('/slow');
    // The slow client: HTTP/2 with a 64 KiB window that it never reopens, because it never reads.
    const session = http2.connect(f.proxy.url);
    const stream = session.request({ ':method': 'POST', ':path': '/etcdserverpb.Watch/Watch', 'content-type': 'application/grpc', te: 'trailers' });
    const key = Buffer.from('/slow');
    const create = Buffer.concat([Buffer.from([0x0a, key.length + 2, 0x0a, key.length]), key]);
    stream.write(Buffer.concat([Buffer.from([0, 0, 0, 0, create.length]), create]));
    let trailers: http2.IncomingHttpHeaders | undefined;
    stream.on('trailers', (t: http2.IncomingHttpHeaders) => {
      trailers = t;
    });
    stream.pause();
    await waitFor('both created', async () => fast.created.length === 1 && (await f.proxy.metric('etcd_topology_proxy_watch_client_watches')) === 2, { timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 500)); // the slow client's created response must go out before the load

    const value = 'x'.repeat(32 * 1024);
    for (let i = 0; i < 40; i++) await put(f.c, '/slow', `${i}${value}`);
    await waitFor('the fast client has every event', () => fast.events().length === 40, { timeoutMs: 20_000 });
    await waitFor('the slow client cut off', async () => (await f.proxy.metric('etcd_topology_proxy_watch_slow_clients_cancelled_total')) === 1, { timeoutMs: 10_000 });
    expect(fast.error).toBeUndefined();
    expect(await f.proxy.metric('etcd_topology_proxy_watch_client_watches')).toBe(1);
    // Once it reads, it gets what was queued for it and then the reason.
    stream.resume();
    stream.on('data', () => undefined);
    await waitFor('the slow client’s status', () => trailers !== undefined, { timeoutMs: 10_000 });
    expect(trailers!['grpc-status']).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
    expect(decodeURIComponent(String(trailers!['grpc-message']))).toMatch(/read its watch responses too slowly/);
    session.close();
    fast.call.cancel();
  });

  it('gives a client that reads behind the events of each watch merged into fewer responses, every event once and in order', async () => {
    const fast = new WatchClient(f.c).create('/merge/a');
    // One stream with two watches; it stops reading, so what the proxy sends it waits for its window.
    const behind = new WatchClient(f.c).create('/merge/a').create('/merge/b');
    await waitFor('created', () => fast.created.length === 1 && behind.created.length === 2, { timeoutMs: 10_000 });
    const [idA, idB] = behind.created.map((r) => r.watch_id);
    const cutOff = await f.proxy.metric('etcd_topology_proxy_watch_slow_clients_cancelled_total');
    behind.call.pause();
    // About 170 KB for the paused client: more than its 64 KiB window, less than the 256 KiB it may leave unread.
    const value = 'y'.repeat(500);
    const written: Record<string, string[]> = { '/merge/a': [], '/merge/b': [] };
    let last = '';
    for (let i = 0; i < 300; i++) {
      const key = i % 2 === 0 ? '/merge/a' : '/merge/b';
      last = (await put(f.c, key, `${i}${value}`)).header.revision;
      written[key]!.push(`${key}=${i}${value}@${last}`);
    }
    behind.call.write({ progress_request: {} });
    await waitFor('the fast client has every event', () => fast.events().length === 150, { timeoutMs: 20_000 });
    behind.call.resume();
    await waitFor('the progress answer', () => behind.responses.some((r) => r.watch_id === '-1'), { timeoutMs: 20_000 });
    expect(behind.error).toBeUndefined();
    const progress = behind.responses.findIndex((r) => r.watch_id === '-1');
    expect(Number(behind.responses[progress]!.header!.revision)).toBeGreaterThanOrEqual(Number(last));
    // Every event of each watch once, in order, before the progress answer.
    const of = (id: string | undefined) => behind.responses.slice(0, progress).filter((r) => r.watch_id === id && r.events.length > 0);
    const events = (rs: WatchResponse[]) => rs.flatMap((r) => r.events.map((e) => `${e.kv.key.toString()}=${e.kv.value.toString()}@${e.kv.mod_revision}`));
    expect(events(of(idA))).toEqual(written['/merge/a']);
    expect(events(of(idB))).toEqual(written['/merge/b']);
    // Merged: fewer responses than events, each under a header at or above its last event.
    expect(of(idA).length + of(idB).length).toBeLessThan(300);
    for (const r of [...of(idA), ...of(idB)]) expect(Number(r.header!.revision)).toBeGreaterThanOrEqual(Number(r.events.at(-1)!.kv.mod_revision));
    expect(fast.events()).toEqual(written['/merge/a']);
    expect(await f.proxy.metric('etcd_topology_proxy_watch_slow_clients_cancelled_total')).toBe(cutOff);
    closeAll([fast, behind]);
  });
});

describe('watch coalescing turned off (--watch-coalescing=false)', () => {
  const f = useProxyFixture({ size: 1, proxyArgs: ['--watch-coalescing=false'] });

  it('forwards each client watch stream as it is: one upstream watch per client watch', async () => {
    const watchersBefore = await memberMetric(f.cluster, 'etcd_debugging_mvcc_watcher_total');
    const clients = Array.from({ length: 5 }, () => new WatchClient(f.c).create('/off'));
    await waitFor('created', () => clients.every((w) => w.created.length === 1), { timeoutMs: 10_000 });
    expect(await memberMetric(f.cluster, 'etcd_debugging_mvcc_watcher_total')).toBe(watchersBefore + 5);
    const rev = (await put(f.c, '/off', 'v')).header.revision;
    await waitFor('every client has the event', () => clients.every((w) => w.events().length === 1), { timeoutMs: 10_000 });
    for (const w of clients) expect(w.events()).toEqual([`/off=v@${rev}`]);
    const text = await (await fetch(`${f.proxy.metricsUrl}/metrics`)).text();
    expect(text).not.toContain('etcd_topology_proxy_watch_upstream_watches');
    closeAll(clients);
  });
});
