import { nextMaintenance, type DefragStep, type MaintenanceInput } from './defrag.ts';
import { mayDisrupt } from './disruption.ts';
import { minHealthyVoters, quorumSize, type Budget } from './math.ts';
import { bestTransferee, DEFAULT_MAX_RAFT_LAG, healthyVotersOf, isCaughtUp, leaderOf, listNames, ordinalOf, votersOf, type MemberHealth } from './members.ts';

/** A member pod as the operator saw it; the shell turns Kubernetes objects into these facts. */
export interface MemberPod {
  name: string;
  /** Every container is ready (etcd's own /readyz). */
  ready: boolean;
  /** The pod has a deletionTimestamp. */
  terminating: boolean;
  /** The pod carries the member configuration the spec asks for now (its config hash matches). */
  upToDate: boolean;
  /**
   * The pod differs from the configuration asked for only in the CA bundle it trusts (a CA rotation):
   * its restart changes nothing a restore would need, so it is a TrustRollout, not a RollingUpdate.
   */
  trustOnly?: boolean;
  /** The node the pod was bound to no longer exists. */
  nodeGone: boolean;
  /** The pod's node is cordoned (unschedulable): a drain is coming. */
  nodeCordoned?: boolean;
  /**
   * The pod's volume holds no usable data for the member etcd lists under this name: its claim is gone
   * or bound to a volume that cannot be reached, or etcd exits saying the member was removed, its ID
   * differs, or its data directory is corrupt. An empty volume waiting to join is not lost data.
   */
  dataLost: boolean;
  /** Why the data counts as lost, for messages. */
  dataLostReason?: string;
  /**
   * The pod was created before its member was added to etcd, so its --initial-cluster lacks itself:
   * etcd refuses to join with it, and an OnDelete StatefulSet never hands the pod the newer template.
   */
  staleJoin?: boolean;
  /**
   * Its etcd container has run at least once, so its volume may hold data of the member that held the
   * name before. A pod whose container has not started yet has written nothing.
   */
  started?: boolean;
}

/** Everything the planner needs, as plain data. */
export interface PlanInput {
  /** Member names for ordinals 0..members.count-1, in order. */
  desired: readonly string[];
  budget: Budget;
  /** etcd's member list joined with each member's status; empty when etcd could not be read. */
  members: readonly MemberHealth[];
  pods: readonly MemberPod[];
  /** Pod names whose data PersistentVolumeClaim exists. */
  volumes: readonly string[];
  maxRaftLag?: number;
  /** Defragmentation rule, alarms and upkeep in flight; without it the planner does no upkeep. */
  maintenance?: MaintenanceInput;
}

interface StepText {
  /** PascalCase, for conditions and Events. */
  reason: string;
  message: string;
}

/**
 * The one next action that keeps quorum. The shell performs it and reconciles again; a Wait asks to
 * look again later, a Stop means the operator must not act until a human has (quorum is lost).
 * Pods come and go through the StatefulSet's replicas, which follow the etcd member set (memberReplicas).
 */
export type Step =
  | ({ action: 'None' } & StepText)
  | ({ action: 'Wait' } & StepText)
  | ({ action: 'Stop' } & StepText)
  | ({ action: 'AddLearner'; member: string } & StepText)
  | ({ action: 'PromoteLearner'; member: string; id: string } & StepText)
  | ({ action: 'MoveLeader'; from: string; to: string; toName: string } & StepText)
  | ({ action: 'RemoveMember'; member: string; id: string } & StepText)
  /** releaseVolume: also delete the pod's volume claim; its PersistentVolume is retained, data and all. */
  | ({ action: 'DeletePod'; pod: string; releaseVolume: boolean } & StepText)
  | ({ action: 'ReleaseVolume'; pod: string } & StepText)
  /** Upkeep (src/quorum/defrag.ts): defragment one member, compact the keyspace, disarm NOSPACE alarms. */
  | Extract<DefragStep, { action: 'Defragment' | 'Compact' | 'DisarmAlarms' }>;

/** StatefulSet replicas that cover every etcd member (learners included): the highest ordinal plus one. */
export function memberReplicas(memberNames: readonly string[]): number {
  return memberNames.reduce((n, name) => Math.max(n, (ordinalOf(name) ?? -1) + 1), 0);
}

