import type { EtcdCluster, EtcdMember } from '../harness/etcd-cluster.ts';

/** The running members with their IDs (etcdctl's fields output keeps 64-bit IDs exact), and which one leads. */
export async function leadership(cluster: EtcdCluster): Promise<{ leader: EtcdMember; others: EtcdMember[]; idOf: (m: EtcdMember) => string }> {
  const field = (text: string, name: string): string => new RegExp(`"${name}" : (\\d+)`).exec(text)![1]!;
  const running = cluster.members.filter((m) => m.process);
  const statuses = await Promise.all(running.map(async (m) => ({ m, text: await cluster.etcdctl(['endpoint', 'status', '-w', 'fields'], m.clientUrl) })));
  const leaderId = field(statuses[0]!.text, 'Leader');
  const leader = statuses.find((s) => field(s.text, 'MemberID') === leaderId)!.m;
  const ids = new Map(statuses.map((s) => [s.m, field(s.text, 'MemberID')]));
  return { leader, others: running.filter((m) => m !== leader), idOf: (m) => ids.get(m)! };
}

/** How many calls of a gRPC method a member has handled, from its own metrics. */
export async function handled(member: EtcdMember, method: string): Promise<number> {
  const text = await (await fetch(`${member.clientUrl}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith('grpc_server_handled_total{') && l.includes(`grpc_method="${method}"`))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}
