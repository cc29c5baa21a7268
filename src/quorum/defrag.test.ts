import { describe, expect, it } from 'vitest';
import { defragReason, nextMaintenance, type DefragRule, type MaintenanceInput } from './defrag.ts';
import type { MemberHealth } from './members.ts';
import { cluster } from './testing.ts';

const MiB = 2 ** 20;
const rule: DefragRule = { enabled: true, quotaBackendBytes: 100 * MiB, quotaUsageAbove: 0.8, minReclaimBytes: 64 * MiB, inWindow: true };

/** Sets dbSize / dbSizeInUse (MiB) per member index. */
function sized(spec: string, sizes: [number, number][]): MemberHealth[] {
  return cluster(spec).map((m, i) => ({ ...m, dbSize: (sizes[i]?.[0] ?? 1) * MiB, dbSizeInUse: (sizes[i]?.[1] ?? 1) * MiB, revision: 500 }));
}

const upkeep = (over: Partial<MaintenanceInput> = {}): MaintenanceInput => ({ rule, noSpaceRecovery: true, alarms: [], backingOff: [], ...over });

describe('defragReason', () => {
  it.each([
    { name: 'at 80% of the quota with a tenth free', size: [80, 70], want: 'DatabaseNearQuota' },
    { name: 'at 90% of the quota with nothing free', size: [90, 89], want: undefined },
    { name: 'small, 64Mi free', size: [70, 6], want: 'SpaceReclaimable' },
    { name: 'small, 63Mi free', size: [70, 7], want: undefined },
    { name: 'just defragmented', size: [20, 20], want: undefined },
  ] as const)('$name', ({ size, want }) => {
    const [m] = sized('L', [[size[0], size[1]]]);
    expect(defragReason(m!, rule)).toBe(want);
  });

  it('honours quotaUsageAbove and minReclaimBytes as given', () => {
    const [m] = sized('L', [[50, 40]]);
    expect(defragReason(m!, { ...rule, quotaUsageAbove: 0.5 })).toBe('DatabaseNearQuota');
    expect(defragReason(m!, { ...rule, minReclaimBytes: 10 * MiB })).toBe('SpaceReclaimable');
    expect(defragReason(m!, rule)).toBeUndefined();
  });
});

