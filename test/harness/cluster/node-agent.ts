import { createWriteStream, type WriteStream } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hostsFor } from './dns.ts';
import type { ImageMapping } from './images.ts';
import type { KubeRest } from './kube-rest.ts';
import { PodRunner } from './pod-runner.ts';
import type { NodeSpec, Pod, Service } from './types.ts';

interface NodeState {
  spec: NodeSpec;
  ip: string;
  dir: string;
  running: boolean;
  runners: Map<string, PodRunner>;
  timers: NodeJS.Timeout[];
  /** When the node last became Ready (the conditions' lastTransitionTime). */
  since: string;
}

/** Options of the node agent. */
export interface NodeAgentOptions {
  api: KubeRest;
  dir: string;
  images: ImageMapping[];
  apiserverPort: number;
  kubernetesVersion: string;
}

const HEARTBEAT_MS = 3000;
const STATUS_MS = 10_000;

/**
 * Plays the kubelet for every node of the local cluster: registers the nodes, keeps their Lease and
 * status fresh, and runs the pods bound to them as local processes (see PodRunner). Nodes can be
 * stopped (processes die, heartbeats stop), started again, deleted and added.
 */
export class NodeAgent {
  readonly nodes = new Map<string, NodeState>();
  private readonly options: NodeAgentOptions;
  private readonly pods = new Map<string, Pod>();
  private readonly services = new Map<string, Service>();
  private readonly podIPs = new Map<string, string>();
  /**
   * Second octet of this cluster's own 127.B.0.0/16: node addresses are 127.B.0.n, pod addresses
   * 127.B.1.n onwards. Chosen at random (never 0 or 1) so that local clusters started side by side, by
   * test files running at the same time on one machine, do not hand out the same addresses: a member
   * would fail to bind its pod IP, or worse, one cluster's operator would talk to another's etcd.
   */
  private readonly block = 2 + Math.floor(Math.random() * 253);
  private nextPodIP = 1;
  private nextNodeIP = 1;
  private hostsTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  /**
   * What the agent saw and did, one line each (node-agent.log in the cluster's directory): every pod
   * event, every runner created, every step a pod waits on or fails at. A kubelet's log, for a test
   * that fails on a pod that never ran to say why.
   */
  private readonly logFile: WriteStream;

  constructor(options: NodeAgentOptions) {
    this.options = options;
    this.logFile = createWriteStream(path.join(options.dir, 'node-agent.log'), { flags: 'a' });
  }

  /** Appends one line to node-agent.log. */
  log(line: string): void {
    if (!this.logFile.writableEnded) this.logFile.write(`${new Date().toISOString()} ${line}\n`);
  }

  /** Starts watching pods and Services. */
  start(): void {
    const { api } = this.options;
    api.onWatchNote = (line) => this.log(line);
    api.watch<Pod>('/api/v1/pods', (e) => {
      const key = e.object.metadata.uid ?? '';
      const p = e.object;
      this.log(
        `pod ${e.type} ${p.metadata.namespace}/${p.metadata.name} uid=${key} rv=${p.metadata.resourceVersion} node=${p.spec?.nodeName ?? '-'} ` +
          `phase=${p.status?.phase ?? '-'}${p.metadata.deletionTimestamp ? ' deleting' : ''}`,
      );
      if (e.type === 'DELETED') this.pods.delete(key);
      else this.pods.set(key, e.object);
      this.podChanged(e.object, e.type === 'DELETED');
      this.refreshHosts();
    });
    api.watch<Service>('/api/v1/services', (e) => {
      const key = `${e.object.metadata.namespace}/${e.object.metadata.name}`;
      if (e.type === 'DELETED') this.services.delete(key);
      else this.services.set(key, e.object);
      this.refreshHosts();
    });
  }

  /** Registers a node and starts its heartbeats. */
  async addNode(spec: NodeSpec): Promise<void> {
    if (this.nodes.has(spec.name)) throw new Error(`node ${spec.name} already exists in the local cluster`);
    const ip = `127.${this.block}.0.${this.nextNodeIP++}`;
    const node: NodeState = { spec, ip, dir: path.join(this.options.dir, 'nodes', spec.name), running: false, runners: new Map(), timers: [], since: '' };
    this.nodes.set(spec.name, node);
    await this.options.api.call('POST', '/api/v1/nodes', {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name: spec.name,
        labels: { 'kubernetes.io/hostname': spec.name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': os.arch() === 'arm64' ? 'arm64' : 'amd64', ...spec.labels },
      },
      spec: { taints: spec.taints ?? [] },
    });
    await this.startNode(spec.name);
  }

