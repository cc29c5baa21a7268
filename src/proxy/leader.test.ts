import { Readable } from 'node:stream';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createRootLogger } from '../telemetry/logger.ts';
import { frameMessage } from './grpc-frame.ts';
import type { HttpUpstreams } from './http1-upstreams.ts';
import { LeaderBoundStream, LeaderTracker, leaderFromStatuses, parseStatus, type StatusAnswer } from './leader.ts';
import { ProxyMetrics } from './metrics.ts';
import { MessageWriter } from './protobuf.ts';
import { UpstreamSet } from './upstreams.ts';

const a = 'http://10.0.0.1:2379';
const b = 'http://10.0.0.2:2379';
const c = 'http://10.0.0.3:2379';
const s = (url: string, memberId: string, leaderId: string, term: number): StatusAnswer => ({ url, memberId, leaderId, term });

describe('leaderFromStatuses: the leader is a member that names itself at the highest term', () => {
  it.each<[name: string, answers: StatusAnswer[], leader: string | undefined, term: number | undefined]>([
    ['every member agrees', [s(a, '1', '2', 5), s(b, '2', '2', 5), s(c, '3', '2', 5)], b, 5],
    ['the leader alone answered', [s(b, '2', '2', 5)], b, 5],
    ['followers name a leader that did not answer: not trusted', [s(a, '1', '2', 5), s(c, '3', '2', 5)], undefined, 5],
    ['an old leader cut off still names itself at an older term', [s(a, '1', '1', 4), s(b, '2', '2', 5), s(c, '3', '2', 5)], b, 5],
    ['an election is running: a higher term with no leader yet', [s(a, '1', '1', 4), s(b, '2', '0', 6)], undefined, 6],
    ['a follower lags behind a move: the new leader names itself', [s(a, '1', '1', 5), s(b, '2', '2', 6)], b, 6],
    ['no answers', [], undefined, undefined],
  ])('%s', (_name, answers, leader, term) => {
    expect(leaderFromStatuses(answers)).toEqual({ leader, term });
  });
});

describe('parseStatus: a JSON gateway Status answer', () => {
  it.each<[body: unknown, answer: Omit<StatusAnswer, 'url'> | undefined]>([
    [{ header: { member_id: '10276657743932975437', raft_term: '3' }, leader: '10276657743932975437', raftTerm: '3' }, { memberId: '10276657743932975437', leaderId: '10276657743932975437', term: 3 }],
    [{ header: { memberId: '7' }, raft_term: '9' }, { memberId: '7', leaderId: '0', term: 9 }],
    [{ header: { member_id: '7', raft_term: 4 }, leader: 8 }, { memberId: '7', leaderId: '8', term: 4 }],
    [{ header: {}, leader: '1', raftTerm: '3' }, undefined], // who answered is not known
    [{ header: { member_id: '7' }, raftTerm: 'x' }, undefined],
    ['nope', undefined],
  ])('%j', (body, answer) => {
    expect(parseStatus(a, body)).toEqual(answer === undefined ? undefined : { url: a, ...answer });
  });
});

describe('LeaderBoundStream: a LeaseKeepAlive stream follows the leader', () => {
  // Status answers from members by URL, served to the tracker as the JSON gateway would.
  function setup(statuses: Map<string, { memberId: string; leader: string; term: number }>) {
    const upstreams = new UpstreamSet([a, b, c], { failureWaitMs: 1000, random: () => 0 });
    const probed: string[] = [];
    const http = {
      request: (url: string) => {
        probed.push(url);
        const st = statuses.get(url)!;
        const body = { header: { member_id: st.memberId, raft_term: String(st.term) }, leader: st.leader, raft_term: String(st.term) };
        return Promise.resolve({ statusCode: 200, headers: {}, body: Readable.from([Buffer.from(JSON.stringify(body))]) });
      },
    } as unknown as HttpUpstreams;
    const metrics = new ProxyMetrics(new Registry());
    const tracker = new LeaderTracker({ upstreams, http, metrics, log: createRootLogger({ name: 'test', level: 'silent' }) });
    return { tracker, upstreams, probed, metrics };
  }
  const keepAliveResponse = (term: number): Buffer => {
    const header = new MessageWriter().varint(1, 7).varint(2, 1).varint(3, 40).varint(4, term).finish();
    return frameMessage(new MessageWriter().bytesField(1, header).varint(2, 99).varint(3, 30).finish());
  };

  it('is told to move once a response carries a higher term and the tracker learns that another member leads', async () => {
    const statuses = new Map([[a, { memberId: '1', leader: '1', term: 5 }], [b, { memberId: '2', leader: '1', term: 5 }], [c, { memberId: '3', leader: '1', term: 5 }]]);
    const { tracker, upstreams, probed } = setup(statuses);
    await tracker.relearn();
    expect(upstreams.knownLeader).toBe(a);
    const moved: string[] = [];
    const stream = new LeaderBoundStream(tracker, a, (leader) => moved.push(leader));
    // Same term: nothing asked, nothing moved. Split across DATA frames, as the member may send it.
    const same = keepAliveResponse(5);
    probed.length = 0;
    stream.observe(same.subarray(0, 7));
    stream.observe(same.subarray(7));
    await new Promise((r) => setTimeout(r, 120));
    expect(probed).toEqual([]);
    expect(moved).toEqual([]);
    // A MoveLeader to b: the old leader, now a follower, answers the keepalive at term 6.
    for (const [url, st] of statuses) statuses.set(url, { ...st, leader: '2', term: 6 });
    stream.observe(keepAliveResponse(6));
    await waitUntil(() => moved.length > 0);
    expect(moved).toEqual([b]);
    expect(upstreams.knownLeader).toBe(b);
  });

  it('moves a stream opened while the leader was not known once it is learned, and leaves one on the leader', async () => {
    const statuses = new Map([[a, { memberId: '1', leader: '2', term: 3 }], [b, { memberId: '2', leader: '2', term: 3 }], [c, { memberId: '3', leader: '2', term: 3 }]]);
    const { tracker } = setup(statuses);
    const moved: string[] = [];
    const onA = new LeaderBoundStream(tracker, a, (leader) => moved.push(`a->${leader}`));
    const onB = new LeaderBoundStream(tracker, b, (leader) => moved.push(`b->${leader}`));
    await tracker.relearn();
    expect(moved).toEqual([`a->${b}`]);
    onA.close();
    onB.close();
  });

  it('hears nothing once closed', async () => {
    const statuses = new Map([[a, { memberId: '1', leader: '2', term: 3 }], [b, { memberId: '2', leader: '2', term: 3 }], [c, { memberId: '3', leader: '2', term: 3 }]]);
    const { tracker } = setup(statuses);
    const moved: string[] = [];
    new LeaderBoundStream(tracker, a, (leader) => moved.push(leader)).close();
    await tracker.relearn();
    expect(moved).toEqual([]);
  });
});

async function waitUntil(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
}