describe('nextMaintenance: defragmentation by rule', () => {
  it.each([
    { name: 'nothing over the rule', spec: 'L F F', sizes: [[50, 40], [50, 40], [50, 40]], expect: { action: 'None', reason: 'NothingToDefragment' } },
    { name: 'a follower first, the one with most to reclaim', spec: 'L F F', sizes: [[90, 20], [85, 60], [81, 20]], expect: { action: 'Defragment', member: 'main-member-2', reason: 'DatabaseNearQuota' } },
    { name: 'near the quota but nothing to reclaim', spec: 'L F F', sizes: [[50, 10], [90, 88], [50, 45]], expect: { action: 'None', reason: 'NothingToDefragment' } },
    { name: 'the leader only after leadership moved', spec: 'L F F', sizes: [[90, 20], [10, 9], [10, 9]], expect: { action: 'MoveLeader', from: '1000', reason: 'DefragmentLeader' } },
    { name: 'never while another member is down', spec: 'L F X', sizes: [[10, 5], [90, 20], [10, 5]], expect: { action: 'Wait', reason: 'WaitingForHealthyMembers' } },
    { name: 'never on a single member', spec: 'L', sizes: [[90, 20]], expect: { action: 'Wait', reason: 'BudgetExhausted' } },
    { name: 'never without a leader', spec: 'F F F', sizes: [[90, 20], [90, 20], [90, 20]], expect: { action: 'Wait', reason: 'NoLeader' } },
    { name: 'a follower behind the leader must catch up first', spec: 'L@5000 F@5000 F@10', sizes: [[10, 5], [90, 20], [10, 5]], expect: { action: 'Wait', reason: 'WaitingForHealthyMembers' } },
  ] as const)('$name', ({ spec, sizes, expect: want }) => {
    const members = sized(spec, sizes as unknown as [number, number][]);
    expect(nextMaintenance({ members, budget: { count: members.length } }, upkeep())).toMatchObject(want);
  });

  const full = (): MemberHealth[] => sized('L F F', [[90, 20], [90, 20], [90, 20]]);
  const view = (members: MemberHealth[]) => ({ members, budget: { count: 3 } });

  it('never two at once: waits while a defragmentation is in flight', () => {
    expect(nextMaintenance(view(full()), upkeep({ inFlight: 'main-member-1' }))).toMatchObject({ action: 'Wait', reason: 'DefragmentationInProgress' });
  });

  it('waits for the pod of the member defragmented last to be ready again', () => {
    const step = nextMaintenance(view(full()), upkeep(), ['main-member-1']);
    expect(step).toMatchObject({ action: 'Wait', reason: 'WaitingForHealthyMembers' });
    expect(step.message).toContain('main-member-1');
  });

  it('leaves a member that failed alone during its back-off, and takes the next', () => {
    expect(nextMaintenance(view(full()), upkeep({ backingOff: ['main-member-1'] }))).toMatchObject({ action: 'Defragment', member: 'main-member-2' });
    expect(nextMaintenance(view(full()), upkeep({ backingOff: ['main-member-0', 'main-member-1', 'main-member-2'] }))).toMatchObject({ action: 'None', reason: 'DefragmentationBackoff' });
  });

  it('leaves a member defragmented a short while ago alone, so steady churn cannot make it a loop', () => {
    expect(nextMaintenance(view(full()), upkeep({ coolingDown: ['main-member-1'] }))).toMatchObject({ action: 'Defragment', member: 'main-member-2' });
    expect(nextMaintenance(view(full()), upkeep({ coolingDown: ['main-member-0', 'main-member-1', 'main-member-2'] }))).toMatchObject({ action: 'None', reason: 'DefragmentedRecently' });
    const recovery = upkeep({ coolingDown: ['main-member-1', 'main-member-2'], alarms: [{ memberId: '1000', alarm: 'NOSPACE' }], recovery: { compacted: true, compactionSettled: true, defragmented: [] } });
    expect(nextMaintenance(view(full()), recovery)).toMatchObject({ action: 'Defragment', member: 'main-member-1', reason: 'NoSpaceRecovery' });
  });

  it('does nothing outside the window, and nothing when disabled', () => {
    expect(nextMaintenance(view(full()), upkeep({ rule: { ...rule, inWindow: false } }))).toMatchObject({ action: 'None', reason: 'OutsideMaintenanceWindow' });
    expect(nextMaintenance(view(full()), upkeep({ rule: { ...rule, enabled: false } }))).toMatchObject({ action: 'None', reason: 'DefragmentationDisabled' });
  });

  it('with maxUnavailable 0 never defragments a healthy member', () => {
    expect(nextMaintenance({ members: full(), budget: { count: 3, maxUnavailable: 0 } }, upkeep())).toMatchObject({ action: 'Wait', reason: 'BudgetExhausted' });
  });

  it('states the sizes in its message', () => {
    const step = nextMaintenance(view(sized('L F F', [[10, 9], [85, 20], [10, 9]])), upkeep());
    expect(step.message).toBe('defragmenting main-member-1: its database is 85.0 MiB, at least 80% of the 100.0 MiB quota, with 65.0 MiB to reclaim');
  });
});

