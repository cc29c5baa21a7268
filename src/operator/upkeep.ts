import type { Clock } from '../api/conditions.ts';
import { cronMatches } from '../api/cron.ts';
import type { EtcdTopology } from '../api/etcd-topology.ts';
import { quantityToNumber } from '../api/quantity.ts';
import type { EtcdAdminClient } from '../etcd/admin-client.ts';
import { EtcdError } from '../etcd/errors.ts';
import type { Alarm, DefragStep, MaintenanceInput } from '../quorum/defrag.ts';
import type { MemberHealth } from '../quorum/members.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { EventRecorder, EventTarget } from './events.ts';
import type { TopologyMetrics } from './topology-metrics.ts';

/** A finished defragmentation, as status.members[].lastDefragmentation shows it. */
export interface DefragRecord {
  time: string;
  bytesFreed: number;
}

/** What the operator remembers of one topology's upkeep between reconciles. */
interface TopologyUpkeep {
  inFlight?: { member: string; started: number };
  backoff: Map<string, { until: number; failures: number }>;
  last: Map<string, DefragRecord & { at: number; sizeBefore: number }>;
  /** NOSPACE recovery under way: since when, and when the keyspace was compacted. */
  recovery?: { since: number; compactedAt?: number };
  /** When the last recovery disarmed NOSPACE, and how often it came straight back. */
  recovered?: { at: number; repeats: number; retryAfter?: number };
}

export interface UpkeepDeps {
  admin: EtcdAdminClient;
  events: EventRecorder;
  clock: Clock;
  log: Logger;
  metrics?: TopologyMetrics;
  /** Asks for the topology to be reconciled again (a defragmentation finished). */
  requeue: (key: string) => void;
}

/** A defragmentation blocks its member for as long as it rewrites the file: 30 s plus 10 MiB/s, at most 30 min. */
export function defragDeadlineMs(dbSize: number): number {
  return Math.min(30 * 60_000, 30_000 + Math.ceil(dbSize / (10 * 2 ** 20)) * 1000);
}

/** Back-off after a member's nth failed defragmentation: 1, 2, 4 ... minutes, at most an hour. */
export function defragBackoffMs(failures: number): number {
  return Math.min(60 * 60_000, 60_000 * 2 ** Math.max(0, failures - 1));
}

/**
 * The rule leaves a member alone this long after a defragmentation that freed less than a quarter of
 * its file: under steady write churn bbolt keeps some pages free, and the rule would fire again and
 * again for little gain. NOSPACE recovery does not wait.
 */
export const DEFRAG_COOLDOWN_MS = 15 * 60_000;
export const DEFRAG_WORTHWHILE_SHARE = 0.25;

/** How long after a compaction every member is taken to have applied it, whatever its free space says. */
const COMPACTION_SETTLE_MS = 30_000;

/** A NOSPACE alarm back within this long of a recovery means the live data is at the quota: back off. */
const NOSPACE_REPEAT_WINDOW_MS = 10 * 60_000;

