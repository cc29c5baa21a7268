import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { binaries } from '../harness/binaries.ts';
import type { LocalCluster } from '../harness/cluster/local-cluster.ts';
import { waitFor } from '../harness/ports.ts';
import { run } from '../harness/run.ts';
import { OperatorProcess } from './operator-process.ts';
import { conditionOf, getTopology, serviceAccountKubeconfig, startClusterWithCrd, topologyManifest } from './setup.ts';

// One operator and several namespaces, run as the chart's ServiceAccount with the chart's RBAC (not
// the admin kubeconfig), so that the test also proves the Roles suffice and confine it:
// --namespaces=ns-a,ns-b reconciles those two and leaves an EtcdTopology in ns-c untouched; without
// the flag (and the chart's cluster-wide mode), the same operator takes ns-c too.

const repo = path.resolve(import.meta.dirname, '..', '..');
const RELEASE = 'etcd-topology';
const SYSTEM = 'etcd-topology-system';
const SERVICE_ACCOUNT = RELEASE; // the chart's fullname when the release is named after the chart
const NAME = 'etop';
const WATCHED = ['ns-a', 'ns-b'];
const OTHER = 'ns-c';
const RBAC_KINDS = new Set(['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']);
const SPEC = { members: { count: 1 }, proxy: { enabled: false } };
// ns-a runs its proxies (one per worker node): pods the operator's Pod cache must not hold.
const specOf = (ns: string) => (ns === 'ns-a' ? { members: { count: 1 } } : SPEC);

