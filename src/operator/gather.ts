import type { KubernetesObject, V1DaemonSet, V1Node, V1PersistentVolumeClaim, V1Pod } from '@kubernetes/client-node';
import type { EtcdTopology } from '../api/etcd-topology.ts';
import type { EtcdAdminClient } from '../etcd/admin-client.ts';
import { CLIENT_PORT, memberScheme, namesOf } from './components/names.ts';
import { labelMatcher, selectorLabels } from './components/meta.ts';
import type { Informers } from './informers.ts';
import { observeEtcd, type EtcdObservation, type MemberEndpoint } from './observe-etcd.ts';
import { useMemberTls, type TlsState } from './tls-certificates.ts';

/**
 * What the caches say of one topology, read once: the member pods, their claims, the nodes, the
 * proxies. Every policy reads it (with etcd's view, a Snapshot), never the caches again.
 */
export interface ClusterSnapshot {
  /** Every member pod, terminating ones included (the planner must see a pod on its way out); shared, not to be changed. */
  memberPods: readonly V1Pod[];
  /** The member pods not being deleted: what etcd is dialled through and status reports. */
  activeMemberPods: V1Pod[];
  /** Each active member pod that runs and has an address, and its client URL by pod IP: the only members dialled. */
  endpoints: MemberEndpoint[];
  /** The members' data volume claims (shared, not to be changed). */
  claims: readonly V1PersistentVolumeClaim[];
  /** Every node (shared with every reconcile: not to be changed). */
  nodes: readonly V1Node[];
  /** Nodes that match spec.members.nodeSelector and are Ready. */
  eligibleCentralNodes: number;
  /** The member StatefulSet exists (a restore decides on it). */
  statefulSetExists: boolean;
  proxies: { desired: number; ready: number };
}

/**
 * Everything one reconcile decides from, read once (cert-manager's "gather, then decide"): the
 * cluster snapshot and etcd's own view. Every policy after this reads it, never the caches or etcd again.
 */
export interface Snapshot extends ClusterSnapshot {
  /** Members and alarms as etcd reports them, or why etcd could not be read. */
  etcd: EtcdObservation;
}

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

/** Reads the cluster snapshot of one topology from the caches (no call leaves the process). */
export function gatherCluster(informers: Informers, topology: EtcdTopology): ClusterSnapshot {
  const namespace = topology.metadata.namespace;
  const isMember = labelMatcher(selectorLabels(topology, 'member'));
  // The topology's member pods and claims, filtered again only after that cache changed.
  const members = <T extends KubernetesObject>(kind: string): readonly T[] =>
    informers.derived(kind, `members of ${namespace}/${topology.metadata.name}`, () => informers.list<T>(kind, namespace).filter((o) => isMember(o.metadata?.labels)));
  const memberPods = members<V1Pod>('Pod');
  const activeMemberPods = memberPods.filter((p) => !p.metadata?.deletionTimestamp);
  const nodes = informers.list<V1Node>('Node');
  return {
    memberPods,
    activeMemberPods,
    endpoints: memberEndpoints(topology, activeMemberPods),
    claims: members<V1PersistentVolumeClaim>('PersistentVolumeClaim'),
    nodes,
    eligibleCentralNodes: eligibleNodes(informers, nodes, topology.spec.members.nodeSelector),
    statefulSetExists: informers.get('StatefulSet', namesOf(topology).memberStatefulSet, namespace) !== undefined,
    proxies: proxiesOf(informers, topology),
  };
}

/** Asks etcd for its view through the snapshot's endpoints, dialled with the certificates step's TLS. */
export function readEtcd(admin: EtcdAdminClient, topology: EtcdTopology, cluster: ClusterSnapshot, tls: TlsState): Promise<EtcdObservation> {
  useMemberTls(admin, topology, cluster.endpoints, tls);
  return observeEtcd(admin, cluster.endpoints);
}

/** Ready nodes that match a selector, counted again only after the node cache changed. */
function eligibleNodes(informers: Informers, nodes: readonly V1Node[], selector: Record<string, string>): number {
  return informers.derived('Node', `eligible ${JSON.stringify(selector)}`, () => {
    const matches = labelMatcher(selector);
    return nodes.filter((n) => matches(n.metadata?.labels) && isReadyNode(n)).length;
  });
}

function proxiesOf(informers: Informers, topology: EtcdTopology): { desired: number; ready: number } {
  if (!topology.spec.proxy.enabled) return { desired: 0, ready: 0 };
  const isProxy = labelMatcher(selectorLabels(topology, 'proxy'));
  const ds = informers.list<V1DaemonSet>('DaemonSet', topology.metadata.namespace).find((d) => isProxy(d.metadata?.labels));
  return { desired: ds?.status?.desiredNumberScheduled ?? 0, ready: ds?.status?.numberReady ?? 0 };
}
