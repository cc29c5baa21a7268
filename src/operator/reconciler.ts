import type { KubernetesObject, V1DaemonSet, V1Node, V1PersistentVolumeClaim, V1Pod } from '@kubernetes/client-node';
import { setConditions, type Clock, type ConditionUpdate } from '../api/conditions.ts';
import type { RestoreStatus } from '../api/backup.ts';
import { API_VERSION, etcdTopologySchema, KIND, type EtcdTopology } from '../api/etcd-topology.ts';
import type { EtcdAdminClient } from '../etcd/admin-client.ts';
import { isUnavailable } from '../etcd/errors.ts';
import { healthyVotersOf, leaderOf, type MemberHealth } from '../quorum/members.ts';
import { nextStep, type Step } from '../quorum/plan.ts';
import type { Logger } from '../telemetry/logger.ts';
import { desiredHash, needsApply, withAppliedHash } from './apply.ts';
import type { BackupSteps } from './backup.ts';
import type { EventRecorder, EventTarget } from './events.ts';
import type { Informers } from './informers.ts';
import type { KubeWriter } from './kube.ts';
import { MEMBER_HEALTHY_GATE } from './components/member-statefulset/member-statefulset.ts';
import { selectorLabels } from './components/meta.ts';
import { memberPeerURL, memberScheme, namesOf } from './components/names.ts';
import { observeEtcd } from './observe-etcd.ts';
import { claimOf, leaderOffCordonedNode, planInput } from './plan-input.ts';
import { computeStatus, type Observation } from './status.ts';
import { runsPlaintext, TlsCertificates, useMemberTls, withTlsEnabled } from './tls-certificates.ts';
import { sampleOf, type TopologyMetrics } from './topology-metrics.ts';
import type { Upkeep } from './upkeep.ts';


/** What a reconcile asks of the queue afterwards. */
export interface ReconcileResult {
  requeueAfterMs?: number;
}

/** What the owned objects are rendered from besides the spec: the members etcd knows (undefined: a new cluster). */
export interface RenderInput {
  members: MemberHealth[] | undefined;
  /** The backup a new cluster's members restore from, once resolved (spec.bootstrap.fromBackup). */
  restore?: { key: string; sha256?: string | undefined } | undefined;
}

/** Renders every object the operator owns for a topology, in apply order, and names those that must not exist. */
export interface Renderer {
  owned(topology: EtcdTopology, input: RenderInput): KubernetesObject[];
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
}

const CORE_CONDITIONS = new Set(['Available', 'Progressing', 'Degraded']);

/** A member pod whose restore init container failed makes the restore Failed, with its words. */
function restoreFailureOf(status: RestoreStatus, pods: readonly V1Pod[]): RestoreStatus {
  if (status.phase !== 'Restoring') return status;
  for (const p of pods) {
    const init = p.status?.initContainerStatuses?.find((c) => c.name === 'restore');
    const term = init?.state?.terminated ?? init?.lastState?.terminated;
    if (term && term.exitCode !== 0 && !init?.state?.running) {
      const words = (term.message ?? '').trim().split('\n').reverse().find((l) => l.includes('"error"')) ?? term.message ?? `exit code ${term.exitCode}`;
      let detail = words;
      try {
        detail = (JSON.parse(words) as { error?: string }).error ?? words;
      } catch {
        // Not our JSON line: quote the log tail as it is.
      }
      return { ...status, message: `${p.metadata!.name}: the restore failed and etcd was not started: ${detail}` };
    }
  }
  return { ...status, message: `restoring every member from ${status.key ?? '?'}` };
}

/** Progressing and Degraded while a restore is under way or failed. */
function restoreConditions(r: RestoreStatus | undefined): ConditionUpdate[] {
  if (!r || r.phase === 'Restored') return [];
  const failed = r.phase === 'Failed' || (r.message?.includes('the restore failed') ?? false);
  if (failed) {
    return [
      { type: 'Degraded', status: 'True', reason: 'RestoreFailed', message: r.message ?? 'the restore failed' },
      { type: 'Progressing', status: 'False', reason: 'RestoreFailed', message: r.message ?? 'the restore failed' },
    ];
  }
  return [{ type: 'Progressing', status: 'True', reason: r.phase === 'Resolving' ? 'ResolvingBackup' : 'Restoring', message: r.message ?? r.phase }];
}