const byOrdinal = (a: { name: string }, b: { name: string }): number => (ordinalOf(a.name) ?? Infinity) - (ordinalOf(b.name) ?? Infinity);

/**
 * Decides the next safe step towards the spec: finish a learner in flight, replace a failed member,
 * add a missing member as a learner (scale out, re-add), remove a surplus member (scale in), then roll
 * out-of-date members one at a time, followers first and the leader last after leadership moved away.
 */
export function nextStep(input: PlanInput): Step {
  const { members, desired } = input;
  const maxLag = input.maxRaftLag ?? DEFAULT_MAX_RAFT_LAG;
  if (members.length === 0) {
    return { action: 'Wait', reason: 'EtcdUnreachable', message: 'no etcd member list could be read; nothing is changed until etcd answers' };
  }
  const voters = votersOf(members);
  const quorum = quorumSize(voters.length);
  const up = voters.filter((m) => m.healthy);
  if (up.length < quorum) {
    const down = voters.filter((m) => !m.healthy).map((m) => m.name);
    return {
      action: 'Stop',
      reason: 'QuorumLost',
      message:
        `quorum is lost: ${up.length} of ${voters.length} voters are healthy and quorum needs ${quorum} (not healthy: ${listNames(down)}); ` +
        'the operator changes nothing until a human restores quorum (see the quorum-loss runbook)',
    };
  }
  const leader = leaderOf(members);
  if (leader === undefined) return { action: 'Wait', reason: 'NoLeader', message: 'a quorum of voters is healthy but none reports a leader yet' };
  const pods = new Map(input.pods.map((p) => [p.name, p]));
  const moveOff = leaderOffCordonedNode(members, leader, pods);
  if (moveOff !== undefined) return moveOff;
  const wanted = new Set(desired);

  const learner = members.filter((m) => m.isLearner).sort(byOrdinal)[0];
  if (learner !== undefined) return learnerStep(learner, leader, pods.get(learner.name), wanted, maxLag);

  const failed = voters.filter((m) => !m.healthy && (pods.get(m.name)?.nodeGone === true || pods.get(m.name)?.dataLost === true)).sort(byOrdinal)[0];
  if (failed !== undefined) {
    const pod = pods.get(failed.name);
    const why = pod?.nodeGone === true ? 'its node is gone' : `its data is lost: ${pod?.dataLostReason ?? 'its volume cannot be used'}`;
    return {
      action: 'RemoveMember',
      member: failed.name,
      id: failed.id,
      reason: 'MemberFailed',
      message: `removing ${failed.name} from etcd because ${why}; ${up.length} of the remaining ${voters.length - 1} voters are healthy, and it will be added again as a learner`,
    };
  }

  const missing = desired.find((name) => !members.some((m) => m.name === name));
  if (missing !== undefined) return addStep(missing, pods.get(missing), input.volumes.includes(missing), voters.length);

  const surplus = voters.filter((m) => !wanted.has(m.name)).sort(byOrdinal).reverse()[0];
  if (surplus !== undefined) return scaleInStep(surplus, input, maxLag);

  // A NOSPACE alarm leaves the cluster read-only: its recovery goes before the next pod of a rolling
  // update (it still waits for a pod being replaced); defragmentation by rule only once converged.
  const upkeep = input.maintenance;
  const view = { members, budget: input.budget, maxRaftLag: maxLag };
  const notSettled = desired.filter((name) => {
    const pod = pods.get(name);
    return pod === undefined || pod.terminating || !pod.ready;
  });
  if (upkeep !== undefined && upkeep.noSpaceRecovery && upkeep.alarms.some((a) => a.alarm === 'NOSPACE') && !upkeep.alarms.some((a) => a.alarm === 'CORRUPT')) {
    return nextMaintenance(view, upkeep, notSettled);
  }
  const rolling = rollingStep(input, leader, pods, maxLag);
  if (rolling.action !== 'None' || upkeep === undefined) return rolling;
  return nextMaintenance(view, upkeep, notSettled);
}

/**
 * A leader whose node is cordoned (a drain is coming) hands leadership to a healthy follower on a
 * schedulable node first, so the eviction that follows never costs an election under load.
 */
