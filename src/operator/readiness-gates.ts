import type { V1Pod } from '@kubernetes/client-node';
import type { Clock } from '../api/conditions.ts';
import { healthyVotersOf, type MemberHealth } from '../quorum/members.ts';
import type { Logger } from '../telemetry/logger.ts';
import { MEMBER_HEALTHY_GATE } from './components/member-statefulset/member-statefulset.ts';
import type { KubeWriter } from './kube.ts';

/** Why a member pod's readiness gate says what it says. */
function gateMessage(isHealthy: boolean, member: MemberHealth | undefined): string {
  if (isHealthy) return 'etcd counts this member as a healthy voter that has caught up with the leader';
  if (!member) return 'etcd does not list this member';
  if (member.isLearner) return 'the member is a learner, not yet a voter';
  return member.healthy ? 'the member is behind the leader' : 'the member does not answer, reports errors, or knows no leader';
}

/** Sets each member pod's readiness gate to what etcd says of that member, writing only changes. */
export async function syncReadinessGates(writer: KubeWriter, clock: Clock, pods: readonly V1Pod[], members: readonly MemberHealth[], log: Logger): Promise<void> {
  const healthy = new Set(healthyVotersOf(members).map((m) => m.name));
  for (const pod of pods) {
    const name = pod.metadata!.name!;
    const isHealthy = healthy.has(name);
    const status = isHealthy ? 'True' : 'False';
    const current = pod.status?.conditions?.find((c) => c.type === MEMBER_HEALTHY_GATE);
    if (current?.status === status) continue;
    const message = gateMessage(isHealthy, members.find((m) => m.name === name));
    await writer.patchPodConditions(pod.metadata!.namespace!, name, [
      { type: MEMBER_HEALTHY_GATE, status, reason: isHealthy ? 'EtcdMemberHealthy' : 'EtcdMemberNotHealthy', message, lastTransitionTime: clock.now().toISOString() },
    ]);
    log.info({ pod: name, status }, `Set readiness gate ${MEMBER_HEALTHY_GATE}`);
  }
}