  /** Brings a stopped node back: heartbeats resume and its pods' containers start again. */
  async startNode(name: string): Promise<void> {
    const node = this.node(name);
    if (node.running) return;
    node.running = true;
    node.since = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    await this.heartbeat(node, true);
    node.timers.push(setInterval(() => void this.heartbeat(node, false), HEARTBEAT_MS));
    node.timers.push(setInterval(() => void this.heartbeat(node, true), STATUS_MS));
    for (const pod of this.pods.values()) if (pod.spec?.nodeName === name) this.podChanged(pod, false);
  }

  /** A node failure: every process on it dies at once and its heartbeats stop. */
  async stopNode(name: string): Promise<void> {
    const node = this.node(name);
    node.running = false;
    for (const t of node.timers) clearInterval(t);
    node.timers = [];
    await Promise.all([...node.runners.values()].map((r) => r.kill()));
    node.runners.clear();
  }

  /** Stops a node and deletes its Node object and Lease, as when a machine is removed from the pool. */
  async deleteNode(name: string): Promise<void> {
    await this.stopNode(name);
    await this.options.api.call('DELETE', `/api/v1/nodes/${name}`).catch(() => undefined);
    await this.options.api.call('DELETE', `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${name}`).catch(() => undefined);
    this.nodes.delete(name);
  }

  /**
   * Stops every node. The host directories that containers' mounts were bound on (/var/lib/etcd,
   * /etc/etcd/tls/peer, ...) stay, empty: on Linux, removing a directory detaches whatever is mounted
   * on it in every other mount namespace, so removing them here unmounted the data and TLS volumes of
   * the running pods of any other local cluster on the machine (other test processes), whose etcd
   * then lost its WAL and certificates mid-test.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.hostsTimer);
    await Promise.all([...this.nodes.keys()].map((n) => this.stopNode(n)));
    await new Promise<void>((resolve) => this.logFile.end(resolve));
  }

  /** The node's address (InternalIP), which hostNetwork pods on it use as their pod IP. */
  nodeIP(name: string): string {
    return this.node(name).ip;
  }

  /**
   * The address a pod on the node, in the namespace, gets for host right now: the hosts file it would
   * be given (cluster DNS plus Service routing, as this cluster has them), for clients the tests run
   * as if they were such a pod.
   */
  resolve(nodeName: string, namespace: string, host: string): string | undefined {
    const asPod: Pod = { metadata: { name: 'test-client', namespace }, spec: { nodeName, containers: [] } };
    const hosts = hostsFor(asPod, nodeName, { services: [...this.services.values()], pods: [...this.pods.values()] });
    for (const line of hosts.split('\n')) {
      const [ip, ...names] = line.split(/\s+/);
      if (ip && names.includes(host)) return ip;
    }
    return undefined;
  }

  private node(name: string): NodeState {
    const node = this.nodes.get(name);
    if (!node) throw new Error(`no node ${name} in the local cluster; nodes: ${[...this.nodes.keys()].join(', ')}`);
    return node;
  }

  private podChanged(pod: Pod, deleted: boolean): void {
    if (this.stopped) return;
    const node = pod.spec?.nodeName ? this.nodes.get(pod.spec.nodeName) : undefined;
    if (!node?.running) {
      if (pod.spec?.nodeName) this.log(`pod ${pod.metadata.name} uid=${pod.metadata.uid}: ignored, node ${pod.spec.nodeName} is ${node ? 'stopped' : 'not one of this agent'}`);
      return;
    }
    const uid = pod.metadata.uid ?? '';
    const runner = node.runners.get(uid);
    if (deleted) {
      // Force-deleted (or finished deleting): nothing may keep running.
      if (runner) void runner.kill();
      node.runners.delete(uid);
      return;
    }
    if (runner) {
      runner.update(pod);
      return;
    }
    const phase = pod.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') return;
    const created = new PodRunner(pod, {
      api: this.options.api,
      images: this.options.images,
      node: { name: node.spec.name, ip: node.ip, dir: node.dir },
      apiserverPort: this.options.apiserverPort,
      podIP: (p) => this.podIP(p, node),
      dnsView: () => ({ services: [...this.services.values()], pods: [...this.pods.values()] }),
      event: (p, type, reason, message) => void this.event(p, node, type, reason, message),
      log: (line) => this.log(`pod ${pod.metadata.name} uid=${uid} on ${node.spec.name}: ${line}`),
    });
    this.log(`pod ${pod.metadata.name} uid=${uid}: runner created on ${node.spec.name}${pod.metadata.deletionTimestamp ? ' (terminating)' : ''}`);
    node.runners.set(uid, created);
    if (pod.metadata.deletionTimestamp) void created.terminate();
    else void created.start();
  }

