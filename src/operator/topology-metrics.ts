import { Counter, Gauge, Histogram, type Registry } from '../telemetry/lean-metrics.ts';
import type { EtcdTopology } from '../api/etcd-topology.ts';
import type { EtcdTopologyStatus } from '../api/status.ts';
import { quantityToNumber } from '../api/quantity.ts';
import type { Observation } from './status.ts';

/** What one reconcile saw of a topology, for its metrics. */
export interface TopologySample {
  namespace: string;
  name: string;
  desired: number;
  quorumSize: number;
  healthyVoters: number;
  disruptionsAllowed: number;
  hasLeader: boolean;
  quotaBackendBytes: number;
  /** Members as etcd listed them; empty when etcd could not be read. */
  members: { name: string; healthy: boolean; dbSize: number; dbSizeInUse: number }[];
  /** Active alarms by type (NOSPACE, CORRUPT): how many members raised each. */
  alarms: Record<'NOSPACE' | 'CORRUPT', number>;
  /** The planner's step this round. */
  step?: { action: string; reason: string };
}

type TopologyLabels = 'namespace' | 'name';
type MemberLabels = TopologyLabels | 'member';

/**
 * The operator's per-topology metrics, in the one registry: what alerts and the dashboard read about
 * quorum, members, databases, alarms, defragmentations and the planner. Every series carries the
 * EtcdTopology's namespace and name; series of members and steps that are gone are removed.
 */
export class TopologyMetrics {
  private readonly desired: Gauge<TopologyLabels>;
  private readonly quorumSize: Gauge<TopologyLabels>;
  private readonly healthyVoters: Gauge<TopologyLabels>;
  private readonly disruptionsAllowed: Gauge<TopologyLabels>;
  private readonly hasLeader: Gauge<TopologyLabels>;
  private readonly quota: Gauge<TopologyLabels>;
  private readonly memberHealthy: Gauge<MemberLabels>;
  private readonly dbSize: Gauge<MemberLabels>;
  private readonly dbSizeInUse: Gauge<MemberLabels>;
  private readonly alarms: Gauge<TopologyLabels | 'alarm'>;
  private readonly step: Gauge<TopologyLabels | 'action' | 'reason'>;
  private readonly defrags: Counter<MemberLabels | 'result'>;
  private readonly defragSeconds: Histogram<TopologyLabels>;
  private readonly freed: Counter<TopologyLabels>;
  private readonly certificateExpiry: Gauge<TopologyLabels | 'secret'>;
  /** Per topology key: the Secrets whose certificate expiry was last exported. */
  private readonly certificateSecrets = new Map<string, string[]>();
  /** Per topology key: the member names and the step labels last exported, to remove what went away. */
  private readonly exported = new Map<string, { members: string[]; step?: { action: string; reason: string } }>();

  constructor(registry: Registry) {
    const registers = [registry];
    const gauge = <L extends string>(name: string, help: string, labelNames: L[]): Gauge<L> => new Gauge({ name, help, labelNames, registers });
    const t: TopologyLabels[] = ['namespace', 'name'];
    const m: MemberLabels[] = ['namespace', 'name', 'member'];
    this.desired = gauge('etcd_topology_members_desired', 'spec.members.count of the topology.', t);
    this.quorumSize = gauge('etcd_topology_quorum_size', 'Votes needed to commit: a majority of members.count.', t);
    this.healthyVoters = gauge('etcd_topology_healthy_voters', 'Voters etcd counts healthy and caught up with the leader (0 when etcd cannot be read).', t);
    this.disruptionsAllowed = gauge('etcd_topology_disruptions_allowed', 'Healthy voters that may be disrupted now within disruption.maxUnavailable and quorum.', t);
    this.hasLeader = gauge('etcd_topology_has_leader', '1 when a healthy member reports itself leader, else 0.', t);
    this.quota = gauge('etcd_topology_quota_backend_bytes', 'members.quotaBackendBytes: the database size at which etcd raises NOSPACE.', t);
    this.memberHealthy = gauge('etcd_topology_member_healthy', '1 when etcd counts the member a healthy voter caught up with the leader, else 0.', m);
    this.dbSize = gauge('etcd_topology_member_db_size_bytes', 'Size of the member database file, as etcd reports it.', m);
    this.dbSizeInUse = gauge('etcd_topology_member_db_size_in_use_bytes', 'Bytes of the member database in use; the rest is what defragmentation frees.', m);
    this.alarms = gauge('etcd_topology_alarms_active', 'Members with an active etcd alarm, by alarm (NOSPACE, CORRUPT).', ['namespace', 'name', 'alarm']);
    this.step = gauge('etcd_topology_planner_step', "1 for the planner's current step (action and reason) of the topology.", ['namespace', 'name', 'action', 'reason']);
    this.defrags = new Counter({ name: 'etcd_topology_defragmentations_total', help: 'Defragmentations the operator ran, by member and result (success, failure).', labelNames: [...m, 'result'], registers });
    this.defragSeconds = new Histogram({
      name: 'etcd_topology_defragmentation_duration_seconds',
      help: 'Time one member defragmentation took.',
      labelNames: t,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    });
    this.freed = new Counter({ name: 'etcd_topology_defragmentation_freed_bytes_total', help: 'Bytes of database file freed by defragmentations.', labelNames: t, registers });
    this.certificateExpiry = gauge('etcd_topology_certificate_expiry_timestamp_seconds', 'When the certificate in the Secret expires (Unix time), for every TLS Secret of the topology.', [...t, 'secret']);
  }