describe('namespaces on the local cluster, with the chart\'s RBAC', () => {
  let cluster: LocalCluster;
  let helm: string;
  let kubeconfig: string;
  let operator: OperatorProcess | undefined;

  /** Applies the chart's ServiceAccount and RBAC objects rendered with these --set values. */
  const applyChartRbac = async (...set: string[]): Promise<void> => {
    const rendered = await run(helm, ['template', RELEASE, path.join(repo, 'deploy/etcd-topology'), '--namespace', SYSTEM, ...set.flatMap((s) => ['--set', s])]);
    const rbac = parseAllDocuments(rendered).map((d) => d.toJS() as { kind?: string } | null).filter((o) => o?.kind !== undefined && RBAC_KINDS.has(o.kind));
    expect(rbac.length).toBeGreaterThanOrEqual(5);
    await cluster.kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: rbac }));
  };
  const startOperator = (log: string, args: string[]): Promise<OperatorProcess> =>
    OperatorProcess.start(kubeconfig, path.join(cluster.dir, log), ['--resync-period=3s', `--leader-election-namespace=${SYSTEM}`, ...args], `${log}-replica`);
  /** What the operator's informer caches hold, per kind. */
  const cached = async (op: OperatorProcess, kind: string): Promise<number> => op.counter('etcd_topology_operator_cached_objects', (l) => l === `{kind="${kind}"}`);
  const podsIn = async (selector: string): Promise<number> => (JSON.parse(await cluster.kubectl(['get', 'pods', '-A', '-l', selector, '-o', 'json'])) as { items: unknown[] }).items.length;
  const available = async (ns: string): Promise<boolean> => conditionOf(await getTopology(cluster, NAME, ns), 'Available')?.status === 'True';
  /** Whether the ServiceAccount may do this, asked as the ServiceAccount itself. */
  const canI = async (verb: string, resource: string, ns: string): Promise<string> =>
    (await run(binaries().kubectl, ['--kubeconfig', kubeconfig, 'auth', 'can-i', verb, resource, '-n', ns]).catch((err: Error) => err.message)).trim().split(/\s/).pop()!;

  beforeAll(async () => {
    helm = (await run('bash', [path.join(repo, 'hack/helm.sh')])).trim();
    cluster = await startClusterWithCrd();
    for (const ns of [SYSTEM, ...WATCHED, OTHER]) await cluster.kubectl(['create', 'namespace', ns]);
    await applyChartRbac(`watchNamespaces={${WATCHED.join(',')}}`);
    kubeconfig = await serviceAccountKubeconfig(cluster, SYSTEM, SERVICE_ACCOUNT);
    for (const ns of [...WATCHED, OTHER]) await cluster.kubectl(['apply', '-f', '-'], topologyManifest(NAME, ns, specOf(ns)));
  }, 300_000);
  afterAll(async () => {
    await operator?.stop();
    await cluster?.stop();
  });

  it('with --namespaces=ns-a,ns-b and Roles in those two only, reconciles both and leaves ns-c untouched', async () => {
    // RBAC as rendered: the namespaced power in ns-a and ns-b only, none over ns-c or kube-system.
    expect(await canI('delete', 'pods', 'ns-a')).toBe('yes');
    expect(await canI('delete', 'pods', OTHER)).toBe('no');
    expect(await canI('delete', 'pods', 'kube-system')).toBe('no');
    expect(await canI('get', 'secrets', OTHER)).toBe('no');
    expect(await canI('list', 'nodes', OTHER)).toBe('yes');

    operator = await startOperator('operator-listed.log', [`--namespaces=${WATCHED.join(',')}`]);
    for (const ns of WATCHED) await waitFor(`${ns}/${NAME} Available`, () => available(ns), { timeoutMs: 240_000, intervalMs: 1000 });
    // Several resyncs later, ns-c is still as the user left it: no status, no owned object, no event.
    const reconciles = await operator.counter('etcd_topology_operator_reconciles_total');
    await waitFor('three more reconciles', async () => (await operator!.counter('etcd_topology_operator_reconciles_total')) >= reconciles + 3, { timeoutMs: 60_000 });
    const other = await getTopology(cluster, NAME, OTHER);
    expect(other.status).toBeUndefined();
    expect(await cluster.kubectl(['get', 'statefulsets,services,secrets,poddisruptionbudgets,serviceaccounts', '-n', OTHER, '-l', 'app.kubernetes.io/managed-by=etcd-topology', '-o', 'name'])).toBe('');
    expect(await cluster.kubectl(['get', 'events', '-n', OTHER, '--field-selector', `involvedObject.name=${NAME}`, '-o', 'name'])).toBe('');
    // The Pod cache holds the two members, not ns-a's proxies; the claim cache the members' claims.
    await waitFor('the proxies of ns-a', async () => (await podsIn('app.kubernetes.io/component=proxy')) === 2, { timeoutMs: 60_000 });
    expect(await cached(operator, 'Pod')).toBe(2);
    expect(await cached(operator, 'PersistentVolumeClaim')).toBe(2);
    expect(await cached(operator, 'EtcdTopology')).toBe(2);
    const log = await readFile(operator.logFile, 'utf8');
    expect(log).not.toContain(OTHER);
    // Every list and watch stayed inside what the Roles allow: a cluster-wide list would be refused.
    expect(log).not.toMatch(/forbidden/i);
    await operator.stop();
    operator = undefined;
  }, 420_000);

  it('without --namespaces and with the chart\'s cluster-wide RBAC, the same operator reconciles every namespace', async () => {
    await applyChartRbac();
    expect(await canI('delete', 'pods', OTHER)).toBe('yes');
    operator = await startOperator('operator-all.log', []);
    await waitFor(`${OTHER}/${NAME} Available`, () => available(OTHER), { timeoutMs: 240_000, intervalMs: 1000 });
    for (const ns of WATCHED) expect(await available(ns), ns).toBe(true);
    const members = JSON.parse(await cluster.kubectl(['get', 'pods', '-A', '-l', 'app.kubernetes.io/component=member', '-o', 'json'])) as { items: { metadata: { namespace: string } }[] };
    expect(members.items.map((p) => p.metadata.namespace).sort()).toEqual([...WATCHED, OTHER].sort());
    expect(await cached(operator, 'Pod')).toBe(3);
    expect(await cached(operator, 'EtcdTopology')).toBe(3);
    expect(await readFile(operator.logFile, 'utf8')).not.toMatch(/forbidden/i);
  }, 420_000);
});
