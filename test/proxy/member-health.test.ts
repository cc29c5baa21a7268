import { describe, expect, it } from 'vitest';
import { binaries } from '../harness/binaries.ts';
import { waitFor } from '../harness/ports.ts';
import { run } from '../harness/run.ts';
import { useProxyFixture } from './fixture.ts';

describe('a member that defragments (gRPC health NOT_SERVING, --feature-gates=StopGRPCServiceOnDefrag=true)', () => {
  const f = useProxyFixture({ size: 3, extraArgs: ['--feature-gates=StopGRPCServiceOnDefrag=true'], proxyArgs: ['--refresh-interval=1s'] });

  it('gets no new calls from the proxy while it reports NOT_SERVING, and gets them again afterwards', async () => {
    const m1 = f.cluster.member('m1');
    const healthy = (): Promise<number> => f.proxy.metric('etcd_topology_proxy_member_healthy', { member: m1.clientUrl });
    const sentToM1 = (): Promise<number> => f.proxy.metric('etcd_topology_proxy_upstream_requests_total', { member: m1.clientUrl });
    const read = (): Promise<unknown> => f.c.unary(f.c.kv, 'Range', { key: Buffer.from('/dh'), serializable: true });
    await waitFor('m1 healthy at the proxy', async () => (await healthy()) === 1, { timeoutMs: 10_000 });
    // Enough data that defragmenting m1 takes a noticeable time: 60 MB written, then compacted away.
    await run(binaries().benchmark, [`--endpoints=${m1.clientUrl.replace('http://', '')}`, '--conns=4', '--clients=16', 'put', '--key-size=16', '--key-space-size=20000', '--val-size=2048', '--total=20000']);
    const status = await f.cluster.etcdctl(['endpoint', 'status', '-w', 'fields'], m1.clientUrl);
    await f.cluster.etcdctl(['compact', /"Revision" : (\d+)/.exec(status)![1]!]);
    await f.cluster.etcdctl(['del', '', '--from-key']);

    const defrag = f.cluster.etcdctl(['defrag', '--command-timeout=60s'], m1.clientUrl);
    await waitFor('the proxy to see m1 NOT_SERVING', async () => (await healthy()) === 0, { timeoutMs: 30_000, intervalMs: 10 });
    const before = await sentToM1();
    for (let i = 0; i < 12; i++) await read();
    const after = await sentToM1();
    // Still defragmenting after the reads, so that the window checked is the NOT_SERVING one.
    expect(await healthy()).toBe(0);
    expect(after).toBe(before);
    expect(f.proxy.output()).toMatch(new RegExp(`"member":"${m1.clientUrl}".*"msg":"etcd member reports NOT_SERVING`));
    await defrag;
    await waitFor('m1 serving again at the proxy', async () => (await healthy()) === 1, { timeoutMs: 10_000 });
    await waitFor('new calls reaching m1 again', async () => {
      await read();
      return (await sentToM1()) > after;
    }, { timeoutMs: 10_000, intervalMs: 10 });
  }, 180_000);
});
