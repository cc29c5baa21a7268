import type { EtcdTopology } from '../../../api/etcd-topology.ts';
import { quantityToNumber } from '../../../api/quantity.ts';
import { memberReplicas } from '../../../quorum/plan.ts';
import type { ComponentContext } from '../meta.ts';
import { namespaceOf, nameOf } from '../meta.ts';
import { CLIENT_PORT, desiredMemberNames, isMemberName, memberPeerURL, memberScheme, METRICS_PORT, namesOf, PEER_PORT } from '../names.ts';
import { memberTlsArgs } from '../tls/tls-volumes.ts';

export const DATA_MOUNT = '/var/lib/etcd';
/** A directory below the mount, so that a volume's lost+found never looks like etcd data. */
export const DATA_DIR = `${DATA_MOUNT}/data`;

/** The member set the pods start with: etcd's own, or every ordinal of the spec before the cluster exists. */
export function clusterMembership(topology: EtcdTopology, context: ComponentContext): { state: 'new' | 'existing'; members: string[]; replicas: number } {
  const known = (context.members ?? []).map((m) => m.name).filter((name) => isMemberName(topology, name));
  if (known.length === 0) {
    const members = desiredMemberNames(topology);
    return { state: 'new', members, replicas: members.length };
  }
  return { state: 'existing', members: known, replicas: memberReplicas(known) };
}

/**
 * etcd's flags apart from membership: what a rolling update must apply to every member. A member
 * reads --initial-cluster* only when its data directory is empty, so membership flags never need a
 * restart and are kept out of the configuration hash (see membershipArgs).
 */
export function configArgs(topology: EtcdTopology): string[] {
  const { members } = topology.spec;
  const host = `$(POD_NAME).${namesOf(topology).peerService}.${namespaceOf(topology)}.svc`;
  const retention = members.autoCompaction.retention ?? (members.autoCompaction.mode === 'periodic' ? '1h' : '1000');
  const scheme = memberScheme(topology);
  return [
    '--name=$(POD_NAME)',
    `--data-dir=${DATA_DIR}`,
    // The pod's own address only: probes, peers and clients all reach the pod IP, and a wildcard or
    // loopback listener would collide wherever pods share a network namespace (host network, the local cluster).
    `--listen-client-urls=${scheme}://$(POD_IP):${CLIENT_PORT}`,
    `--advertise-client-urls=${scheme}://${host}:${CLIENT_PORT}`,
    `--listen-peer-urls=${scheme}://$(POD_IP):${PEER_PORT}`,
    `--initial-advertise-peer-urls=${scheme}://${host}:${PEER_PORT}`,
    // Plain HTTP even with TLS: probes and Prometheus read it, and it serves no data.
    `--listen-metrics-urls=http://$(POD_IP):${METRICS_PORT}`,
    `--initial-cluster-token=${namespaceOf(topology)}-${nameOf(topology)}`,
    `--quota-backend-bytes=${quantityToNumber(members.quotaBackendBytes)}`,
    `--auto-compaction-mode=${members.autoCompaction.mode}`,
    `--auto-compaction-retention=${retention}`,
    // While a member defragments, its gRPC health service reports NOT_SERVING, so health-aware
    // clients and the proxies route around it instead of stalling on it (etcd 3.6 and later).
    ...(stopsGrpcOnDefrag(topology.spec.version) ? ['--feature-gates=StopGRPCServiceOnDefrag=true'] : []),
    ...memberTlsArgs(topology),
  ];
}

/** Whether the etcd version knows the StopGRPCServiceOnDefrag feature gate (3.6.0 and later). */
export function stopsGrpcOnDefrag(version: string): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 3 || (major === 3 && minor >= 6);
}

/**
 * The cluster token of members restored from a backup. It differs from the original cluster's (it
 * carries the new object's uid), so that the restored cluster gets a new cluster ID and a member of the
 * old cluster can never be mistaken for one of the new.
 */
export function restoreClusterToken(topology: EtcdTopology): string {
  return `${namespaceOf(topology)}-${nameOf(topology)}-restored-${(topology.metadata.uid ?? '').slice(0, 8)}`;
}

/**
 * The membership flags: the members a starting member contacts, and whether it bootstraps a new
 * cluster or joins an existing one (a learner added by the operator, or a replaced member).
 */
export function membershipArgs(topology: EtcdTopology, membership: { state: 'new' | 'existing'; members: readonly string[] }): string[] {
  const cluster = membership.members.map((m) => `${m}=${memberPeerURL(topology, m)}`).join(',');
  return [`--initial-cluster=${cluster}`, `--initial-cluster-state=${membership.state}`];
}
