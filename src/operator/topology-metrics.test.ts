import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { TopologyMetrics, type TopologySample } from './topology-metrics.ts';

const sample = (over: Partial<TopologySample> = {}): TopologySample => ({
  namespace: 'etcd',
  name: 'main',
  desired: 3,
  quorumSize: 2,
  healthyVoters: 3,
  disruptionsAllowed: 1,
  hasLeader: true,
  quotaBackendBytes: 100,
  members: ['a', 'b', 'c'].map((n) => ({ name: `main-member-${n}`, healthy: true, dbSize: 50, dbSizeInUse: 20 })),
  alarms: { NOSPACE: 0, CORRUPT: 0 },
  step: { action: 'None', reason: 'Converged' },
  ...over,
});

/** The exposition lines of one metric, without HELP and TYPE. */
async function lines(registry: Registry, name: string): Promise<string[]> {
  return (await registry.getSingleMetricAsString(name)).split('\n').filter((l) => l !== '' && !l.startsWith('#'));
}

describe('TopologyMetrics', () => {
  it('exports each TLS Secret\'s certificate expiry, and drops Secrets no longer reported or of a deleted topology', async () => {
    const registry = new Registry();
    const m = new TopologyMetrics(registry);
    m.certificates('etcd', 'main', [
      { secret: 'main-server-tls', notAfter: new Date('2026-03-01T00:00:00Z') },
      { secret: 'main-proxy-serving-tls', notAfter: new Date('2026-03-02T00:00:00Z') },
    ]);
    expect(await lines(registry, 'etcd_topology_certificate_expiry_timestamp_seconds')).toEqual([
      'etcd_topology_certificate_expiry_timestamp_seconds{namespace="etcd",name="main",secret="main-server-tls"} 1772323200',
      'etcd_topology_certificate_expiry_timestamp_seconds{namespace="etcd",name="main",secret="main-proxy-serving-tls"} 1772409600',
    ]);
    m.certificates('etcd', 'main', [{ secret: 'main-server-tls', notAfter: new Date('2026-03-03T00:00:00Z') }]);
    expect(await lines(registry, 'etcd_topology_certificate_expiry_timestamp_seconds')).toEqual([
      'etcd_topology_certificate_expiry_timestamp_seconds{namespace="etcd",name="main",secret="main-server-tls"} 1772496000',
    ]);
    m.forget('etcd', 'main');
    expect(await lines(registry, 'etcd_topology_certificate_expiry_timestamp_seconds')).toEqual([]);
  });

  it('exports quorum, members, sizes, alarms and the planner step per topology', async () => {
    const registry = new Registry();
    const m = new TopologyMetrics(registry);
    m.observe(sample({ alarms: { NOSPACE: 1, CORRUPT: 0 } }));
    expect(await lines(registry, 'etcd_topology_healthy_voters')).toEqual(['etcd_topology_healthy_voters{namespace="etcd",name="main"} 3']);
    expect(await lines(registry, 'etcd_topology_member_db_size_in_use_bytes')).toHaveLength(3);
    expect(await lines(registry, 'etcd_topology_alarms_active')).toEqual([
      'etcd_topology_alarms_active{namespace="etcd",name="main",alarm="NOSPACE"} 1',
      'etcd_topology_alarms_active{namespace="etcd",name="main",alarm="CORRUPT"} 0',
    ]);
    expect(await lines(registry, 'etcd_topology_planner_step')).toEqual(['etcd_topology_planner_step{namespace="etcd",name="main",action="None",reason="Converged"} 1']);
  });

  it('drops the series of a member that is gone and of the previous step; keeps members, marked unhealthy, while etcd is unreadable', async () => {
    const registry = new Registry();
    const m = new TopologyMetrics(registry);
    m.observe(sample());
    m.observe(sample({ members: sample().members.slice(0, 2), step: { action: 'Defragment', reason: 'DatabaseNearQuota' } }));
    expect((await lines(registry, 'etcd_topology_member_healthy')).map((l) => l.replace(/.*member="([^"]+)".*/, '$1'))).toEqual(['main-member-a', 'main-member-b']);
    expect(await lines(registry, 'etcd_topology_planner_step')).toEqual(['etcd_topology_planner_step{namespace="etcd",name="main",action="Defragment",reason="DatabaseNearQuota"} 1']);
    m.observe(sample({ members: [], healthyVoters: 0, hasLeader: false }));
    expect(await lines(registry, 'etcd_topology_member_healthy')).toEqual([
      'etcd_topology_member_healthy{namespace="etcd",name="main",member="main-member-a"} 0',
      'etcd_topology_member_healthy{namespace="etcd",name="main",member="main-member-b"} 0',
    ]);
    expect(await lines(registry, 'etcd_topology_has_leader')).toEqual(['etcd_topology_has_leader{namespace="etcd",name="main"} 0']);
  });

  it('forgets a deleted topology', async () => {
    const registry = new Registry();
    const m = new TopologyMetrics(registry);
    m.observe(sample());
    m.observe(sample({ name: 'other' }));
    m.forget('etcd', 'main');
    expect(await lines(registry, 'etcd_topology_members_desired')).toEqual(['etcd_topology_members_desired{namespace="etcd",name="other"} 3']);
    expect((await lines(registry, 'etcd_topology_member_db_size_bytes')).every((l) => l.includes('name="other"'))).toBe(true);
  });
});
