import { setConditions, type Clock, type ConditionUpdate } from '../api/conditions.ts';
import type { EtcdTopology } from '../api/etcd-topology.ts';
import type { EtcdTopologyStatus, MemberStatus } from '../api/status.ts';
import { disruptionsAllowed, faultTolerance, quorumSize } from '../quorum/math.ts';
import { mayDisrupt } from '../quorum/disruption.ts';
import type { Alarm } from '../quorum/defrag.ts';
import { healthyVotersOf, leaderOf, listNames, votersOf, type MemberHealth } from '../quorum/members.ts';
import { compareText } from '../text-order.ts';

/** Everything the status is computed from, gathered by the reconciler. */
export interface Observation {
  /** Nodes matching spec.members.nodeSelector that are Ready and schedulable. */
  eligibleCentralNodes: number;
  /** Member pods by name: the node each runs on and whether the pod is Ready. */
  memberPods: { name: string; node?: string; running: boolean }[];
  /** Members as etcd reports them, or the reason etcd could not be read. */
  etcd: { members: MemberHealth[] } | { error: string };
  proxies?: { desired: number; ready: number };
  /** The step the planner chose this round (a rolling update, a scale step, a wait, a stop). */
  step?: { action: string; reason: string; message: string };
  /** Active etcd alarms (NOSPACE, CORRUPT). */
  alarms?: readonly Alarm[];
  /** The member the operator is defragmenting now: not answering is expected of it. */
  defragmenting?: string | undefined;
  /** The last defragmentation the operator ran per member (in memory; status keeps older ones). */
  lastDefragmentations?: ReadonlyMap<string, { time: string; bytesFreed: number }>;
}

/** Where the quorum-loss runbook lives, for the message of a stop. */
export const QUORUM_LOSS_RUNBOOK = 'docs/runbooks/quorum-loss.md';
export const NOSPACE_RUNBOOK = 'docs/runbooks/nospace.md';
export const DATA_CORRUPT_RUNBOOK = 'docs/runbooks/data-corrupt.md';

const hex = (id: string): string => {
  try {
    return BigInt(id).toString(16);
  } catch {
    return id;
  }
};

