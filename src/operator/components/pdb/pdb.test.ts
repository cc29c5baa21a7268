import { describe, expect, it } from 'vitest';
import { context, topology } from '../testing.ts';
import { podDisruptionBudget } from './pdb.ts';

const voters = (n: number, learners = 0) => [
  ...Array.from({ length: n }, (_, i) => ({ name: `main-member-${i}`, isLearner: false })),
  ...Array.from({ length: learners }, (_, i) => ({ name: `main-member-${n + i}`, isLearner: true })),
];

describe('member PodDisruptionBudget', () => {
  it.each([
    { name: '1 member', count: 1, maxUnavailable: undefined, members: undefined, minAvailable: 1 },
    { name: '3 members', count: 3, maxUnavailable: undefined, members: undefined, minAvailable: 2 },
    { name: '3 members, maxUnavailable 0', count: 3, maxUnavailable: 0, members: undefined, minAvailable: 3 },
    { name: '5 members, default budget', count: 5, maxUnavailable: undefined, members: undefined, minAvailable: 4 },
    { name: '5 members, maxUnavailable 2', count: 5, maxUnavailable: 2, members: undefined, minAvailable: 3 },
    { name: '7 members, maxUnavailable 3', count: 7, maxUnavailable: 3, members: undefined, minAvailable: 4 },
    { name: 'scaling in 5 -> 3: the 5 voters keep their quorum', count: 3, maxUnavailable: 1, members: voters(5), minAvailable: 3 },
    { name: 'a learner joining 3 adds no vote', count: 3, maxUnavailable: 1, members: voters(3, 1), minAvailable: 2 },
  ])('$name: minAvailable $minAvailable', ({ count, maxUnavailable, members, minAvailable }) => {
    const pdb = podDisruptionBudget.desired(topology({ members: { count }, disruption: { maxUnavailable } }), { ...context, members })!;
    expect(pdb.spec?.minAvailable).toBe(minAvailable);
  });

  it('selects the member pods and lets unhealthy members be evicted', () => {
    const pdb = podDisruptionBudget.desired(topology(), context)!;
    expect(pdb.metadata?.name).toBe('main-member');
    expect(pdb.spec?.selector?.matchLabels).toEqual({ 'app.kubernetes.io/name': 'etcd-topology', 'app.kubernetes.io/instance': 'main', 'app.kubernetes.io/component': 'member' });
    expect(pdb.spec?.unhealthyPodEvictionPolicy).toBe('AlwaysAllow');
    expect(pdb.spec?.maxUnavailable).toBeUndefined();
  });
});
