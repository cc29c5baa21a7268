import type { V1ContainerStatus, V1Node, V1PersistentVolumeClaim, V1Pod } from '@kubernetes/client-node';
import type { EtcdTopology } from '../api/etcd-topology.ts';
import type { MemberHealth } from '../quorum/members.ts';
import type { MemberPod, PlanInput } from '../quorum/plan.ts';
import { CONFIG_HASH_ANNOTATION, memberConfigHash, TRUST_HASH_ANNOTATION } from './components/member-statefulset/member-statefulset.ts';
import { desiredMemberNames } from './components/names.ts';

/** The claim a member pod's data lives on (the StatefulSet's volumeClaimTemplate is named "data"). */
export const claimOf = (pod: string): string => `data-${pod}`;

const SELECTED_NODE = 'volume.kubernetes.io/selected-node';

/**
 * What etcd says, as it exits, when it cannot use the data directory it was given: a database or
 * snapshot it cannot open, a checksum that does not match, a WAL without its snapshot, or a wiped
 * directory trying to bootstrap a member that already exists. Anything else (a bad flag, a port in use)
 * is not a reason to throw a member's data away, so no other crash loop replaces a member.
 */
export const DATA_DIR_FAILURES: readonly RegExp[] = [
  /failed to open database/,
  /failed to recover (?:v3 backend )?from snapshot/,
  /crc mismatch/,
  /failed to find database snapshot file/,
  /has already been bootstrapped/,
  /invalid datadir/,
  // raft: the leader knows this member ID further along than its log (its data was lost under it).
  /Was the raft log corrupted, truncated, or lost\?/,
];

/**
 * Why the member pod's etcd cannot start on its data directory: its container is crash-looping (not
 * running now, restarted at least twice) and the last run's termination message (the log tail, with
 * terminationMessagePolicy FallbackToLogsOnError) carries one of etcd's data-directory failures.
 */
export function corruptDataOf(pod: V1Pod): string | undefined {
  const etcd = etcdStatusOf(pod);
  const last = etcd?.lastState?.terminated;
  if (!etcd || etcd.state?.running || etcd.restartCount < 2 || !last || last.exitCode === 0) return undefined;
  const message = last.message ?? '';
  const failure = DATA_DIR_FAILURES.map((re) => re.exec(message)?.[0]).find((m) => m !== undefined);
  return failure === undefined ? undefined : `etcd keeps exiting on its data directory (${failure}, ${etcd.restartCount} restarts)`;
}

/**
 * Turns the Kubernetes objects around the members into the plain facts the planner decides on.
 * A pod's node is gone when its node object no longer exists, or, for a pod that cannot be scheduled,
 * when the node its volume was provisioned on no longer exists (a local volume pins it there). Its
 * data is lost when its claim is gone while etcd still lists the member. Its node is cordoned when the
 * node it is bound to is unschedulable.
 */
export function planInput(
  topology: EtcdTopology,
  members: readonly MemberHealth[],
  pods: readonly V1Pod[],
  claims: readonly V1PersistentVolumeClaim[],
  nodes: readonly V1Node[],
  trust: MemberTrust = {},
): PlanInput {
  const nodeNames = new Set(nodes.map((n) => n.metadata?.name));
  const cordoned = new Set(nodes.filter((n) => n.spec?.unschedulable === true).map((n) => n.metadata?.name));
  const claimByName = new Map(claims.map((c) => [c.metadata?.name, c]));
  const hash = memberConfigHash(topology, trust.hash);
  const memberPods: MemberPod[] = pods.map((p) => {
    const name = p.metadata!.name!;
    // A claim on its way out is as good as gone: the pod cannot start on it, and the claim that
    // replaces it starts empty.
    const found = claimByName.get(claimOf(name));
    const claim = found?.metadata?.deletionTimestamp ? undefined : found;
    const boundNode = p.spec?.nodeName;
    const volumeNode = claim?.metadata?.annotations?.[SELECTED_NODE];
    const nodeGone = boundNode !== undefined ? !nodeNames.has(boundNode) : volumeNode !== undefined && !nodeNames.has(volumeNode);
    const member = members.find((m) => m.name === name);
    // A missing claim loses data only where etcd expects some: a voter's, or a learner's whose pod has
    // already run on it. A learner's pod that has not started yet simply waits for its claim.
    const started = hasStarted(p);
    const claimLost = member !== undefined && claim === undefined && (!member.isLearner || started);
    const lost = claimLost ? `its volume claim ${claimOf(name)} is gone` : (member?.identityMismatch ?? corruptDataOf(p));
    return {
      name,
      ready: (p.status?.containerStatuses ?? []).length > 0 && (p.status?.containerStatuses ?? []).every((c) => c.ready),
      terminating: p.metadata?.deletionTimestamp !== undefined,
      ...trustState(topology, p, hash, trust),
      nodeGone,
      nodeCordoned: boundNode !== undefined && cordoned.has(boundNode),
      dataLost: lost !== undefined,
      ...(lost !== undefined ? { dataLostReason: lost } : {}),
      staleJoin: !initialClusterOf(p).includes(`${name}=`),
      started,
    };
  });
  return {
    desired: desiredMemberNames(topology),
    budget: { count: topology.spec.members.count, maxUnavailable: topology.spec.disruption.maxUnavailable },
    members,
    pods: memberPods,
    volumes: claims.map((c) => c.metadata?.name ?? '').filter((n) => n.startsWith('data-')).map((n) => n.slice('data-'.length)),
  };
}

/** The CA bundle members must trust now (TlsState.trustHash), and whether a CA rotation is under way. */
export interface MemberTrust {
  hash?: string | undefined;
  rotating?: boolean;
}

/**
 * Whether the pod runs the configuration asked for, and whether only its trust bundle differs. A pod
 * without a trust hash predates it and trusts the one CA the topology had then: it is up to date
 * unless a CA rotation is under way.
 */
function trustState(topology: EtcdTopology, pod: V1Pod, hash: string, trust: MemberTrust): { upToDate: boolean; trustOnly: boolean } {
  const annotations = pod.metadata?.annotations ?? {};
  const podHash = annotations[CONFIG_HASH_ANNOTATION];
  const podTrust = annotations[TRUST_HASH_ANNOTATION];
  const sameButTrust = podHash === memberConfigHash(topology, podTrust);
  const legacy = podTrust === undefined && trust.rotating !== true && sameButTrust;
  const upToDate = podHash === hash || legacy;
  return { upToDate, trustOnly: !upToDate && sameButTrust };
}

/** The status of the pod's etcd container, once the kubelet reports one. */
const etcdStatusOf = (pod: V1Pod): V1ContainerStatus | undefined => pod.status?.containerStatuses?.find((c) => c.name === 'etcd');

/** Whether the pod's etcd container has run at least once (running now, exited, or restarted). */
function hasStarted(pod: V1Pod): boolean {
  const etcd = etcdStatusOf(pod);
  return etcd !== undefined && (etcd.restartCount > 0 || etcd.state?.running !== undefined || etcd.state?.terminated !== undefined);
}

/** The --initial-cluster value the pod's etcd container was started with ('' when absent). */
function initialClusterOf(pod: V1Pod): string {
  const etcd = pod.spec?.containers.find((c) => c.name === 'etcd');
  const arg = [...(etcd?.command ?? []), ...(etcd?.args ?? [])].find((a) => a.startsWith('--initial-cluster='));
  return arg?.slice('--initial-cluster='.length) ?? '';
}
