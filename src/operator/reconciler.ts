import type { KubernetesObject } from '@kubernetes/client-node';
import { conditionSchema, findCondition, setConditions, type Clock, type ConditionUpdate } from '../api/conditions.ts';
import type { BackupStatus, RestoreStatus } from '../api/backup.ts';
import { API_VERSION, KIND, type EtcdTopology } from '../api/etcd-topology.ts';
import { parseTopology } from '../api/parse-topology.ts';
import type { EtcdTopologyStatus } from '../api/status.ts';
import type { EtcdAdminClient } from '../etcd/admin-client.ts';
import { InvalidSpecError } from '../errors.ts';
import type { MemberHealth } from '../quorum/members.ts';
import { nextStep, type Step } from '../quorum/plan.ts';
import type { Logger } from '../telemetry/logger.ts';
import { applyOwned } from './apply.ts';
import { restoreConditions, restoreFailureOf, type BackupSteps, type RestoreDecision } from './backup.ts';
import type { OwnedObject } from './components/meta.ts';
import type { EventRecorder, EventTarget } from './events.ts';
import { invalidSpecConditions, stepFailedConditions } from './failure-conditions.ts';
import { gatherCluster, readEtcd, type ClusterSnapshot, type Snapshot } from './gather.ts';
import type { Informers } from './informers.ts';
import type { KubeWriter } from './kube.ts';
import type { EtcdObservation } from './observe-etcd.ts';
import { perform } from './perform.ts';
import { planInput } from './plan-input.ts';
import { syncReadinessGates } from './readiness-gates.ts';
import { computeStatus, type Observation } from './status.ts';
import { writeStatus } from './status-writer.ts';
import { CONTINUE, requeueAfter, runSteps, StepError, type NamedStep, type StepFailure, type StepResult } from './steps.ts';
import { runsPlaintext, TlsCertificates, withTlsEnabled, type TlsState } from './tls-certificates.ts';
import { sampleOf, type TopologyMetrics } from './topology-metrics.ts';
import type { Upkeep } from './upkeep.ts';
import type { SecretSource } from './secret-cache.ts';
import type { Lane } from './work-queue.ts';

/** What a reconcile asks of the queue afterwards. */
export interface ReconcileResult {
  requeueAfterMs?: number;
  /** The round stopped between steps because a newer spec arrived (the queue runs the key again at once). */
  superseded?: true;
}

/** What the owned objects are rendered from besides the spec: the members etcd knows (undefined: a new cluster). */
export interface RenderInput {
  members: MemberHealth[] | undefined;
  /** The backup a new cluster's members restore from, once resolved (spec.bootstrap.fromBackup). */
  restore?: { key: string; sha256?: string | undefined } | undefined;
  /** The hash of the CA bundle the members must trust (TlsState.trustHash). */
  trustHash?: string | undefined;
}

/** Renders every object the operator owns for a topology, in apply order, and names those that must not exist. */
export interface Renderer {
  owned(topology: EtcdTopology, input: RenderInput): OwnedObject[];
  unwanted(topology: EtcdTopology, input: RenderInput): { apiVersion: string; kind: string; name: string }[];
}

export interface ReconcilerDeps {
  informers: Informers;
  writer: KubeWriter;
  admin: EtcdAdminClient;
  events: EventRecorder;
  clock: Clock;
  log: Logger;
  render: Renderer;
  /** Backups and restores; without it, spec.backup and spec.bootstrap are not acted on (unit tests). */
  backup?: BackupSteps;
  /** Resync period of a settled topology; an unsettled one is visited more often. */
  resyncMs?: number;
  /** Defragmentation and NOSPACE recovery (spec.maintenance); without it the operator does no upkeep. */
  upkeep?: Upkeep;
  metrics?: TopologyMetrics;
  /** Aborted when the operator may no longer act (SIGTERM, or the leader lease lost): no further step starts, no status is written. */
  acting?: AbortSignal;
  /** Where the TLS step reads the built-in CA's Secrets (SecretCache); without it, by GET. */
  secrets?: SecretSource;
  /** Hears how long each step took, and the status write ('status'), in seconds. */
  stepDuration?: (step: string, seconds: number, lane: Lane) => void;
}