/** The conditions the observation implies, each with a reason and a message saying what to do. */
export function decideConditions(topology: EtcdTopology, obs: Observation): ConditionUpdate[] {
  const count = topology.spec.members.count;
  const quorum = quorumSize(count);
  const updates: ConditionUpdate[] = [];
  const insufficientNodes = obs.eligibleCentralNodes < count;
  const selector = Object.entries(topology.spec.members.nodeSelector)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  const nodesMessage = `${obs.eligibleCentralNodes} ready node(s) match ${selector} but members.count is ${count}: label ${count - obs.eligibleCentralNodes} more node(s) ${selector} (one member runs per node)`;

  const running = obs.memberPods.filter((p) => p.running).length;
  // A cluster that has formed before (etcd listed its members, it was Available, or it is already
  // reported unreachable) is not "starting" when no member answers: with quorum lost, etcd answers no
  // linearizable member list at all, so this is also how a quorum loss looks from outside.
  const prior = topology.status;
  const formed =
    (prior?.members?.length ?? 0) > 0 ||
    (prior?.conditions?.some((c) => (c.type === 'Available' && c.status === 'True') || (c.type === 'Degraded' && c.status === 'True' && c.reason === 'EtcdUnreachable')) ?? false);
  const unreachable = 'error' in obs.etcd && formed;
  if ('error' in obs.etcd) {
    const starting = !formed && running < count;
    updates.push({
      type: 'Available',
      status: 'False',
      reason: starting ? 'MembersStarting' : 'EtcdUnreachable',
      message: starting ? `waiting for member pods to run: ${obs.etcd.error}` : `no member answered: ${obs.etcd.error}`,
    });
  } else {
    const members = obs.etcd.members;
    const leader = leaderOf(members);
    const healthy = healthyVotersOf(members).length;
    if (!leader) updates.push({ type: 'Available', status: 'False', reason: 'NoLeader', message: `etcd reports no leader; ${healthy} of ${votersOf(members).length} voters healthy` });
    else if (healthy < quorum) updates.push({ type: 'Available', status: 'False', reason: 'QuorumLost', message: `${healthy} healthy voters, quorum needs ${quorum}` });
    else updates.push({ type: 'Available', status: 'True', reason: 'QuorumHealthy', message: `leader ${leader.name}; ${healthy} of ${count} voters healthy, quorum ${quorum}` });
  }

  const all = 'error' in obs.etcd ? [] : obs.etcd.members;
  const voters = votersOf(all);
  const learners = all.filter((m) => m.isLearner);
  const healthyVoters = healthyVotersOf(all);
  // A member the operator is defragmenting is busy by design, not a fault.
  const unhealthy = voters.filter((m) => !healthyVoters.includes(m) && m.name !== obs.defragmenting);
  const alarmed = (kind: 'NOSPACE' | 'CORRUPT'): string[] => (obs.alarms ?? []).filter((a) => a.alarm === kind).map((a) => all.find((m) => m.id === a.memberId)?.name ?? hex(a.memberId));
  const proxiesPending = obs.proxies !== undefined && obs.proxies.ready < obs.proxies.desired;
  const step = obs.step;
  if (step?.action === 'Stop') {
    updates.push({ type: 'Progressing', status: 'False', reason: step.reason, message: `${step.message}; runbook: ${QUORUM_LOSS_RUNBOOK}` });
  } else if (insufficientNodes && obs.memberPods.filter((p) => p.running).length < count) {
    updates.push({ type: 'Progressing', status: 'False', reason: 'InsufficientCentralNodes', message: nodesMessage });
  } else if ('error' in obs.etcd) {
    updates.push({ type: 'Progressing', status: 'True', reason: 'WaitingForMembers', message: 'waiting for the members to answer' });
  } else if (step !== undefined && step.action !== 'None') {
    updates.push({ type: 'Progressing', status: 'True', reason: step.reason, message: step.message });
  } else if (voters.length !== count || learners.length > 0) {
    updates.push({ type: 'Progressing', status: 'True', reason: 'ScalingMembers', message: `${voters.length} voters and ${learners.length} learners, want ${count} voters` });
  } else if (unhealthy.length > 0) {
    updates.push({ type: 'Progressing', status: 'True', reason: 'WaitingForMembers', message: 'waiting for every member to be healthy and caught up' });
  } else if (proxiesPending) {
    updates.push({ type: 'Progressing', status: 'True', reason: 'WaitingForProxies', message: `${obs.proxies!.ready} of ${obs.proxies!.desired} proxies ready` });
  } else {
    updates.push({ type: 'Progressing', status: 'False', reason: 'ReconcileComplete', message: `${count} members and ${obs.proxies?.desired ?? 0} proxies as specified` });
  }

  const corrupt = alarmed('CORRUPT');
  const noSpace = alarmed('NOSPACE');
  if (step?.action === 'Stop') updates.push({ type: 'Degraded', status: 'True', reason: step.reason, message: `${step.message}; runbook: ${QUORUM_LOSS_RUNBOOK}` });
  else if (corrupt.length > 0) {
    updates.push({
      type: 'Degraded',
      status: 'True',
      reason: 'DataCorrupt',
      message: `etcd raised the CORRUPT alarm for ${listNames(corrupt)}: members disagree on their data; the operator never disarms it and changes no member until a human has; runbook: ${DATA_CORRUPT_RUNBOOK}`,
    });
  } else if (noSpace.length > 0) {
    const doing = topology.spec.maintenance.noSpaceRecovery
      ? `the operator is recovering (${step?.message ?? 'compact, defragment each member, disarm'})`
      : 'maintenance.noSpaceRecovery is off: compact, defragment and disarm by hand';
    updates.push({
      type: 'Degraded',
      status: 'True',
      reason: 'NoSpace',
      message: `etcd raised the NOSPACE alarm for ${listNames(noSpace)}: the database reached members.quotaBackendBytes and the cluster accepts only reads and deletes; ${doing}; runbook: ${NOSPACE_RUNBOOK}`,
    });
  } else if (insufficientNodes) updates.push({ type: 'Degraded', status: 'True', reason: 'InsufficientCentralNodes', message: nodesMessage });
  else if (unreachable && 'error' in obs.etcd) {
    updates.push({
      type: 'Degraded',
      status: 'True',
      reason: 'EtcdUnreachable',
      message:
        `no member answers (${obs.etcd.error}) while ${running} of ${count} member pods run: quorum may be lost; ` +
        `the operator changes nothing until etcd answers; if it does not recover, see ${QUORUM_LOSS_RUNBOOK}`,
    });
  }
  else if (unhealthy.length > 0 && voters.length === count) {
    updates.push({ type: 'Degraded', status: 'True', reason: 'MemberUnhealthy', message: `${listNames(unhealthy.map((m) => m.name))} not healthy or not caught up` });
  } else updates.push({ type: 'Degraded', status: 'False', reason: 'AsExpected', message: 'no fault observed' });
  return updates;
}

