import { describe, expect, it } from 'vitest';
import { findCondition, isConditionTrue, setCondition, setConditions, type Clock, type Condition } from './conditions.ts';

const at = (iso: string): Clock => ({ now: () => new Date(iso) });

const available: Condition = {
  type: 'Available',
  status: 'True',
  observedGeneration: 1,
  lastTransitionTime: '2026-01-01T00:00:00Z',
  reason: 'QuorumHealthy',
  message: '3 of 3 members healthy',
};

describe('setCondition', () => {
  const cases: {
    name: string;
    before: Condition[];
    update: Parameters<typeof setCondition>[1];
    after: Partial<Condition>;
  }[] = [
    {
      name: 'adds a new condition with the clock time',
      before: [],
      update: { type: 'Progressing', status: 'True', reason: 'ScalingOut', message: 'adding member main-member-3' },
      after: { type: 'Progressing', status: 'True', lastTransitionTime: '2026-02-02T10:00:00Z', observedGeneration: 4 },
    },
    {
      name: 'keeps lastTransitionTime when only the reason and message change',
      before: [available],
      update: { type: 'Available', status: 'True', reason: 'QuorumHealthy', message: '2 of 3 members healthy' },
      after: { lastTransitionTime: '2026-01-01T00:00:00Z', message: '2 of 3 members healthy', observedGeneration: 4 },
    },
    {
      name: 'moves lastTransitionTime when the status changes',
      before: [available],
      update: { type: 'Available', status: 'False', reason: 'QuorumLost', message: '1 of 3 members healthy' },
      after: { status: 'False', reason: 'QuorumLost', lastTransitionTime: '2026-02-02T10:00:00Z' },
    },
  ];

  it.each(cases)('$name', ({ before, update, after }) => {
    const result = setCondition(before, update, 4, at('2026-02-02T10:00:00.123Z'));
    expect(findCondition(result, update.type)).toMatchObject(after);
    expect(result).toHaveLength(before.some((c) => c.type === update.type) ? before.length : before.length + 1);
  });

  it('does not modify its input', () => {
    const before = [available];
    setCondition(before, { type: 'Available', status: 'False', reason: 'QuorumLost', message: 'x' }, 2, at('2026-03-03T00:00:00Z'));
    expect(before[0]).toBe(available);
    expect(available.status).toBe('True');
  });

  it('refuses a reason that is not PascalCase', () => {
    expect(() => setCondition([], { type: 'Degraded', status: 'True', reason: 'quorum lost', message: '' }, 1, at('2026-01-01T00:00:00Z'))).toThrow(
      expect.objectContaining({ code: 'ETOP_CONDITION_REASON' }),
    );
  });

  it('applies several updates and keeps the order of existing types', () => {
    const result = setConditions(
      [available],
      [
        { type: 'Degraded', status: 'False', reason: 'AsExpected', message: '' },
        { type: 'Available', status: 'False', reason: 'NoLeader', message: 'etcd reports no leader' },
      ],
      7,
      at('2026-05-05T05:05:05Z'),
    );
    expect(result.map((c) => `${c.type}=${c.status}`)).toEqual(['Available=False', 'Degraded=False']);
    expect(isConditionTrue(result, 'Available')).toBe(false);
    expect(isConditionTrue([available], 'Available')).toBe(true);
    expect(isConditionTrue(undefined, 'Available')).toBe(false);
  });
});