/** One reconcile of one topology: what the steps found and decided so far, filled in in order. */
interface Round {
  key: string;
  log: Logger;
  target: EventTarget;
  /** Aborted when a newer spec arrives: the round stops before its next step (and stops waiting for etcd). */
  superseded: AbortSignal | undefined;
  /** As parsed; from the certificates step on, with the TLS actually in effect. */
  topology: EtcdTopology;
  tls?: TlsState;
  cluster?: ClusterSnapshot;
  /** etcd's view, asked for by observe and awaited by observe etcd: the apply between them does not wait for it. */
  reading?: Promise<EtcdObservation>;
  /** The member set the apply rendered from (the last one etcd reported before this round). */
  rendered?: MemberHealth[] | undefined;
  /** The cluster snapshot with etcd's view, from observe etcd on. */
  snapshot?: Snapshot;
  restore?: RestoreDecision;
  step?: Step;
  backup?: { status: BackupStatus | undefined };
}

const CORE_CONDITIONS = new Set(['Available', 'Progressing', 'Degraded']);
/** How soon to look again after a step changed the cluster (a membership change, a pod deleted). */
const AFTER_ACTION_MS = 1_000;
/** How soon to look again at a topology that is not settled. */
const UNSETTLED_MS = 5_000;

const membersOf = (s: Snapshot | undefined): MemberHealth[] | undefined => (s !== undefined && 'members' in s.etcd ? s.etcd.members : undefined);
const urlsOf = (s: Snapshot): Map<string, string> => new Map(s.endpoints.map((e) => [e.name, e.url]));
/** What the owned objects are rendered from of a member set: names and which are learners (the budget counts voters). */
const membershipKey = (members: readonly MemberHealth[]): string => members.map((m) => `${m.name}${m.isLearner ? ' (learner)' : ''}`).sort().join(',');
const sameMembership = (a: readonly MemberHealth[], b: readonly MemberHealth[] | undefined): boolean => b !== undefined && membershipKey(a) === membershipKey(b);

/**
 * The level-triggered reconcile of one EtcdTopology, as named steps that each read the round so far and
 * return; none waits. It is safe to run again at any time: it computes the desired state from what it
 * reads and writes only what differs. Whatever happens to the steps, the status is written.
 */
export class Reconciler {
  private readonly deps: ReconcilerDeps;
  /** The last member set etcd reported per topology, so that an etcd outage never renders a "new cluster". */
  private readonly lastMembers = new Map<string, MemberHealth[]>();
  private readonly tls: TlsCertificates;

  /**
   * The reconcile, top to bottom. A step that fails stops the round; the status still says which and why.
   * The owned objects are applied while etcd is being asked, from the member set it reported last: a
   * spec change then reaches the StatefulSet without waiting for a member that is slow to answer (one
   * restarting takes the client's whole deadline), and applying disrupts nothing (members are replaced
   * by perform, one at a time, from this round's etcd view).
   */
  private readonly steps: readonly NamedStep<Round>[] = [
    { name: 'certificates', run: (r) => this.certificates(r) },
    { name: 'observe', run: (r) => this.observe(r) },
    { name: 'restore', run: (r) => this.restore(r) },
    { name: 'apply', run: (r) => this.apply(r) },
    { name: 'observe etcd', run: (r) => this.observeEtcd(r) },
    { name: 'readiness gates', run: (r) => this.readinessGates(r) },
    // Planning includes upkeep (defragmentation, NOSPACE recovery) and the pre-change backup gate.
    { name: 'plan', run: (r) => this.plan(r) },
    { name: 'perform', run: (r) => this.perform(r) },
    { name: 'backups', run: (r) => this.backups(r) },
  ];

  constructor(deps: ReconcilerDeps) {
    this.deps = deps;
    this.tls = new TlsCertificates(deps);
  }

