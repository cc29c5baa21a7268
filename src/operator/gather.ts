import type { V1DaemonSet, V1Node, V1PersistentVolumeClaim, V1Pod } from '@kubernetes/client-node';
import type { EtcdTopology } from '../api/etcd-topology.ts';
import type { EtcdAdminClient } from '../etcd/admin-client.ts';
import { CLIENT_PORT, memberScheme, namesOf } from './components/names.ts';
import { selectorLabels } from './components/meta.ts';
import type { Informers } from './informers.ts';
import { observeEtcd, type EtcdObservation, type MemberEndpoint } from './observe-etcd.ts';
import { useMemberTls, type TlsState } from './tls-certificates.ts';

/**
 * Everything one reconcile decides from, read once (cert-manager's "gather, then decide"): the member
 * pods, their claims, the nodes, the proxies and etcd's own view. Every policy after this reads the
 * snapshot, never the caches or etcd again.
 */
export interface Snapshot {
  /** Every member pod, terminating ones included (the planner must see a pod on its way out). */
  memberPods: V1Pod[];
  /** The member pods not being deleted: what etcd is dialled through and status reports. */
  activeMemberPods: V1Pod[];
  /** Each active member pod that runs and has an address, and its client URL by pod IP: the only members dialled. */
  endpoints: MemberEndpoint[];
  /** The members' data volume claims. */
  claims: V1PersistentVolumeClaim[];
  nodes: V1Node[];
  /** Nodes that match spec.members.nodeSelector and are Ready. */
  eligibleCentralNodes: number;
  /** The member StatefulSet exists (a restore decides on it). */
  statefulSetExists: boolean;
  proxies: { desired: number; ready: number };
  /** Members and alarms as etcd reports them, or why etcd could not be read. */
  etcd: EtcdObservation;
}

export interface GatherDeps {
  informers: Informers;
  admin: EtcdAdminClient;
}

const matches = (labels: Record<string, string> | undefined, want: Record<string, string>): boolean => Object.entries(want).every(([k, v]) => labels?.[k] === v);
// A cordoned node still counts: cordoning is the first step of every drain and takes no member away.
const isReadyNode = (n: V1Node): boolean => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;

/**
 * The member pods' client URLs: etcd's client port at each pod's IP (the operator may run outside the
 * cluster's DNS). Only pods that run: a Pending pod (unscheduled, pulling, in its init containers) has
 * no etcd to answer, and dialling it would only wait for a deadline. Such a member counts as unhealthy.
 */
export function memberEndpoints(topology: EtcdTopology, pods: readonly V1Pod[]): MemberEndpoint[] {
  return pods.filter((p) => p.status?.phase === 'Running' && p.status.podIP).map((p) => ({ name: p.metadata!.name!, url: `${memberScheme(topology)}://${p.status!.podIP}:${CLIENT_PORT}` }));
}

/** Builds the snapshot of one topology; tls is the certificates step's outcome, which etcd is dialled with. */
export async function gather(deps: GatherDeps, topology: EtcdTopology, tls: TlsState): Promise<Snapshot> {
  const { informers } = deps;
  const namespace = topology.metadata.namespace;
  const memberSelector = selectorLabels(topology, 'member');
  const memberPods = informers.list<V1Pod>('Pod', namespace).filter((p) => matches(p.metadata?.labels, memberSelector));
  const activeMemberPods = memberPods.filter((p) => !p.metadata?.deletionTimestamp);
  const endpoints = memberEndpoints(topology, activeMemberPods);
  useMemberTls(deps.admin, topology, endpoints, tls);
  const nodes = informers.list<V1Node>('Node');
  return {
    memberPods,
    activeMemberPods,
    endpoints,
    claims: informers.list<V1PersistentVolumeClaim>('PersistentVolumeClaim', namespace).filter((c) => matches(c.metadata?.labels, memberSelector)),
    nodes,
    eligibleCentralNodes: nodes.filter((n) => matches(n.metadata?.labels, topology.spec.members.nodeSelector) && isReadyNode(n)).length,
    statefulSetExists: informers.get('StatefulSet', namesOf(topology).memberStatefulSet, namespace) !== undefined,
    proxies: proxiesOf(informers, topology),
    etcd: await observeEtcd(deps.admin, endpoints),
  };
}

function proxiesOf(informers: Informers, topology: EtcdTopology): { desired: number; ready: number } {
  if (!topology.spec.proxy.enabled) return { desired: 0, ready: 0 };
  const ds = informers.list<V1DaemonSet>('DaemonSet', topology.metadata.namespace).find((d) => matches(d.metadata?.labels, selectorLabels(topology, 'proxy')));
  return { desired: ds?.status?.desiredNumberScheduled ?? 0, ready: ds?.status?.numberReady ?? 0 };
}
