import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import { binaries } from '../harness/binaries.ts';
import { run } from '../harness/run.ts';
import { etcdMetricNames, metricsIn, projectMetricNames } from './known-metrics.ts';

// The chart's PrometheusRule, rendered by the real helm, checked and unit-tested by the real promtool
// (hack/test-binaries.sh promtool): every alert fires on synthetic series of a broken topology and
// stays silent on a healthy one.

const root = path.resolve(import.meta.dirname, '../..');
const chart = path.join(root, 'deploy/etcd-topology');
const RUNBOOKS = 'https://example.test/docs/runbooks';

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}
type Series = [series: string, values: string];
interface Case {
  alert: string;
  /** Series of a topology in trouble, and what the firing alert says. */
  firing: { series: Series[]; at: string; labels: Record<string, string>; summary: string };
  /** The same series as a healthy topology shows them: no alert. */
  healthy: Series[];
  /** Earlier evaluations at which the alert must not fire yet (its `for`), or other alerts that must stay quiet. */
  quietAt?: string[];
}

const T = 'namespace="prod",name="main"';
const TL = { namespace: 'prod', name: 'main' };
const M = `${T},member="main-member-1"`;
const POD = 'namespace="prod",name="main",pod="main-proxy-x7",component="proxy"';
const POD_L = { namespace: 'prod', name: 'main', pod: 'main-proxy-x7', component: 'proxy' };

