import type { EtcdAdminClient } from '../etcd/admin-client.ts';
import { memberName, toMemberHealth } from '../etcd/member-health.ts';
import type { StatusResponse } from '../etcd/responses.ts';
import type { Alarm } from '../quorum/defrag.ts';
import type { MemberHealth } from '../quorum/members.ts';

/** A member pod the operator can reach: its name and client URL by pod IP. */
export interface MemberEndpoint {
  name: string;
  url: string;
}

/** What a member observation needs of the admin client (the live one, or a fake in unit tests). */
export type EtcdReader = Pick<EtcdAdminClient, 'status' | 'memberList' | 'alarms' | 'onFirstAvailable'>;

/** What etcd said: its members (joined with each one's status) and active alarms, or why no member answered. */
export type EtcdObservation = { members: MemberHealth[]; alarms: Alarm[] } | { error: string };

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));

/**
 * Reads the cluster as etcd sees it. First each member's own status, from every endpoint at once (so a
 * member that does not answer costs one deadline, not one per call); then the member list and alarms
 * from the members that answered, in endpoint order. Members are dialled through their pods'
 * addresses (member client URLs are cluster DNS names, which an operator running outside the cluster
 * cannot resolve); a member etcd lists without an endpoint is not asked and counts as unhealthy.
 */
export async function observeEtcd(admin: EtcdReader, endpoints: readonly MemberEndpoint[]): Promise<EtcdObservation> {
  if (endpoints.length === 0) return { error: 'no member pod is running with an IP yet' };
  const byName = new Map(await Promise.all(endpoints.map(async (e) => [e.name, await admin.status(e.url).catch(asError)] as const)));
  const answering = endpoints.filter((e) => !(byName.get(e.name) instanceof Error)).map((e) => e.url);
  if (answering.length === 0) return { error: endpoints.map((e) => (byName.get(e.name) as Error).message).join('; ') };
  try {
    // Without quorum no member answers a linearizable member list; a serializable one from any member
    // still shows who is there, so a quorum loss is reported as such rather than as "unreachable".
    // The member list and the alarms at once: one round trip to the members less in every reconcile.
    const [list, alarms] = await Promise.all([
      admin
        .onFirstAvailable(answering, (url) => admin.memberList(url))
        .catch(() => admin.onFirstAvailable(answering, (url) => admin.memberList(url, { linearizable: false }))),
      admin.onFirstAvailable(answering, (url) => admin.alarms(url)).catch(() => ({ alarms: [] })),
    ]);
    const statuses = new Map<string, StatusResponse | Error>(list.members.map((m) => [m.ID, byName.get(memberName(m)) ?? new Error('no running pod for this member')]));
    return {
      members: toMemberHealth(list.members, statuses, alarms.alarms, list.header.cluster_id),
      alarms: alarms.alarms.flatMap((a) => (a.alarm === 'NONE' ? [] : [{ memberId: a.memberID, alarm: a.alarm }])),
    };
  } catch (err) {
    return { error: asError(err).message };
  }
}
