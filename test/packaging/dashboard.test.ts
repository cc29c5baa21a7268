import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import { binaries } from '../harness/binaries.ts';
import { run } from '../harness/run.ts';
import { etcdMetricNames, metricsIn, projectMetricNames } from './known-metrics.ts';

// The chart's Grafana dashboard: the ConfigMap Grafana's sidecar imports carries the file as it is; the
// JSON has the structure Grafana's dashboard model requires; every query parses (promtool, as a
// recording rule) and reads only metrics that exist, as the operator, the proxy and a real etcd export them.

const root = path.resolve(import.meta.dirname, '../..');
const chart = path.join(root, 'deploy/etcd-topology');
const FILE = path.join(chart, 'files/grafana-dashboard.json');

interface Target {
  refId: string;
  expr: string;
  datasource: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown }[] };
}

let dashboard: Dashboard;
let known: Set<string>;
let dir = '';

beforeAll(async () => {
  dashboard = JSON.parse(await readFile(FILE, 'utf8')) as Dashboard;
  known = new Set([...(await projectMetricNames()), ...(await etcdMetricNames())]);
  dir = await mkdtemp(path.join(os.tmpdir(), 'etcd-topology-dashboard-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const queries = (): { panel: Panel; target: Target }[] => dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel, target })));
/** A query as Prometheus receives it once Grafana has filled in its variables. */
const expand = (expr: string): string => expr.replaceAll('$namespace', 'prod').replaceAll('$name', 'main').replaceAll('$__rate_interval', '2m');

describe('the chart Grafana dashboard', () => {
  it('is rendered only when enabled, as a ConfigMap with the sidecar label carrying the file verbatim', async () => {
    const helm = (await run('bash', [path.join(root, 'hack/helm.sh')])).trim();
    const off = await run(helm, ['template', 'etcd-topology', chart]);
    expect(off).not.toContain('grafana-dashboard');
    const out = await run(helm, ['template', 'etcd-topology', chart, '--namespace', 'monitoring', '--set', 'grafanaDashboard.enabled=true', '--set', 'grafanaDashboard.namespace=grafana']);
    const cm = parseAllDocuments(out)
      .map((d) => d.toJS() as { kind?: string; metadata: { name: string; namespace: string; labels: Record<string, string> }; data: Record<string, string> } | null)
      .find((o) => o?.kind === 'ConfigMap')!;
    expect(cm.metadata.labels['grafana_dashboard']).toBe('1');
    expect(cm.metadata.namespace).toBe('grafana');
    expect(JSON.parse(cm.data['etcd-topology.json']!)).toEqual(dashboard);
  });

  it("has Grafana's dashboard structure: uid, title, schemaVersion, unique panel ids, panels on the 24-column grid without overlap", () => {
    expect(dashboard.uid).toMatch(/^[a-zA-Z0-9_-]{1,40}$/);
    expect(dashboard.title).toBeTruthy();
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels) {
      const g = p.gridPos;
      expect([g.h, g.w, g.x, g.y].every(Number.isInteger), `${p.title} gridPos`).toBe(true);
      expect(g.x + g.w, `${p.title} fits the grid`).toBeLessThanOrEqual(24);
      expect(g.w * g.h).toBeGreaterThan(0);
      for (const q of dashboard.panels) {
        if (q === p) continue;
        const overlap = g.x < q.gridPos.x + q.gridPos.w && q.gridPos.x < g.x + g.w && g.y < q.gridPos.y + q.gridPos.h && q.gridPos.y < g.y + g.h;
        expect(overlap, `${p.title} overlaps ${q.title}`).toBe(false);
      }
      if (p.type === 'row') continue;
      expect(['stat', 'timeseries']).toContain(p.type);
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      const refs = p.targets!.map((t) => t.refId);
      expect(new Set(refs).size, `${p.title} refIds`).toBe(refs.length);
    }
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(['datasource', 'namespace', 'name']);
  });

  it('covers the cluster, the members and the proxies', () => {
    const titles = dashboard.panels.filter((p) => p.type === 'row').map((p) => p.title);
    expect(titles).toEqual(['Cluster', 'Members', 'Proxies', 'Operator']);
    const read = new Set(queries().flatMap(({ target }) => metricsIn(target.expr)));
    for (const m of [
      'etcd_topology_healthy_voters', 'etcd_topology_quorum_size', 'etcd_topology_has_leader', 'etcd_topology_alarms_active', 'etcd_topology_member_db_size_bytes',
      'etcd_topology_quota_backend_bytes', 'etcd_topology_defragmentations_total', 'etcd_disk_wal_fsync_duration_seconds_bucket', 'etcd_server_proposals_committed_total',
      'etcd_mvcc_db_total_size_in_bytes', 'etcd_server_has_leader', 'etcd_server_leader_changes_seen_total', 'etcd_topology_proxy_requests_total',
      'etcd_topology_proxy_upstream_latency_seconds_bucket', 'etcd_topology_proxy_member_healthy',
    ]) {
      expect(read.has(m), m).toBe(true);
    }
  });

  it('every query parses (promtool check rules) and reads only metrics the operator, the proxy or etcd export', async () => {
    const unknown = queries().flatMap(({ panel, target }) => metricsIn(target.expr).filter((m) => !known.has(m)).map((m) => `${panel.title}: ${m}`));
    expect(unknown).toEqual([]);
    const file = path.join(dir, 'queries.yaml');
    const rules = queries().map(({ panel, target }) => ({ record: `dashboard:panel_${panel.id}_${target.refId}`, expr: expand(target.expr) }));
    await writeFile(file, stringify({ groups: [{ name: 'dashboard', rules }] }));
    const out = await run(binaries().promtool, ['check', 'rules', file]);
    expect(out).toContain(`SUCCESS: ${rules.length} rules found`);
  });
});
