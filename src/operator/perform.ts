import type { V1PersistentVolumeClaim } from '@kubernetes/client-node';
import type { EtcdTopology } from '../api/etcd-topology.ts';
import type { EtcdAdminClient } from '../etcd/admin-client.ts';
import { isUnavailable } from '../etcd/errors.ts';
import { leaderOf, type MemberHealth } from '../quorum/members.ts';
import type { Step } from '../quorum/plan.ts';
import type { Logger } from '../telemetry/logger.ts';
import { memberPeerURL } from './components/names.ts';
import type { EventRecorder, EventTarget } from './events.ts';
import type { Informers } from './informers.ts';
import type { KubeWriter } from './kube.ts';
import { claimOf } from './plan-input.ts';
import type { Upkeep } from './upkeep.ts';

export interface PerformDeps {
  informers: Informers;
  writer: KubeWriter;
  admin: EtcdAdminClient;
  events: EventRecorder;
  upkeep?: Upkeep | undefined;
}

/**
 * Performs the one step the planner chose and says whether it changed anything. etcd refusing a
 * membership change as transient (an election, "unhealthy cluster" right after a restart) is not
 * an error: the step is simply chosen again on the next visit.
 */
export async function perform(
  deps: PerformDeps,
  step: Step,
  topology: EtcdTopology,
  members: readonly MemberHealth[],
  urls: ReadonlyMap<string, string>,
  target: EventTarget,
  log: Logger,
): Promise<boolean> {
  const ns = topology.metadata.namespace!;
  const leader = leaderOf(members);
  const leaderUrl = (leader && urls.get(leader.name)) ?? [...urls.values()][0];
  const anyUrl = (exclude?: string): string | undefined => (leader && leader.name !== exclude ? urls.get(leader.name) : undefined) ?? [...urls.entries()].find(([n]) => n !== exclude)?.[1];
  try {
    switch (step.action) {
      case 'None':
      case 'Wait':
        return false;
      case 'Stop':
        log.error({ reason: step.reason }, step.message);
        deps.events.record(target, 'Warning', step.reason, step.message);
        return false;
      case 'AddLearner': {
        const url = anyUrl();
        if (!url) return false;
        await deps.admin.memberAdd(url, [memberPeerURL(topology, step.member)], { learner: true });
        break;
      }
      case 'PromoteLearner': {
        const url = anyUrl(step.member);
        if (!url) return false;
        await deps.admin.memberPromote(url, step.id);
        break;
      }
      case 'MoveLeader':
        if (!leaderUrl) return false;
        await deps.admin.moveLeader(leaderUrl, step.to);
        break;
      case 'RemoveMember': {
        const url = anyUrl(step.member);
        if (!url) return false;
        await deps.admin.memberRemove(url, step.id);
        break;
      }
      case 'DeletePod':
        // The claim goes first. Deleted second, it raced the pod's replacement: the StatefulSet
        // recreates a pod as soon as the old one is gone (at once for one that never ran), and the
        // scheduler could bind the new pod to the old claim before its deletion began; the kubelet
        // then never starts it (the claim is being deleted, or gone for good) and the new learner
        // never answers. Deleted first, the claim is marked before any new pod exists; its
        // protection keeps it until the old pod is gone, and the StatefulSet waits for it to go
        // before it creates the pod and a fresh claim.
        if (step.releaseVolume) await releaseClaim(deps, ns, step.pod, target, log);
        await deps.writer.deletePod(ns, step.pod);
        break;
      case 'ReleaseVolume':
        await releaseClaim(deps, ns, step.pod, target, log);
        break;
      case 'Defragment':
      case 'Compact':
      case 'DisarmAlarms':
        // Upkeep records its own Events (a defragmentation ends after this reconcile).
        return (await deps.upkeep?.perform(step, `${ns}/${topology.metadata.name}`, members, urls, target, log)) ?? false;
    }
  } catch (err) {
    if (isUnavailable(err)) {
      log.info({ step: step.action, err }, 'etcd refused the step for now; trying again');
      return false;
    }
    throw err;
  }
  log.info({ step: step.action, reason: step.reason }, step.message);
  deps.events.record(target, 'Normal', step.reason, step.message);
  return true;
}

/**
 * Deletes a member pod's volume claim so that its next pod starts on an empty one, after switching
 * the claim's PersistentVolume to reclaim policy Retain: the operator never destroys etcd data, even
 * data it can no longer use. The retained volume is named in an Event for whoever cleans up.
 */
async function releaseClaim(deps: PerformDeps, ns: string, pod: string, target: EventTarget, log: Logger): Promise<void> {
  const claim = deps.informers.get<V1PersistentVolumeClaim>('PersistentVolumeClaim', claimOf(pod), ns);
  const volume = claim?.spec?.volumeName;
  // One Event per volume: a step repeated while the claim is still terminating finds it Retain already.
  if (volume && (await deps.writer.retainVolume(volume)) === 'changed') {
    const message = `PersistentVolume ${volume} keeps the data of ${pod} (reclaim policy Retain) after its claim ${claimOf(pod)} is deleted; delete it once the data is not needed`;
    log.info({ pod, volume }, message);
    deps.events.record(target, 'Normal', 'VolumeRetained', message);
  }
  if (!claim?.metadata?.deletionTimestamp) await deps.writer.delete('v1', 'PersistentVolumeClaim', ns, claimOf(pod));
}
