// The spec-change probe of `npm run bench:operator`, in a process of its own: the benchmark's process
// also runs the local cluster's node agent, which at 4,000 proxy pods is busy enough (every pod event
// rewrites the hosts files) to delay its own timers and watch callbacks by seconds, so latencies
// measured there were the harness's, not the operator's. This process does nothing else.
//   node hack/spec-change-probe.ts <kubeconfig> <namespace> <metrics URL> <changes> <topology,...> <node,...>
// For each change: flips a label on one of the nodes (which queues every topology), patches the next
// topology's spec.members.resources.requests.cpu, and waits for the member StatefulSet's watch event
// carrying it. Prints one JSON line: { latenciesMs, depths }.
import { KubeClient } from '../src/operator/kube-client.ts';

const [kubeconfig, namespace, metricsUrl, changesArg, topologiesArg, nodesArg] = process.argv.slice(2);
if (!kubeconfig || !namespace || !metricsUrl || !changesArg || !topologiesArg || !nodesArg || !(Number(changesArg) >= 1)) {
  console.error('usage: node hack/spec-change-probe.ts <kubeconfig> <namespace> <metrics URL> <changes >= 1> <topology,...> <node,...>');
  process.exit(2);
}
const changes = Number(changesArg);
const topologies = topologiesArg.split(',');
const nodes = nodesArg.split(',');
const kube = KubeClient.load(kubeconfig);
const etops = `/apis/etcdtopology.io/v1alpha1/namespaces/${namespace}/etcdtopologies`;
const merge = { contentType: 'application/merge-patch+json' };

async function queueDepth(): Promise<number> {
  const text = await (await fetch(metricsUrl!)).text();
  return Number(/^etcd_topology_operator_queue_depth (\S+)$/m.exec(text)?.[1] ?? NaN);
}

interface StatefulSet {
  metadata: { name: string };
  spec?: { template?: { spec?: { containers?: { resources?: { requests?: Record<string, string> } }[] } } };
}
const waiting = new Map<string, (cpu: string) => void>();
const abort = new AbortController();
const watching = (async () => {
  // Watch from now (no resourceVersion: the current state first, as ADDED events), again when the server ends it.
  while (!abort.signal.aborted) {
    await kube
      .watch<StatefulSet>(`/apis/apps/v1/namespaces/${namespace}/statefulsets`, { labelSelector: 'app.kubernetes.io/component=member' }, (e) => {
        waiting.get(e.object.metadata.name)?.(e.object.spec?.template?.spec?.containers?.[0]?.resources?.requests?.['cpu'] ?? '');
      }, abort.signal)
      .catch((err: unknown) => {
        if (!abort.signal.aborted) console.error(`spec-change-probe: watch: ${String(err)}`);
      });
  }
})();

const latenciesMs: number[] = [];
const depths: number[] = [];
try {
  for (let c = 0; c < changes; c++) {
    const name = topologies[c % topologies.length]!;
    const cpu = `${200 + c}m`;
    await kube.call('PATCH', `/api/v1/nodes/${nodes[c % nodes.length]!}`, { ...merge, body: { metadata: { labels: { 'bench.etcdtopology.io/flip': String(c) } } } });
    // Let the operator's node watch deliver the flip, which queues every topology. Not longer: with
    // no API call in a routine visit, the operator drained the 100 within 200 ms (2026-12-02 run: the
    // depth read after the spec change was 0 every time).
    await new Promise((r) => setTimeout(r, 30));
    const seen = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name}: StatefulSet not applied within 60 s`)), 60_000);
      waiting.set(`${name}-member`, (got) => {
        if (got !== cpu) return;
        clearTimeout(timer);
        resolve(performance.now());
      });
    });
    const t0 = performance.now();
    // The depth as the change arrives: read while the PATCH is under way.
    const [depth] = await Promise.all([queueDepth(), kube.call('PATCH', `${etops}/${name}`, { ...merge, body: { spec: { members: { resources: { requests: { cpu } } } } } })]);
    depths.push(depth);
    latenciesMs.push((await seen) - t0);
    waiting.delete(`${name}-member`);
  }
  console.log(JSON.stringify({ latenciesMs, depths }));
} finally {
  abort.abort();
  await watching;
  await kube.close();
}