  /** Sets the certificate expiry gauges of one topology, removing Secrets no longer reported. */
  certificates(namespace: string, name: string, expiries: readonly { secret: string; notAfter: Date }[]): void {
    const key = `${namespace}/${name}`;
    const now = expiries.map((e) => e.secret);
    for (const gone of (this.certificateSecrets.get(key) ?? []).filter((s) => !now.includes(s))) this.certificateExpiry.remove({ namespace, name, secret: gone });
    for (const e of expiries) this.certificateExpiry.set({ namespace, name, secret: e.secret }, Math.floor(e.notAfter.getTime() / 1000));
    this.certificateSecrets.set(key, now);
  }

  /** Sets every gauge of one topology from what its reconcile saw. */
  observe(s: TopologySample): void {
    const t = { namespace: s.namespace, name: s.name };
    const key = `${s.namespace}/${s.name}`;
    this.desired.set(t, s.desired);
    this.quorumSize.set(t, s.quorumSize);
    this.healthyVoters.set(t, s.healthyVoters);
    this.disruptionsAllowed.set(t, s.disruptionsAllowed);
    this.hasLeader.set(t, s.hasLeader ? 1 : 0);
    this.quota.set(t, s.quotaBackendBytes);
    for (const alarm of ['NOSPACE', 'CORRUPT'] as const) this.alarms.set({ ...t, alarm }, s.alarms[alarm]);
    const before = this.exported.get(key);
    // With etcd unreadable the members are unknown, not gone: keep their last values rather than drop them.
    const members = s.members.length > 0 || before === undefined ? s.members.map((x) => x.name) : before.members;
    for (const gone of (before?.members ?? []).filter((n) => !members.includes(n))) this.removeMember(t, gone);
    for (const x of s.members) {
      const ml = { ...t, member: x.name };
      this.memberHealthy.set(ml, x.healthy ? 1 : 0);
      this.dbSize.set(ml, x.dbSize);
      this.dbSizeInUse.set(ml, x.dbSizeInUse);
    }
    if (s.members.length === 0) for (const n of members) this.memberHealthy.set({ ...t, member: n }, 0);
    if (before?.step && (before.step.action !== s.step?.action || before.step.reason !== s.step?.reason)) this.step.remove({ ...t, ...before.step });
    if (s.step) this.step.set({ ...t, action: s.step.action, reason: s.step.reason }, 1);
    this.exported.set(key, { members, ...(s.step ? { step: { action: s.step.action, reason: s.step.reason } } : {}) });
  }

  /** Counts one defragmentation of a member. */
  defragmented(namespace: string, name: string, member: string, result: { ok: true; seconds: number; bytesFreed: number } | { ok: false; seconds: number }): void {
    this.defrags.inc({ namespace, name, member, result: result.ok ? 'success' : 'failure' });
    this.defragSeconds.observe({ namespace, name }, result.seconds);
    if (result.ok) this.freed.inc({ namespace, name }, Math.max(0, result.bytesFreed));
  }

  /** Removes every gauge of a deleted topology (counters stay, as counters do). */
  forget(namespace: string, name: string): void {
    const t = { namespace, name };
    const key = `${namespace}/${name}`;
    const before = this.exported.get(key);
    for (const g of [this.desired, this.quorumSize, this.healthyVoters, this.disruptionsAllowed, this.hasLeader, this.quota]) g.remove(t);
    for (const alarm of ['NOSPACE', 'CORRUPT']) this.alarms.remove({ ...t, alarm });
    for (const n of before?.members ?? []) this.removeMember(t, n);
    if (before?.step) this.step.remove({ ...t, ...before.step });
    this.exported.delete(key);
    this.certificates(namespace, name, []);
    this.certificateSecrets.delete(key);
  }

  private removeMember(t: { namespace: string; name: string }, member: string): void {
    for (const g of [this.memberHealthy, this.dbSize, this.dbSizeInUse]) g.remove({ ...t, member });
  }
}

/** The metrics sample of one reconcile: the status just computed and the alarms and sizes behind it. */
export function sampleOf(topology: EtcdTopology, obs: Observation, status: EtcdTopologyStatus): TopologySample {
  const alarms = { NOSPACE: 0, CORRUPT: 0 };
  for (const a of obs.alarms ?? []) alarms[a.alarm]++;
  const etcd = 'members' in obs.etcd ? obs.etcd.members : [];
  return {
    namespace: topology.metadata.namespace ?? '',
    name: topology.metadata.name ?? '',
    desired: topology.spec.members.count,
    quorumSize: status.quorum?.size ?? 0,
    healthyVoters: status.quorum?.healthy ?? 0,
    disruptionsAllowed: status.quorum?.disruptionsAllowed ?? 0,
    hasLeader: (status.leader ?? '') !== '',
    quotaBackendBytes: quantityToNumber(topology.spec.members.quotaBackendBytes),
    members: (status.members ?? []).map((m) => ({ name: m.name, healthy: m.healthy, dbSize: m.dbSize ?? 0, dbSizeInUse: etcd.find((e) => e.name === m.name)?.dbSizeInUse ?? 0 })),
    alarms,
    ...(obs.step ? { step: { action: obs.step.action, reason: obs.step.reason } } : {}),
  };
}
