// npm run bench:operator [-- --rounds 3 --nodes 1000 --topologies 100 --changes 100 --cpu-prof]
// On the local cluster, with the operator (dist/) as a local process:
// 1. rounds: time from apply to every owned object created and to Available (medians); API write
//    calls per no-change resync; RSS with one settled topology, and where it goes (modules, heap by
//    kind of object, informer caches).
// 2. scale: kwok simulates --nodes worker nodes beside the cluster's 3 real central nodes; of
//    --topologies topologies, 3 run real members on the central nodes and proxies on every kwok node,
//    the rest have members Pending and proxies on 10 kwok nodes each. Measured: operator RSS, cache
//    sizes, spec change -> applied StatefulSet latency (p50/p99) while the queue is busy (before each
//    change a kwok node's label flips, which queues every topology), API writes per no-change
//    reconcile and API calls per reconcile by verb and resource.
// The operator runs with the deployment's V8 flags and environment (OPERATOR_NODE_OPTIONS and
// OPERATOR_MALLOC_ARENA_MAX, the chart's nodeOptions and mallocArenaMax).
// Writes docs/bench/operator.md; with --cpu-prof, each operator's V8 CPU profile goes to
// bench-results/operator (node hack/cpu-profile-top.ts FILE lists where its time went).
import { cpSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { binaries } from '../test/harness/binaries.ts';
import { defaultNodes, type LocalCluster } from '../test/harness/cluster/local-cluster.ts';
import { spawnLogged, terminate } from '../test/harness/cluster/processes.ts';
import { waitFor } from '../test/harness/ports.ts';
import { OperatorProcess } from '../test/operator/operator-process.ts';
import { OPERATOR_MALLOC_ARENA_MAX, OPERATOR_NODE_OPTIONS } from '../src/operator/node-options.ts';
import { ROUTINE_IN_FLIGHT, WORKERS } from '../src/operator/controller.ts';
import { conditionOf, getTopology, startClusterWithCrd, topologyManifest } from '../test/operator/setup.ts';
import { summariseHeap, type HeapRow } from './heap-summary.ts';
import { between, type HistogramFigures } from './histogram.ts';
import { residentByMapping, rssFigures, RssSampler } from './process-memory.ts';

/**
 * A quantile read as a histogram bucket's upper bound; the +Inf bucket reaches here as null (JSON
 * has no Infinity): the value was above the largest finite bucket.
 */
function upTo(bound: number | null): string {
  return bound === null || !Number.isFinite(bound) ? '> largest bucket' : `≤ ${bound}`;
}

/**
 * The API server's own time for one verb on one resource (apiserver_request_duration_seconds, every
 * other label summed) between two /metrics texts: count and the bucket bounds of p50 and p99, in s.
 */
function apiServerLatency(before: string, after: string, verb: string, resource: string): HistogramFigures {
  const buckets = (text: string): Map<number, number> => {
    const out = new Map<number, number>();
    const series = new RegExp(`^apiserver_request_duration_seconds_bucket\\{(?=[^}]*verb="${verb}")(?=[^}]*resource="${resource}")(?=[^}]*subresource="")[^}]*le="([^"]+)"[^}]*\\} (\\S+)$`, 'gm');
    for (const m of text.matchAll(series)) {
      const le = m[1] === '+Inf' ? Infinity : Number(m[1]);
      out.set(le, (out.get(le) ?? 0) + Number(m[2]));
    }
    return out;
  };
  return between(buckets(before), buckets(after));
}

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    // A V8 CPU profile of each operator process (node --cpu-prof), into bench-results/operator.
    'cpu-prof': { type: 'boolean', default: false },
    nodes: { type: 'string', default: '1000' },
    topologies: { type: 'string', default: '100' },
    changes: { type: 'string', default: '100' },
    // To try other settings than the deployment's: node's flags for the operator, and NAME=VALUE
    // added to its environment (repeatable). The report says what was used.
    'node-flags': { type: 'string', default: OPERATOR_NODE_OPTIONS },
    env: { type: 'string', multiple: true, default: [] },
  },
  strict: true,
});
const [rounds, nodeCount, many, changes] = [values.rounds, values.nodes, values.topologies, values.changes].map(Number) as [number, number, number, number];
const nodeFlags = values['node-flags'].split(' ').filter(Boolean);
// The deployment's environment (the chart's mallocArenaMax), and what --env adds or replaces.
const operatorEnv: Record<string, string> = { MALLOC_ARENA_MAX: String(OPERATOR_MALLOC_ARENA_MAX) };
for (const pair of values.env) {
  const eq = pair.indexOf('=');
  if (eq < 1) {
    console.error(`bench:operator: --env ${pair}: expected NAME=VALUE`);
    process.exit(2);
  }
  operatorEnv[pair.slice(0, eq)] = pair.slice(eq + 1);
}
if (![rounds, nodeCount, many, changes].every((n) => Number.isInteger(n) && n >= 1) || many < 4 || nodeCount < 10) {
  console.error('bench:operator: --rounds and --changes must be whole numbers >= 1, --topologies >= 4, --nodes >= 10');
  process.exit(2);
}