  /**
   * Reconciles the topology with key "namespace/name", taken from the queue's lane (which labels
   * the step times); throws (for the queue's back-off) when a step failed, after writing status.
   * Once superseded is aborted (a newer spec), no further step starts and no status is written.
   */
  async reconcile(key: string, lane: Lane = 'news', superseded?: AbortSignal): Promise<ReconcileResult> {
    const [namespace, name] = key.split('/') as [string, string];
    const log = this.deps.log.child({ etcdtopology: key });
    const raw = this.deps.informers.get<KubernetesObject>(KIND, name, namespace);
    if (!raw) {
      this.forget(key, namespace, name);
      return {};
    }
    const target = targetOf(raw);
    let topology: EtcdTopology;
    try {
      topology = parseTopology(raw);
    } catch (err) {
      if (!(err instanceof InvalidSpecError)) throw err;
      // Not retried: nothing changes until the object does, and a change queues it again.
      await this.reportInvalidSpec(raw, err, target, log);
      return {};
    }
    const round: Round = { key, log, target, superseded, topology };
    const stepDuration = this.deps.stepDuration;
    const onStep = stepDuration === undefined ? undefined : (step: string, seconds: number): void => stepDuration(step, seconds, lane);
    const acting = this.deps.acting;
    const halt = superseded === undefined ? acting : acting === undefined ? superseded : AbortSignal.any([acting, superseded]);
    const outcome = await runSteps(this.steps, round, { acting: halt, onStep });
    if (superseded?.aborted === true && acting?.aborted !== true) {
      // The newer spec's round starts as this one returns and writes the status.
      log.debug({ step: outcome.haltedBefore ?? 'status' }, 'Stopped the reconcile before a step: the spec changed');
      return { superseded: true };
    }
    if (outcome.haltedBefore !== undefined) {
      // Not the leader any more (or stopping): the next leader reconciles from what it reads.
      log.info({ step: outcome.haltedBefore }, 'Stopped the reconcile before a step: the operator is no longer acting');
      return {};
    }
    // A step that failed while etcd was being asked (apply): the status is still computed from its answer.
    if (round.snapshot === undefined && round.reading !== undefined) round.snapshot = await this.snapshotOf(round);
    const writing = performance.now();
    const status = this.statusOf(round, outcome.failure);
    await writeStatus(this.deps, topology.status, status, target, log);
    stepDuration?.('status', (performance.now() - writing) / 1000, lane);
    if (outcome.failure) throw new StepError(outcome.failure);
    const settled = status.conditions?.filter((c) => CORE_CONDITIONS.has(c.type)).every((c) => (c.type === 'Available' ? c.status === 'True' : c.status === 'False')) ?? false;
    // Otherwise at the resync period, unless a step asked for an earlier look (an action, a Job, a renewal).
    return { requeueAfterMs: Math.min(settled ? (this.deps.resyncMs ?? 30_000) : UNSETTLED_MS, outcome.requeueAfterMs ?? Infinity) };
  }

  /** The TLS step: issues or checks certificates; every later step sees the TLS actually in effect. */
  private async certificates(r: Round): Promise<StepResult> {
    r.tls = await this.tls.reconcile(r.topology, runsPlaintext(this.deps.informers, r.topology), r.target, r.log);
    // A cluster already running in plaintext stays so (TLSReady says why).
    r.topology = withTlsEnabled(r.topology, r.tls.enabled);
    return requeueAfter(r.tls.requeueAfterMs);
  }

  /** Reads the cluster snapshot from the caches and asks etcd for its view (observe etcd awaits it). */
  private observe(r: Round): Promise<StepResult> {
    r.cluster = gatherCluster(this.deps.informers, r.topology);
    r.reading = readEtcd(this.deps.admin, r.topology, r.cluster, r.tls!);
    r.rendered = this.lastMembers.get(r.key);
    return Promise.resolve(CONTINUE);
  }

  /** spec.bootstrap.fromBackup: resolves the backup a new cluster starts from, and holds its members until then. */
  private async restore(r: Round): Promise<StepResult> {
    const formed = (r.rendered?.length ?? 0) > 0;
    r.restore = (await this.deps.backup?.restore(r.topology, r.cluster!.statefulSetExists, formed, r.target, r.log)) ?? { status: r.topology.status?.restore, hold: false };
    return requeueAfter(r.restore.requeueAfterMs);
  }

