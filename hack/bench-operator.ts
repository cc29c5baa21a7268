// npm run bench:operator [-- --rounds 3 --topologies 50]
// On the local cluster, with the operator (dist/) as a local process: time from apply to every owned
// object created and to Available (rounds, medians); API write calls per no-change resync; operator
// RSS with one topology and with N topologies. Writes docs/bench/operator.md.
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { waitFor } from '../test/harness/ports.ts';
import { conditionOf, getTopology, startOperatorCluster, topologyManifest } from '../test/operator/setup.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, topologies: { type: 'string', default: '50' } }, strict: true });
const rounds = Number(values.rounds);
const many = Number(values.topologies);
if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(many) || many < 2) {
  console.error('bench:operator: --rounds must be a whole number >= 1 and --topologies >= 2');
  process.exit(2);
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const rssMiB = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
const NS = 'default';

const env = await startOperatorCluster({}, ['--resync-period=3s']);
const { cluster, operator } = env;
try {
  const k = (args: string[], input?: string): Promise<string> => cluster.kubectl(args, input);
  const owned = async (name: string): Promise<boolean> => {
    const out = await k(['get', 'statefulsets,daemonsets,services,poddisruptionbudgets,serviceaccounts', '-n', NS, '-l', `app.kubernetes.io/instance=${name}`, '-o', 'name']);
    return out.trim().split('\n').filter(Boolean).length >= 8;
  };

  const created: number[] = [];
  const available: number[] = [];
  const resyncWrites: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const name = `bench-${r}`;
    const start = performance.now();
    await k(['apply', '-f', '-'], topologyManifest(name, NS, { members: { count: 3 } }));
    await waitFor(`${name} objects`, () => owned(name), { timeoutMs: 60_000, intervalMs: 50 });
    created.push(performance.now() - start);
    await waitFor(`${name} Available`, async () => conditionOf(await getTopology(cluster, name, NS), 'Available')?.status === 'True', { timeoutMs: 240_000, intervalMs: 100 });
    available.push(performance.now() - start);
    await waitFor(`${name} settled`, async () => conditionOf(await getTopology(cluster, name, NS), 'Progressing')?.status === 'False', { timeoutMs: 120_000, intervalMs: 500 });
    // Writes over three resync periods with nothing changing (Events excluded: none are due).
    const before = await operator.counter('etcd_topology_operator_api_writes_total');
    const reconciles = await operator.counter('etcd_topology_operator_reconciles_total');
    await waitFor('three resyncs', async () => (await operator.counter('etcd_topology_operator_reconciles_total')) >= reconciles + 3, { timeoutMs: 60_000 });
    const resyncs = (await operator.counter('etcd_topology_operator_reconciles_total')) - reconciles;
    resyncWrites.push(((await operator.counter('etcd_topology_operator_api_writes_total')) - before) / resyncs);
    await k(['delete', 'etop', name, '-n', NS, '--wait=true']);
    await waitFor(`${name} pods gone`, async () => (await k(['get', 'pods', '-n', NS, '-l', `app.kubernetes.io/instance=${name}`, '-o', 'name'])).trim() === '', { timeoutMs: 120_000 });
  }

  // RSS: one settled topology, then N. The others select no node (their pods stay Pending and their
  // proxies are off), so the machine runs 3 etcd members, not 3N; the operator still watches, renders
  // and reconciles N topologies and caches all their objects.
  await k(['apply', '-f', '-'], topologyManifest('rss-0', NS, { members: { count: 3 } }));
  await waitFor('rss-0 Available', async () => conditionOf(await getTopology(cluster, 'rss-0', NS), 'Available')?.status === 'True', { timeoutMs: 240_000 });
  const pid = operator.pid;
  const rssOne = rssMiB(pid);
  for (let i = 1; i < many; i++) {
    await k(['apply', '-f', '-'], topologyManifest(`rss-${i}`, NS, { members: { count: 3, nodeSelector: { 'bench.etcdtopology.io/none': 'true' } }, proxy: { enabled: false } }));
  }
  await waitFor(`${many} topologies with status`, async () => {
    const list = JSON.parse(await k(['get', 'etop', '-n', NS, '-o', 'json'])) as { items: { status?: { observedGeneration?: number } }[] };
    return list.items.length === many && list.items.every((t) => t.status?.observedGeneration !== undefined);
  }, { timeoutMs: 300_000, intervalMs: 1000 });
  const reconcilesAt = await operator.counter('etcd_topology_operator_reconciles_total');
  await waitFor('a resync of every topology', async () => (await operator.counter('etcd_topology_operator_reconciles_total')) >= reconcilesAt + many, { timeoutMs: 300_000 });
  const rssMany = rssMiB(pid);

  const report = `# Operator benchmark

Command: \`npm run bench:operator -- --rounds ${rounds} --topologies ${many}\` (${new Date().toISOString().slice(0, 10)}).
Machine: ${os.cpus().length} cores, shared; the local cluster (real kube-apiserver, controller manager,
scheduler, etcd members as processes) runs on the same machine as the operator, so times include
scheduling and starting three etcd processes.

| measure | median of ${rounds} | all rounds |
| --- | ---: | --- |
| apply → every owned object created (8) | ${(median(created) / 1000).toFixed(2)} s | ${created.map((x) => (x / 1000).toFixed(2)).join(', ')} |
| apply → Available (etcd reports a leader and a healthy quorum) | ${(median(available) / 1000).toFixed(1)} s | ${available.map((x) => (x / 1000).toFixed(1)).join(', ')} |
| API write calls per no-change resync (target 0) | ${median(resyncWrites)} | ${resyncWrites.join(', ')} |

| operator RSS | MiB |
| --- | ---: |
| 1 topology, settled | ${rssOne.toFixed(0)} |
| ${many} topologies (1 running, ${many - 1} with members Pending: their selector matches no node) | ${rssMany.toFixed(0)} |

The ${many - 1} extra topologies are rendered, applied and reconciled like any other (8 owned objects
each, status written), but run no etcd: 3 x ${many} etcd processes do not fit this machine. Their
reconciles find no member to ask, so RSS here covers the caches and the control loop, not ${many}
live etcd clients.
`;
  writeFileSync(path.join(import.meta.dirname, '..', 'docs', 'bench', 'operator.md'), report);
  console.log(report);
} finally {
  await env.stop();
}