/** Whether evicting the member now keeps the budget and quorum: the answer of `check drain`. */
export function drainAnswer(name: string, members: readonly MemberHealth[], topology: EtcdTopology): { safe: boolean; reason: string; message: string } {
  const d = mayDisrupt(name, { members, budget: { count: topology.spec.members.count, maxUnavailable: topology.spec.disruption.maxUnavailable } });
  if (d.decision === 'MoveLeaderFirst') {
    return { safe: true, reason: d.reason, message: `${d.message}; the operator moves leadership to ${d.transferee.name} when the node is cordoned` };
  }
  return { safe: d.decision === 'Allow', reason: d.reason, message: d.message };
}

/** The whole status block for one observation; conditions keep their transition times. */
export function computeStatus(topology: EtcdTopology, obs: Observation, clock: Clock): EtcdTopologyStatus {
  const count = topology.spec.members.count;
  const generation = topology.metadata.generation ?? 0;
  const conditions = setConditions(topology.status?.conditions, decideConditions(topology, obs), generation, clock);
  const members = 'error' in obs.etcd ? [] : obs.etcd.members;
  const healthySet = new Set(healthyVotersOf(members).map((m) => m.id));
  const leader = leaderOf(members);
  // The operator remembers its own defragmentations; status keeps them across operator restarts.
  const lastDefrag = (name: string): Pick<MemberStatus, 'lastDefragmentation'> => {
    const d = obs.lastDefragmentations?.get(name) ?? topology.status?.members?.find((p) => p.name === name)?.lastDefragmentation;
    return d ? { lastDefragmentation: { time: d.time, bytesFreed: d.bytesFreed } } : {};
  };
  const memberStatus: MemberStatus[] = members
    .map((m) => ({
      name: m.name,
      id: hex(m.id),
      ...(obs.memberPods.find((p) => p.name === m.name)?.node ? { node: obs.memberPods.find((p) => p.name === m.name)!.node } : {}),
      role: m.isLearner ? ('learner' as const) : m.isLeader ? ('leader' as const) : ('follower' as const),
      healthy: healthySet.has(m.id),
      dbSize: m.dbSize,
      ...(m.dbSizeInUse !== undefined ? { dbSizeInUse: m.dbSizeInUse } : {}),
      ...lastDefrag(m.name),
      revision: m.revision,
      drain: drainAnswer(m.name, members, topology),
    }))
    .sort((a, b) => compareText(a.name, b.name));
  const healthy = healthySet.size;
  return {
    observedGeneration: generation,
    conditions,
    members: memberStatus,
    membersReady: `${healthy}/${count}`,
    leader: leader?.name ?? '',
    quorum: {
      size: quorumSize(count),
      healthy,
      faultTolerance: faultTolerance(count),
      disruptionsAllowed: disruptionsAllowed(healthy, { count, maxUnavailable: topology.spec.disruption.maxUnavailable }, Math.max(count, votersOf(members).length)),
    },
    proxies: obs.proxies ?? { desired: 0, ready: 0 },
    // Always written, empty included: the status is merge-patched, and a field left out would keep its old alarms.
    alarms:
      obs.alarms === undefined
        ? (topology.status?.alarms ?? [])
        : obs.alarms.map((a) => ({ alarm: a.alarm, memberId: hex(a.memberId), ...(members.find((m) => m.id === a.memberId) ? { member: members.find((m) => m.id === a.memberId)!.name } : {}) })),
    proxiesReady: `${obs.proxies?.ready ?? 0}/${obs.proxies?.desired ?? 0}`,
  };
}