const cases: Case[] = [
  {
    alert: 'EtcdTopologyQuorumLost',
    firing: {
      series: [[`etcd_topology_healthy_voters{${T}}`, '1x10'], [`etcd_topology_quorum_size{${T}}`, '2x10'], [`etcd_topology_members_desired{${T}}`, '3x10']],
      at: '2m',
      labels: { ...TL, severity: 'critical' },
      summary: 'prod/main: quorum lost, 1 healthy voters',
    },
    healthy: [[`etcd_topology_healthy_voters{${T}}`, '2x10'], [`etcd_topology_quorum_size{${T}}`, '2x10'], [`etcd_topology_members_desired{${T}}`, '3x10']],
  },
  {
    alert: 'EtcdTopologyQuorumAtRisk',
    firing: {
      series: [[`etcd_topology_healthy_voters{${T}}`, '2x10'], [`etcd_topology_quorum_size{${T}}`, '2x10'], [`etcd_topology_members_desired{${T}}`, '3x10']],
      at: '6m',
      labels: { ...TL, severity: 'warning' },
      summary: 'prod/main: 2 healthy voters, fewer than members.count',
    },
    healthy: [[`etcd_topology_healthy_voters{${T}}`, '3x10'], [`etcd_topology_quorum_size{${T}}`, '2x10'], [`etcd_topology_members_desired{${T}}`, '3x10']],
    quietAt: ['4m'],
  },
  {
    alert: 'EtcdTopologyNoLeader',
    firing: { series: [[`etcd_topology_has_leader{${T}}`, '0x10']], at: '2m', labels: { ...TL, severity: 'critical' }, summary: 'prod/main: no member reports a leader' },
    healthy: [[`etcd_topology_has_leader{${T}}`, '1x10']],
  },
  {
    alert: 'EtcdTopologyMemberUnhealthy',
    firing: {
      series: [[`etcd_topology_member_healthy{${M}}`, '0x15']],
      at: '11m',
      labels: { ...TL, member: 'main-member-1', severity: 'warning' },
      summary: 'prod/main: member main-member-1 not healthy for 10 minutes',
    },
    healthy: [[`etcd_topology_member_healthy{${M}}`, '1x15']],
    quietAt: ['9m'],
  },
  {
    alert: 'EtcdTopologyFrequentLeaderChanges',
    firing: {
      series: [['etcd_server_leader_changes_seen_total{namespace="prod",name="main",pod="main-member-0",component="member"}', '0+1x60']],
      at: '60m',
      labels: { namespace: 'prod', name: 'main', pod: 'main-member-0', component: 'member', severity: 'warning' },
      summary: 'prod/main-member-0: 60 leader changes in the last hour',
    },
    // One election an hour is what a rolling update costs.
    healthy: [['etcd_server_leader_changes_seen_total{namespace="prod",name="main",pod="main-member-0",component="member"}', '0x30 1x30']],
  },
  {
    alert: 'EtcdTopologyNoSpaceAlarm',
    firing: {
      series: [[`etcd_topology_alarms_active{${T},alarm="NOSPACE"}`, '1x5'], [`etcd_topology_alarms_active{${T},alarm="CORRUPT"}`, '0x5']],
      at: '1m',
      labels: { ...TL, alarm: 'NOSPACE', severity: 'critical' },
      summary: 'prod/main: NOSPACE alarm, the cluster accepts only reads and deletes',
    },
    healthy: [[`etcd_topology_alarms_active{${T},alarm="NOSPACE"}`, '0x5'], [`etcd_topology_alarms_active{${T},alarm="CORRUPT"}`, '0x5']],
  },
  {
    alert: 'EtcdTopologyCorruptAlarm',
    firing: {
      series: [[`etcd_topology_alarms_active{${T},alarm="NOSPACE"}`, '0x5'], [`etcd_topology_alarms_active{${T},alarm="CORRUPT"}`, '1x5']],
      at: '1m',
      labels: { ...TL, alarm: 'CORRUPT', severity: 'critical' },
      summary: 'prod/main: CORRUPT alarm, members disagree on their data',
    },
    healthy: [[`etcd_topology_alarms_active{${T},alarm="NOSPACE"}`, '0x5'], [`etcd_topology_alarms_active{${T},alarm="CORRUPT"}`, '0x5']],
  },
  {
    alert: 'EtcdTopologyDatabaseNearQuota',
    firing: {
      series: [[`etcd_topology_member_db_size_bytes{${M}}`, '90x15'], [`etcd_topology_quota_backend_bytes{${T}}`, '100x15']],
      at: '11m',
      labels: { ...TL, member: 'main-member-1', severity: 'warning' },
      summary: 'prod/main: member main-member-1 database at 90% of the quota',
    },
    healthy: [[`etcd_topology_member_db_size_bytes{${M}}`, '79x15'], [`etcd_topology_quota_backend_bytes{${T}}`, '100x15']],
    quietAt: ['9m'],
  },
  {
    alert: 'EtcdTopologyDefragmentationFailing',
    firing: {
      series: [[`etcd_topology_defragmentations_total{${M},result="failure"}`, '0 0 1 1 2 2 3 3 4 4']],
      at: '9m',
      labels: { ...TL, member: 'main-member-1', result: 'failure', severity: 'warning' },
      summary: 'prod/main: defragmentation of main-member-1 failed repeatedly',
    },
    healthy: [[`etcd_topology_defragmentations_total{${M},result="failure"}`, '0x10'], [`etcd_topology_defragmentations_total{${M},result="success"}`, '0 1 2 3 4 5 6 7 8 9']],
  },
  {
    alert: 'EtcdTopologyBackupStale',
    firing: {
      // The last success at the epoch, evaluated three hours later.
      series: [[`etcd_topology_backup_last_success_timestamp_seconds{${T}}`, '0x200']],
      at: '3h',
      labels: { ...TL, severity: 'warning' },
      summary: 'prod/main: last successful backup 3h 0m 0s ago',
    },
    // A backup every minute: the timestamp follows the clock.
    healthy: [[`etcd_topology_backup_last_success_timestamp_seconds{${T}}`, '0+60x200']],
  },
  {
    alert: 'EtcdTopologyCertificateExpiring',
    firing: {
      series: [[`etcd_topology_certificate_expiry_timestamp_seconds{${T},secret="main-peer-tls"}`, '86400x5']],
      at: '1m',
      labels: { ...TL, secret: 'main-peer-tls', severity: 'warning' },
      summary: 'prod/main: certificate in Secret main-peer-tls expires in 23h 59m 0s',
    },
    healthy: [[`etcd_topology_certificate_expiry_timestamp_seconds{${T},secret="main-peer-tls"}`, '8640000x5']],
  },
  {
    alert: 'EtcdTopologyProxyNoHealthyUpstream',
    firing: {
      series: [[`etcd_topology_proxy_member_healthy{${POD},member="http://10.0.0.1:2379"}`, '0x5'], [`etcd_topology_proxy_member_healthy{${POD},member="http://10.0.0.2:2379"}`, '0x5']],
      at: '3m',
      labels: { ...POD_L, severity: 'critical' },
      summary: 'prod/main-proxy-x7: the proxy reaches no healthy etcd member',
    },
    // One member held off is what failover is for.
    healthy: [[`etcd_topology_proxy_member_healthy{${POD},member="http://10.0.0.1:2379"}`, '0x5'], [`etcd_topology_proxy_member_healthy{${POD},member="http://10.0.0.2:2379"}`, '1x5']],
  },
  {
    alert: 'EtcdTopologyProxyErrorRate',
    firing: {
      series: [
        [`etcd_topology_proxy_requests_total{${POD},protocol="grpc",service="etcdserverpb.KV",method="Put",code="OK"}`, '0+100x30'],
        [`etcd_topology_proxy_requests_total{${POD},protocol="grpc",service="etcdserverpb.KV",method="Put",code="UNAVAILABLE"}`, '0+10x30'],
        [`etcd_topology_proxy_requests_total{${POD},protocol="http",service="http",method="other",code="503"}`, '0+2x30'],
      ],
      at: '20m',
      labels: { ...POD_L, severity: 'warning' },
      summary: 'prod/main-proxy-x7: 10.71% of proxied requests fail',
    },
    // Client-side refusals (a failed compare, NOT_FOUND, readonly UNIMPLEMENTED) are not proxy errors.
    healthy: [
      [`etcd_topology_proxy_requests_total{${POD},protocol="grpc",service="etcdserverpb.KV",method="Put",code="OK"}`, '0+100x30'],
      [`etcd_topology_proxy_requests_total{${POD},protocol="grpc",service="etcdserverpb.KV",method="Put",code="UNIMPLEMENTED"}`, '0+50x30'],
      [`etcd_topology_proxy_requests_total{${POD},protocol="grpc",service="etcdserverpb.KV",method="Put",code="UNAVAILABLE"}`, '0+1x30'],
    ],
    quietAt: ['9m'],
  },
];

