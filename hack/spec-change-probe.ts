// The spec-change probe of `npm run bench:operator`, in a process of its own: the benchmark's process
// also runs the local cluster's node agent, which at 4,000 proxy pods is busy enough (every pod event
// rewrites the hosts files) to delay its own timers and watch callbacks by seconds, so latencies
// measured there were the harness's, not the operator's. This process does nothing else.
//   node hack/spec-change-probe.ts <kubeconfig> <namespace> <metrics URL> <changes> <topology,...> <node,...>
// Keeps the operator's queue busy for the whole run: every FLIP_MS a label flips on the next of the
// nodes, and each flip queues every topology as a routine visit. Meanwhile, one change at a time: patches
// the next topology's spec.members.resources.requests.cpu and waits for the member StatefulSet's watch
// event carrying it. Prints one JSON line: { latenciesMs, depths, flips, specWait, specReconcile, specSteps }:
// the last three from the operator's histograms over the probe (the spec lane's wait for a worker, its
// reconciles' time, and each step of those reconciles).
import { KubeClient } from '../src/operator/kube-client.ts';
import { between } from './histogram.ts';

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

const metrics = async (): Promise<string> => (await fetch(metricsUrl)).text();

async function queueDepth(): Promise<number> {
  return Number(/^etcd_topology_operator_queue_depth (\S+)$/m.exec(await metrics())?.[1] ?? NaN);
}

/** A histogram's cumulative buckets for lane="spec" (upper bound in s -> count), from a /metrics text; with step, that step's only. */
function specBuckets(text: string, name: string, step?: string): Map<number, number> {
  const out = new Map<number, number>();
  const stepFilter = step === undefined ? '' : `(?=[^}]*step="${step}")`;
  for (const m of text.matchAll(new RegExp(`^${name}_bucket\\{(?=[^}]*lane="spec")${stepFilter}[^}]*le="([^"]+)"[^}]*\\} (\\S+)$`, 'gm'))) out.set(m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2]));
  return out;
}

/** A metric's samples summed over its labels, from a /metrics text. */
function sum(text: string, name: string): number {
  let total = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) total += Number(m[1]);
  return total;
}

/** The steps the step histogram has seen, in the order of their first series. */
function stepsIn(text: string, name: string): string[] {
  return [...new Set([...text.matchAll(new RegExp(`^${name}_count\\{[^}]*step="([^"]+)"`, 'gm'))].map((m) => m[1]!))];
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
const WAIT = 'etcd_topology_operator_queue_wait_seconds';
const RECONCILE = 'etcd_topology_operator_reconcile_duration_seconds';
const STEP = 'etcd_topology_operator_step_duration_seconds';
// One node label flip queues every topology (100 routine visits); at 9 ms a visit and at most 2 routine
// visits in flight the operator drains about 200 a second, so a flip every 250 ms keeps it behind: the
// queue stays busy, as the target asks ("with the queue busy"), instead of being empty by the time a
// change arrives (2026-12-03 run with one flip 30 ms before each change: depth median 0).
const FLIP_MS = 250;
let flips = 0;
const flipping = (async () => {
  while (!abort.signal.aborted) {
    const flip = flips++;
    await kube.call('PATCH', `/api/v1/nodes/${nodes[flip % nodes.length]!}`, { ...merge, body: { metadata: { labels: { 'bench.etcdtopology.io/flip': String(flip) } } } }).catch((err: unknown) => {
      if (!abort.signal.aborted) console.error(`spec-change-probe: flip: ${String(err)}`);
    });
    await new Promise((r) => setTimeout(r, FLIP_MS));
  }
})();
// The queue fills before the first change.
await new Promise((r) => setTimeout(r, 2_000));
const before = await metrics();
const startedAt = performance.now();
const [waitBefore, reconcileBefore] = [specBuckets(before, WAIT), specBuckets(before, RECONCILE)];
const stepsBefore = new Map(stepsIn(before, STEP).map((step) => [step, specBuckets(before, STEP, step)]));
try {
  for (let c = 0; c < changes; c++) {
    const name = topologies[c % topologies.length]!;
    const cpu = `${200 + c}m`;
    // Changes at varied points of the flips' cycle.
    await new Promise((r) => setTimeout(r, Math.floor(Math.random() * FLIP_MS)));
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
  // The last change's reconcile may still be writing status when its StatefulSet is seen.
  await new Promise((r) => setTimeout(r, 1000));
  const after = await metrics();
  const specWait = between(waitBefore, specBuckets(after, WAIT));
  const specReconcile = between(reconcileBefore, specBuckets(after, RECONCILE));
  const specSteps = stepsIn(after, STEP).map((step) => ({ step, ...between(stepsBefore.get(step) ?? new Map<number, number>(), specBuckets(after, STEP, step)) }));
  // How busy the operator's one thread was meanwhile: CPU and GC seconds per second of wall time.
  const wallSeconds = (performance.now() - startedAt) / 1000;
  const grew = (name: string): number => sum(after, name) - sum(before, name);
  const operatorCpu = { wallSeconds, cpuSeconds: grew('etcd_topology_process_cpu_seconds_total'), gcSeconds: grew('etcd_topology_nodejs_gc_duration_seconds_sum') };
  console.log(JSON.stringify({ latenciesMs, depths, flips, specWait, specReconcile, specSteps, operatorCpu }));
} finally {
  abort.abort();
  await Promise.all([watching, flipping]);
  await kube.close();
}
