import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Pod } from '../harness/cluster/types.ts';
import { LocalCluster, type LocalClusterOptions } from '../harness/cluster/local-cluster.ts';
import { waitFor } from '../harness/ports.ts';
import { run } from '../harness/run.ts';
import { OperatorProcess } from './operator-process.ts';

const repo = path.resolve(import.meta.dirname, '..', '..');

/** The local cluster with the CRD installed and the operator (built from this checkout) running against it. */
export interface OperatorCluster {
  cluster: LocalCluster;
  operator: OperatorProcess;
  stop(): Promise<void>;
}

/** Builds dist/, starts the local cluster and installs crds/ (no operator yet). */
export async function startClusterWithCrd(options: LocalClusterOptions = {}): Promise<LocalCluster> {
  await run(process.execPath, [path.join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(repo, 'tsconfig.build.json')]);
  const cluster = await LocalCluster.start(options);
  try {
    await cluster.kubectl(['apply', '--server-side', '-f', path.join(repo, 'crds')]);
    // Polled rather than `kubectl wait`, which fails at once on a CRD that has no conditions yet.
    await waitFor('the EtcdTopology CRD Established', async () => {
      const crd = JSON.parse(await cluster.kubectl(['get', 'crd', 'etcdtopologies.etcdtopology.io', '-o', 'json'])) as { status?: { conditions?: { type: string; status: string }[] } };
      return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
    }, { timeoutMs: 30_000, intervalMs: 200 });
    return cluster;
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

/** Builds dist/, starts the local cluster, installs crds/ and starts the operator with a short resync. */
export async function startOperatorCluster(options: LocalClusterOptions = {}, operatorArgs: string[] = ['--resync-period=3s']): Promise<OperatorCluster> {
  const cluster = await startClusterWithCrd(options);
  try {
    const operator = await OperatorProcess.start(cluster.kubeconfig, path.join(cluster.dir, 'operator.log'), operatorArgs);
    return {
      cluster,
      operator,
      stop: async () => {
        await operator.stop();
        await cluster.stop();
      },
    };
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

/**
 * Writes a kubeconfig that authenticates as a ServiceAccount (a token from the TokenRequest API), so
 * that a process run with it holds exactly the permissions RBAC grants that account; returns its path.
 */
export async function serviceAccountKubeconfig(cluster: LocalCluster, namespace: string, name: string): Promise<string> {
  const token = (await cluster.kubectl(['create', 'token', name, '-n', namespace, '--duration=2h'])).trim();
  const file = path.join(cluster.dir, `${namespace}-${name}.kubeconfig`);
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'local', cluster: { server: cluster.controlPlane.server, 'certificate-authority': cluster.controlPlane.pki.ca.cert } }],
    users: [{ name, user: { token } }],
    contexts: [{ name, context: { cluster: 'local', user: name, namespace } }],
    'current-context': name,
  };
  await writeFile(file, JSON.stringify(config), { mode: 0o600 });
  return file;
}

/** An EtcdTopology manifest (JSON) for kubectl apply. */
export function topologyManifest(name: string, namespace: string, spec: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: 'etcdtopology.io/v1alpha1', kind: 'EtcdTopology', metadata: { name, namespace }, spec });
}

/** The status of an EtcdTopology as tests read it. */
export interface TopologyStatus {
  metadata: { generation: number; uid: string };
  status?: {
    observedGeneration?: number;
    conditions?: { type: string; status: string; reason: string; message: string }[];
    quorum?: { size: number; healthy: number; faultTolerance: number; disruptionsAllowed: number };
    members?: { name: string; id: string; role: string; healthy: boolean; node?: string; drain?: { safe: boolean; reason: string; message: string } }[];
    proxies?: { desired: number; ready: number };
    leader?: string;
  };
}

/** Reads one EtcdTopology. */
export async function getTopology(cluster: LocalCluster, name: string, namespace: string): Promise<TopologyStatus> {
  return JSON.parse(await cluster.kubectl(['get', 'etop', name, '-n', namespace, '-o', 'json'])) as TopologyStatus;
}

/** A condition of the topology, if present. */
export function conditionOf(t: TopologyStatus, type: string) {
  return t.status?.conditions?.find((c) => c.type === type);
}

/** The pods of one component (member or proxy) of a topology. */
export async function componentPods(cluster: LocalCluster, name: string, namespace: string, component: 'member' | 'proxy'): Promise<Pod[]> {
  const out = await cluster.kubectl(['get', 'pods', '-n', namespace, '-l', `app.kubernetes.io/instance=${name},app.kubernetes.io/component=${component}`, '-o', 'json']);
  return (JSON.parse(out) as { items: Pod[] }).items;
}

/** True when the pod's Ready condition is True. */
export function isReady(p: Pod): boolean {
  return p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}
