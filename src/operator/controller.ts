import type { KubernetesObject } from '@kubernetes/client-node';
import { Counter, Gauge, Histogram, type Registry } from '../telemetry/lean-metrics.ts';
import { API_VERSION, KIND, PLURAL } from '../api/etcd-topology.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { KubeClient } from './kube-client.ts';
import { CLAIM_SELECTOR, Informers, MANAGED_SELECTOR, nodeChanges, POD_SELECTOR, SECRET_SELECTOR, type WatchedKind } from './informers.ts';
import { nodeLane, topologyLane, topologySeen, type TopologySeen } from './lanes.ts';
import type { Reconciler } from './reconciler.ts';
import { WorkQueue } from './work-queue.ts';

/** Every kind the controller watches: its own resource, what it creates, and Nodes. */
export const WATCHED_KINDS: WatchedKind[] = [
  { apiVersion: API_VERSION, kind: KIND, plural: PLURAL, namespaced: true },
  { apiVersion: 'apps/v1', kind: 'StatefulSet', plural: 'statefulsets', namespaced: true, labelSelector: MANAGED_SELECTOR },
  { apiVersion: 'apps/v1', kind: 'DaemonSet', plural: 'daemonsets', namespaced: true, labelSelector: MANAGED_SELECTOR },
  { apiVersion: 'v1', kind: 'Service', plural: 'services', namespaced: true, labelSelector: MANAGED_SELECTOR },
  { apiVersion: 'v1', kind: 'ServiceAccount', plural: 'serviceaccounts', namespaced: true, labelSelector: MANAGED_SELECTOR },
  { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', plural: 'poddisruptionbudgets', namespaced: true, labelSelector: MANAGED_SELECTOR },
  { apiVersion: 'v1', kind: 'Pod', plural: 'pods', namespaced: true, labelSelector: POD_SELECTOR },
  { apiVersion: 'v1', kind: 'PersistentVolumeClaim', plural: 'persistentvolumeclaims', namespaced: true, labelSelector: CLAIM_SELECTOR },
  { apiVersion: 'batch/v1', kind: 'Job', plural: 'jobs', namespaced: true, labelSelector: MANAGED_SELECTOR },
  // The built-in CA's Secrets, which the TLS step reads in every reconcile (SecretCache); not the user's.
  { apiVersion: 'v1', kind: 'Secret', plural: 'secrets', namespaced: true, labelSelector: SECRET_SELECTOR },
  { apiVersion: 'v1', kind: 'Node', plural: 'nodes', namespaced: false, changes: nodeChanges },
];

/** Workers, and how many of them may run routine visits at once (work-queue.ts: maxRoutineInFlight). */
export const WORKERS = 8;
export const ROUTINE_IN_FLIGHT = 2;

const SECONDS_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The key of the EtcdTopology an object belongs to, from its own identity or its instance label. */
export function ownerKey(kind: string, obj: KubernetesObject): string | undefined {
  const ns = obj.metadata?.namespace;
  if (kind === KIND) return ns && obj.metadata?.name ? `${ns}/${obj.metadata.name}` : undefined;
  const instance = obj.metadata?.labels?.['app.kubernetes.io/instance'];
  return ns && instance ? `${ns}/${instance}` : undefined;
}

/**
 * Informers feed a keyed queue; workers take keys and reconcile them. A topology's own change goes to
 * the lane lanes.ts gives it (its spec first); a change of an object it owns is news for its owner; a
 * node change is news for the topologies it concerns and a routine visit for the others.
 */
export class Controller {
  readonly informers: Informers;
  private readonly queue: WorkQueue;
  private readonly log: Logger;
  private readonly reconciles: Counter<'result'>;
  private readonly duration: Histogram<'lane'>;
  private readonly retries: Counter;
  private reconciler: Reconciler | undefined;
  private workers: Promise<void>[] = [];
  /** Each topology's generation and metadata as last queued (the lane of its next event). */
  private readonly topologies = new Map<string, TopologySeen>();
  /** Each node's labels as last seen (a node that stops matching a selector still concerns it once). */
  private readonly nodeLabels = new Map<string, Record<string, string> | undefined>();

  constructor(client: KubeClient, namespaces: readonly string[] | undefined, registry: Registry, log: Logger) {
    this.log = log;
    this.reconciles = new Counter({ name: 'etcd_topology_operator_reconciles_total', help: 'Reconciles by result (success, error, superseded: stopped between steps by a newer spec).', labelNames: ['result'], registers: [registry] });
    this.duration = new Histogram({
      name: 'etcd_topology_operator_reconcile_duration_seconds',
      help: 'Time one reconcile took, by the queue lane it was taken from (spec, news, routine).',
      labelNames: ['lane'],
      buckets: SECONDS_BUCKETS,
      registers: [registry],
    });
    const wait = new Histogram({
      name: 'etcd_topology_operator_queue_wait_seconds',
      help: 'Time a topology waited in the work queue for a worker, by lane (spec, news, routine).',
      labelNames: ['lane'],
      buckets: SECONDS_BUCKETS,
      registers: [registry],
    });
    const queue = (this.queue = new WorkQueue({ maxRoutineInFlight: ROUTINE_IN_FLIGHT, onTake: (lane, ms) => wait.observe({ lane }, ms / 1000) }));
    new Gauge({ name: 'etcd_topology_operator_queue_depth', help: 'Topologies waiting in the work queue (not in flight, not scheduled).', registers: [registry], collect() { this.set(queue.length); } });
    this.retries = new Counter({ name: 'etcd_topology_operator_queue_retries_total', help: 'Reconciles that failed and were queued again with back-off.', registers: [registry] });
    this.informers = new Informers(client, WATCHED_KINDS, namespaces, (kind, obj) => this.enqueueFor(kind, obj), log, registry);
  }

  /** Starts the informers (every replica keeps its caches warm, leader or not). */
  async startInformers(): Promise<void> {
    await this.informers.start();
  }

  /**
   * Starts reconciling with the given number of workers (called once this replica leads). A reconcile
   * mostly waits (API calls, etcd calls), and one key never runs on two workers at once, so several
   * topologies go forward together: with 2 workers and writes taking 2 s each on a loaded API server,
   * the first reconciles of 100 new topologies (about 30 writes each) took over half an hour. Only
   * ROUTINE_IN_FLIGHT of them run routine visits at once, the rest are kept for spec changes and news.
   */
  startWorkers(reconciler: Reconciler, count = WORKERS): void {
    this.reconciler = reconciler;
    for (const t of this.informers.list<KubernetesObject>(KIND)) this.enqueueFor(KIND, t);
    for (let i = 0; i < count; i++) this.workers.push(this.work());
  }

  /** Stops handing out work and waits for reconciles in flight to finish. */
  async stop(): Promise<void> {
    this.queue.shutdown();
    await Promise.all(this.workers);
    await this.informers.stop();
  }

  /** Queues a topology by key now (work that finished outside a reconcile, such as a defragmentation). */
  enqueue(key: string): void {
    if (this.reconciler) this.queue.add(key);
  }

  private enqueueFor(kind: string, obj: KubernetesObject): void {
    if (kind === 'Node') {
      const name = obj.metadata?.name ?? '';
      const before = this.nodeLabels.get(name);
      const deleted = this.informers.get('Node', name) === undefined;
      if (deleted) this.nodeLabels.delete(name);
      else this.nodeLabels.set(name, obj.metadata?.labels);
      if (!this.reconciler) return;
      const hosting = new Set(this.informers.list<KubernetesObject & { spec?: { nodeName?: string } }>('Pod').filter((p) => p.spec?.nodeName === name).map((p) => ownerKey('Pod', p)));
      for (const t of this.informers.list<KubernetesObject>(KIND)) {
        const key = ownerKey(KIND, t);
        if (key) this.queue.add(key, nodeLane(t, obj.metadata?.labels, before, hosting.has(key)));
      }
      return;
    }
    if (!this.reconciler) return;
    const key = ownerKey(kind, obj);
    if (!key) return;
    if (kind !== KIND) {
      this.queue.add(key, 'news');
      return;
    }
    if (this.informers.get(KIND, obj.metadata!.name!, obj.metadata!.namespace) === undefined) {
      this.topologies.delete(key);
      this.queue.add(key, 'news');
      return;
    }
    const seen = topologySeen(obj);
    this.queue.add(key, topologyLane(this.topologies.get(key), seen));
    this.topologies.set(key, seen);
  }

  private async work(): Promise<void> {
    for (let key = await this.queue.next(); key !== undefined; key = await this.queue.next()) {
      const lane = this.queue.laneOf(key) ?? 'news';
      const end = this.duration.startTimer({ lane });
      try {
        const result = await this.reconciler!.reconcile(key, lane, this.queue.supersededSignal(key));
        this.queue.forget(key);
        if (result.requeueAfterMs !== undefined) this.queue.addAfter(key, result.requeueAfterMs);
        this.reconciles.inc({ result: result.superseded === true ? 'superseded' : 'success' });
      } catch (err) {
        const delay = this.queue.retry(key);
        this.retries.inc();
        this.reconciles.inc({ result: 'error' });
        this.log.error({ err, etcdtopology: key, retryInMs: delay }, 'Failed to reconcile; retrying');
      } finally {
        end();
        this.queue.done(key);
      }
    }
  }
}
