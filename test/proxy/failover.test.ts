import { afterAll, describe, expect, it } from 'vitest';
import { EtcdCluster } from '../harness/etcd-cluster.ts';
import { freePort, waitFor } from '../harness/ports.ts';
import { etcdClients, grpc, type EtcdClients } from './grpc-client.ts';
import { startProxyProcess, type ProxyProcess } from './proxy-process.ts';
import { useProxyFixture } from './fixture.ts';
import { handled, leadership } from './members.ts';

const serializableGet = (c: EtcdClients): Promise<unknown> => c.unary(c.kv, 'Range', { key: Buffer.from('/f'), serializable: true });

describe('proxy failover and discovery', () => {
  // Seeded with one member only: the others must come from the member list.
  const f = useProxyFixture({ size: 3, endpoints: (cluster) => cluster.members[1]!.clientUrl, proxyArgs: ['--refresh-interval=1s', '--failure-wait=5s'] });

  it('discovers every member from the member list and spreads calls over them', async () => {
    for (let i = 0; i < 9; i++) await serializableGet(f.c);
    for (const m of f.cluster.members) {
      expect(await f.proxy.metric('etcd_topology_proxy_upstream_requests_total', { member: m.clientUrl }), m.name).toBeGreaterThan(0);
    }
  });

  it('sends writes to the leader and spreads reads over every member', async () => {
    const { leader, others } = await leadership(f.cluster);
    const before = await Promise.all(f.cluster.members.map((m) => handled(m, 'Put')));
    for (let i = 0; i < 20; i++) await f.c.unary(f.c.kv, 'Put', { key: Buffer.from(`/leader/${i}`), value: Buffer.from('v') });
    const after = await Promise.all(f.cluster.members.map((m) => handled(m, 'Put')));
    const delta = new Map(f.cluster.members.map((m, i) => [m, after[i]! - before[i]!]));
    expect(delta.get(leader)).toBe(20);
    for (const m of others) expect(delta.get(m), m.name).toBe(0);
    const reads = await Promise.all(f.cluster.members.map((m) => handled(m, 'Range')));
    for (let i = 0; i < 9; i++) await serializableGet(f.c);
    const readsAfter = await Promise.all(f.cluster.members.map((m) => handled(m, 'Range')));
    expect(readsAfter.map((n, i) => n - reads[i]!)).toEqual([3, 3, 3]);
  });

  it('after a member is killed, calls succeed on the others within 1s, and its streams end UNAVAILABLE', async () => {
    // Three watches on three keys (identical watches would share one upstream watch) land on the three members in rotation.
    const watches = Array.from({ length: 3 }, (_, i) => {
      const w = (f.c.watch as unknown as { Watch(): grpc.ClientDuplexStream<object, { created: boolean }> }).Watch();
      const state = { created: false, error: undefined as grpc.ServiceError | undefined };
      w.on('data', (r: { created: boolean }) => (state.created ||= r.created));
      w.on('error', (e: grpc.ServiceError) => (state.error = e));
      w.write({ create_request: { key: Buffer.from(`/f/${i}`) } });
      return { w, state };
    });
    await waitFor('three watches created', () => watches.every((x) => x.state.created), { timeoutMs: 5000 });

    await f.cluster.kill('m0');
    const killedAt = Date.now();
    await waitFor('a read through the proxy after the kill', () => serializableGet(f.c).then(() => true), { timeoutMs: 1000, intervalMs: 20 });
    expect(Date.now() - killedAt).toBeLessThanOrEqual(1000);
    // Every further call succeeds: the dead member is held off, and reads that hit it are retried.
    for (let i = 0; i < 20; i++) await serializableGet(f.c);
    await waitFor('the watch on the killed member to end', () => watches.some((x) => x.state.error), { timeoutMs: 3000 });
    const ended = watches.filter((x) => x.state.error);
    expect(ended).toHaveLength(1);
    expect(ended[0]!.state.error!.code).toBe(grpc.status.UNAVAILABLE);
    // Writes succeed once the survivors have a leader (m0 may have been it).
    await waitFor('a put after the kill', () => f.c.unary(f.c.kv, 'Put', { key: Buffer.from('/f'), value: Buffer.from('after') }).then(() => true), { timeoutMs: 15_000 });
    for (const x of watches) x.w.cancel();
    await f.cluster.restart('m0');
  });

  it('counts a leader election it sees (MoveLeader) in etcd_topology_proxy_leader_changes_seen_total', async () => {
    const seenBefore = await f.proxy.metric('etcd_topology_proxy_leader_changes_seen_total');
    const { leader, others, idOf } = await leadership(f.cluster);
    const target = others[0]!;
    await f.cluster.etcdctl(['move-leader', BigInt(idOf(target)).toString(16)], leader.clientUrl);
    await waitFor('the proxy to see the election at a refresh', async () => (await f.proxy.metric('etcd_topology_proxy_leader_changes_seen_total')) > seenBefore, { timeoutMs: 10_000 });
    // Writes follow the new leader once the proxy has learned it.
    await waitFor('a write to land on the new leader', async () => {
      const n = await handled(target, 'Put');
      await f.c.unary(f.c.kv, 'Put', { key: Buffer.from('/moved'), value: Buffer.from('v') });
      return (await handled(target, 'Put')) === n + 1;
    }, { timeoutMs: 10_000 });
  });

  it('uses a member added to the cluster after the next refresh', async () => {
    const m3 = await f.cluster.add('m3');
    await waitFor('calls forwarded to the new member', async () => {
      await serializableGet(f.c);
      return (await f.proxy.metric('etcd_topology_proxy_upstream_requests_total', { member: m3.clientUrl })) > 0;
    }, { timeoutMs: 10_000, intervalMs: 100 });
  });
});

describe('proxy loop protection', () => {
  let cluster: EtcdCluster;
  let proxy: ProxyProcess;
  afterAll(async () => {
    await proxy?.stop();
    await cluster?.stop();
  });

  it('drops an advertised client URL that points at the proxy itself, with an error log and a metric, and keeps serving', async () => {
    const proxyPort = await freePort();
    // The member advertises the proxy's address as its client URL: a misconfiguration that would loop.
    cluster = await EtcdCluster.start({ size: 1, extraArgs: [`--advertise-client-urls=http://127.0.0.1:${proxyPort}`] });
    proxy = await startProxyProcess(cluster.members[0]!.clientUrl, ['--refresh-interval=1s'], { port: proxyPort });
    await waitFor('a loop drop', async () => (await proxy.metric('etcd_topology_proxy_loop_drops_total')) > 0, { timeoutMs: 5000 });
    await waitFor('the loop drop in the proxy log', () => /"level":50.*Dropped an advertised client URL that points at this proxy/.test(proxy.output()), { timeoutMs: 5000 });
    const c = etcdClients(proxy.target);
    await c.unary(c.kv, 'Put', { key: Buffer.from('/loop'), value: Buffer.from('ok') });
    const r = await c.unary<{ kvs: { value: Buffer }[] }>(c.kv, 'Range', { key: Buffer.from('/loop') });
    expect(Buffer.from(r.kvs[0]!.value).toString()).toBe('ok');
    c.close();
    expect(await proxy.metric('etcd_topology_proxy_upstream_requests_total', { member: `http://127.0.0.1:${proxyPort}` })).toBe(0);
  });
});
