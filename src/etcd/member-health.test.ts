import { describe, expect, it } from 'vitest';
import { memberName, toMemberHealth } from './member-health.ts';
import { statusResponse, type EtcdMemberInfo } from './responses.ts';

const member = (ID: string, name: string, peer: string, isLearner = false): EtcdMemberInfo => ({ ID, name, peerURLs: [peer], clientURLs: [], isLearner });
const status = (leader: string, raftIndex: number) =>
  statusResponse.parse({ header: { revision: '42', member_id: '1' }, leader, raftIndex: String(raftIndex), dbSize: '2048', dbSizeInUse: '1024' });

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
      ['11', status('11', 900)],
      ['12', new Error('unreachable')],
      ['13', status('11', 890)],
      ['14', status('11', 10)],
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
    expect(toMemberHealth([members[0]!], new Map([['11', status('0', 5)]]))[0]?.healthy).toBe(false);
  });

  it('a NOSPACE alarm leaves the member healthy', () => {
    expect(toMemberHealth([members[0]!], new Map([['11', status('11', 5)]]), [{ memberID: '11', alarm: 'NOSPACE' }])[0]?.healthy).toBe(true);
  });
});
