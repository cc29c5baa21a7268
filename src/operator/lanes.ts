import type { KubernetesObject } from '@kubernetes/client-node';
import { CENTRAL_ROLE_LABEL } from '../api/etcd-topology.ts';
import { labelMatcher } from './components/meta.ts';
import type { Lane } from './work-queue.ts';

/**
 * Which work-queue lane a watch event sends a topology to. At 100 topologies the queue is never
 * empty; what a user waits for (a spec change) must not wait behind what only the operator itself
 * caused (its status write coming back as an update) or what concerns other topologies (a proxy
 * node joining).
 */

/** What the controller remembers of an EtcdTopology between two of its watch events. */
export interface TopologySeen {
  generation: number | undefined;
  /** Labels, annotations (a CA rotation request) and deletion: what changes without the generation. */
  meta: string;
}

export function topologySeen(obj: KubernetesObject): TopologySeen {
  const m = obj.metadata;
  return { generation: m?.generation, meta: JSON.stringify([m?.labels ?? {}, m?.annotations ?? {}, m?.deletionTimestamp ?? '', m?.finalizers ?? []]) };
}

/**
 * spec for a topology seen for the first time or with a new generation (its spec changed), news for
 * other metadata that changed, routine for an update that changed neither: the status subresource,
 * which in practice is the operator's own write coming back.
 */
export function topologyLane(prior: TopologySeen | undefined, now: TopologySeen): Lane {
  if (prior === undefined || prior.generation !== now.generation) return 'spec';
  return prior.meta === now.meta ? 'routine' : 'news';
}


/** A topology's member node selector as it stands in the raw object (the schema's default when unset). */
export function memberSelectorOf(topology: KubernetesObject): Record<string, string> {
  const selector = (topology as { spec?: { members?: { nodeSelector?: unknown } } }).spec?.members?.nodeSelector;
  return selector !== null && typeof selector === 'object' ? (selector as Record<string, string>) : { [CENTRAL_ROLE_LABEL]: 'central' };
}

/**
 * A node change concerns a topology when the node could run its members (its member selector
 * matches the node's labels now or before the change: eligibility, placement) or runs one of its
 * member pods (a cordon, a node going NotReady under a member): news. To every other topology it is
 * only a routine visit (a node its selector never matched, such as a proxy node joining).
 */
export function nodeLane(topology: KubernetesObject, labelsNow: Record<string, string> | undefined, labelsBefore: Record<string, string> | undefined, hostsMember: boolean): Lane {
  if (hostsMember) return 'news';
  const matches = labelMatcher(memberSelectorOf(topology));
  return matches(labelsNow) || (labelsBefore !== undefined && matches(labelsBefore)) ? 'news' : 'routine';
}
