import type { MemberHealth } from '../quorum/members.ts';
import { memberIdHex } from './admin-client.ts';
import type { AlarmResponse, EtcdMemberInfo, StatusResponse } from './responses.ts';

/**
 * The name a member goes by: its own once it has started, otherwise the first DNS label of its peer
 * URL (a pod's stable name, "main-member-3.main-peer.ns.svc"), or the peer URL itself.
 */
export function memberName(m: EtcdMemberInfo): string {
  if (m.name !== '') return m.name;
  const url = m.peerURLs[0];
  if (url === undefined) return m.ID;
  const host = new URL(url).hostname;
  return /^[0-9.]+$|^\[/.test(host) ? url : (host.split('.')[0] ?? url);
}

/**
 * Joins etcd's member list with each member's own status (or the error reading it) and the alarms
 * into the plain facts the quorum decisions take. A member is healthy when it answered, knows a
 * leader and carries no CORRUPT alarm; a NOSPACE alarm refuses writes but leaves the vote intact.
 */
export function toMemberHealth(
  members: readonly EtcdMemberInfo[],
  statuses: ReadonlyMap<string, StatusResponse | Error>,
  alarms: AlarmResponse['alarms'] = [],
  clusterId?: string,
): MemberHealth[] {
  const corrupt = new Set(alarms.filter((a) => a.alarm === 'CORRUPT').map((a) => a.memberID));
  return members.map((m) => {
    const status = statuses.get(m.ID);
    const mismatch = status === undefined || status instanceof Error ? undefined : identityMismatch(m, status, clusterId);
    const s = mismatch === undefined ? status : undefined;
    const answered = s !== undefined && !(s instanceof Error);
    return {
      id: m.ID,
      name: memberName(m),
      isLearner: m.isLearner,
      healthy: answered && s.leader !== '0' && !corrupt.has(m.ID),
      isLeader: answered && s.leader === m.ID,
      raftIndex: answered ? s.raftIndex : 0,
      revision: answered ? s.header.revision : 0,
      dbSize: answered ? s.dbSize : 0,
      dbSizeInUse: answered ? s.dbSizeInUse : 0,
      ...(mismatch !== undefined ? { identityMismatch: mismatch } : {}),
    };
  });
}

/**
 * Whether the status read from a member's pod came from that member: a process running on another
 * member's data directory, or on one from another cluster, answers with that member's or cluster's
 * ID. Its answers say nothing about the member etcd lists, so they must not count for it.
 */
function identityMismatch(m: EtcdMemberInfo, s: StatusResponse, clusterId: string | undefined): string | undefined {
  const { member_id: memberId, cluster_id: statusCluster } = s.header;
  if (memberId !== undefined && memberId !== m.ID) {
    return `its pod answers as member ${memberIdHex(memberId)}, but etcd lists ${memberName(m)} as ${memberIdHex(m.ID)}`;
  }
  if (clusterId !== undefined && statusCluster !== undefined && statusCluster !== clusterId) {
    return `its pod answers as a member of cluster ${memberIdHex(statusCluster)}, not of this cluster ${memberIdHex(clusterId)}`;
  }
  return undefined;
}
