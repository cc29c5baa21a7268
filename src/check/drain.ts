import type { EtcdTopologyStatus } from '../api/status.ts';

/** One member's answer for a node about to be drained. */
export interface DrainLine {
  topology: string;
  member: string;
  safe: boolean;
  reason: string;
  message: string;
}

/** A topology as check drain reads it: its status and which of its member pods run on the node. */
export interface TopologyOnNode {
  key: string;
  generation: number;
  status: EtcdTopologyStatus | undefined;
  membersOnNode: string[];
}

/**
 * Answers "may this node be drained now" from what the operator wrote in each topology's status:
 * every member on the node must be safe to evict; a status the operator has not written for the
 * current generation, or one that does not list the member, is not an answer and counts as unsafe.
 */
export function drainAnswers(topologies: readonly TopologyOnNode[]): DrainLine[] {
  const lines: DrainLine[] = [];
  for (const t of topologies) {
    for (const member of t.membersOnNode) {
      const m = t.status?.members?.find((x) => x.name === member);
      if (t.status?.observedGeneration !== t.generation) {
        lines.push({ topology: t.key, member, safe: false, reason: 'StatusStale', message: 'the operator has not reported on the current spec yet; try again in a moment' });
      } else if (!m?.drain) {
        lines.push({ topology: t.key, member, safe: false, reason: 'NotReported', message: 'etcd does not list this member or the operator could not read etcd' });
      } else lines.push({ topology: t.key, member, ...m.drain });
    }
  }
  return lines;
}