function leaderOffCordonedNode(members: readonly MemberHealth[], leader: MemberHealth, pods: Map<string, MemberPod>): Step | undefined {
  const cordoned = (name: string): boolean => pods.get(name)?.nodeCordoned === true;
  if (!cordoned(leader.name)) return undefined;
  const to = bestTransferee(members, { prefer: (m) => !cordoned(m.name) });
  if (to === undefined || cordoned(to.name)) return undefined;
  return {
    action: 'MoveLeader',
    from: leader.id,
    to: to.id,
    toName: to.name,
    reason: 'NodeCordoned',
    message: `moving leadership from ${leader.name} to ${to.name}: its node is cordoned and its member will be evicted`,
  };
}

function learnerStep(learner: MemberHealth, leader: MemberHealth, pod: MemberPod | undefined, wanted: Set<string>, maxLag: number): Step {
  if (!wanted.has(learner.name)) {
    return { action: 'RemoveMember', member: learner.name, id: learner.id, reason: 'ScaleIn', message: `removing learner ${learner.name}, which members.count no longer includes` };
  }
  // A learner that may have received entries must never restart on an empty volume under the same
  // member ID: the leader would send it a commit index beyond its log, and raft panics. It leaves etcd
  // first (a learner has no vote: quorum is untouched); its pod and volume go next, and the name is
  // added again under a new ID.
  if (pod !== undefined && (pod.nodeGone || pod.dataLost)) {
    const why = pod.nodeGone ? 'its node is gone' : `its data is lost: ${pod.dataLostReason ?? 'its volume cannot be used'}`;
    return {
      action: 'RemoveMember',
      member: learner.name,
      id: learner.id,
      reason: 'LearnerFailed',
      message: `removing learner ${learner.name} from etcd because ${why}; it is added again with a fresh volume`,
    };
  }
  if (pod !== undefined && pod.staleJoin === true && !learner.healthy && !pod.terminating) {
    return {
      action: 'DeletePod',
      pod: pod.name,
      releaseVolume: true,
      reason: 'StaleJoinPod',
      message: `recreating pod ${pod.name} and its volume claim: it was created before learner ${learner.name} was added, so it starts with a member list that lacks itself`,
    };
  }
  if (pod === undefined) return { action: 'Wait', reason: 'LearnerStarting', message: `waiting for the pod of learner ${learner.name} to start` };
  if (isCaughtUp(learner, leader, maxLag)) {
    return { action: 'PromoteLearner', member: learner.name, id: learner.id, reason: 'LearnerCaughtUp', message: `promoting learner ${learner.name} to a voter: it has caught up with the leader` };
  }
  const behind = learner.healthy ? `${leader.raftIndex - learner.raftIndex} raft entries behind the leader` : 'not answering yet';
  return { action: 'Wait', reason: 'LearnerCatchingUp', message: `waiting for learner ${learner.name} to catch up (${behind})` };
}

function addStep(name: string, pod: MemberPod | undefined, hasVolume: boolean, voters: number): Step {
  // etcd does not list the name, so whatever a pod under it has run on belongs to a removed member and
  // can never rejoin. Only a pod that has not started yet can become the new learner's.
  if (pod !== undefined && (pod.nodeGone || pod.dataLost || pod.started === true)) {
    return {
      action: 'DeletePod',
      pod: name,
      releaseVolume: true,
      reason: 'StaleMemberPod',
      message: `deleting pod ${name} and releasing its volume claim (the PersistentVolume is kept): etcd no longer lists that member, so its data can never rejoin`,
    };
  }
  if (pod === undefined && hasVolume) {
    return {
      action: 'ReleaseVolume',
      pod: name,
      reason: 'StaleMemberVolume',
      message: `releasing the volume claim of ${name} (the PersistentVolume is kept): it holds the data of a member etcd no longer lists, which cannot rejoin`,
    };
  }
  return {
    action: 'AddLearner',
    member: name,
    reason: 'AddingMember',
    message: `adding ${name} as a learner (${voters} voters now); it is promoted once it has caught up`,
  };
}

