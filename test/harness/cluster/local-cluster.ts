import { lstatSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { binaries } from '../binaries.ts';
import { run } from '../run.ts';
import { startControlPlane, type ControlPlane } from './control-plane.ts';
import { imageTable } from './images.ts';
import { KubeRest } from './kube-rest.ts';
import { NodeAgent } from './node-agent.ts';
import { LocalProvisioner } from './provisioner.ts';
import type { NodeSpec } from './types.ts';

export type { NodeSpec } from './types.ts';

/** The label and taint of central nodes, from DESIGN.md. */
export const CENTRAL_LABEL = { 'etcdtopology.io/role': 'central' };
export const CENTRAL_TAINT = { key: 'etcdtopology.io/central', value: 'true', effect: 'NoSchedule' as const };

/** The default topology: 3 central nodes (labelled and tainted) and 2 workers. */
export function defaultNodes(central = 3, workers = 2): NodeSpec[] {
  return [
    ...Array.from({ length: central }, (_, i) => ({ name: `central-${i}`, labels: { ...CENTRAL_LABEL }, taints: [CENTRAL_TAINT] })),
    ...Array.from({ length: workers }, (_, i) => ({ name: `worker-${i}`, labels: { 'node-role.kubernetes.io/worker': '' } })),
  ];
}

export interface LocalClusterOptions {
  nodes?: NodeSpec[];
  /** Parent of the cluster's temp dir (default: the OS temp dir). */
  tmpDir?: string;
  nodeMonitorGracePeriod?: string;
  /** See ControlPlaneOptions.controllerQps. */
  controllerQps?: number;
}

/**
 * A real Kubernetes control plane whose nodes run pods as local processes. Everything lives in one
 * temp directory; stop() ends every process and removes it.
 */
export class LocalCluster {
  readonly dir: string;
  readonly controlPlane: ControlPlane;
  readonly api: KubeRest;
  readonly agent: NodeAgent;

  private constructor(dir: string, controlPlane: ControlPlane, api: KubeRest, agent: NodeAgent) {
    this.dir = dir;
    this.controlPlane = controlPlane;
    this.api = api;
    this.agent = agent;
  }

  /** Starts the control plane, the node agent and the volume provisioner, and registers the nodes. */
  static async start(options: LocalClusterOptions = {}): Promise<LocalCluster> {
    if (process.getuid?.() !== 0) {
      throw new Error('the local cluster runs each pod in its own mount namespace (unshare, mount --bind) and needs root; run it as root or in a root container');
    }
    const dir = await mkdtemp(path.join(options.tmpDir ?? os.tmpdir(), 'etcd-topology-cluster-'));
    let controlPlane: ControlPlane | undefined;
    let api: KubeRest | undefined;
    let agent: NodeAgent | undefined;
    try {
      const bin = binaries();
      controlPlane = await startControlPlane({ dir, nodeMonitorGracePeriod: options.nodeMonitorGracePeriod, controllerQps: options.controllerQps });
      api = new KubeRest(controlPlane.server, { ca: controlPlane.pki.ca.cert, cert: controlPlane.pki.admin.cert, key: controlPlane.pki.admin.key });
      const repo = path.resolve(import.meta.dirname, '..', '..', '..');
      const version = (await run(bin.kubeApiserver, ['--version'])).trim().split(' ').pop() ?? 'v0.0.0';
      agent = new NodeAgent({
        api,
        dir,
        images: imageTable({ etcd: bin.etcd, etcdPrevious: () => bin.etcdPrevious, etcdctl: bin.etcdctl, etcdutl: bin.etcdutl, node: process.execPath, cli: path.join(repo, 'dist', 'cli.js') }),
        apiserverPort: controlPlane.apiserverPort,
        kubernetesVersion: version,
      });
      agent.start();
      const nodeDirs = agent.nodes;
      await new LocalProvisioner(api, (n) => (nodeDirs.has(n) ? path.join(dir, 'nodes', n) : undefined)).start();
      for (const node of options.nodes ?? defaultNodes()) await agent.addNode(node);
      return new LocalCluster(dir, controlPlane, api, agent);
    } catch (err) {
      await agent?.stop();
      await api?.close();
      await controlPlane?.stop();
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Path of the admin kubeconfig. */
  get kubeconfig(): string {
    return this.controlPlane.kubeconfig;
  }

  /** Runs kubectl against the cluster and resolves its stdout. */
  kubectl(args: string[], input?: string): Promise<string> {
    return run(binaries().kubectl, ['--kubeconfig', this.kubeconfig, ...args], { input });
  }

  /**
   * Everything a pod's container wrote to stdout and stderr, across restarts, also after the pod was
   * deleted (the logs stay until the cluster stops): `kubectl logs` for a pod that is gone.
   */
  containerLog(pod: { metadata: { uid?: string; name: string }; spec?: { nodeName?: string } }, container: string): Promise<string> {
    const node = pod.spec?.nodeName;
    if (!node) return Promise.reject(new Error(`pod ${pod.metadata.name} was never bound to a node: it has no logs`));
    return readFile(path.join(this.dir, 'nodes', node, 'pods', pod.metadata.uid ?? pod.metadata.name, `${container}.log`), 'utf8');
  }

  /**
   * Keeps what explains a failure before stop() removes it: every log of the cluster (control plane,
   * node agent, operator, each container's) under dest with the cluster's own layout, and the API's
   * objects and events as they are now. Data directories are not copied.
   */
  async keepEvidence(dest: string): Promise<void> {
    await mkdir(dest, { recursive: true });
    const logsOnly = (src: string): boolean => {
      const parts = path.relative(this.dir, src).split(path.sep);
      // Skip the control plane's etcd data and every volume (etcd data, hostPath, Secrets).
      if (parts[0] === 'etcd' || parts.includes('volumes') || parts.includes('host')) return false;
      return src.endsWith('.log') || lstatSync(src).isDirectory();
    };
    await cp(this.dir, dest, { recursive: true, filter: logsOnly });
    const dump = async (file: string, args: string[]): Promise<void> => {
      const out = await this.kubectl(args).catch((err: unknown) => `kubectl ${args.join(' ')} failed: ${String(err)}`);
      await writeFile(path.join(dest, file), out);
    };
    await dump('objects.yaml', ['get', 'nodes,pods,pvc,pv,statefulsets,daemonsets,etcdtopologies', '-A', '-o', 'yaml']);
    await dump('events.txt', ['get', 'events', '-A', '--sort-by=.lastTimestamp', '-o', 'wide']);
  }

  /** Stops every process and removes the cluster's directory. */
  async stop(): Promise<void> {
    await this.agent.stop();
    await this.api.close();
    await this.controlPlane.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}
