import { describe, expect, it } from 'vitest';
import { CallAttempts, type AttemptLoss, type ReplayReason } from './attempts.ts';
import { UpstreamSet } from './upstreams.ts';

const a = 'http://10.0.0.1:2379';
const b = 'http://10.0.0.2:2379';
const c = 'http://10.0.0.3:2379';

function setup(members: string[], idempotent: boolean): { attempts: CallAttempts; set: UpstreamSet; sent: string[]; replays: ReplayReason[] } {
  // A fixed cycle of random numbers: every pair of choices comes up, and the tests stay repeatable.
  const seq = [0.99, 0.1, 0.5, 0.7, 0.3, 0.9, 0.05, 0.6];
  let i = 0;
  const set = new UpstreamSet(members, { failureWaitMs: 5000, now: () => 0, random: () => seq[i++ % seq.length]! });
  const sent: string[] = [];
  const replays: ReplayReason[] = [];
  const attempts = new CallAttempts(set, { sent: (m) => sent.push(m), replayed: (r) => replays.push(r) }, idempotent);
  return { attempts, set, sent, replays };
}

const neverSent: AttemptLoss = { neverSent: true, memberFailed: false };
const connectionLost: AttemptLoss = { neverSent: false, memberFailed: true };
const streamReset: AttemptLoss = { neverSent: false, memberFailed: false };

