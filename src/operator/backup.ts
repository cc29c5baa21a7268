import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { Counter, Gauge, type Registry } from '../telemetry/lean-metrics.ts';
import { BACKUP_NOW_ANNOTATION, type BackupStatus, type RestoreStatus } from '../api/backup.ts';
import type { Clock, ConditionUpdate } from '../api/conditions.ts';
import type { EtcdTopology } from '../api/etcd-topology.ts';
import { manifestSchema } from '../backup/manifest.ts';
import { scheduleFacts } from '../api/cron.ts';
import { z } from 'zod';
import { backupDue, backupReadiness, backupSource, gateOnBackup, retryBackoffMs, type BackupReason } from '../quorum/backup.ts';
import type { MemberHealth } from '../quorum/members.ts';
import type { Step } from '../quorum/plan.ts';
import type { Logger } from '../telemetry/logger.ts';
import { nameOf, namespaceOf } from './components/meta.ts';
import { memberClientURL } from './components/names.ts';
import { snapshotDeadlineSeconds, snapshotJob } from './components/snapshot-job/snapshot-job.ts';
import { snapshotJobTls } from './components/tls/tls-volumes.ts';
import type { EventRecorder, EventTarget } from './events.ts';
import type { Informers } from './informers.ts';
import type { KubeWriter } from './kube.ts';
import { compareText } from '../text-order.ts';

/** What a finished snapshot Job said, from its pod's termination message. */
export type JobOutcome = { state: 'running' } | { state: 'succeeded'; result: Record<string, unknown> } | { state: 'failed'; message: string };