/** A merge patch body that also removes what `before` had and `after` no longer has (JSON merge patch: null). */
export function withRemovals(before: unknown, after: unknown): unknown {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(before) || !isObject(after)) return after;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(after)) if (v !== undefined) out[k] = withRemovals(before[k], v);
  for (const k of Object.keys(before)) if (!(k in out)) out[k] = null;
  return out;
}

const matches = (labels: Record<string, string> | undefined, want: Record<string, string>): boolean => Object.entries(want).every(([k, v]) => labels?.[k] === v);
// A cordoned node still counts: cordoning is the first step of every drain and takes no member away.
const isReadyNode = (n: V1Node): boolean => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;

/**
 * The level-triggered reconcile of one EtcdTopology, as ordered steps that each read state and
 * return; none waits. It is safe to run again at any time: it computes the desired state from
 * what it reads and writes only what differs.
 */
export class Reconciler {
  private readonly deps: ReconcilerDeps;
  /** The last member set etcd reported per topology, so that an etcd outage never renders a "new cluster". */
  private readonly lastMembers = new Map<string, MemberHealth[]>();
  private readonly tls: TlsCertificates;

  constructor(deps: ReconcilerDeps) {
    this.deps = deps;
    this.tls = new TlsCertificates(deps);
  }

  /** Reconciles the topology with key "namespace/name". */
  async reconcile(key: string): Promise<ReconcileResult> {
    const [namespace, name] = key.split('/') as [string, string];
    const log = this.deps.log.child({ etcdtopology: key });
    const raw = this.deps.informers.get<KubernetesObject>(KIND, name, namespace);
    if (!raw) {
      // Deleted: owner references let the garbage collector remove what we made (PVCs stay).
      this.lastMembers.delete(key);
      this.deps.upkeep?.forget(key);
      this.deps.metrics?.forget(namespace, name);
      return {};
    }
    const parsed = etcdTopologySchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      log.error({ issue }, 'Refused an invalid EtcdTopology');
      this.deps.events.record(this.target(raw), 'Warning', 'InvalidSpec', `${issue?.path.join('.') ?? 'spec'}: ${issue?.message ?? 'invalid'}`);
      return {};
    }
    const target = this.target(raw);
    const tls = await this.tls.reconcile(parsed.data, runsPlaintext(this.deps.informers, parsed.data), target, log);
    // A cluster already running in plaintext stays so (TLSReady says why): everything below sees the TLS actually in effect.
    const topology = withTlsEnabled(parsed.data, tls.enabled);

    const memberPods = this.memberPods(topology);
    const endpoints = memberPods.filter((p) => p.status?.podIP && !p.metadata?.deletionTimestamp).map((p) => ({ name: p.metadata!.name!, url: `${memberScheme(topology)}://${p.status!.podIP}:2379` }));
    useMemberTls(this.deps.admin, topology, endpoints, tls);
    const etcd = await observeEtcd(this.deps.admin, endpoints);
    if ('members' in etcd) this.lastMembers.set(key, etcd.members);
    const statefulSetExists = this.deps.informers.get<KubernetesObject>('StatefulSet', namesOf(topology).memberStatefulSet, namespace) !== undefined;
    const restore = (await this.deps.backup?.restore(topology, statefulSetExists, 'members' in etcd && etcd.members.length > 0, target, log)) ?? { status: topology.status?.restore, hold: false };
    await this.applyOwned(topology, { members: this.lastMembers.get(key), restore: restore.backup }, 'error' in etcd, restore.hold || tls.holdMembers === true, target, log);
    let step: Step | undefined;
    let acted = false;
    const urls = new Map(endpoints.map((e) => [e.name, e.url]));
    if ('members' in etcd) {
      await this.syncReadinessGates(memberPods, etcd.members, log);
      const nodes = this.deps.informers.list<V1Node>('Node');
      const claims = this.deps.informers.list<V1PersistentVolumeClaim>('PersistentVolumeClaim', namespace).filter((c) => matches(c.metadata?.labels, selectorLabels(topology, 'member')));
      const maintenance = this.deps.upkeep?.input(key, topology, etcd.alarms);
      step = leaderOffCordonedNode(etcd.members, memberPods, nodes) ?? nextStep({ ...planInput(topology, etcd.members, this.memberPods(topology, true), claims, nodes), ...(maintenance ? { maintenance } : {}) });
      if (this.deps.backup) step = this.deps.backup.gate(step, topology);
      acted = await this.perform(step, topology, etcd.members, urls, target, log);
    }
    const backup = this.deps.backup ? await this.deps.backup.sync(topology, 'members' in etcd ? { members: etcd.members, urls } : undefined, step, target, log) : { status: topology.status?.backup };