  /** Server-side applies the owned objects that differ and deletes those that must not exist. */
  private async apply(r: Round): Promise<StepResult> {
    const input: RenderInput = { members: r.rendered, restore: r.restore!.backup, trustHash: r.tls!.trustHash };
    const guards = { holdMembers: r.restore!.hold || r.tls!.holdMembers === true };
    await applyOwned(this.deps, this.deps.render.owned(r.topology, input), this.deps.render.unwanted(r.topology, input), r.target.namespace, guards, r.target, r.log);
    return CONTINUE;
  }

  /**
   * Completes the snapshot every later step decides from with etcd's view. When etcd reports another
   * member set than the apply rendered from (a membership change, or the first read since the operator
   * started), looks again soon, so that the owned objects follow it.
   */
  private async observeEtcd(r: Round): Promise<StepResult> {
    // Only reads are in flight: a round superseded meanwhile stops waiting for them (runSteps halts next).
    const snapshot = await Promise.race([this.snapshotOf(r), Reconciler.whenSuperseded(r)]);
    if (snapshot === 'superseded') return CONTINUE;
    r.snapshot = snapshot;
    const members = membersOf(r.snapshot);
    if (!members) return CONTINUE;
    this.lastMembers.set(r.key, members);
    return sameMembership(members, r.rendered) ? CONTINUE : requeueAfter(AFTER_ACTION_MS);
  }

  private async snapshotOf(r: Round): Promise<Snapshot> {
    return { ...r.cluster!, etcd: await r.reading! };
  }

  /** Resolves when the round is superseded (never without a signal). */
  private static whenSuperseded(r: Round): Promise<'superseded'> {
    const signal = r.superseded;
    if (signal === undefined) return new Promise(() => undefined);
    if (signal.aborted) return Promise.resolve('superseded');
    return new Promise((resolve) => signal.addEventListener('abort', () => resolve('superseded'), { once: true }));
  }

  /** Sets each member pod's readiness gate to etcd's view of that member. */
  private async readinessGates(r: Round): Promise<StepResult> {
    const members = membersOf(r.snapshot);
    if (members) await syncReadinessGates(this.deps.writer, this.deps.clock, r.snapshot!.activeMemberPods, members, r.log);
    return CONTINUE;
  }

  /** Chooses the one next safe step (nothing while etcd cannot be read). */
  private plan(r: Round): Promise<StepResult> {
    const s = r.snapshot!;
    const members = membersOf(s);
    if (!members || !('alarms' in s.etcd)) return Promise.resolve(CONTINUE);
    const maintenance = this.deps.upkeep?.input(r.key, r.topology, s.etcd.alarms);
    const step = nextStep({ ...planInput(r.topology, members, s.memberPods, s.claims, s.nodes, { hash: r.tls!.trustHash, rotating: r.tls!.rotating === true }), ...(maintenance ? { maintenance } : {}) });
    r.step = this.deps.backup ? this.deps.backup.gate(step, r.topology) : step;
    return Promise.resolve(CONTINUE);
  }

  /** Performs the chosen step; after a change, looks again soon. */
  private async perform(r: Round): Promise<StepResult> {
    const members = membersOf(r.snapshot);
    if (!members || !r.step) return CONTINUE;
    const acted = await perform(this.deps, r.step, r.topology, members, urlsOf(r.snapshot!), r.target, r.log);
    return acted ? requeueAfter(AFTER_ACTION_MS) : CONTINUE;
  }

  /** Reads the backup Job in flight and starts the next one when due (also while etcd cannot be read). */
  private async backups(r: Round): Promise<StepResult> {
    if (!this.deps.backup) return CONTINUE;
    const members = membersOf(r.snapshot);
    const etcd = members ? { members, urls: urlsOf(r.snapshot!) } : undefined;
    const result = await this.deps.backup.sync(r.topology, etcd, r.step, r.target, r.log);
    r.backup = { status: result.status };
    return requeueAfter(result.requeueAfterMs);
  }

