import { describe, expect, it } from 'vitest';
import { nextDefragmentation } from './defrag.ts';
import type { MemberHealth } from './members.ts';
import { cluster } from './testing.ts';

const MiB = 2 ** 20;
const quota = 100 * MiB;

/** Sets dbSize / dbSizeInUse (MiB) per member index. */
function sized(spec: string, sizes: [number, number][]): MemberHealth[] {
  return cluster(spec).map((m, i) => ({ ...m, dbSize: (sizes[i]?.[0] ?? 1) * MiB, dbSizeInUse: (sizes[i]?.[1] ?? 1) * MiB }));
}

describe('nextDefragmentation', () => {
  it.each([
    { name: 'nothing near the quota', spec: 'L F F', sizes: [[50, 10], [50, 10], [50, 10]], expect: { action: 'None' } },
    { name: 'a follower at 80% first', spec: 'L F F', sizes: [[90, 20], [85, 20], [81, 20]], expect: { action: 'Defragment', member: 'main-member-1' } },
    { name: 'near the quota but nothing to reclaim', spec: 'L F F', sizes: [[50, 10], [90, 88], [50, 10]], expect: { action: 'None' } },
    { name: 'the leader only after leadership moved', spec: 'L F F', sizes: [[90, 20], [10, 5], [10, 5]], expect: { action: 'MoveLeader', from: '1000', reason: 'DefragmentLeader' } },
    { name: 'never while another member is down', spec: 'L F X', sizes: [[10, 5], [90, 20], [10, 5]], expect: { action: 'Wait', reason: 'OtherMembersUnhealthy' } },
    { name: 'never on a single member', spec: 'L', sizes: [[90, 20]], expect: { action: 'Wait', reason: 'BudgetExhausted' } },
  ] as const)('$name', ({ spec, sizes, expect: want }) => {
    const members = sized(spec, sizes as unknown as [number, number][]);
    expect(nextDefragmentation({ members, budget: { count: members.length } }, quota)).toMatchObject(want);
  });
});
