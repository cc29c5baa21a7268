import { describe, expect, it } from 'vitest';
import { leaderFromStatuses, parseStatus, type StatusAnswer } from './leader.ts';

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