    const observation: Observation = {
      eligibleCentralNodes: this.eligibleCentralNodes(topology),
      memberPods: memberPods.map((p) => ({ name: p.metadata!.name!, node: p.spec?.nodeName, running: p.status?.phase === 'Running' })),
      etcd,
      proxies: this.proxies(topology),
      step,
      ...('alarms' in etcd ? { alarms: etcd.alarms } : {}),
      ...(this.deps.upkeep ? { defragmenting: this.deps.upkeep.defragmenting(key), lastDefragmentations: this.deps.upkeep.lastDefragmentations(key) } : {}),
    };
    const status = computeStatus(topology, observation, this.deps.clock);
    if (backup.status !== undefined) status.backup = backup.status;
    if (restore.status !== undefined) status.restore = restoreFailureOf(restore.status, memberPods);
    const extra = [tls.condition, this.deps.backup?.readiness(topology, backup.status), ...restoreConditions(status.restore)].filter((c): c is ConditionUpdate => c !== undefined);
    if (extra.length > 0) status.conditions = setConditions(status.conditions, extra, topology.metadata.generation ?? 0, this.deps.clock);
    this.deps.metrics?.observe(sampleOf(topology, observation, status));
    this.deps.metrics?.certificates(namespace, name, tls.expiries ?? []);
    await this.writeStatus(topology, status, target, log);
    const settled = status.conditions?.filter((c) => CORE_CONDITIONS.has(c.type)).every((c) => (c.type === 'Available' ? c.status === 'True' : c.status === 'False')) ?? false;
    // After a membership change or a pod deletion, look again soon; otherwise at the resync period (or the next certificate renewal).
    const base = acted ? 1_000 : settled ? (this.deps.resyncMs ?? 30_000) : 5_000;
    return { requeueAfterMs: Math.min(base, backup.requeueAfterMs ?? Infinity, restore.requeueAfterMs ?? Infinity, tls.requeueAfterMs ?? Infinity) };
  }

  private target(raw: KubernetesObject): EventTarget {
    return { apiVersion: API_VERSION, kind: KIND, name: raw.metadata!.name!, namespace: raw.metadata!.namespace!, uid: raw.metadata!.uid };
  }

  private memberPods(topology: EtcdTopology, includeTerminating = false): V1Pod[] {
    const want = selectorLabels(topology, 'member');
    return this.deps.informers
      .list<V1Pod>('Pod', topology.metadata.namespace)
      .filter((p) => matches(p.metadata?.labels, want) && (includeTerminating || !p.metadata?.deletionTimestamp));
  }

  /**
   * Performs the one step the planner chose and says whether it changed anything. etcd refusing a
   * membership change as transient (an election, "unhealthy cluster" right after a restart) is not
   * an error: the step is simply chosen again on the next visit.
   */
  private async perform(step: Step, topology: EtcdTopology, members: MemberHealth[], urls: Map<string, string>, target: EventTarget, log: Logger): Promise<boolean> {
    const ns = topology.metadata.namespace!;
    const leader = leaderOf(members);
    const leaderUrl = (leader && urls.get(leader.name)) ?? [...urls.values()][0];
    const anyUrl = (exclude?: string): string | undefined => (leader && leader.name !== exclude ? urls.get(leader.name) : undefined) ?? [...urls.entries()].find(([n]) => n !== exclude)?.[1];
    try {
      switch (step.action) {
        case 'None':
        case 'Wait':
          return false;
        case 'Stop':
          log.error({ reason: step.reason }, step.message);
          this.deps.events.record(target, 'Warning', step.reason, step.message);
          return false;
        case 'AddLearner': {
          const url = anyUrl();
          if (!url) return false;
          await this.deps.admin.memberAdd(url, [memberPeerURL(topology, step.member)], { learner: true });
          break;
        }
        case 'PromoteLearner': {
          const url = anyUrl(step.member);
          if (!url) return false;
          await this.deps.admin.memberPromote(url, step.id);
          break;
        }
        case 'MoveLeader':
          if (!leaderUrl) return false;
          await this.deps.admin.moveLeader(leaderUrl, step.to);
          break;
        case 'RemoveMember': {
          const url = anyUrl(step.member);
          if (!url) return false;
          await this.deps.admin.memberRemove(url, step.id);
          break;
        }
        case 'DeletePod':
          await this.deps.writer.deletePod(ns, step.pod);
          if (step.releaseVolume) await this.releaseClaim(ns, step.pod, target, log);
          break;
        case 'ReleaseVolume':
          await this.releaseClaim(ns, step.pod, target, log);
          break;
        case 'Defragment':
        case 'Compact':
        case 'DisarmAlarms':
          // Upkeep records its own Events (a defragmentation ends after this reconcile).
          return (await this.deps.upkeep?.perform(step, `${ns}/${topology.metadata.name}`, members, urls, target, log)) ?? false;
      }
    } catch (err) {
      if (isUnavailable(err)) {
        log.info({ step: step.action, err: (err as Error).message }, 'etcd refused the step for now; trying again');
        return false;
      }
      throw err;
    }
    log.info({ step: step.action, reason: step.reason }, step.message);
    this.deps.events.record(target, 'Normal', step.reason, step.message);
    return true;
  }

  /**
   * Deletes a member pod's volume claim so that its next pod starts on an empty one, after switching
   * the claim's PersistentVolume to reclaim policy Retain: the operator never destroys etcd data, even
   * data it can no longer use. The retained volume is named in an Event for whoever cleans up.
   */
  private async releaseClaim(ns: string, pod: string, target: EventTarget, log: Logger): Promise<void> {
    const claim = this.deps.informers.get<V1PersistentVolumeClaim>('PersistentVolumeClaim', claimOf(pod), ns);
    const volume = claim?.spec?.volumeName;
    // One Event per volume: a step repeated while the claim is still terminating finds it Retain already.
    if (volume && (await this.deps.writer.retainVolume(volume)) === 'changed') {
      const message = `PersistentVolume ${volume} keeps the data of ${pod} (reclaim policy Retain) after its claim ${claimOf(pod)} is deleted; delete it once the data is not needed`;
      log.info({ pod, volume }, message);
      this.deps.events.record(target, 'Normal', 'VolumeRetained', message);
    }
    if (!claim?.metadata?.deletionTimestamp) await this.deps.writer.delete('v1', 'PersistentVolumeClaim', ns, claimOf(pod));
  }

  private eligibleCentralNodes(topology: EtcdTopology): number {
    return this.deps.informers.list<V1Node>('Node').filter((n) => matches(n.metadata?.labels, topology.spec.members.nodeSelector) && isReadyNode(n)).length;
  }

  private proxies(topology: EtcdTopology): { desired: number; ready: number } {
    if (!topology.spec.proxy.enabled) return { desired: 0, ready: 0 };
    const ds = this.deps.informers
      .list<V1DaemonSet>('DaemonSet', topology.metadata.namespace)
      .find((d) => matches(d.metadata?.labels, selectorLabels(topology, 'proxy')));
    return { desired: ds?.status?.desiredNumberScheduled ?? 0, ready: ds?.status?.numberReady ?? 0 };
  }

  /**
   * Server-side applies every owned object whose live copy differs from what we want, and deletes
   * those that must not exist. While etcd cannot be read and its member set was never seen (an
   * operator restarted during an outage), an existing StatefulSet is left alone: rendering it without
   * the members would describe a brand-new cluster.
   */
  private async applyOwned(topology: EtcdTopology, input: RenderInput, etcdUnreadable: boolean, holdMembers: boolean, target: EventTarget, log: Logger): Promise<void> {
    const ns = topology.metadata.namespace!;
    const { members } = input;
    for (const desired of this.deps.render.owned(topology, input)) {
      const stamped = withAppliedHash(desired);
      const live = this.deps.informers.get<KubernetesObject>(desired.kind!, desired.metadata!.name!, desired.metadata?.namespace);
      if (desired.kind === 'StatefulSet' && live && members === undefined && etcdUnreadable) continue;
      // A restore whose backup is not resolved yet: no member may start, and none may start empty.
      if (desired.kind === 'StatefulSet' && !live && holdMembers) continue;
      if (!needsApply(stamped, live)) continue;
      await this.deps.writer.apply(stamped);
      const verb = live ? 'Updated' : 'Created';
      log.info({ kind: desired.kind, name: desired.metadata?.name }, `${verb} ${desired.kind}`);
      this.deps.events.record(target, 'Normal', verb, `${verb} ${desired.kind} ${desired.metadata?.name}`);
    }
    for (const u of this.deps.render.unwanted(topology, input)) {
      if (!this.deps.informers.get<KubernetesObject>(u.kind, u.name, ns)) continue;
      await this.deps.writer.delete(u.apiVersion, u.kind, ns, u.name);
      log.info({ kind: u.kind, name: u.name }, `Deleted ${u.kind}`);
      this.deps.events.record(target, 'Normal', 'Deleted', `Deleted ${u.kind} ${u.name}`);
    }
  }

  /** Sets each member pod's readiness gate to what etcd says of that member, writing only changes. */
  private async syncReadinessGates(pods: V1Pod[], members: MemberHealth[], log: Logger): Promise<void> {
    const healthy = new Set(healthyVotersOf(members).map((m) => m.name));
    for (const pod of pods) {
      const name = pod.metadata!.name!;
      const isHealthy = healthy.has(name);
      const status = isHealthy ? 'True' : 'False';
      const current = pod.status?.conditions?.find((c) => c.type === MEMBER_HEALTHY_GATE);
      if (current?.status === status) continue;
      const member = members.find((m) => m.name === name);
      const message = isHealthy
        ? 'etcd counts this member as a healthy voter that has caught up with the leader'
        : !member
          ? 'etcd does not list this member'
          : member.isLearner
            ? 'the member is a learner, not yet a voter'
            : member.healthy
              ? 'the member is behind the leader'
              : 'the member does not answer, reports errors, or knows no leader';
      await this.deps.writer.patchPodConditions(pod.metadata!.namespace!, name, [
        { type: MEMBER_HEALTHY_GATE, status, reason: isHealthy ? 'EtcdMemberHealthy' : 'EtcdMemberNotHealthy', message, lastTransitionTime: this.deps.clock.now().toISOString() },
      ]);
      log.info({ pod: name, status }, `Set readiness gate ${MEMBER_HEALTHY_GATE}`);
    }
  }

  private async writeStatus(topology: EtcdTopology, status: ReturnType<typeof computeStatus>, target: EventTarget, log: Logger): Promise<void> {
    const before = topology.status;
    // Canonical comparison: the API server's key order and dropped empty fields are not changes.
    if (before !== undefined && desiredHash(before) === desiredHash(status)) return;
    await this.deps.writer.patchTopologyStatus(topology.metadata.namespace!, topology.metadata.name!, withRemovals(before, status));
    for (const c of status.conditions ?? []) {
      const prior = before?.conditions?.find((p) => p.type === c.type);
      if (prior?.status === c.status && prior.reason === c.reason) continue;
      const warning = (c.type === 'Available' && c.status === 'False' && prior !== undefined) || (c.type === 'Degraded' && c.status === 'True');
      this.deps.events.record(target, warning ? 'Warning' : 'Normal', c.reason, `${c.type}=${c.status}: ${c.message}`);
      log.info({ type: c.type, status: c.status, reason: c.reason }, `Changed condition ${c.type} to ${c.status}`);
    }
  }
}
