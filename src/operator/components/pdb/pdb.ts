import type { V1PodDisruptionBudget } from '@kubernetes/client-node';
import { pdbMinAvailable } from '../../../quorum/math.ts';
import type { Component, ComponentContext } from '../meta.ts';
import { objectMeta, selectorLabels } from '../meta.ts';
import { namesOf } from '../names.ts';

/** Voters etcd has now: more than members.count while scaling in, and the larger quorum then rules. */
function votersNow(count: number, context: ComponentContext): number {
  const voters = (context.members ?? []).filter((m) => m.isLearner !== true).length;
  return Math.max(count, voters);
}

/**
 * The member PodDisruptionBudget, so that the eviction API itself refuses a drain that would break
 * quorum. It counts pods whose readiness gate says etcd holds them healthy; minAvailable is the rule of
 * src/quorum. Unhealthy pods may always be evicted: they hold no vote that counts, and a stuck member
 * must not block a node drain forever.
 */
export const podDisruptionBudget: Component<V1PodDisruptionBudget> = {
  apiVersion: 'policy/v1',
  kind: 'PodDisruptionBudget',
  names: (t) => [namesOf(t).podDisruptionBudget],
  desired: (t, context) => ({
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: objectMeta(t, namesOf(t).podDisruptionBudget, 'member'),
    spec: {
      minAvailable: pdbMinAvailable(
        { count: t.spec.members.count, maxUnavailable: t.spec.disruption.maxUnavailable },
        votersNow(t.spec.members.count, context),
      ),
      selector: { matchLabels: selectorLabels(t, 'member') },
      unhealthyPodEvictionPolicy: 'AlwaysAllow',
    },
  }),
};
