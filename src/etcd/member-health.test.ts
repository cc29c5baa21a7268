import { describe, expect, it } from 'vitest';
import { memberName, toMemberHealth } from './member-health.ts';
import { statusResponse, type EtcdMemberInfo } from './responses.ts';

const member = (ID: string, name: string, peer: string, isLearner = false): EtcdMemberInfo => ({ ID, name, peerURLs: [peer], clientURLs: [], isLearner });
/** The status a member answers with: its own ID, and the cluster's unless told otherwise. */
const status = (memberId: string, leader: string, raftIndex: number, clusterId = '7') =>
  statusResponse.parse({ header: { revision: '42', member_id: memberId, cluster_id: clusterId }, leader, raftIndex: String(raftIndex), dbSize: '2048', dbSizeInUse: '1024' });

describe('memberName', () => {
  it.each([
    [member('1', 'main-member-0', 'http://main-member-0.main-peer.etcd.svc:2380'), 'main-member-0'],
    [member('2', '', 'http://main-member-3.main-peer.etcd.svc:2380'), 'main-member-3'],
    [member('3', '', 'http://127.0.0.1:4000'), 'http://127.0.0.1:4000'],
    [{ ID: '4', name: '', peerURLs: [], clientURLs: [], isLearner: true }, '4'],
  ])('%j -> %s', (m, name) => {
    expect(memberName(m)).toBe(name);
  });
});

describe('toMemberHealth', () => {
  const members = [member('11', 'a', 'http://a:2380'), member('12', 'b', 'http://b:2380'), member('13', 'c', 'http://c:2380'), member('14', '', 'http://d.x:2380', true)];

  it('marks the leader, the unreachable and the corrupt', () => {
    const statuses = new Map<string, ReturnType<typeof status> | Error>([
      ['11', status('11', '11', 900)],
      ['12', new Error('unreachable')],
      ['13', status('13', '11', 890)],
      ['14', status('14', '11', 10)],
    ]);
    const health = toMemberHealth(members, statuses, [{ memberID: '13', alarm: 'CORRUPT' }]);
    expect(health.map((m) => [m.name, m.healthy, m.isLeader, m.isLearner, m.raftIndex])).toEqual([
      ['a', true, true, false, 900],
      ['b', false, false, false, 0],
      ['c', false, false, false, 890],
      ['d', true, false, true, 10],
    ]);
    expect(health[0]).toMatchObject({ revision: 42, dbSize: 2048, dbSizeInUse: 1024 });
  });

  it('a member that knows no leader is not healthy', () => {
    expect(toMemberHealth([members[0]!], new Map([['11', status('11', '0', 5)]]))[0]?.healthy).toBe(false);
  });

  it('a NOSPACE alarm leaves the member healthy', () => {
    expect(toMemberHealth([members[0]!], new Map([['11', status('11', '11', 5)]]), [{ memberID: '11', alarm: 'NOSPACE' }])[0]?.healthy).toBe(true);
  });

  it('a pod that answers as another member, or for another cluster, does not count for the member it stands in for', () => {
    const statuses = new Map([
      ['11', status('11', '11', 900)],
      ['12', status('99', '11', 900)],
      ['13', status('13', '11', 900, '8')],
    ]);
    const health = toMemberHealth(members.slice(0, 3), statuses, [], '7');
    expect(health.map((m) => [m.name, m.healthy, m.raftIndex])).toEqual([
      ['a', true, 900],
      ['b', false, 0],
      ['c', false, 0],
    ]);
    expect(health[0]?.identityMismatch).toBeUndefined();
    // etcdctl prints IDs in hex: 12 is c, 99 is 63, cluster 8 is 8.
    expect(health[1]?.identityMismatch).toBe('its pod answers as member 63, but etcd lists b as c');
    expect(health[2]?.identityMismatch).toBe('its pod answers as a member of cluster 8, not of this cluster 7');
  });

  it('without a cluster ID to compare (a member list from an older etcd), only the member ID is checked', () => {
    expect(toMemberHealth([members[0]!], new Map([['11', status('11', '11', 5, '8')]]))[0]).toMatchObject({ healthy: true });
  });
});