// Waiting reasons that never end by themselves: a missing Secret or key, an image that cannot be pulled.
const STUCK_WAITING = new Set(['CreateContainerConfigError', 'CreateContainerError', 'ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'UnsupportedImage', 'UnsupportedVolume']);
const UNSCHEDULABLE_GRACE_MS = 30_000;

function parseMessage(message: string | undefined): Record<string, unknown> | undefined {
  if (!message) return undefined;
  const line = message.trim().split('\n').reverse().find((l) => l.startsWith('{'));
  try {
    return line ? (JSON.parse(line) as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** How long a Job the operator created may be missing from its cache before it counts as deleted. */
const JOB_CACHE_GRACE_MS = 30_000;

/**
 * Reads a snapshot Job's outcome from the Job and its pod; a pod stuck on configuration is a failure now,
 * not at the deadline. A Job created at `createdAt` that the informer has not delivered yet is running.
 */
export function jobOutcome(job: V1Job | undefined, pods: readonly V1Pod[], now: Date, createdAt?: Date): JobOutcome {
  if (!job) {
    if (createdAt !== undefined && now.getTime() - createdAt.getTime() < JOB_CACHE_GRACE_MS) return { state: 'running' };
    return { state: 'failed', message: 'its Job was deleted before it finished' };
  }
  const pod = [...pods].sort((a, b) => compareText(String(b.metadata?.creationTimestamp ?? ''), String(a.metadata?.creationTimestamp ?? '')))[0];
  const status = pod?.status?.containerStatuses?.[0];
  const terminated = status?.state?.terminated;
  if (terminated) {
    const parsed = parseMessage(terminated.message);
    if (terminated.exitCode === 0 && parsed && !('error' in parsed)) return { state: 'succeeded', result: parsed };
    const error = parsed?.['error'];
    return { state: 'failed', message: typeof error === 'string' ? error : `the snapshot container exited with ${terminated.exitCode}: ${(terminated.message ?? terminated.reason ?? '').trim().split('\n').slice(-3).join(' | ')}` };
  }
  const waiting = status?.state?.waiting;
  if (waiting?.reason && STUCK_WAITING.has(waiting.reason)) return { state: 'failed', message: `its pod cannot start: ${waiting.reason}: ${waiting.message ?? ''}`.trim() };
  const failedCondition = job.status?.conditions?.find((c) => c.type === 'Failed' && c.status === 'True');
  if (failedCondition) return { state: 'failed', message: `its Job failed: ${failedCondition.reason ?? ''} ${failedCondition.message ?? ''}`.trim() };
  const scheduled = pod?.status?.conditions?.find((c) => c.type === 'PodScheduled');
  const created = Date.parse(String(job.metadata?.creationTimestamp ?? now.toISOString()));
  if (scheduled?.status === 'False' && now.getTime() - created > UNSCHEDULABLE_GRACE_MS) {
    return { state: 'failed', message: `its pod cannot be scheduled: ${scheduled.reason ?? ''}: ${scheduled.message ?? ''}` };
  }
  return { state: 'running' };
}

const resolvedSchema = z.object({ key: z.string().min(1), sha256: z.string().optional(), revision: z.int().optional(), size: z.int().optional() });

const time = (s: string | undefined): Date | undefined => (s ? new Date(s) : undefined);
const rfc3339 = (d: Date): string => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

export interface BackupDeps {
  informers: Informers;
  writer: KubeWriter;
  events: EventRecorder;
  clock: Clock;
  log: Logger;
  /** This project's image, which the Jobs and restore init containers run. */
  image: string;
  registry?: Registry;
}

/** What the restore step decided: status.restore, whether to hold the StatefulSet back, the backup to render. */
export interface RestoreDecision {
  status: RestoreStatus | undefined;
  hold: boolean;
  backup?: { key: string; sha256?: string | undefined };
  requeueAfterMs?: number;
}

/** The member pods' client URLs by member name, and the members etcd reports. */
export interface EtcdView {
  members: readonly MemberHealth[];
  urls: ReadonlyMap<string, string>;
}

/**
 * The backup and restore steps of a reconcile. Nothing here waits for a snapshot: a backup is a Job,
 * started in one visit and read back in a later one, so a slow upload never holds this or any other
 * topology's reconcile, and the operator's memory never holds a database.
 */
export class BackupSteps {
  private readonly deps: BackupDeps;
  private readonly lastSuccess: Gauge<'namespace' | 'name'> | undefined;
  private readonly duration: Gauge<'namespace' | 'name'> | undefined;
  private readonly size: Gauge<'namespace' | 'name'> | undefined;
  private readonly failures: Counter<'namespace' | 'name'> | undefined;
  /**
   * What this replica last decided per topology (uid), with the resourceVersion it read. Until the
   * informer delivers the object carrying that status write, the next visit reads the same version and
   * must not decide again from the older status: it would start a second Job for the same backup.
   */
  private readonly decided = new Map<string, { resourceVersion: string | undefined; backup?: BackupStatus | undefined; restore?: RestoreStatus | undefined }>();

  constructor(deps: BackupDeps) {
    this.deps = deps;
    const registers = deps.registry ? [deps.registry] : [];
    if (deps.registry) {
      const labelNames = ['namespace', 'name'] as const;
      this.lastSuccess = new Gauge({ name: 'etcd_topology_backup_last_success_timestamp_seconds', help: 'When the newest successful backup was taken (Unix time).', labelNames, registers });
      this.duration = new Gauge({ name: 'etcd_topology_backup_duration_seconds', help: 'How long the newest successful backup took.', labelNames, registers });
      this.size = new Gauge({ name: 'etcd_topology_backup_size_bytes', help: 'Size of the newest successful backup.', labelNames, registers });
      this.failures = new Counter({ name: 'etcd_topology_backup_failures_total', help: 'Failed backup attempts.', labelNames, registers });
    }
  }

  /**
   * status.backup and status.restore as this replica last decided them: what a status write must carry
   * when a round failed before its backup or restore step ran, so that no decision is undone.
   */
  decidedStatus(topology: EtcdTopology): { backup: BackupStatus | undefined; restore: RestoreStatus | undefined } {
    return { backup: this.current(topology, 'backup'), restore: this.current(topology, 'restore') };
  }

  /** The status field as this replica last decided it, while the informer still holds the object it decided from. */
  private current<K extends 'backup' | 'restore'>(topology: EtcdTopology, field: K): NonNullable<EtcdTopology['status']>[K] {
    const d = this.decided.get(topology.metadata.uid ?? '');
    if (d && d.resourceVersion === topology.metadata.resourceVersion && field in d) return d[field];
    return topology.status?.[field];
  }

  private remember(topology: EtcdTopology, field: 'backup' | 'restore', value: BackupStatus | RestoreStatus | undefined): void {
    const uid = topology.metadata.uid ?? '';
    const d = this.decided.get(uid);
    const entry = d && d.resourceVersion === topology.metadata.resourceVersion ? d : { resourceVersion: topology.metadata.resourceVersion };
    this.decided.set(uid, { ...entry, [field]: value });
  }

  /** Holds a risky step (rolling update, scale-in) until a backup of this generation exists. */
  gate(step: Step, topology: EtcdTopology): Step {
    const b = this.current(topology, 'backup');
    const failedSinceSuccess = b?.lastFailure !== undefined && (b.lastSuccess === undefined || b.lastFailure.time > b.lastSuccess.time);
    return gateOnBackup(step, {
      configured: topology.spec.backup !== undefined,
      generation: topology.metadata.generation ?? 0,
      backupGeneration: b?.generation,
      lastFailure: b?.lastFailure?.message,
      failedSinceSuccess,
    });
  }

  /**
   * Reads the backup in flight, records its outcome, and starts the next one when it is due. Returns the
   * new status.backup (undefined when spec.backup is unset and none was ever taken) and when to look again.
   */
  async sync(topology: EtcdTopology, etcd: EtcdView | undefined, step: Step | undefined, target: EventTarget, log: Logger): Promise<{ status: BackupStatus | undefined; requeueAfterMs?: number }> {
    const result = await this.syncBackup(topology, this.current(topology, 'backup'), etcd, step, target, log);
    this.remember(topology, 'backup', result.status);
    return result;
  }

  private async syncBackup(topology: EtcdTopology, prior: BackupStatus | undefined, etcd: EtcdView | undefined, step: Step | undefined, target: EventTarget, log: Logger): Promise<{ status: BackupStatus | undefined; requeueAfterMs?: number }> {
    const spec = topology.spec.backup;
    let status: BackupStatus = { ...(prior ?? {}) };
    if (!spec && !status.active) return { status: prior };
    const now = this.deps.clock.now();
    const ns = namespaceOf(topology);

    if (status.active) {
      const job = this.deps.informers.get<V1Job>('Job', status.active.job, ns);
      const outcome = jobOutcome(job, this.podsOf(ns, status.active.job), now, time(status.active.startTime));
      if (outcome.state === 'running') return { status, requeueAfterMs: 3_000 };
      status = this.recordOutcome(topology, status, outcome, target, log);
      if (outcome.state === 'failed' && job && !job.metadata?.deletionTimestamp) {
        // A Job stuck on its configuration would otherwise sit until its deadline.
        await this.deps.writer.delete('batch/v1', 'Job', ns, status.active?.job ?? job.metadata!.name!);
      }
      delete status.active;
    }
    if (!spec) return { status };

    const facts = spec.schedule ? scheduleFacts(spec.schedule, now) : undefined;
    const requested = topology.metadata.annotations?.[BACKUP_NOW_ANNOTATION];
    const b = status;
    const due = backupDue({
      now,
      latestSlot: facts?.latestSlot,
      createdAt: time((topology.metadata as { creationTimestamp?: string }).creationTimestamp) ?? now,
      lastSuccessTime: time(b.lastSuccess?.time),
      lastFailureTime: time(b.lastFailure?.time),
      failures: b.failures ?? 0,
      onDemandRequested: requested,
      onDemandAnswered: b.onDemand,
      beforeChange: step?.action === 'Wait' && step.reason === 'BackupBeforeChange' || (step?.reason === 'BackupBeforeChangeFailed'),
      inFlight: false,
    });
    const nextLook = facts?.nextSlot ? Math.max(1_000, facts.nextSlot.getTime() - now.getTime() + 1_000) : undefined;
    if (!due.due) {
      const retry = due.retryAt ? due.retryAt.getTime() - now.getTime() : undefined;
      return { status, requeueAfterMs: Math.min(retry ?? Infinity, nextLook ?? Infinity) === Infinity ? undefined : Math.min(retry ?? Infinity, nextLook ?? Infinity) };
    }
    if (!etcd) return { status, requeueAfterMs: 5_000 };
    const source = backupSource(etcd.members);
    const url = 'none' in source ? undefined : etcd.urls.get(source.name);
    if ('none' in source || !url) {
      log.info({ reason: due.reason }, `Backup due but not started: ${'none' in source ? source.none : 'the source member has no pod address'}`);
      return { status, requeueAfterMs: 5_000 };
    }
    // With TLS the Job dials the member's DNS name (which its certificate names) with <name>-client-tls.
    const endpoint = topology.spec.tls.enabled ? memberClientURL(topology, source.name) : url;
    const job = snapshotJob(topology, {
      name: `${nameOf(topology)}-backup-${Math.floor(now.getTime() / 1000).toString(36)}`,
      image: this.deps.image,
      verb: 'take',
      destination: spec,
      args: [`--endpoint=${endpoint}`, `--member=${source.name}`, `--keep=${spec.retention.count}`],
      extra: snapshotJobTls(topology),
      reason: due.reason,
      deadlineSeconds: snapshotDeadlineSeconds(source.dbSize),
    });
    await this.deps.writer.apply(job);
    const jobName = job.metadata!.name!;
    const message = `Started backup Job ${jobName} (${describeReason(due.reason)}) from ${source.name}`;
    log.info({ job: jobName, member: source.name, reason: due.reason }, message);
    this.deps.events.record(target, 'Normal', 'BackupStarted', message);
    return {
      status: {
        ...status,
        active: { job: jobName, reason: due.reason, startTime: rfc3339(now) },
        lastAttemptTime: rfc3339(now),
        ...(due.reason === 'OnDemand' ? { onDemand: requested } : {}),
        generation: status.generation,
      },
      requeueAfterMs: 3_000,
    };
  }

  private recordOutcome(topology: EtcdTopology, status: BackupStatus, outcome: Exclude<JobOutcome, { state: 'running' }>, target: EventTarget, log: Logger): BackupStatus {
    const labels = { namespace: namespaceOf(topology), name: nameOf(topology) };
    const now = this.deps.clock.now();
    const job = status.active?.job ?? '';
    if (outcome.state === 'failed') {
      const message = `backup Job ${job} failed: ${outcome.message}`;
      log.warn({ job }, message);
      this.deps.events.record(target, 'Warning', 'BackupFailed', message);
      this.failures?.inc(labels);
      return { ...status, lastFailure: { time: rfc3339(now), message: outcome.message }, failures: (status.failures ?? 0) + 1 };
    }
    const parsed = manifestSchema.extend({ deleted: z.int().min(0).default(0) }).safeParse(outcome.result);
    if (!parsed.success) {
      return this.recordOutcome(topology, status, { state: 'failed', message: `its result is not a backup manifest: ${JSON.stringify(outcome.result).slice(0, 200)}` }, target, log);
    }
    const r = parsed.data;
    const record = { time: r.time, key: r.key, revision: r.revision, size: r.size, sha256: r.sha256, member: r.member, etcdVersion: r.etcdVersion, durationSeconds: r.durationSeconds };
    const message = `Backup ${record.key} stored: revision ${record.revision}, ${record.size} bytes, sha256 ${record.sha256}, from ${record.member ?? '?'}${r.deleted > 0 ? `; retention deleted ${r.deleted} object(s)` : ''}`;
    log.info({ job, key: record.key }, message);
    this.deps.events.record(target, 'Normal', 'BackupSucceeded', message);
    this.lastSuccess?.set(labels, Date.parse(record.time) / 1000);
    this.size?.set(labels, record.size);
    this.duration?.set(labels, record.durationSeconds);
    // The generation whose change this backup precedes: the one current when its Job started.
    return { ...status, lastSuccess: record, failures: 0, generation: topology.metadata.generation ?? 0 };
  }

  private podsOf(ns: string, job: string): V1Pod[] {
    return jobPods(this.deps.informers, ns, job);
  }

  /** BackupReady, when spec.backup is set. */
  readiness(topology: EtcdTopology, status: BackupStatus | undefined): ConditionUpdate | undefined {
    const spec = topology.spec.backup;
    if (!spec) return undefined;
    const now = this.deps.clock.now();
    const r = backupReadiness({
      now,
      intervalMs: spec.schedule ? scheduleFacts(spec.schedule, now).intervalMs : undefined,
      createdAt: time((topology.metadata as { creationTimestamp?: string }).creationTimestamp) ?? now,
      lastSuccess: status?.lastSuccess ? { time: new Date(status.lastSuccess.time), key: status.lastSuccess.key, revision: status.lastSuccess.revision } : undefined,
      lastFailure: status?.lastFailure ? { time: new Date(status.lastFailure.time), message: status.lastFailure.message } : undefined,
    });
    return { type: 'BackupReady', ...r };
  }

  /**
   * Restore of a new topology (spec.bootstrap.fromBackup): first a Job resolves the key ("latest" or a
   * given one) to one backup and its sha256, so that every member restores the same snapshot; until
   * then the member StatefulSet is held back. Returns status.restore, whether to hold the StatefulSet,
   * and the backup to render the restore init containers with.
   */
  async restore(topology: EtcdTopology, statefulSetExists: boolean, etcdFormed: boolean, target: EventTarget, log: Logger): Promise<RestoreDecision> {
    const result = await this.syncRestore(topology, this.current(topology, 'restore'), statefulSetExists, etcdFormed, target, log);
    this.remember(topology, 'restore', result.status);
    return result;
  }

  private async syncRestore(topology: EtcdTopology, prior: RestoreStatus | undefined, statefulSetExists: boolean, etcdFormed: boolean, target: EventTarget, log: Logger): Promise<RestoreDecision> {
    const from = topology.spec.bootstrap?.fromBackup;
    let status = prior;
    if (!from) return { status, hold: false };
    const backup = status?.key && (status.phase === 'Restoring' || status.phase === 'Restored') ? { key: status.key, sha256: status.sha256 } : undefined;
    if (status?.phase === 'Restored') return { status, hold: false };
    if (status?.phase === 'Restoring') {
      if (etcdFormed) {
        const message = `Restored from backup ${status.key} (revision ${status.revision ?? '?'}); the cluster has a new cluster ID`;
        log.info({ key: status.key }, message);
        this.deps.events.record(target, 'Normal', 'Restored', message);
        return { status: { ...status, phase: 'Restored', message }, hold: false };
      }
      return { status, hold: false, backup };
    }
    // A StatefulSet made without a resolved backup (an older operator, a lost status) is never replaced.
    if (statefulSetExists) return { status, hold: false };
    const ns = namespaceOf(topology);
    const now = this.deps.clock.now();
    if (status?.job) {
      const job = this.deps.informers.get<V1Job>('Job', status.job, ns);
      const outcome = jobOutcome(job, this.podsOf(ns, status.job), now, time(status.time));
      if (outcome.state === 'running') return { status, hold: true, requeueAfterMs: 2_000 };
      if (job && !job.metadata?.deletionTimestamp && outcome.state === 'failed') await this.deps.writer.delete('batch/v1', 'Job', ns, status.job);
      if (outcome.state === 'failed') {
        const message = `the backup to restore from could not be found or read: ${outcome.message}; no member is started until it can`;
        this.deps.events.record(target, 'Warning', 'RestoreFailed', message);
        return { status: { phase: 'Failed', message, time: rfc3339(now) }, hold: true, requeueAfterMs: retryBackoffMs(2) };
      }
      const resolved = resolvedSchema.safeParse(outcome.result);
      if (!resolved.success) return { status: { phase: 'Failed', message: `the resolve Job answered no backup key: ${JSON.stringify(outcome.result).slice(0, 200)}`, time: rfc3339(now) }, hold: true, requeueAfterMs: retryBackoffMs(2) };
      const r = resolved.data;
      status = {
        phase: 'Restoring',
        key: r.key,
        ...(r.sha256 !== undefined ? { sha256: r.sha256 } : {}),
        ...(r.revision !== undefined ? { revision: r.revision } : {}),
        ...(r.size !== undefined ? { size: r.size } : {}),
        message: `restoring every member from ${r.key}`,
      };
      log.info({ key: status.key }, `Resolved backup ${from.key} to ${status.key}`);
      this.deps.events.record(target, 'Normal', 'RestoreStarted', `Restoring the members from backup ${status.key} (revision ${status.revision ?? '?'}, sha256 ${status.sha256 ?? 'not recorded'})`);
      return { status, hold: false, backup: { key: status.key!, sha256: status.sha256 } };
    }
    // After a failure, look again after a back-off: the object may have been uploaded, or the Secret fixed.
    if (status?.phase === 'Failed' && status.time && now.getTime() - Date.parse(status.time) < retryBackoffMs(2)) {
      return { status, hold: true, requeueAfterMs: retryBackoffMs(2) };
    }
    const job = snapshotJob(topology, {
      name: `${nameOf(topology)}-resolve-${Math.floor(now.getTime() / 1000).toString(36)}`,
      image: this.deps.image,
      verb: 'resolve',
      destination: from,
      args: [`--key=${from.key}`],
      reason: 'Restore',
      deadlineSeconds: 300,
    });
    await this.deps.writer.apply(job);
    log.info({ job: job.metadata!.name }, `Started Job ${job.metadata!.name} to find backup ${from.key}`);
    return { status: { ...(status ?? {}), phase: 'Resolving', job: job.metadata!.name!, message: `finding backup ${from.key}`, time: rfc3339(now) }, hold: true, requeueAfterMs: 2_000 };
  }
}

/** The pods of one Job, by the labels the Job controller puts on them. */
function jobPods(informers: Informers, ns: string, job: string): V1Pod[] {
  return informers.list<V1Pod>('Pod', ns).filter((p) => p.metadata?.labels?.['batch.kubernetes.io/job-name'] === job || p.metadata?.labels?.['job-name'] === job);
}

function describeReason(reason: BackupReason): string {
  switch (reason) {
    case 'OnDemand':
      return `asked for with ${BACKUP_NOW_ANNOTATION}`;
    case 'BeforeChange':
      return 'before a rolling update or scale-in';
    case 'Scheduled':
      return 'on schedule';
    case 'Retry':
      return 'retrying the scheduled backup after a failure';
  }
}

/** A member pod whose restore init container failed makes the restore Failed, with its words. */
export function restoreFailureOf(status: RestoreStatus, pods: readonly V1Pod[]): RestoreStatus {
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
export function restoreConditions(r: RestoreStatus | undefined): ConditionUpdate[] {
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