describe('CallAttempts: one attempt policy for gRPC and HTTP', () => {
  it.each<[name: string, idempotent: boolean, replayable: boolean, losses: AttemptLoss[], expected: boolean[], reasons: ReplayReason[]]>([
    ['a write refused by GOAWAY goes to the next member', false, true, [neverSent], [true], ['never_sent']],
    ['a write whose connection broke mid-call is never sent twice', false, true, [connectionLost], [false], []],
    ['a write reset by the member is never sent twice', false, true, [streamReset], [false], []],
    ['a read with no answer is asked once more, not a third time', true, true, [connectionLost, connectionLost], [true, false], ['unanswered_read']],
    ['a read refused twice goes on while members are left', true, true, [neverSent, neverSent], [true, false], ['never_sent']],
    ['nothing is sent again once the request is no longer held whole', true, false, [neverSent], [false], []],
  ])('%s', (_name, idempotent, replayable, losses, expected, reasons) => {
    const { attempts, replays } = setup([a, b, c].slice(0, 2), idempotent);
    const results: boolean[] = [];
    for (const loss of losses) {
      expect(attempts.next()).toBeDefined();
      results.push(attempts.lost(loss, replayable));
    }
    expect(results).toEqual(expected);
    expect(replays).toEqual(reasons);
  });

  it('sends a call no member has seen to a member that is held off rather than failing it; a read with no answer only to an available one', () => {
    const write = setup([a, b], false);
    write.set.markFailed(b);
    expect(write.attempts.next()).toBe(a);
    expect(write.attempts.lost({ neverSent: true, memberFailed: true }, true)).toBe(true);
    expect(write.attempts.next()).toBe(b);
    expect(write.attempts.lost({ neverSent: true, memberFailed: true }, true)).toBe(false);
    const read = setup([a, b], true);
    read.set.markFailed(b);
    expect(read.attempts.next()).toBe(a);
    expect(read.attempts.lost(connectionLost, true)).toBe(false);
  });

  it('never picks a member twice for one call, and counts every attempt per member', () => {
    const { attempts, sent } = setup([a, b, c], true);
    const picked = [attempts.next(), attempts.next(), attempts.next(), attempts.next()];
    expect(new Set(picked.slice(0, 3))).toEqual(new Set([a, b, c]));
    expect(picked[3]).toBeUndefined();
    expect(sent).toEqual(picked.slice(0, 3));
    expect(attempts.unavailable()).toContain('failed and no other member is available');
  });

  it('holds off a member whose connection failed, and only that one', () => {
    const { attempts, set } = setup([a, b], false);
    const first = attempts.next()!;
    attempts.lost(connectionLost, false);
    expect(set.isAvailable(first)).toBe(false);
    const other = first === a ? b : a;
    expect(set.isAvailable(other)).toBe(true);
    const second = setup([a, b], false);
    second.attempts.next();
    second.attempts.lost(streamReset, false);
    expect(second.set.list().every((m) => second.set.isAvailable(m.url))).toBe(true);
  });

  it('records an answer as the member answering, and says when no member was available at all', () => {
    const { attempts, set } = setup([a], true);
    attempts.next();
    attempts.answered();
    expect(set.anyAnswering()).toBe(true);
    set.markFailed(a);
    // A member held off is still asked when it is the only one (UpstreamSet.pick); none at all is unavailable.
    const none = setup([], true);
    expect(none.attempts.next()).toBeUndefined();
    expect(none.attempts.unavailable()).toBe('no etcd member is available');
  });

  it('sends a write to the known leader first, and spreads it like a read when the leader is unknown, held off or tried', () => {
    const { set } = setup([a, b, c], false);
    const write = (): CallAttempts => new CallAttempts(set, { sent: () => undefined, replayed: () => undefined }, false, true);
    expect(new Set(Array.from({ length: 12 }, () => write().next()))).toEqual(new Set([a, b, c])); // unknown: spread
    set.setLeader(b);
    expect(Array.from({ length: 4 }, () => write().next())).toEqual([b, b, b, b]);
    const refused = write();
    expect(refused.next()).toBe(b);
    expect(refused.lost(neverSent, true)).toBe(true);
    expect(refused.next()).not.toBe(b);
    // A read still rotates, leader or not.
    const read = new CallAttempts(set, { sent: () => undefined, replayed: () => undefined }, true, false);
    expect([read.next(), new CallAttempts(set, { sent: () => undefined, replayed: () => undefined }, true).next()]).not.toEqual([b, b]);
    set.markFailed(b);
    expect(write().next()).not.toBe(b);
    set.setLeader('http://not-a-member:2379');
    expect(write().next()).toBeDefined();
  });

  it('counts each attempt as outstanding on its member until it is lost or finished', () => {
    const { attempts, set } = setup([a, b], true);
    const load = (): number[] => set.list().map((m) => m.outstanding);
    const first = attempts.next()!;
    expect(set.list().find((m) => m.url === first)!.outstanding).toBe(1);
    attempts.lost(connectionLost, true);
    expect(load()).toEqual([0, 0]);
    attempts.next();
    expect(load().reduce((x, y) => x + y)).toBe(1);
    attempts.finish();
    attempts.finish();
    expect(load()).toEqual([0, 0]);
  });

  it('sends a call etcd did not apply once more, to the leader as learned again even when it was tried', () => {
    const { set, replays } = setup([a, b, c], false);
    const write = new CallAttempts(set, { sent: () => undefined, replayed: (r) => replays.push(r) }, false, true);
    set.setLeader(a);
    expect(write.next()).toBe(a);
    expect(write.notApplied(true)).toBe(true);
    set.setLeader(b);
    expect(write.nextAfterNotApplied()).toBe(b);
    expect(write.notApplied(true)).toBe(false); // once per call
    const again = new CallAttempts(set, { sent: () => undefined, replayed: (r) => replays.push(r) }, false, true);
    expect(again.next()).toBe(b);
    expect(again.notApplied(true)).toBe(true);
    expect(again.nextAfterNotApplied()).toBe(b); // leadership came back to the same member
    const held = new CallAttempts(set, { sent: () => undefined, replayed: (r) => replays.push(r) }, false, true);
    held.next();
    expect(held.notApplied(false)).toBe(false); // the request is no longer held whole
    expect(replays).toEqual(['not_applied', 'not_applied']);
    expect(set.list().every((m) => m.outstanding === 0 || m.url === b)).toBe(true);
  });

  it('does not ask a held-off member again for a read that may have been answered', () => {
    const { attempts, set } = setup([a, b], true);
    const first = attempts.next()!;
    set.markFailed(first === a ? b : a);
    expect(attempts.lost(connectionLost, true)).toBe(false);
  });
});