function scaleInStep(surplus: MemberHealth, input: PlanInput, maxLag: number): Step {
  const { members, budget } = input;
  if (surplus.isLeader) {
    const to = bestTransferee(members, { exclude: [surplus.name], prefer: (m) => input.desired.includes(m.name), maxLag });
    if (to === undefined) return { action: 'Wait', reason: 'NoTransferee', message: `${surplus.name} is the leader and no healthy, caught-up follower can take over yet` };
    return { action: 'MoveLeader', from: surplus.id, to: to.id, toName: to.name, reason: 'ScaleIn', message: `moving leadership from ${surplus.name} to ${to.name} before removing ${surplus.name}` };
  }
  const voters = votersOf(members).length;
  const healthy = healthyVotersOf(members, maxLag);
  const after = healthy.length - (healthy.includes(surplus) ? 1 : 0);
  const need = minHealthyVoters({ count: voters - 1, maxUnavailable: budget.maxUnavailable });
  if (after < need) {
    return {
      action: 'Wait',
      reason: 'WaitingForHealthyMembers',
      message: `removing ${surplus.name} would leave ${after} healthy voters of ${voters - 1}, fewer than the ${need} required; waiting for the others to be healthy`,
    };
  }
  return { action: 'RemoveMember', member: surplus.name, id: surplus.id, reason: 'ScaleIn', message: `removing ${surplus.name} from etcd (scale in to ${input.desired.length}); its pod goes next, its volume is kept` };
}

function rollingStep(input: PlanInput, leader: MemberHealth, pods: Map<string, MemberPod>, maxLag: number): Step {
  const stale = input.desired.filter((name) => pods.get(name)?.upToDate === false);
  if (stale.length === 0) return { action: 'None', reason: 'Converged', message: 'every member is in etcd and up to date' };
  const healthy = new Set(healthyVotersOf(input.members, maxLag).map((m) => m.name));
  const busy = input.desired.filter((name) => {
    const pod = pods.get(name);
    return pod === undefined || pod.terminating || !pod.ready || !healthy.has(name);
  });
  if (busy.length > 0) {
    return {
      action: 'Wait',
      reason: 'WaitingForHealthyMembers',
      message: `${listNames(busy)} must be running, healthy and caught up before the next member is replaced (${stale.length} left to update)`,
    };
  }
  // Followers first, highest ordinal first as a StatefulSet would; the leader only when it is the last one left.
  const target = stale.filter((name) => name !== leader.name).sort((a, b) => byOrdinal({ name: b }, { name: a }))[0] ?? leader.name;
  const decision = mayDisrupt(target, { members: input.members, budget: input.budget, maxRaftLag: maxLag });
  const trust = pods.get(target)?.trustOnly === true;
  const reason = trust ? 'TrustRollout' : 'RollingUpdate';
  switch (decision.decision) {
    case 'Allow': {
      const what = trust ? `restarting ${target} onto the new CA bundle, which etcd reads only at start` : `replacing ${target} with the new configuration`;
      return { action: 'DeletePod', pod: target, releaseVolume: false, reason, message: `${what} (${stale.length} left to update)` };
    }
    case 'MoveLeaderFirst': {
      const to = bestTransferee(input.members, { exclude: [target], prefer: (m) => pods.get(m.name)?.upToDate === true, maxLag }) ?? decision.transferee;
      return { action: 'MoveLeader', from: leader.id, to: to.id, toName: to.name, reason, message: `moving leadership from ${target} to ${to.name} before replacing ${target}, the last to update` };
    }
    case 'Refuse': {
      if (trust && input.budget.count === 1) {
        // A single member has an outage on any restart, and etcd reads its CA bundle only at start: the
        // CA rotation holds (the current CA still signs and stays trusted) until someone accepts the outage.
        return {
          action: 'Wait',
          reason: decision.reason,
          message:
            `CA rotation paused: ${target} must restart onto the new CA bundle, which etcd reads only at start, and a topology of one member ` +
            `is unavailable while its only member restarts; to accept that outage, delete pod ${target} yourself (once while the new CA is added, ` +
            'once when the old one leaves); until then the current CA keeps signing and stays trusted',
        };
      }
      const hatch = input.budget.count === 1 ? `; to accept the outage, delete pod ${target} yourself and it restarts with the new configuration` : '';
      return { action: 'Wait', reason: decision.reason, message: `rolling update paused: ${decision.message}${hatch}` };
    }
  }
}