let dir = '';
let rules: Rule[] = [];
let rulesFile = '';

beforeAll(async () => {
  const helm = (await run('bash', [path.join(root, 'hack/helm.sh')])).trim();
  const out = await run(helm, [
    'template', 'etcd-topology', chart, '--namespace', 'monitoring',
    '--set', 'prometheusRule.enabled=true', '--set', `prometheusRule.runbookBaseURL=${RUNBOOKS}/`,
    '--api-versions', 'monitoring.coreos.com/v1/PrometheusRule',
  ]);
  const objects = parseAllDocuments(out).map((d) => d.toJS() as { kind?: string; spec?: { groups: { name: string; rules: Rule[] }[] } } | null);
  const rule = objects.find((o) => o?.kind === 'PrometheusRule');
  if (rule?.spec === undefined) throw new Error('the chart rendered no PrometheusRule');
  rules = rule.spec.groups.flatMap((g) => g.rules);
  dir = await mkdtemp(path.join(os.tmpdir(), 'etcd-topology-alerts-'));
  rulesFile = path.join(dir, 'rules.yaml');
  // A PrometheusRule's spec is exactly a Prometheus rule file.
  await writeFile(rulesFile, stringify(rule.spec));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** One promtool test group: the alert at its evaluation times, and every other alert quiet at the firing time. */
function testGroup(series: Series[], evals: { at: string; alert: string; fires?: { labels: Record<string, string>; summary: string } }[]): unknown {
  return {
    interval: '1m',
    input_series: series.map(([s, values]) => ({ series: s, values })),
    alert_rule_test: evals.map(({ at, alert, fires }) => {
      const rule = rules.find((r) => r.alert === alert)!;
      return {
        eval_time: at,
        alertname: alert,
        exp_alerts: fires === undefined ? [] : [{ exp_labels: fires.labels, exp_annotations: { ...rule.annotations, summary: fires.summary } }],
      };
    }),
  };
}

describe('the chart PrometheusRule', () => {
  it('passes promtool check rules', async () => {
    const out = await run(binaries().promtool, ['check', 'rules', rulesFile]);
    expect(out).toMatch(new RegExp(`SUCCESS: ${rules.length} rules found`));
  });

  it('has the alerts the issue asks for, each tested here, each with a runbook that exists under docs/runbooks/', () => {
    expect(rules.map((r) => r.alert).sort()).toEqual(cases.map((c) => c.alert).sort());
    for (const r of rules) {
      expect(r.labels['severity'], r.alert).toMatch(/^(warning|critical)$/);
      expect(r.annotations['runbook_url'], r.alert).toMatch(new RegExp(`^${RUNBOOKS}/[a-z-]+\\.md$`));
      const file = path.join(root, 'docs/runbooks', r.annotations['runbook_url']!.slice(RUNBOOKS.length + 1));
      expect(existsSync(file), `${r.alert}: ${file}`).toBe(true);
      expect(r.annotations['summary'], r.alert).toBeTruthy();
    }
  });

  it('reads only metrics the operator, the proxy or etcd export, apart from the backup and TLS gauges their features add', async () => {
    // Written against the names the backup (issue 8) work exports.
    const pending = new Set(['etcd_topology_backup_last_success_timestamp_seconds']);
    const known = new Set([...(await projectMetricNames()), ...(await etcdMetricNames())]);
    const unknown = rules.flatMap((r) => metricsIn(r.expr).filter((m) => !known.has(m) && !pending.has(m)).map((m) => `${r.alert}: ${m}`));
    expect(unknown).toEqual([]);
  });

  it('fires each alert on a broken topology and stays silent on a healthy one (promtool test rules)', async () => {
    const others = (alert: string): string[] => rules.map((r) => r.alert).filter((a) => a !== alert);
    const tests = cases.flatMap((c) => [
      testGroup(c.firing.series, [
        { at: c.firing.at, alert: c.alert, fires: { labels: c.firing.labels, summary: c.firing.summary } },
        ...(c.quietAt ?? []).map((at) => ({ at, alert: c.alert })),
      ]),
      testGroup(c.healthy, [c.alert, ...others(c.alert)].map((alert) => ({ at: c.firing.at, alert }))),
    ]);
    // Quorum lost is not also "at risk": one page, not two.
    const lost = cases.find((c) => c.alert === 'EtcdTopologyQuorumLost')!;
    tests.push(testGroup(lost.firing.series, [{ at: '10m', alert: 'EtcdTopologyQuorumAtRisk' }]));
    const testFile = path.join(dir, 'tests.yaml');
    await writeFile(testFile, stringify({ rule_files: [rulesFile], evaluation_interval: '1m', tests }));
    const out = await run(binaries().promtool, ['test', 'rules', testFile]).catch((err: unknown) => {
      throw new Error(`promtool test rules failed:\n${(err as Error).message}`);
    });
    expect(out).toContain('SUCCESS');
  });
});