const NS = 'default';
const REAL = 3; // topologies with members on the real central nodes
const GROUP = 10; // kwok nodes per proxy group of a Pending topology
const RESYNC = '5s';
const KWOK_ANNOTATION = 'kwok.x-k8s.io/node';

const median = (xs: number[]): number => quantile(xs, 0.5);
function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
}
const mib = (bytes: number): string => (bytes / 1048576).toFixed(0);
const load = (): string => os.loadavg().map((l) => l.toFixed(1)).join(' / ');
const loads: number[] = [];
const rssMiB = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

/** The operator's memory as it reports it, and its caches. */
async function memory(op: OperatorProcess): Promise<{ rss: number; heapUsed: number; heapTotal: number; external: number; spaces: Record<string, number>; cached: Record<string, number> }> {
  const one = async (name: string): Promise<number> => op.counter(`etcd_topology_${name}`);
  const cached = Object.fromEntries(Object.entries(await op.series('etcd_topology_operator_cached_objects')).map(([labels, v]) => [/kind="([^"]+)"/.exec(labels)![1]!, v]));
  return {
    rss: rssMiB(op.pid) * 1048576,
    heapUsed: await one('nodejs_heap_size_used_bytes'),
    heapTotal: await one('nodejs_heap_size_total_bytes'),
    external: await one('nodejs_external_memory_bytes'),
    spaces: Object.fromEntries(Object.entries(await op.series('etcd_topology_nodejs_heap_space_size_total_bytes')).map(([labels, v]) => [/space="([^"]+)"/.exec(labels)![1]!, v])),
    cached,
  };
}

/** Writes a heap snapshot of the operator (SIGUSR2, --heapsnapshot-signal) into dir and summarises it. */
async function heapSnapshot(op: OperatorProcess, dir: string): Promise<ReturnType<typeof summariseHeap>> {
  const before = new Set(readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot')));
  process.kill(op.pid, 'SIGUSR2');
  const file = await waitFor('the heap snapshot', () => {
    const fresh = readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot') && !before.has(f));
    if (fresh.length === 0) return false;
    // Written once the operator answers again.
    return fetch(op.metricsUrl).then(() => path.join(dir, fresh[0]!));
  }, { timeoutMs: 120_000, intervalMs: 1000 });
  return summariseHeap(file);
}

/** RSS of a fresh node process that only imports the operator's modules (no cluster, no work). */
async function moduleRss(nodeArgs: string[] = []): Promise<number> {
  const { run } = await import('../test/harness/run.ts');
  const main = path.join(import.meta.dirname, '..', 'dist', 'operator', 'main.js');
  const out = await run(process.execPath, [...nodeArgs, '--input-type=module', '-e', `await import(${JSON.stringify(main)}); globalThis.gc?.(); console.log(process.memoryUsage().rss)`]);
  return Number(out.trim());
}

// kwok renews each node's Lease every quarter of its duration. At kwok's usual 40 s, 1,000 nodes
// make 100 Lease writes a second, which neither kwok's 4 lease workers nor the API server keep up
// with on 2 shared cores: leases go stale, the node lifecycle controller marks their nodes Unknown,
// kwok's node-initialize stage marks them Ready again, and 1,000 never are Ready at once. A 1,200 s
// lease (a renewal every 300 s, 3 a second) with a 600 s grace period ends that fight; the real
// central nodes renew every 10 s as before. Controller QPS: the DaemonSet controller and the
// scheduler create and bind ~4,000 proxy pods.
const LEASE_SECONDS = 1200;
const cluster: LocalCluster = await startClusterWithCrd({ nodes: defaultNodes(3, 0), nodeMonitorGracePeriod: '600s', controllerQps: 200 });
const progress = (what: string): void => console.error(`[bench:operator ${new Date().toISOString().slice(11, 19)}] ${what} (load ${load()})`);
const loadSampler = setInterval(() => loads.push(os.loadavg()[0]!), 10_000);
loadSampler.unref();
let operator: OperatorProcess | undefined;
let kwok: ReturnType<typeof spawnLogged> | undefined;
try {
  const k = (args: string[], input?: string): Promise<string> => cluster.kubectl(args, input);
  // One replica, no leader election: a heap snapshot stops the process for longer than the renew
  // deadline, and a leader that cannot renew exits (as it should).
  const startOperator = (log: string): Promise<OperatorProcess> =>
    OperatorProcess.start(cluster.kubeconfig, path.join(cluster.dir, log), [`--resync-period=${RESYNC}`, '--leader-elect=false'], undefined, [
      ...nodeFlags,
      '--heapsnapshot-signal=SIGUSR2',
      `--diagnostic-dir=${cluster.dir}`,
      ...(values['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${cluster.dir}`] : []),
    ], operatorEnv);
  operator = await startOperator('operator.log');
  let op = operator;
  const reconcilesNow = (): Promise<number> => op.counter('etcd_topology_operator_reconciles_total');
  const delta = (before: Record<string, number>, after: Record<string, number>): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const [l, v] of Object.entries(after)) if (v - (before[l] ?? 0) > 0) out[l] = v - (before[l] ?? 0);
    return out;
  };
  const DURATION = 'etcd_topology_operator_reconcile_duration_seconds';
  /**
   * Writes per reconcile while `count` reconciles happen with nothing changing; also every API call
   * in that window (reads too, by verb and resource) and the mean reconcile time.
   */
  const writesPerReconcile = async (count: number): Promise<{ perReconcile: number; reconciles: number; byKind: Record<string, number>; requests: Record<string, number>; steps: { step: string; meanMs: number }[]; meanS: number; seconds: number }> => {
    // One scrape per snapshot, so that every figure in it is of the same instant.
    const snap = async () => {
      const text = await op.scrape();
      const t = performance.now();
      const series = (name: string): Record<string, number> => OperatorProcess.seriesIn(text, name);
      const total = (name: string): number => OperatorProcess.counterIn(text, name);
      return {
        w: total('etcd_topology_operator_api_writes_total'),
        r: total('etcd_topology_operator_reconciles_total'),
        writes: series('etcd_topology_operator_api_writes_total'),
        requests: series('etcd_topology_operator_api_requests_total'),
        stepSum: series('etcd_topology_operator_step_duration_seconds_sum'),
        stepCount: series('etcd_topology_operator_step_duration_seconds_count'),
        sum: total(`${DURATION}_sum`),
        n: total(`${DURATION}_count`),
        t,
      };
    };
    const a = await snap();
    await waitFor(`${count} reconciles`, async () => (await reconcilesNow()) >= a.r + count, { timeoutMs: 1_200_000, intervalMs: 500 });
    const b = await snap();
    // By step, over every lane (the histogram also has the lane a reconcile came from).
    const byStep = (series: Record<string, number>): Map<string, number> => {
      const out = new Map<string, number>();
      for (const [l, v] of Object.entries(series)) {
        const step = /step="([^"]*)"/.exec(l)?.[1] ?? l;
        out.set(step, (out.get(step) ?? 0) + v);
      }
      return out;
    };
    const stepCounts = byStep(delta(a.stepCount, b.stepCount));
    const steps = [...byStep(delta(a.stepSum, b.stepSum))].map(([step, sum]) => ({ step, meanMs: (1000 * sum) / Math.max(1, stepCounts.get(step) ?? 0) }));
    return { perReconcile: (b.w - a.w) / (b.r - a.r), reconciles: b.r - a.r, byKind: delta(a.writes, b.writes), requests: delta(a.requests, b.requests), steps, meanS: (b.sum - a.sum) / Math.max(1, b.n - a.n), seconds: (b.t - a.t) / 1000 };
  };
  const owned = async (name: string): Promise<boolean> => {
    const out = await k(['get', 'statefulsets,daemonsets,services,poddisruptionbudgets,serviceaccounts', '-n', NS, '-l', `app.kubernetes.io/instance=${name}`, '-o', 'name']);
    return out.trim().split('\n').filter(Boolean).length >= 8;
  };
  const available = async (name: string): Promise<boolean> => conditionOf(await getTopology(cluster, name, NS), 'Available')?.status === 'True';

  // 1. Rounds on the bare cluster.
  const created: number[] = [];
  const availableMs: number[] = [];
  const resyncWrites: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const name = `bench-${r}`;
    const start = performance.now();
    await k(['apply', '-f', '-'], topologyManifest(name, NS, { members: { count: 3 } }));
    await waitFor(`${name} objects`, () => owned(name), { timeoutMs: 60_000, intervalMs: 50 });
    created.push(performance.now() - start);
    await waitFor(`${name} Available`, () => available(name), { timeoutMs: 240_000, intervalMs: 100 });
    availableMs.push(performance.now() - start);
    await waitFor(`${name} settled`, async () => conditionOf(await getTopology(cluster, name, NS), 'Progressing')?.status === 'False', { timeoutMs: 120_000, intervalMs: 500 });
    resyncWrites.push((await writesPerReconcile(3)).perReconcile);
    await k(['delete', 'etop', name, '-n', NS, '--wait=true']);
    await waitFor(`${name} pods gone`, async () => (await k(['get', 'pods', '-n', NS, '-l', `app.kubernetes.io/instance=${name}`, '-o', 'name'])).trim() === '', { timeoutMs: 120_000 });
  }

  // One settled topology: RSS and where it goes.
  await k(['apply', '-f', '-'], topologyManifest('real-0', NS, { members: { count: 3 } }));
  await waitFor('real-0 Available', () => available('real-0'), { timeoutMs: 240_000 });
  await writesPerReconcile(3);
  const one = await memory(op);
  const [bareRss, modulesRss] = [Number(await (await import('../test/harness/run.ts')).run(process.execPath, ['-e', 'console.log(process.memoryUsage().rss)'])), await moduleRss()];
  const oneLoad = load();
  const heapOne = await heapSnapshot(op, cluster.dir);
  progress(`rounds done (${rounds}); one settled topology: RSS ${mib(one.rss)} MiB`);
  // Writing a snapshot leaves native memory behind that the process keeps (RSS above the V8 heap by
  // far): the scale run starts with a fresh operator, so that its RSS is the operator's own.
  await op.stop();
  operator = op = await startOperator('operator-scale.log');

  // 2. Scale: kwok nodes, then the other topologies.
  const kwokStart = performance.now();
  const nodeNames = Array.from({ length: nodeCount }, (_, i) => `kwok-${String(i).padStart(4, '0')}`);
  const createNode = (name: string, i: number) =>
    cluster.api.call('POST', '/api/v1/nodes', {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name,
        annotations: { [KWOK_ANNOTATION]: 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
        labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', type: 'kwok', 'bench.etcdtopology.io/group': `g${Math.floor(i / GROUP)}` },
      },
      status: {
        allocatable: { cpu: '32', memory: '256Gi', pods: '110' },
        capacity: { cpu: '32', memory: '256Gi', pods: '110' },
        nodeInfo: { architecture: 'amd64', operatingSystem: 'linux', kubeletVersion: 'fake', kubeProxyVersion: 'fake' },
        phase: 'Running',
      },
    });
  // kwok's stage and lease workers (4 each by default) play every node's and pod's status changes.
  const kwokConfig = path.join(cluster.dir, 'kwok.yaml');
  writeFileSync(
    kwokConfig,
    JSON.stringify({ apiVersion: 'config.kwok.x-k8s.io/v1alpha1', kind: 'KwokConfiguration', options: { nodeLeaseParallelism: 16, nodePlayStageParallelism: 16, podPlayStageParallelism: 16 } }),
  );
  kwok = spawnLogged(
    binaries().kwok,
    [
      `--config=${kwokConfig}`,
      `--kubeconfig=${cluster.kubeconfig}`,
      `--manage-nodes-with-annotation-selector=${KWOK_ANNOTATION}=fake`,
      '--cidr=10.64.0.1/12',
      '--node-ip=127.0.0.1',
      `--node-lease-duration-seconds=${LEASE_SECONDS}`,
      '--v=WARN',
    ],
    path.join(cluster.dir, 'kwok.log'),
  );
  for (let i = 0; i < nodeNames.length; i += 50) await Promise.all(nodeNames.slice(i, i + 50).map((n, j) => createNode(n, i + j)));
  progress(`${nodeCount} kwok nodes created in ${((performance.now() - kwokStart) / 1000).toFixed(0)} s`);
  interface NodeList { items: { status?: { conditions?: { type: string; status: string }[] } }[] }
  const readyKwokNodes = async (): Promise<number> =>
    (await cluster.api.call<NodeList>('GET', '/api/v1/nodes?labelSelector=type%3Dkwok')).items.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).length;
  await waitFor(`${nodeCount} kwok nodes Ready`, async () => (await readyKwokNodes()) === nodeCount, { timeoutMs: 600_000, intervalMs: 5000 });
  const kwokReadyS = (performance.now() - kwokStart) / 1000;
  progress(`${nodeCount} kwok nodes Ready after ${kwokReadyS.toFixed(0)} s`);

  const names = Array.from({ length: many }, (_, i) => (i < REAL ? `real-${i}` : `pending-${i}`));
  const specOf = (i: number): Record<string, unknown> =>
    i === 0
      ? { members: { count: 3 } }
      : i < REAL
        ? { members: { count: 1 } }
        : { members: { count: 3, nodeSelector: { 'bench.etcdtopology.io/none': 'true' } }, proxy: { nodeSelector: { 'bench.etcdtopology.io/group': `g${i % Math.max(1, Math.floor(nodeCount / GROUP))}` } } };
  // Straight to the API, not kubectl: on the loaded machine kubectl's client-side validation (it
  // fetches the OpenAPI document first) timed out after 32 s.
  const etops = `/apis/etcdtopology.io/v1alpha1/namespaces/${NS}/etcdtopologies`;
  const applyStart = performance.now();
  for (let i = 1; i < many; i += 10) await Promise.all(names.slice(i, i + 10).map((n, j) => cluster.api.call('POST', etops, JSON.parse(topologyManifest(n, NS, specOf(i + j))) as unknown)));
  progress(`${many - 1} more topologies created in ${((performance.now() - applyStart) / 1000).toFixed(0)} s`);
  interface Listed { metadata: { name: string }; status?: { observedGeneration?: number; proxies?: { desired: number; ready: number } } }
  const topologies = async (): Promise<Listed[]> => (await cluster.api.call<{ items: Listed[] }>('GET', etops)).items;
  await waitFor(`${many} topologies with status`, async () => {
    const list = await topologies();
    return list.length === many && list.every((t) => t.status?.observedGeneration !== undefined);
  }, { timeoutMs: 1_800_000, intervalMs: 5000 });
  progress(`${many} topologies with status after ${((performance.now() - applyStart) / 1000).toFixed(0)} s`);
  for (let i = 1; i < REAL; i++) await waitFor(`${names[i]} Available`, () => available(names[i]!), { timeoutMs: 300_000, intervalMs: 1000 });
  const proxiesWanted = REAL * nodeCount + (many - REAL) * GROUP;
  await waitFor(`${proxiesWanted} proxies ready`, async () => {
    const ready = (await topologies()).reduce((n, t) => n + (t.status?.proxies?.ready ?? 0), 0);
    return ready >= proxiesWanted;
  }, { timeoutMs: 1_800_000, intervalMs: 5000 });
  const settleS = (performance.now() - applyStart) / 1000;
  progress(`${many} topologies with status and ${proxiesWanted} proxies ready after ${settleS.toFixed(0)} s`);
  const scaleLoadsFrom = loads.length;
  const settledRss = new RssSampler(op.pid);
  const settled = await writesPerReconcile(2 * many);
  const scale = await memory(op);
  const mappings = residentByMapping(op.pid);
  const settledMemory = rssFigures(settledRss.stop());
  const scaleLoad = load();
  progress(`at scale: RSS median ${mib(settledMemory.median.rss)} MiB (max ${mib(settledMemory.max.rss)}) over ${settledMemory.count} samples, heap used ${mib(scale.heapUsed)} MiB`);

  // Spec change -> applied StatefulSet, one change at a time, on the topologies with running members,
  // while every Pending topology is reconciled every 5 s and a kwok node's label flips every 250 ms,
  // each flip queueing every topology. Not on a Pending topology: while etcd cannot be read and no
  // member set was ever seen, the member StatefulSet is held as it is (member-statefulset.ts), so its
  // spec change is never applied. Measured by hack/spec-change-probe.ts in a process of its own: this
  // one also runs the node agent, whose work at 4,000 proxy pods delayed its timers by seconds.
  const changesLoad = load();
  const changesRss = new RssSampler(op.pid);
  const apiMetrics = (): Promise<string> => cluster.kubectl(['get', '--raw', '/metrics']);
  const apiBefore = await apiMetrics();
  const { run } = await import('../test/harness/run.ts');
  const probe = JSON.parse(
    await run(process.execPath, [path.join(import.meta.dirname, 'spec-change-probe.ts'), cluster.kubeconfig, NS, op.metricsUrl, String(changes), names.slice(0, REAL).join(','), nodeNames.slice(0, 50).join(',')]),
  ) as { latenciesMs: number[]; depths: number[]; flips: number; specWait: HistogramFigures; specReconcile: HistogramFigures; specSteps: (HistogramFigures & { step: string })[];
    operatorCpu: { wallSeconds: number; cpuSeconds: number; gcSeconds: number };
  };
  const { latenciesMs: latencies, depths, flips, specWait, specReconcile, specSteps, operatorCpu } = probe;
  progress(`${changes} spec changes applied`);
  const apiAfter = await apiMetrics();
  const apiApply = apiServerLatency(apiBefore, apiAfter, 'APPLY', 'statefulsets');
  const apiPatch = apiServerLatency(apiBefore, apiAfter, 'PATCH', 'etcdtopologies');
  const changesMemory = rssFigures(changesRss.stop());
  const steadyRss = new RssSampler(op.pid);
  const steady = await writesPerReconcile(2 * many);
  const steadyMemory = rssFigures(steadyRss.stop());
  const steadyLoad = load();
  const after = await memory(op);
  const afterMappings = residentByMapping(op.pid);
  const scaleLoads = loads.slice(scaleLoadsFrom);
  if (scaleLoads.length === 0) scaleLoads.push(os.loadavg()[0]!);
  const heapScale = await heapSnapshot(op, cluster.dir);
  const modulesTuned = await moduleRss(nodeFlags);

  const row = (r: HeapRow): string => `| ${r.name} | ${r.count} | ${mib(r.bytes)} |`;
  const cachedRow = (kind: string): string => `| ${kind} | ${one.cached[kind] ?? 0} | ${scale.cached[kind] ?? 0} |`;
  const fmt = (ms: number): string => (ms / 1000).toFixed(2);
  const report = `# Operator benchmark

Command: \`npm run bench:operator -- --rounds ${rounds} --nodes ${nodeCount} --topologies ${many} --changes ${changes}${
  values['node-flags'] === OPERATOR_NODE_OPTIONS ? '' : ` --node-flags='${values['node-flags']}'`
}${values.env.map((e) => ` --env ${e}`).join('')}\` (${new Date().toISOString().slice(0, 10)}).
Machine: ${os.cpus().length} cores, shared; the local cluster (real kube-apiserver, controller manager,
scheduler, etcd members as processes; 3 real central nodes) and kwok run on the same machine as the
operator. Operator flags: \`--resync-period=${RESYNC} --leader-elect=false\`; Node flags: ${
  values['node-flags'] === OPERATOR_NODE_OPTIONS ? "the deployment's" : '**not the deployment\'s**'
} \`${values['node-flags']}\` (the deployment's: src/operator/node-options.ts, the chart's \`nodeOptions\`); environment: ${
  values.env.length > 0 ? '**not the deployment\'s**' : "the deployment's"
} \`${Object.entries(operatorEnv).map(([k, v]) => `${k}=${v}`).join(' ')}\` (the chart's \`mallocArenaMax\`).
Load average (1 / 5 / 15 min) with one settled topology ${oneLoad}; at scale ${scaleLoad}; when the
spec changes began ${changesLoad}; at the end ${steadyLoad}. The 1-minute load over the scale phase
(sampled every 10 s): min ${Math.min(...scaleLoads).toFixed(1)}, median ${median(scaleLoads).toFixed(1)}, max ${Math.max(...scaleLoads).toFixed(1)}.

## One topology

| measure | median of ${rounds} | all rounds |
| --- | ---: | --- |
| apply → every owned object created (8) | ${fmt(median(created))} s | ${created.map(fmt).join(', ')} |
| apply → Available (etcd reports a leader and a healthy quorum) | ${(median(availableMs) / 1000).toFixed(1)} s | ${availableMs.map((x) => (x / 1000).toFixed(1)).join(', ')} |
| API write calls per no-change resync (target 0) | ${median(resyncWrites)} | ${resyncWrites.join(', ')} |

## ${nodeCount} kwok nodes, ${many} topologies

${REAL} topologies run members on the real central nodes (one with 3, the others with 1) and a proxy on
every kwok node; the other ${many - REAL} have members Pending (their selector matches no node) and
proxies on ${GROUP} kwok nodes each: ${proxiesWanted} proxy pods, all Running and Ready as kwok reports.
kwok nodes Ready after ${kwokReadyS.toFixed(0)} s; every topology with status and every proxy ready
${settleS.toFixed(0)} s after the apply.

| measure | value | target |
| --- | ---: | ---: |
| operator RSS, settled: median / max of ${settledMemory.count} samples 1 s apart | ${mib(settledMemory.median.rss)} / ${mib(settledMemory.max.rss)} MiB | ≤ 150 MiB |
| spec change → applied StatefulSet, p50 / p99 / max of ${changes} | ${fmt(quantile(latencies, 0.5))} / ${fmt(quantile(latencies, 0.99))} / ${fmt(Math.max(...latencies))} s | p99 ≤ 1 s |
| of which: the spec change waiting for a worker, p50 / p99 (histogram bucket bounds, ${specWait.count} observed) | ${upTo(specWait.p50)} / ${upTo(specWait.p99)} s | |
| of which: the reconcile that applied it, p50 / p99 (bucket bounds, ${specReconcile.count} observed; it goes on after the apply) | ${upTo(specReconcile.p50)} / ${upTo(specReconcile.p99)} s | |
| the API server's own time for a StatefulSet apply, p50 / p99 (its apiserver_request_duration_seconds buckets, ${apiApply.count} while the changes ran) | ${upTo(apiApply.p50)} / ${upTo(apiApply.p99)} s | |
| the API server's own time for the probe's EtcdTopology PATCH, p50 / p99 (${apiPatch.count}) | ${upTo(apiPatch.p50)} / ${upTo(apiPatch.p99)} s | |
| the operator's CPU while the changes ran: CPU seconds per second (of them GC), over ${operatorCpu.wallSeconds.toFixed(0)} s | ${(operatorCpu.cpuSeconds / operatorCpu.wallSeconds).toFixed(2)} (${(operatorCpu.gcSeconds / operatorCpu.wallSeconds).toFixed(2)}) | |
| queue depth when each change was made, median / min / max | ${median(depths)} / ${Math.min(...depths)} / ${Math.max(...depths)} | |
| API writes per no-change reconcile, settled, before the spec changes (${settled.reconciles} reconciles in ${settled.seconds.toFixed(0)} s) | ${settled.perReconcile.toFixed(3)} | 0 |
| API writes per reconcile after the spec changes (${steady.reconciles} reconciles in ${steady.seconds.toFixed(0)} s; real-0 may still be replacing members) | ${steady.perReconcile.toFixed(3)} | |
| mean reconcile time, settled | ${(settled.meanS * 1000).toFixed(1)} ms | |

Mean time of each reconcile step while settled (8 reconciles share one thread, so a step's time
includes waiting for the others): ${settled.steps.map((x) => `${x.step} ${x.meanMs.toFixed(1)} ms`).join(', ') || 'not reported'}.

Steps of the reconciles that applied a spec change (lane \`spec\`; bucket bounds of p50 / p99, s):
${specSteps.filter((x) => x.count > 0).map((x) => `${x.step} ${upTo(x.p50)} / ${upTo(x.p99)}`).join(', ') || 'not reported'}.

Throughout the changes a kwok node's label flips every 250 ms (${flips} flips), and each flip queues every
topology as a routine visit (no member selector matches a kwok node), so the queue stays busy; the spec
change goes to the spec lane, which workers take first,
and at most ${ROUTINE_IN_FLIGHT} of the ${WORKERS} workers run routine visits at once. The rest of the latency is the API server's:
the PATCH, its watch event reaching the operator, the StatefulSet's write and its watch event reaching the probe.
Latency: from the probe's PATCH of the EtcdTopology to its watch event of the member StatefulSet with
the new template (hack/spec-change-probe.ts, a process of its own).

${Object.keys(settled.byKind).length ? `Writes while settled: ${Object.entries(settled.byKind).map(([l, v]) => `${l} ${v}`).join(', ')}.` : 'No write at all while settled.'}
${Object.keys(steady.byKind).length ? `Writes after the spec changes: ${Object.entries(steady.byKind).map(([l, v]) => `${l} ${v}`).join(', ')}.` : 'No write at all after the spec changes.'}

API calls while settled, per reconcile (reads included; watches are long-lived):

| verb | resource | calls | per reconcile |
| --- | --- | ---: | ---: |
${Object.entries(settled.requests).map(([l, v]) => `| ${/verb="([^"]*)"/.exec(l)?.[1] ?? ''} | ${/resource="([^"]*)"/.exec(l)?.[1] ?? ''} | ${v} | ${(v / settled.reconciles).toFixed(3)} |`).join('\n') || '| (none) | | 0 | 0 |'}

## Where the memory goes

| | 1 topology | ${many} topologies, ${nodeCount} nodes, settled | the same after the spec changes |
| --- | ---: | ---: | ---: |
| RSS | ${mib(one.rss)} MiB | ${mib(scale.rss)} MiB | ${mib(after.rss)} MiB |
| V8 heap used / committed | ${mib(one.heapUsed)} / ${mib(one.heapTotal)} MiB | ${mib(scale.heapUsed)} / ${mib(scale.heapTotal)} MiB | ${mib(after.heapUsed)} / ${mib(after.heapTotal)} MiB |
${Object.keys(scale.spaces).filter((k) => (scale.spaces[k] ?? 0) + (after.spaces[k] ?? 0) > 0).map((k) => `| of it committed in ${k} | ${mib(one.spaces[k] ?? 0)} MiB | ${mib(scale.spaces[k] ?? 0)} MiB | ${mib(after.spaces[k] ?? 0)} MiB |`).join('\n')}
| external (Buffers, TLS) | ${mib(one.external)} MiB | ${mib(scale.external)} MiB | ${mib(after.external)} MiB |

The operator's RSS at scale as the kernel counts it (/proc/PID/status, sampled every second;
anonymous pages are the process's own: V8's heap, malloc, stacks; file pages are the node binary and
libraries, shared and clean):

| window | samples | RSS median / max | anonymous median / max | file median / max |
| --- | ---: | ---: | ---: | ---: |
${(
  [
    ['settled, before the spec changes', settledMemory],
    ['while the spec changes ran', changesMemory],
    ['after the spec changes', steadyMemory],
  ] as const
)
  .map(([what, f]) => `| ${what} | ${f.count} | ${mib(f.median.rss)} / ${mib(f.max.rss)} MiB | ${mib(f.median.anon)} / ${mib(f.max.anon)} MiB | ${mib(f.median.file)} / ${mib(f.max.file)} MiB |`)
  .join('\n')}

Resident pages by mapping at scale, settled and after the spec changes (/proc/PID/smaps; \`anonymous\`
is V8's heap and code, malloc's thread arenas and the stacks; \`[heap]\` is malloc's main arena):

| mapping | settled, MiB | after the changes, MiB |
| --- | ---: | ---: |
${mappings.slice(0, 8).map((m) => `| ${m.name.replace(/^.*\/node_modules\//, 'node_modules/')} | ${(m.bytes / 1048576).toFixed(1)} | ${((afterMappings.find((a) => a.name === m.name)?.bytes ?? 0) / 1048576).toFixed(1)} |`).join('\n')}

Before any work: a bare \`node\` is ${mib(bareRss)} MiB RSS; importing the operator's modules
(dist/operator/main.js) brings it to ${mib(modulesRss)} MiB with Node's defaults, ${mib(modulesTuned)} MiB with
the operator's flags above.

Informer caches (objects):

| kind | 1 topology | ${many} topologies, ${nodeCount} nodes |
| --- | ---: | ---: |
${['EtcdTopology', 'Node', 'Pod', 'PersistentVolumeClaim', 'StatefulSet', 'DaemonSet', 'Service', 'ServiceAccount', 'PodDisruptionBudget', 'Job'].map(cachedRow).join('\n')}

Heap snapshot, 1 topology (self sizes, ${mib(heapOne.total)} MiB in all):

| what | count | MiB |
| --- | ---: | ---: |
${heapOne.byName.map(row).join('\n')}

Heap snapshot, ${many} topologies and ${nodeCount} nodes (${mib(heapScale.total)} MiB in all):

| what | count | MiB |
| --- | ---: | ---: |
${heapScale.byName.map(row).join('\n')}
`;
  writeFileSync(path.join(import.meta.dirname, '..', 'docs', 'bench', 'operator.md'), report);
  console.log(report);
} finally {
  if (kwok) await terminate(kwok, 5000);
  await operator?.stop();
  // The logs outlive the cluster's directory, for a run that failed.
  const logs = path.join(import.meta.dirname, '..', 'bench-results', 'operator');
  mkdirSync(logs, { recursive: true });
  for (const f of readdirSync(cluster.dir)) if (f.endsWith('.log') || f.endsWith('.cpuprofile')) cpSync(path.join(cluster.dir, f), path.join(logs, f));
  console.error(`bench:operator: logs in ${logs}`);
  await cluster.stop();
  // Once in four runs (2026-12-06) the process lived on after the cluster stopped, with no child left:
  // name what holds it open, and end.
  setTimeout(() => {
    console.error(`bench:operator: still running 30 s after the cluster stopped; open: ${process.getActiveResourcesInfo().join(', ')}`);
    process.exit(process.exitCode ?? 3);
  }, 30_000).unref();
}
