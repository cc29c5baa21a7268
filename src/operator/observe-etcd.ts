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

/** What etcd said: its members (joined with each one's status) and active alarms, or why no member answered. */
export type EtcdObservation = { members: MemberHealth[]; alarms: Alarm[] } | { error: string };

/**
 * Reads the cluster as etcd sees it: the member list and alarms from the first member that answers,
 * then each member's own status through its pod's address (member client URLs are cluster DNS names,
 * which an operator running outside the cluster cannot resolve).
 */
export async function observeEtcd(admin: EtcdAdminClient, endpoints: readonly MemberEndpoint[]): Promise<EtcdObservation> {
  if (endpoints.length === 0) return { error: 'no member pod has an IP yet' };
  const urls = endpoints.map((e) => e.url);
  try {
    // Without quorum no member answers a linearizable member list; a serializable one from any member
    // still shows who is there, so a quorum loss is reported as such rather than as "unreachable".
    const list = await admin
      .onFirstAvailable(urls, (url) => admin.memberList(url))
      .catch(() => admin.onFirstAvailable(urls, (url) => admin.memberList(url, { linearizable: false })));
    const alarms = await admin.onFirstAvailable(urls, (url) => admin.alarms(url)).catch(() => ({ alarms: [] }));
    const statuses = new Map<string, StatusResponse | Error>();
    await Promise.all(
      list.members.map(async (m) => {
        const url = endpoints.find((e) => e.name === memberName(m))?.url;
        if (!url) return statuses.set(m.ID, new Error('no running pod for this member'));
        statuses.set(m.ID, await admin.status(url).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err)))));
      }),
    );
    return {
      members: toMemberHealth(list.members, statuses, alarms.alarms, list.header.cluster_id),
      alarms: alarms.alarms.flatMap((a) => (a.alarm === 'NONE' ? [] : [{ memberId: a.memberID, alarm: a.alarm }])),
    };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}