  private podIP(pod: Pod, node: NodeState): string {
    if (pod.spec?.hostNetwork) return node.ip;
    const uid = pod.metadata.uid ?? pod.metadata.name;
    let ip = this.podIPs.get(uid) ?? pod.status?.podIP;
    if (!ip) {
      const n = this.nextPodIP++;
      ip = `127.${this.block}.${1 + Math.floor(n / 254)}.${(n % 254) + 1}`;
    }
    this.podIPs.set(uid, ip);
    return ip;
  }

  private refreshHosts(): void {
    if (this.hostsTimer || this.stopped) return;
    this.hostsTimer = setTimeout(() => {
      this.hostsTimer = undefined;
      for (const node of this.nodes.values()) for (const r of node.runners.values()) void r.writeHosts().catch(() => undefined);
    }, 100);
  }

  private async heartbeat(node: NodeState, withStatus: boolean): Promise<void> {
    if (!node.running) return;
    const { api } = this.options;
    const name = node.spec.name;
    const renewTime = new Date().toISOString().replace('Z', '000Z');
    try {
      await api.call('PATCH', `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${name}`, { spec: { holderIdentity: name, leaseDurationSeconds: 40, renewTime } }, 'application/merge-patch+json');
    } catch {
      await api
        .call('POST', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace: 'kube-node-lease' },
          spec: { holderIdentity: name, leaseDurationSeconds: 40, renewTime },
        })
        .catch(() => undefined);
    }
    if (!withStatus || !node.running) return;
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const condition = (type: string, status: string, reason: string, message: string): Record<string, string> => ({ type, status, reason, message, lastHeartbeatTime: now, lastTransitionTime: node.since });
    const capacity = { cpu: '8', memory: '16Gi', pods: '110', 'ephemeral-storage': '100Gi' };
    const status = {
      capacity,
      allocatable: capacity,
      conditions: [
        condition('Ready', 'True', 'KubeletReady', 'local node agent is posting ready status'),
        condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'no memory pressure'),
        condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'no disk pressure'),
        condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'no PID pressure'),
      ],
      addresses: [
        { type: 'InternalIP', address: node.ip },
        { type: 'Hostname', address: name },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: 0 } },
      nodeInfo: {
        machineID: name,
        systemUUID: name,
        bootID: name,
        kernelVersion: os.release(),
        osImage: 'etcd-topology local cluster (pods run as processes)',
        containerRuntimeVersion: 'local://0',
        kubeletVersion: this.options.kubernetesVersion,
        kubeProxyVersion: '',
        operatingSystem: 'linux',
        architecture: os.arch() === 'arm64' ? 'arm64' : 'amd64',
      },
    };
    await api.call('PATCH', `/api/v1/nodes/${name}/status`, { status }, 'application/strategic-merge-patch+json').catch(() => undefined);
  }

  private async event(pod: Pod, node: NodeState, type: string, reason: string, message: string): Promise<void> {
    const ns = pod.metadata.namespace ?? 'default';
    const time = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    this.log(`pod ${pod.metadata.name} uid=${pod.metadata.uid} on ${node.spec.name}: event ${type} ${reason}: ${message}`);
    await this.options.api
      .call('POST', `/api/v1/namespaces/${ns}/events`, {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { generateName: `${pod.metadata.name}.`, namespace: ns },
        involvedObject: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name, namespace: ns, uid: pod.metadata.uid },
        reason,
        message,
        type,
        source: { component: 'kubelet', host: node.spec.name },
        firstTimestamp: time,
        lastTimestamp: time,
        count: 1,
      })
      .catch(() => undefined);
  }
}
