import { describe, expect, it } from 'vitest';
import { drainAnswers } from './drain.ts';

const status = (drain?: { safe: boolean; reason: string; message: string }, observedGeneration = 2) => ({
  observedGeneration,
  members: [{ name: 'main-member-0', id: '1', role: 'follower' as const, healthy: true, ...(drain ? { drain } : {}) }],
});

describe('drainAnswers', () => {
  it.each([
    ['safe per status', status({ safe: true, reason: 'WithinBudget', message: 'ok' }), 2, { safe: true, reason: 'WithinBudget' }],
    ['refused per status', status({ safe: false, reason: 'BudgetExhausted', message: 'no' }), 2, { safe: false, reason: 'BudgetExhausted' }],
    ['a status behind the spec', status({ safe: true, reason: 'WithinBudget', message: 'ok' }, 1), 2, { safe: false, reason: 'StatusStale' }],
    ['a member the status does not report', status(), 2, { safe: false, reason: 'NotReported' }],
    ['no status at all', undefined, 2, { safe: false, reason: 'StatusStale' }],
  ])('%s', (_what, s, generation, expected) => {
    const [line] = drainAnswers([{ key: 'ns/main', generation, status: s, membersOnNode: ['main-member-0'] }]);
    expect(line).toMatchObject({ topology: 'ns/main', member: 'main-member-0', ...expected });
  });

  it('says nothing for topologies with no member on the node', () => {
    expect(drainAnswers([{ key: 'ns/main', generation: 1, status: undefined, membersOnNode: [] }])).toEqual([]);
  });
});
