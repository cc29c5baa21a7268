import { request } from 'undici';
import { Registry } from 'prom-client';
import { Controller } from '../../src/operator/controller.ts';
import { KubeClient } from '../../src/operator/kube-client.ts';
import { TopologyMetrics } from '../../src/operator/topology-metrics.ts';
import { ProxyMetrics } from '../../src/proxy/metrics.ts';
import { createRootLogger } from '../../src/telemetry/logger.ts';
import { EtcdCluster } from '../harness/etcd-cluster.ts';

/** Every series name a metric of the given type exposes (histograms and summaries have suffixes). */
function seriesNames(name: string, type: string): string[] {
  if (type === 'histogram') return [`${name}_bucket`, `${name}_sum`, `${name}_count`];
  if (type === 'summary') return [name, `${name}_sum`, `${name}_count`];
  return [name];
}

/** The series names the operator and the proxy export, read from their own prom-client registries. */
export async function projectMetricNames(): Promise<Set<string>> {
  const registry = new Registry();
  new TopologyMetrics(registry);
  new ProxyMetrics(registry);
  const kube = new KubeClient({ server: 'https://127.0.0.1:1', tls: { rejectUnauthorized: true } });
  // Its constructor only registers metrics and prepares informers; nothing connects.
  new Controller(kube, undefined, registry, createRootLogger({ name: 'test', level: 'silent' }));
  await kube.close();
  const json = await registry.getMetricsAsJSON();
  return new Set(json.flatMap((m) => seriesNames(m.name, String(m.type))));
}

/** The series names a real etcd member (the pinned release) exports on /metrics. */
export async function etcdMetricNames(): Promise<Set<string>> {
  const etcd = await EtcdCluster.start({ size: 1 });
  try {
    const res = await request(`${etcd.members[0]!.clientUrl}/metrics`);
    const text = await res.body.text();
    const names = new Set<string>();
    for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) for (const n of seriesNames(m[1]!, m[2]!)) names.add(n);
    return names;
  } finally {
    await etcd.stop();
  }
}

/** The metric names a PromQL expression reads (label matchers, grouping clauses and strings removed). */
export function metricsIn(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '')
    .replace(/\[[^\]]*\]/g, '');
  return [...new Set([...bare.matchAll(/\b[a-zA-Z_:][a-zA-Z0-9_:]*\b/g)].map((m) => m[0]).filter((n) => /^(etcd|grpc)_/.test(n)))];
}
