import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdAdminClient, memberIdHex } from '../../src/etcd/admin-client.ts';
import { EtcdError } from '../../src/etcd/errors.ts';
import { toMemberHealth } from '../../src/etcd/member-health.ts';
import type { StatusResponse } from '../../src/etcd/responses.ts';
import { EtcdCluster, printEtcdLogsOnFailure } from '../harness/etcd-cluster.ts';
import { freePort, StopWaiting, waitFor } from '../harness/ports.ts';

describe('etcd admin client against a real 3-member cluster', () => {
  let cluster: EtcdCluster;
  const client = new EtcdAdminClient({ timeoutMs: 3_000 });
  const url = (name: string): string => cluster.member(name).clientUrl;

  /** Each running member's status, keyed by member name. */
  async function statuses(): Promise<Map<string, StatusResponse>> {
    const running = cluster.members.filter((m) => m.process !== undefined);
    return new Map(await Promise.all(running.map(async (m) => [m.name, await client.status(m.clientUrl)] as const)));
  }

  /** The current leader's name, once every running voter agrees on one. */
  async function leaderName(): Promise<string> {
    const { members } = await client.memberList(cluster.endpoints.split(',')[0]!);
    return waitFor('a leader every member agrees on', async () => {
      const leaders = new Set([...(await statuses()).values()].map((s) => s.leader));
      if (leaders.size !== 1 || leaders.has('0')) return false;
      return members.find((m) => leaders.has(m.ID))?.name;
    });
  }

  beforeAll(async () => {
    cluster = await EtcdCluster.start({ size: 3 });
  });
  printEtcdLogsOnFailure(() => cluster);
  afterAll(async () => {
    await client.close();
    await cluster?.stop();
  });

  it('lists the members with their names, peer and client URLs', async () => {
    const { members, header } = await client.memberList(url('m0'));
    expect(members.map((m) => m.name).sort()).toEqual(['m0', 'm1', 'm2']);
    for (const m of members) {
      expect(m.clientURLs).toEqual([url(m.name)]);
      expect(m.peerURLs).toEqual([cluster.member(m.name).peerUrl]);
      expect(m.isLearner).toBe(false);
      expect(m.ID).toMatch(/^\d+$/);
    }
    expect(header.cluster_id).toMatch(/^\d+$/);
    // The hex form is what etcdctl prints.
    const table = await cluster.etcdctl(['member', 'list']);
    for (const m of members) expect(table).toContain(memberIdHex(m.ID));
  });

  it('reads each member status: one leader, raft index, database size, version', async () => {
    const all = await statuses();
    const leaders = new Set([...all.values()].map((s) => s.leader));
    expect(leaders.size).toBe(1);
    const { members } = await client.memberList(url('m1'));
    expect(members.map((m) => m.ID)).toContain([...leaders][0]);
    for (const s of all.values()) {
      expect(s.version).toBe('3.6.16');
      expect(s.raftIndex).toBeGreaterThan(0);
      expect(s.dbSize).toBeGreaterThan(0);
      expect(s.errors).toEqual([]);
    }
    const health = toMemberHealth(members, new Map(members.map((m) => [m.ID, all.get(m.name)!])));
    expect(health.filter((m) => m.isLeader)).toHaveLength(1);
    expect(health.every((m) => m.healthy)).toBe(true);
  });

  it('reports health and no alarms on a healthy cluster', async () => {
    expect(await client.health(url('m2'))).toEqual({ healthy: true, reason: '' });
    expect((await client.alarms(url('m0'))).alarms).toEqual([]);
  });

  it('moves leadership to a chosen follower', async () => {
    const leader = await leaderName();
    const target = ['m0', 'm1', 'm2'].find((n) => n !== leader)!;
    const { members } = await client.memberList(url(leader));
    const targetId = members.find((m) => m.name === target)!.ID;
    await client.moveLeader(url(leader), targetId);
    await waitFor(`leadership on ${target}`, async () => (await client.status(url(target))).leader === targetId, { timeoutMs: 10_000 });
    expect(await leaderName()).toBe(target);
  });

  it('refuses to move leadership at an endpoint that is not the leader', async () => {
    const leader = await leaderName();
    const follower = ['m0', 'm1', 'm2'].find((n) => n !== leader)!;
    const { members } = await client.memberList(url(leader));
    const other = members.find((m) => m.name !== leader && m.name !== follower)!;
    const err = await client.moveLeader(url(follower), other.ID).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EtcdError);
    expect(err).toMatchObject({ code: 'ETOP_ETCD_REQUEST', operation: 'move leader', endpoint: url(follower) });
    expect((err as Error).message).toContain('not leader');
  });

  it('defragments one member and gives back the space of deleted, compacted keys', async () => {
    const m = url('m2');
    const value = Buffer.alloc(8192, 'x').toString('base64');
    for (let i = 0; i < 300; i++) await gateway(m, '/v3/kv/put', { key: b64(`bulk/${i}`), value });
    await gateway(m, '/v3/kv/deleterange', { key: b64('bulk/'), range_end: b64('bulk0') });
    const { header } = await client.status(m);
    await gateway(m, '/v3/kv/compaction', { revision: String(header.revision), physical: true });
    // Compaction leaves the file as large as before; only defragmentation rewrites it with the live keys.
    const before = await client.status(m);
    expect(before.dbSize).toBeGreaterThan(2_000_000);
    await client.defragment(m);
    const after = await client.status(m);
    expect(after.dbSize).toBeLessThan(before.dbSize - 1_000_000);
  });

  it('adds a learner, refuses to promote it before it has caught up, and removes it', async () => {
    const deadPeer = `http://127.0.0.1:${await freePort()}`;
    // etcd refuses reconfiguration as "unhealthy cluster" (UNAVAILABLE) until every member has been
    // connected for a few seconds, as after the leader moves; the operator requeues, the test polls.
    const added = await waitFor('member add', async () => {
      try {
        return await client.memberAdd(url('m0'), [deadPeer]);
      } catch (err) {
        if (err instanceof EtcdError && err.code === 'ETOP_ETCD_UNAVAILABLE' && err.message.includes('unhealthy cluster')) return false;
        throw new StopWaiting(err);
      }
    }, { timeoutMs: 30_000 });
    expect(added.member).toMatchObject({ name: '', peerURLs: [deadPeer], isLearner: true });
    expect(added.members.map((m) => m.ID)).toContain(added.member.ID);
    const err = await client.memberPromote(url('m0'), added.member.ID).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ETOP_ETCD_REQUEST', operation: 'member promote' });
    expect((err as Error).message).toContain('in sync with leader');
    await client.memberRemove(url('m0'), added.member.ID);
    expect((await client.memberList(url('m1'))).members.map((m) => m.ID)).not.toContain(added.member.ID);
  });

  it('promotes a started learner once it has caught up, then removes it', async () => {
    await cluster.add('m3', { learner: true });
    const { members } = await client.memberList(url('m0'));
    const learner = members.find((m) => m.name === 'm3')!;
    expect(learner.isLearner).toBe(true);
    // The learner serves its own status; it has caught up when its raft index reaches the leader's.
    const leaderId = (await client.status(url('m0'))).leader;
    const leaderUrl = members.find((m) => m.ID === leaderId)!.clientURLs[0]!;
    await waitFor('learner m3 caught up and promoted', async () => {
      const [l, s] = await Promise.all([client.status(leaderUrl), client.status(url('m3'))]);
      if (s.raftIndex < l.raftIndex - 10) return false;
      try {
        await client.memberPromote(url('m0'), learner.ID);
        return true;
      } catch (err) {
        // etcd may still judge the learner behind; that refusal is the only one worth retrying.
        if (err instanceof EtcdError && err.message.includes('in sync with leader')) return false;
        throw new StopWaiting(err);
      }
    }, { timeoutMs: 30_000 });
    const promoted = (await client.memberList(url('m1'))).members.find((m) => m.ID === learner.ID);
    expect(promoted?.isLearner).toBe(false);

    // Never remove the leader first: move leadership off m3 if it got it.
    if ((await leaderName()) === 'm3') {
      await client.moveLeader(url('m3'), members.find((m) => m.name === 'm0')!.ID);
      await waitFor('leadership off m3', async () => (await leaderName()) !== 'm3');
    }
    await client.memberRemove(url('m0'), learner.ID);
    expect((await client.memberList(url('m1'))).members.map((m) => m.name).sort()).toEqual(['m0', 'm1', 'm2']);
    await cluster.kill('m3');
  });

  it('names the endpoint and operation when a member is unreachable, and fails over', async () => {
    await cluster.kill('m2');
    const dead = url('m2');
    const err = await client.status(dead).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EtcdError);
    expect(err).toMatchObject({ code: 'ETOP_ETCD_UNAVAILABLE', endpoint: dead, operation: 'status' });
    expect((err as Error).message).toMatch(new RegExp(`^etcd status at ${dead} failed: .*ECONNREFUSED`));
    const list = await client.onFirstAvailable([dead, url('m1')], (e) => client.memberList(e));
    expect(list.members).toHaveLength(3);
    await cluster.restart('m2');
  });

  it('gives up after the per-call timeout on a member that accepts but never answers', async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const endpoint = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
    try {
      const started = Date.now();
      const err = await client.memberList(endpoint, { timeoutMs: 300 }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ETOP_ETCD_UNAVAILABLE', operation: 'member list', endpoint });
      expect((err as Error).message).toContain('no answer within 300ms');
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      silent.close();
    }
  });
});

function b64(s: string): string {
  return Buffer.from(s).toString('base64');
}

/** A KV call through the JSON gateway, to give the maintenance calls something to work on. */
async function gateway(endpoint: string, path: string, body: unknown): Promise<void> {
  const res = await fetch(new URL(path, endpoint), { method: 'POST', body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`);
}
