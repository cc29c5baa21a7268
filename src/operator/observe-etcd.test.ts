import { describe, expect, it } from 'vitest';
import { EtcdAdminClient } from '../etcd/admin-client.ts';
import { EtcdError } from '../etcd/errors.ts';
import { alarmResponse, memberListResponse, statusResponse, type MemberListResponse, type StatusResponse } from '../etcd/responses.ts';
import { observeEtcd, type EtcdReader, type MemberEndpoint } from './observe-etcd.ts';

const unavailable = (url: string, operation: string): EtcdError => new EtcdError('ETOP_ETCD_UNAVAILABLE', { endpoint: url, operation, detail: 'no answer within 3000ms' });
const member = (id: string, name: string) => ({ ID: id, name, peerURLs: [`https://${name}.main-peer.ns.svc:2380`], clientURLs: [], isLearner: false });
const status = (memberId: string, leader = '1'): StatusResponse =>
  statusResponse.parse({ header: { revision: '5', member_id: memberId, cluster_id: '7' }, leader, raftIndex: '10', dbSize: '1', dbSizeInUse: '1' });

/**
 * A fake etcd behind the reader: each URL answers as a member or never answers (its call fails after
 * "a deadline", a later tick), and every call is recorded with the number of calls in flight.
 */
function fakeEtcd(answers: Record<string, { id: string } | 'down'>, list: MemberListResponse, options: { quorum?: boolean } = {}) {
  const calls: string[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const call = async <T>(url: string, operation: string, answer: () => T): Promise<T> => {
    calls.push(`${operation} ${url}`);
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    try {
      await new Promise((r) => setTimeout(r, answers[url] === 'down' ? 20 : 1));
      if (answers[url] === 'down' || answers[url] === undefined) throw unavailable(url, operation);
      return answer();
    } finally {
      inFlight--;
    }
  };
  const reader: EtcdReader = {
    status: (url) => call(url, 'status', () => status((answers[url] as { id: string }).id)),
    memberList: (url, opts) =>
      call(url, opts?.linearizable === false ? 'serializable member list' : 'member list', () => {
        if (opts?.linearizable !== false && options.quorum === false) throw unavailable(url, 'member list');
        return list;
      }),
    alarms: (url) => call(url, 'alarm list', () => alarmResponse.parse({ header: {}, alarms: [] })),
    // The real one: tries each endpoint in turn while they are unavailable.
    onFirstAvailable: (urls, fn) => new EtcdAdminClient().onFirstAvailable(urls, fn),
  };
  return { reader, calls, maxInFlight: () => maxInFlight };
}

const endpoints: MemberEndpoint[] = [
  { name: 'main-member-0', url: 'https://10.0.0.1:2379' },
  { name: 'main-member-1', url: 'https://10.0.0.2:2379' },
];
const threeMembers = memberListResponse.parse({ header: { cluster_id: '7' }, members: [member('1', 'main-member-0'), member('2', 'main-member-1'), member('3', 'main-member-2')] });

describe('observeEtcd', () => {
  it('asks every endpoint for its status at once, and only those that answered for the member list and alarms', async () => {
    const etcd = fakeEtcd({ 'https://10.0.0.1:2379': 'down', 'https://10.0.0.2:2379': { id: '2' } }, threeMembers);
    const got = await observeEtcd(etcd.reader, endpoints);
    expect(etcd.calls).toEqual(['status https://10.0.0.1:2379', 'status https://10.0.0.2:2379', 'member list https://10.0.0.2:2379', 'alarm list https://10.0.0.2:2379']);
    expect(etcd.maxInFlight()).toBe(2);
    expect('members' in got && got.members.map((m) => [m.name, m.healthy])).toEqual([
      ['main-member-0', false],
      ['main-member-1', true],
      // Listed by etcd, no running pod: not dialled, not healthy.
      ['main-member-2', false],
    ]);
  });

  it('never dials a member etcd lists without an endpoint (its pod is not running)', async () => {
    const etcd = fakeEtcd({ 'https://10.0.0.1:2379': { id: '1' }, 'https://10.0.0.2:2379': { id: '2' } }, threeMembers);
    const got = await observeEtcd(etcd.reader, endpoints);
    expect(etcd.calls.filter((c) => c.startsWith('status'))).toEqual(['status https://10.0.0.1:2379', 'status https://10.0.0.2:2379']);
    expect('members' in got && got.members.map((m) => [m.name, m.healthy, m.isLeader])).toEqual([
      ['main-member-0', true, true],
      ['main-member-1', true, false],
      ['main-member-2', false, false],
    ]);
  });

  it('falls back to a serializable member list without quorum, from a member that answers', async () => {
    const etcd = fakeEtcd({ 'https://10.0.0.1:2379': 'down', 'https://10.0.0.2:2379': { id: '2' } }, threeMembers, { quorum: false });
    const got = await observeEtcd(etcd.reader, endpoints);
    expect(etcd.calls).toContain('serializable member list https://10.0.0.2:2379');
    expect(etcd.calls).not.toContain('member list https://10.0.0.1:2379');
    expect('members' in got && got.members).toHaveLength(3);
  });

  it('says what each member answered when none answers, and asks nothing more', async () => {
    const etcd = fakeEtcd({ 'https://10.0.0.1:2379': 'down', 'https://10.0.0.2:2379': 'down' }, threeMembers);
    const got = await observeEtcd(etcd.reader, endpoints);
    expect(etcd.calls).toEqual(['status https://10.0.0.1:2379', 'status https://10.0.0.2:2379']);
    expect(got).toEqual({
      error: 'etcd status at https://10.0.0.1:2379 failed: no answer within 3000ms; etcd status at https://10.0.0.2:2379 failed: no answer within 3000ms',
    });
  });

  it('dials nothing without an endpoint', async () => {
    const etcd = fakeEtcd({}, threeMembers);
    expect(await observeEtcd(etcd.reader, [])).toEqual({ error: 'no member pod is running with an IP yet' });
    expect(etcd.calls).toEqual([]);
  });
});
