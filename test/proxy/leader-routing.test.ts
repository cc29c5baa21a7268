import { spawn } from 'node:child_process';
import { Agent, request } from 'undici';
import { describe, expect, it } from 'vitest';
import { binaries } from '../harness/binaries.ts';
import type { EtcdMember } from '../harness/etcd-cluster.ts';
import { waitFor } from '../harness/ports.ts';
import { useProxyFixture } from './fixture.ts';
import { etcdClients, type EtcdClients } from './grpc-client.ts';
import { handled, leadership } from './members.ts';

const put = (c: EtcdClients, key: string, deadlineMs = 10_000): Promise<unknown> =>
  c.unary(c.kv, 'Put', { key: Buffer.from(key), value: Buffer.from('v') }, undefined, { deadline: Date.now() + deadlineMs });

/** A member's count of a grpc-go server metric (e.g. grpc_server_msg_received_total) for one method, from its own /metrics. */
async function grpcCount(member: EtcdMember, metric: string, method: string): Promise<number> {
  const text = await (await fetch(`${member.clientUrl}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${metric}{`) && l.includes(`grpc_method="${method}"`))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

/** Per-member deltas of a gRPC method's handled count while fn runs. */
async function handledDuring(members: EtcdMember[], method: string, fn: () => Promise<void>): Promise<number[]> {
  const before = await Promise.all(members.map((m) => handled(m, method)));
  await fn();
  const after = await Promise.all(members.map((m) => handled(m, method)));
  return after.map((n, i) => n - before[i]!);
}

describe('proxy leader-aware routing', () => {
  // A refresh interval far beyond every wait below: whatever the proxy learns here, it learns from
  // calls and their answers, not from the periodic member-list refresh.
  const f = useProxyFixture({ size: 3, proxyArgs: ['--refresh-interval=10m'] });

  it('sends a write Txn to the leader and spreads a read-only Txn over every member', async () => {
    const { leader } = await leadership(f.cluster);
    const members = f.cluster.members;
    const writeTxn = { compare: [], success: [{ request_put: { key: Buffer.from('/txn/w'), value: Buffer.from('v') } }], failure: [] };
    const writes = await handledDuring(members, 'Txn', async () => {
      for (let i = 0; i < 10; i++) await f.c.unary(f.c.kv, 'Txn', writeTxn);
    });
    expect(writes).toEqual(members.map((m) => (m === leader ? 10 : 0)));
    const readTxn = { compare: [], success: [{ request_range: { key: Buffer.from('/txn/w'), serializable: true } }], failure: [] };
    const reads = await handledDuring(members, 'Txn', async () => {
      for (let i = 0; i < 30; i++) await f.c.unary(f.c.kv, 'Txn', readTxn);
    });
    // One after another, idle members take turns.
    expect(reads).toEqual([10, 10, 10]);
  });

  it('learns a new leader from the calls themselves after a MoveLeader, long before any refresh', async () => {
    const seen = await f.proxy.metric('etcd_topology_proxy_leader_changes_seen_total');
    const { leader, others, idOf } = await leadership(f.cluster);
    const target = others[0]!;
    await f.cluster.etcdctl(['move-leader', BigInt(idOf(target)).toString(16)], leader.clientUrl);
    // The first write after the move may still go to the old leader, which forwards it; its answer
    // carries the new raft term, and the proxy asks every member's Status again.
    await waitFor('writes to land on the new leader', async () => {
      const d = await handledDuring(f.cluster.members, 'Put', () => put(f.c, '/moved').then(() => undefined));
      return d[f.cluster.members.indexOf(target)] === 1;
    }, { timeoutMs: 10_000, intervalMs: 20 });
    const d = await handledDuring(f.cluster.members, 'Put', async () => {
      for (let i = 0; i < 10; i++) await put(f.c, `/moved/${i}`);
    });
    expect(d).toEqual(f.cluster.members.map((m) => (m === target ? 10 : 0)));
    expect(await f.proxy.metric('etcd_topology_proxy_leader_changes_seen_total')).toBeGreaterThan(seen);
  });

  it('moves a LeaseKeepAlive stream to the new leader after a MoveLeader: etcdctl keeps its lease alive, and its keepalives reach the new leader', async () => {
    const { leader, others, idOf } = await leadership(f.cluster);
    const target = others[0]!;
    const moved = () => f.proxy.metric('etcd_topology_proxy_streams_moved_to_leader_total');
    const movedBefore = await moved();
    const keepalives = (m: EtcdMember) => grpcCount(m, 'grpc_server_msg_received_total', 'LeaseKeepAlive');
    const opened = (m: EtcdMember) => grpcCount(m, 'grpc_server_started_total', 'LeaseKeepAlive');
    // TTL 6 s: clientv3 sends a keepalive every 2 s (a third of the TTL).
    const grant = await f.c.unary<{ ID: string }>(f.c.lease, 'LeaseGrant', { TTL: 6 });
    const id = BigInt(grant.ID).toString(16);
    const ctl = spawn(binaries().etcdctl, [`--endpoints=${f.proxy.target}`, 'lease', 'keep-alive', id]);
    let out = '';
    ctl.stdout.on('data', (d: Buffer) => (out += d.toString()));
    ctl.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const keptAlive = () => (out.match(/keepalived with TTL/g) ?? []).length;
    try {
      await waitFor('the first keepalive', () => keptAlive() >= 1, { timeoutMs: 10_000 });
      await waitFor('keepalives on the leader', async () => (await keepalives(leader)) >= 2, { timeoutMs: 10_000 });
      const onTargetBefore = await keepalives(target);
      const openedBefore = await opened(target);

      await f.cluster.etcdctl(['move-leader', BigInt(idOf(target)).toString(16)], leader.clientUrl);
      // Nothing but the keepalives flows through the proxy here (and the refresh is 10 minutes
      // away): the proxy learns the new term from the old leader's keepalive answers.
      await waitFor('keepalives to reach the new leader', async () => (await keepalives(target)) > onTargetBefore, { timeoutMs: 15_000, intervalMs: 100 });
      expect(await moved()).toBe(movedBefore + 1);
      expect(await opened(target)).toBe(openedBefore + 1);
      // From now on they all go there: three more on the new leader, none on the old one.
      const onOld = await keepalives(leader);
      const onNew = await keepalives(target);
      const printed = keptAlive();
      await waitFor('three more keepalives', async () => (await keepalives(target)) >= onNew + 3, { timeoutMs: 15_000, intervalMs: 200 });
      expect(await keepalives(leader)).toBe(onOld);
      expect(keptAlive()).toBeGreaterThanOrEqual(printed + 2);
      expect(out).not.toMatch(/expired|revoked|Error/);
      expect(ctl.exitCode).toBeNull();
      const ttl = await f.c.unary<{ TTL: string }>(f.c.lease, 'LeaseTimeToLive', { ID: grant.ID });
      expect(Number(ttl.TTL)).toBeGreaterThan(0);
    } finally {
      ctl.kill();
    }
    console.log(`etcdctl lease keep-alive across a MoveLeader: ${keptAlive()} keepalives printed`);
  });

  it.each(['gRPC', 'JSON gateway'] as const)('loses no %s write to MoveLeader under a continuous write load', async (protocol) => {
    const load = etcdClients(f.proxy.target);
    const agent = new Agent({ connections: 50 });
    const write =
      protocol === 'gRPC'
        ? (key: string): Promise<unknown> => put(load, key)
        : async (key: string): Promise<unknown> => {
            const res = await request(`http://${f.proxy.target}/v3/kv/put`, {
              method: 'POST',
              dispatcher: agent,
              body: JSON.stringify({ key: Buffer.from(key).toString('base64'), value: Buffer.from('v').toString('base64') }),
              headersTimeout: 10_000,
            });
            const text = await res.body.text();
            if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${text}`);
            return text;
          };
    const labels = { protocol: protocol === 'gRPC' ? 'grpc' : 'http', method: 'Put', reason: 'not_applied' };
    const replayedBefore = await f.proxy.metric('etcd_topology_proxy_retries_total', labels);
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    // 50 writers, each writing its own keys one after another until told to stop.
    const writers = Array.from({ length: 50 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        try {
          await write(`/load/${protocol}/${w}/${i}`);
          ok++;
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    });
    try {
      await waitFor('the write load to run', () => ok >= 200, { timeoutMs: 20_000, intervalMs: 20 });
      // Moves round the members, each while writes are in flight.
      for (let move = 0; move < 6; move++) {
        const { leader, others, idOf } = await leadership(f.cluster);
        await f.cluster.etcdctl(['move-leader', BigInt(idOf(others[0]!)).toString(16)], leader.clientUrl);
        const at = ok;
        await waitFor('writes to go on after the move', () => ok >= at + 200, { timeoutMs: 20_000, intervalMs: 20 });
      }
    } finally {
      stop = true;
      await Promise.all(writers);
      load.close();
      await agent.close();
    }
    const replayed = (await f.proxy.metric('etcd_topology_proxy_retries_total', labels)) - replayedBefore;
    console.log(`MoveLeader x6 under ${protocol} load: ${ok} writes, ${failures.length} failed, ${replayed} sent once more after "not applied"`);
    expect(failures).toEqual([]);
  });

  it('sends a member that stops answering (SIGSTOP) almost no reads while its calls are stuck', async () => {
    const { others } = await leadership(f.cluster);
    const stuck = others[0]!;
    const reads = etcdClients(f.proxy.target);
    const sent = (m: EtcdMember): Promise<number> => f.proxy.metric('etcd_topology_proxy_upstream_requests_total', { member: m.clientUrl });
    const before = await Promise.all(f.cluster.members.map(sent));
    let stop = false;
    let done = 0;
    stuck.process!.kill('SIGSTOP');
    try {
      // 10 readers, serializable reads; a read stuck on the stopped member gives up after 2 s.
      const readers = Array.from({ length: 10 }, async () => {
        while (!stop) {
          await reads
            .unary(reads.kv, 'Range', { key: Buffer.from('/f'), serializable: true }, undefined, { deadline: Date.now() + 2000 })
            .then(() => done++, () => undefined);
        }
      });
      await waitFor('reads on the other members', () => done >= 2000, { timeoutMs: 30_000, intervalMs: 50 });
      stop = true;
      await Promise.all(readers);
    } finally {
      stuck.process!.kill('SIGCONT');
      reads.close();
    }
    const after = await Promise.all(f.cluster.members.map(sent));
    const delta = after.map((n, i) => n - before[i]!);
    const total = delta.reduce((x, y) => x + y);
    const onStuck = delta[f.cluster.members.indexOf(stuck)]!;
    console.log(`reads while ${stuck.name} was stopped: ${delta.join(' / ')} (stopped member: ${onStuck} of ${total})`);
    // In rotation it would get a third of the picks until every reader hung on it; by least
    // outstanding it gets a call only when one it holds is no more than another member's in flight.
    expect(onStuck / total).toBeLessThan(0.02);
    await waitFor('the member to answer again', () => handled(stuck, 'Range').then(() => true), { timeoutMs: 10_000 });
  });
});