const MiB = 2 ** 20;
const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`;

/**
 * Performs the planner's upkeep steps (defragment, compact, disarm) and remembers what they need
 * between reconciles: a defragmentation runs without holding the work queue (the reconcile returns at
 * once, the result requeues the topology), failures back off per member, and NOSPACE recovery
 * progresses one step per reconcile. State is in memory: after an operator restart a recovery starts
 * over, which only repeats harmless steps.
 */
export class Upkeep {
  private readonly deps: UpkeepDeps;
  private readonly state = new Map<string, TopologyUpkeep>();

  constructor(deps: UpkeepDeps) {
    this.deps = deps;
  }

  private of(key: string): TopologyUpkeep {
    let s = this.state.get(key);
    if (s === undefined) this.state.set(key, (s = { backoff: new Map(), last: new Map() }));
    return s;
  }

  /** The planner's upkeep input for this round; starts or ends NOSPACE recovery as the alarms say. */
  input(key: string, topology: EtcdTopology, alarms: readonly Alarm[]): MaintenanceInput {
    const now = this.deps.clock.now().getTime();
    const s = this.of(key);
    const { defragmentation, noSpaceRecovery } = topology.spec.maintenance;
    const noSpace = alarms.some((a) => a.alarm === 'NOSPACE');
    if (!noSpace) s.recovery = undefined;
    else if (s.recovery === undefined) {
      s.recovery = { since: now };
      // Straight back after a recovery: the live data itself is at the quota; repeating at once would loop.
      if (s.recovered !== undefined && now - s.recovered.at < NOSPACE_REPEAT_WINDOW_MS) {
        s.recovered.repeats++;
        s.recovered.retryAfter = now + Math.min(60 * 60_000, 5 * 60_000 * 2 ** (s.recovered.repeats - 1));
      }
    }
    const recovery = s.recovery;
    const retryAfter = s.recovered?.retryAfter !== undefined && s.recovered.retryAfter > now ? s.recovered.retryAfter : undefined;
    return {
      rule: {
        enabled: defragmentation.enabled,
        quotaBackendBytes: quantityToNumber(topology.spec.members.quotaBackendBytes),
        quotaUsageAbove: defragmentation.quotaUsageAbove,
        minReclaimBytes: quantityToNumber(defragmentation.minReclaimBytes),
        inWindow: defragmentation.window === undefined || cronMatches(defragmentation.window, new Date(now)),
      },
      noSpaceRecovery,
      alarms,
      ...(s.inFlight ? { inFlight: s.inFlight.member } : {}),
      // A member's failure count stays after its back-off ends, so that the next failure waits longer.
      backingOff: [...s.backoff].filter(([, b]) => b.until > now).map(([m]) => m),
      coolingDown: [...s.last].filter(([, r]) => now - r.at < DEFRAG_COOLDOWN_MS && r.bytesFreed < DEFRAG_WORTHWHILE_SHARE * r.sizeBefore).map(([m]) => m),
      ...(recovery
        ? {
            recovery: {
              compacted: recovery.compactedAt !== undefined,
              compactionSettled: recovery.compactedAt !== undefined && now - recovery.compactedAt >= COMPACTION_SETTLE_MS,
              defragmented: [...s.last].filter(([, r]) => r.at >= recovery.since).map(([m]) => m),
              ...(retryAfter !== undefined ? { retryAfter: new Date(retryAfter).toISOString() } : {}),
            },
          }
        : {}),
    };
  }

  /** The member being defragmented now, if any. */
  defragmenting(key: string): string | undefined {
    return this.state.get(key)?.inFlight?.member;
  }

  /** The last defragmentation this operator ran per member. */
  lastDefragmentations(key: string): Map<string, DefragRecord> {
    return new Map([...(this.state.get(key)?.last ?? [])].map(([m, r]) => [m, { time: r.time, bytesFreed: r.bytesFreed }]));
  }

  /** Forgets a deleted topology. */
  forget(key: string): void {
    this.state.delete(key);
  }

  /**
   * Performs one upkeep step and says whether it changed anything. A defragmentation is started and
   * left running: its end requeues the topology.
   */
  async perform(
    step: Extract<DefragStep, { action: 'Defragment' | 'Compact' | 'DisarmAlarms' }>,
    key: string,
    members: readonly MemberHealth[],
    urls: ReadonlyMap<string, string>,
    target: EventTarget,
    log: Logger,
  ): Promise<boolean> {
    const s = this.of(key);
    const leader = members.find((m) => m.isLeader && m.healthy);
    const anyUrl = (leader && urls.get(leader.name)) ?? [...urls.values()][0];
    switch (step.action) {
      case 'Defragment': {
        const url = urls.get(step.member);
        if (url === undefined || s.inFlight !== undefined) return false;
        this.defragment(key, step, url, target, log);
        return true;
      }
      case 'Compact': {
        if (anyUrl === undefined) return false;
        try {
          await this.deps.admin.compact(anyUrl, step.revision, { timeoutMs: 60_000 });
        } catch (err) {
          // Compacted to this revision already (by auto-compaction, or before an operator restart): done.
          if (!(err instanceof EtcdError && err.grpcCode === 11)) throw err;
        }
        if (s.recovery) s.recovery.compactedAt = this.deps.clock.now().getTime();
        this.record(target, log, 'Normal', 'NoSpaceCompacted', `NOSPACE recovery: compacted the keyspace to revision ${step.revision}`);
        return true;
      }
      case 'DisarmAlarms': {
        if (anyUrl === undefined) return false;
        for (const id of step.memberIds) await this.deps.admin.disarmAlarm(anyUrl, id, 'NOSPACE');
        const now = this.deps.clock.now().getTime();
        s.recovered = { at: now, repeats: s.recovered?.repeats ?? 0 };
        s.recovery = undefined;
        this.record(target, log, 'Normal', 'NoSpaceRecovered', 'NOSPACE recovery: compacted, defragmented every member and disarmed the alarm; writes are accepted again');
        return true;
      }
    }
  }

  private defragment(key: string, step: Extract<DefragStep, { action: 'Defragment' }>, url: string, target: EventTarget, log: Logger): void {
    const s = this.of(key);
    const started = this.deps.clock.now().getTime();
    const timeoutMs = defragDeadlineMs(step.dbSize);
    s.inFlight = { member: step.member, started };
    log.info({ member: step.member, dbSize: step.dbSize, timeoutMs, reason: step.reason }, step.message);
    this.deps.events.record(target, 'Normal', 'Defragmenting', step.message);
    const [namespace, name] = key.split('/') as [string, string];
    void this.deps.admin
      .defragment(url, { timeoutMs })
      .then(async () => {
        const seconds = (this.deps.clock.now().getTime() - started) / 1000;
        // The member answers again once it is done; a status that fails here leaves bytesFreed unknown (0).
        const after = await this.deps.admin.status(url).then((r) => r.dbSize, () => undefined);
        const bytesFreed = after === undefined ? 0 : step.dbSize - after;
        const now = this.deps.clock.now();
        s.last.set(step.member, { time: now.toISOString().replace(/\.\d{3}Z$/, 'Z'), bytesFreed, at: now.getTime(), sizeBefore: step.dbSize });
        s.backoff.delete(step.member);
        this.deps.metrics?.defragmented(namespace, name, step.member, { ok: true, seconds, bytesFreed });
        const size = after === undefined ? '' : `: ${mib(step.dbSize)} -> ${mib(after)}`;
        this.record(target, log, 'Normal', 'Defragmented', `defragmented ${step.member} in ${seconds.toFixed(1)}s${size} (${step.reason})`);
      })
      .catch((err: unknown) => {
        const seconds = (this.deps.clock.now().getTime() - started) / 1000;
        const failures = (s.backoff.get(step.member)?.failures ?? 0) + 1;
        const wait = defragBackoffMs(failures);
        s.backoff.set(step.member, { until: this.deps.clock.now().getTime() + wait, failures });
        this.deps.metrics?.defragmented(namespace, name, step.member, { ok: false, seconds });
        const message = `defragmentation of ${step.member} failed after ${seconds.toFixed(1)}s (deadline ${timeoutMs / 1000}s): ${err instanceof Error ? err.message : String(err)}; leaving it alone for ${wait / 60_000} min`;
        this.record(target, log, 'Warning', 'DefragmentationFailed', message);
      })
      .finally(() => {
        if (s.inFlight?.member === step.member && s.inFlight.started === started) s.inFlight = undefined;
        this.deps.requeue(key);
      });
  }

  private record(target: EventTarget, log: Logger, type: 'Normal' | 'Warning', reason: string, message: string): void {
    if (type === 'Warning') log.warn({ reason }, message);
    else log.info({ reason }, message);
    this.deps.events.record(target, type, reason, message);
  }
}