  /**
   * The status this round ends with. With a snapshot, computed from it; a round that failed before
   * observing keeps the status it had. A failed step makes Degraded and Progressing ReconcileFailed.
   */
  private statusOf(r: Round, failure: StepFailure | undefined): EtcdTopologyStatus {
    const { topology } = r;
    const generation = topology.metadata.generation ?? 0;
    const s = r.snapshot;
    const status: EtcdTopologyStatus = s === undefined ? { ...topology.status, observedGeneration: generation } : this.observedStatus(r, s);
    if (failure) {
      const updates = stepFailedConditions(failure, findCondition(status.conditions, 'Degraded'));
      status.conditions = setConditions(status.conditions, updates, generation, this.deps.clock);
    }
    return status;
  }

  private observedStatus(r: Round, s: Snapshot): EtcdTopologyStatus {
    const { topology, key } = r;
    const observation: Observation = {
      eligibleCentralNodes: s.eligibleCentralNodes,
      memberPods: s.activeMemberPods.map((p) => ({ name: p.metadata!.name!, node: p.spec?.nodeName, running: p.status?.phase === 'Running' })),
      etcd: s.etcd,
      proxies: s.proxies,
      step: r.step,
      ...('alarms' in s.etcd ? { alarms: s.etcd.alarms } : {}),
      ...(this.deps.upkeep ? { defragmenting: this.deps.upkeep.defragmenting(key), lastDefragmentations: this.deps.upkeep.lastDefragmentations(key) } : {}),
    };
    const status = computeStatus(topology, observation, this.deps.clock);
    // A step that did not run this round leaves what this replica last decided (never an older status).
    const decided = this.deps.backup?.decidedStatus(topology) ?? { backup: topology.status?.backup, restore: topology.status?.restore };
    const backup = r.backup ? r.backup.status : decided.backup;
    const restore: RestoreStatus | undefined = r.restore ? r.restore.status : decided.restore;
    if (backup !== undefined) status.backup = backup;
    if (r.tls?.status !== undefined) status.tls = r.tls.status;
    if (restore !== undefined) status.restore = restoreFailureOf(restore, s.activeMemberPods);
    const extra = [r.tls?.condition, this.deps.backup?.readiness(topology, backup), ...restoreConditions(status.restore)].filter((c): c is ConditionUpdate => c !== undefined);
    if (extra.length > 0) status.conditions = setConditions(status.conditions, extra, topology.metadata.generation ?? 0, this.deps.clock);
    this.deps.metrics?.observe(sampleOf(topology, observation, status));
    this.deps.metrics?.certificates(r.target.namespace, r.target.name, r.tls?.expiries ?? []);
    return status;
  }

  /** Degraded InvalidSpec on an object the operator cannot parse: its conditions and observedGeneration only. */
  private async reportInvalidSpec(raw: KubernetesObject, err: InvalidSpecError, target: EventTarget, log: Logger): Promise<void> {
    log.warn({ err, field: err.field }, 'Cannot read the EtcdTopology; leaving its objects as they are');
    const rawStatus = (raw as { status?: unknown }).status;
    const conditions = conditionSchema.array().safeParse((rawStatus as { conditions?: unknown } | undefined)?.conditions);
    const before: EtcdTopologyStatus = { ...(typeof rawStatus === 'object' && rawStatus !== null ? rawStatus : {}), conditions: conditions.success ? conditions.data : [] };
    const generation = raw.metadata?.generation ?? 0;
    const after: EtcdTopologyStatus = { ...before, observedGeneration: generation, conditions: setConditions(before.conditions, invalidSpecConditions(err.message), generation, this.deps.clock) };
    await writeStatus(this.deps, before, after, target, log);
  }

  /** Forgets a deleted topology: owner references let the garbage collector remove what we made (PVCs stay). */
  private forget(key: string, namespace: string, name: string): void {
    this.lastMembers.delete(key);
    this.deps.upkeep?.forget(key);
    this.deps.metrics?.forget(namespace, name);
  }
}

function targetOf(raw: KubernetesObject): EventTarget {
  return { apiVersion: API_VERSION, kind: KIND, name: raw.metadata!.name!, namespace: raw.metadata!.namespace!, uid: raw.metadata!.uid };
}
