import type { EtcdTopology } from '../../api/etcd-topology.ts';
import { nameOf, namespaceOf } from './meta.ts';

export const CLIENT_PORT = 2379;
export const PEER_PORT = 2380;
export const METRICS_PORT = 2381;
/** The proxy's own metrics and health port (--metrics-addr). */
export const PROXY_METRICS_PORT = 9091;

/** The names of everything one topology owns; every other name derives from these. */
export function namesOf(topology: EtcdTopology): {
  peerService: string;
  clientService: string;
  memberStatefulSet: string;
  podDisruptionBudget: string;
  memberServiceAccount: string;
  proxyDaemonSet: string;
  proxyService: string;
  proxyServiceAccount: string;
} {
  const n = nameOf(topology);
  return {
    peerService: `${n}-peer`,
    clientService: `${n}-client`,
    memberStatefulSet: `${n}-member`,
    podDisruptionBudget: `${n}-member`,
    memberServiceAccount: `${n}-member`,
    proxyDaemonSet: `${n}-proxy`,
    proxyService: `${n}-proxy`,
    proxyServiceAccount: `${n}-proxy`,
  };
}

/** The member pod (and etcd member) name of an ordinal: "<name>-member-<i>". */
export function memberName(topology: EtcdTopology, ordinal: number): string {
  return `${namesOf(topology).memberStatefulSet}-${ordinal}`;
}

/** Member names for ordinals 0..members.count-1: the planner's desired set. */
export function desiredMemberNames(topology: EtcdTopology): string[] {
  return Array.from({ length: topology.spec.members.count }, (_, i) => memberName(topology, i));
}

/** A member's stable DNS name through the headless peer Service. */
export function memberHost(topology: EtcdTopology, member: string): string {
  return `${member}.${namesOf(topology).peerService}.${namespaceOf(topology)}.svc`;
}

/** http or https: the scheme of every member client and peer URL (the metrics listener stays http). */
export function memberScheme(topology: EtcdTopology): 'http' | 'https' {
  return topology.spec.tls.enabled ? 'https' : 'http';
}

/** The peer URL a member advertises, and the one to pass to member add. */
export function memberPeerURL(topology: EtcdTopology, member: string): string {
  return `${memberScheme(topology)}://${memberHost(topology, member)}:${PEER_PORT}`;
}

/** The client URL a member advertises. */
export function memberClientURL(topology: EtcdTopology, member: string): string {
  return `${memberScheme(topology)}://${memberHost(topology, member)}:${CLIENT_PORT}`;
}

/** Whether a name is one of this topology's member names (and not a foreign member's). */
export function isMemberName(topology: EtcdTopology, name: string): boolean {
  return new RegExp(`^${namesOf(topology).memberStatefulSet}-\\d+$`).test(name);
}