describe('nextMaintenance: alarms', () => {
  const members = (): MemberHealth[] => sized('F L F', [[100, 30], [100, 30], [100, 30]]);
  const view = (m: MemberHealth[]) => ({ members: m, budget: { count: 3 } });
  const nospace = [{ memberId: '1001', alarm: 'NOSPACE' as const }];

  it.each([
    { name: 'NOSPACE: compact to the current revision first', recovery: undefined, expect: { action: 'Compact', revision: 500, reason: 'NoSpaceRecovery' } },
    { name: 'then a follower', recovery: { compacted: true, defragmented: [] }, expect: { action: 'Defragment', member: 'main-member-0', reason: 'NoSpaceRecovery' } },
    { name: 'then the other follower', recovery: { compacted: true, defragmented: ['main-member-0'] }, expect: { action: 'Defragment', member: 'main-member-2' } },
    { name: 'the leader after moving leadership', recovery: { compacted: true, defragmented: ['main-member-0', 'main-member-2'] }, expect: { action: 'MoveLeader', from: '1001', reason: 'NoSpaceRecovery' } },
    { name: 'then disarm', recovery: { compacted: true, defragmented: ['main-member-0', 'main-member-1', 'main-member-2'] }, expect: { action: 'DisarmAlarms', memberIds: ['1001'] } },
    { name: 'the alarm came back after a recovery: back off', recovery: { compacted: false, defragmented: [], retryAfter: '2026-01-01T00:05:00.000Z' }, expect: { action: 'Wait', reason: 'NoSpaceRecoveryBackoff' } },
  ])('$name', ({ recovery, expect: want }) => {
    expect(nextMaintenance(view(members()), upkeep({ alarms: nospace, ...(recovery ? { recovery } : {}) }))).toMatchObject(want);
  });

  it('NOSPACE recovery ignores the window and the size rule, but not the budget', () => {
    const small = sized('F L F', [[5, 5], [5, 5], [5, 5]]);
    const off = upkeep({ alarms: nospace, rule: { ...rule, enabled: false, inWindow: false }, recovery: { compacted: true, compactionSettled: true, defragmented: [] } });
    expect(nextMaintenance(view(small), off)).toMatchObject({ action: 'Defragment', member: 'main-member-0' });
    expect(nextMaintenance({ members: small, budget: { count: 3, maxUnavailable: 0 } }, off)).toMatchObject({ action: 'Wait', reason: 'BudgetExhausted' });
  });

  it('NOSPACE recovery waits for every member to apply the compaction (free space shows), or for the compaction to settle', () => {
    const m = members().map((x) => (x.name === 'main-member-2' ? { ...x, dbSizeInUse: 99 * MiB } : x));
    const compacted = upkeep({ alarms: nospace, recovery: { compacted: true, defragmented: [] } });
    const step = nextMaintenance(view(m), compacted);
    expect(step).toMatchObject({ action: 'Wait', reason: 'WaitingForCompaction' });
    expect(step.message).toContain('main-member-2');
    expect(nextMaintenance(view(m), upkeep({ alarms: nospace, recovery: { compacted: true, compactionSettled: true, defragmented: [] } }))).toMatchObject({ action: 'Defragment', member: 'main-member-0' });
  });

  it('NOSPACE recovery defragments the next member only once the last is back and no pod is being replaced', () => {
    const m = members();
    const next = upkeep({ alarms: nospace, recovery: { compacted: true, defragmented: ['main-member-0'] } });
    expect(nextMaintenance(view(m), next, ['main-member-0'])).toMatchObject({ action: 'Wait', reason: 'WaitingForHealthyMembers' });
    const behind = m.map((x) => (x.name === 'main-member-0' ? { ...x, healthy: false } : x));
    const step = nextMaintenance(view(behind), next);
    expect(step).toMatchObject({ action: 'Wait', reason: 'WaitingForHealthyMembers' });
    expect(step.message).toContain('main-member-0');
    expect(nextMaintenance(view(m), { ...next, inFlight: 'main-member-2' })).toMatchObject({ action: 'Wait', reason: 'DefragmentationInProgress' });
  });

  it('NOSPACE without recovery, and CORRUPT at all, change nothing', () => {
    expect(nextMaintenance(view(members()), upkeep({ alarms: nospace, noSpaceRecovery: false }))).toMatchObject({ action: 'None', reason: 'NoSpace' });
    const corrupt = upkeep({ alarms: [...nospace, { memberId: '1000', alarm: 'CORRUPT' }], recovery: { compacted: true, defragmented: ['main-member-0', 'main-member-1', 'main-member-2'] } });
    expect(nextMaintenance(view(members()), corrupt)).toMatchObject({ action: 'None', reason: 'DataCorrupt' });
  });
});
