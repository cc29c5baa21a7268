import { performance } from 'node:perf_hooks';
import { resourcePath, type KubeClient } from './kube-client.ts';
import type { Logger } from '../telemetry/logger.ts';

/** client-go's three durations, in milliseconds. */
export interface LeaseTimings {
  /** How long a standby waits, after it last saw the lease record change, before it takes the lease. */
  leaseDurationMs: number;
  /** How long the leader keeps retrying a failed renewal, from its last successful one, before it stops acting. */
  renewDeadlineMs: number;
  /** How often the leader renews, a failed renewal is retried, and a standby tries to acquire. */
  retryPeriodMs: number;
}

/** client-go's defaults (and controller-runtime's): 15 s / 10 s / 2 s. */
export const defaultLeaseTimings: LeaseTimings = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

/** Why a set of timings cannot work, naming the flag at fault, or undefined when they can (pure). */
export function invalidTimings(t: LeaseTimings): { flag: string; message: string } | undefined {
  if (t.leaseDurationMs < 1000) return { flag: 'leader-elect-lease-duration', message: 'must be at least 1s (a Lease counts whole seconds)' };
  if (t.retryPeriodMs <= 0) return { flag: 'leader-elect-retry-period', message: 'must be more than 0s' };
  if (t.renewDeadlineMs >= t.leaseDurationMs) {
    return { flag: 'leader-elect-renew-deadline', message: `must be shorter than --leader-elect-lease-duration (${t.leaseDurationMs / 1000}s), so the leader stops acting before a standby may take over` };
  }
  if (t.retryPeriodMs >= t.renewDeadlineMs) {
    return { flag: 'leader-elect-retry-period', message: `must be shorter than --leader-elect-renew-deadline (${t.renewDeadlineMs / 1000}s), so a failed renewal is retried at least once` };
  }
  return undefined;
}

/**
 * What this replica last saw of the lease record and when, by its own monotonic clock. As in
 * client-go, expiry is judged from the moment the record was seen to change, never from the
 * renewTime another replica wrote with its own clock.
 */
export interface Observation {
  record: string;
  atMs: number;
}

/** A coordination.k8s.io/v1 Lease as the API server sends it (times are MicroTime strings; Dates in tests). */
export interface V1Lease {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
  spec?: { holderIdentity?: string | undefined; leaseDurationSeconds?: number; acquireTime?: string | Date; renewTime?: string | Date; leaseTransitions?: number };
}

/** Now as a Lease's MicroTime: RFC 3339 with exactly six fractional digits (the API refuses three). */
export function microTime(date = new Date()): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** The parts of a Lease that make up its record (client-go's LeaderElectionRecord). */
function recordOf(lease: V1Lease | undefined): string {
  const s = lease?.spec;
  const time = (t: string | Date | undefined): string => (t ? new Date(t).toISOString() : '');
  return JSON.stringify([s?.holderIdentity ?? '', s?.leaseDurationSeconds ?? 0, time(s?.acquireTime), time(s?.renewTime), s?.leaseTransitions ?? 0]);
}

/** The observation after reading lease at nowMs: unchanged if the record is the same, else restarted (pure). */
export function observe(previous: Observation | undefined, lease: V1Lease | undefined, nowMs: number): Observation {
  const record = recordOf(lease);
  return previous?.record === record ? previous : { record, atMs: nowMs };
}

/**
 * What to do with a lease as read (pure): take it (free, or another's that was not seen to change for
 * a lease duration), renew it (ours), or wait (another's, still valid as observed locally).
 */
export function decide(lease: V1Lease | undefined, identity: string, observed: Observation, nowMs: number, leaseDurationMs: number): 'take' | 'renew' | 'wait' {
  const holder = lease?.spec?.holderIdentity;
  if (!holder) return 'take';
  if (holder === identity) return 'renew';
  return nowMs < observed.atMs + leaseDurationMs ? 'wait' : 'take';
}

/** Whether the leader must stop acting: the renew deadline passed since its last successful renewal (pure). */
export function renewDeadlinePassed(lastRenewedMs: number, nowMs: number, renewDeadlineMs: number): boolean {
  return nowMs - lastRenewedMs >= renewDeadlineMs;
}

/**
 * How long one renewal attempt may wait, with leftMs to the renew deadline (pure): at most half the
 * renew deadline (at least 1 s), as client-go bounds its lock's requests, so that a request the API
 * server accepts and never answers (a server starting up, a stuck storage) leaves time for another
 * attempt before the deadline instead of using it all up; never past the deadline.
 */
export function renewAttemptTimeout(leftMs: number, renewDeadlineMs: number): number {
  return Math.max(1, Math.min(leftMs, Math.max(1000, renewDeadlineMs / 2)));
}

/** Options of leader election on a coordination.k8s.io Lease. */
export interface LeaderElectionOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  identity: string;
  timings?: LeaseTimings;
  logger: Logger;
  /** Monotonic milliseconds (default performance.now). */
  now?: () => number;
}

class AttemptTimeout extends Error {}

/**
 * Leader election on a Lease with client-go's semantics and optimistic concurrency (replace carries
 * the resourceVersion read), so that two replicas never both act. onStarted runs once this replica
 * leads. A failed renewal is retried every retry period; onStopped runs only when the renew deadline
 * has passed since the last successful renewal, or when the lease is seen held by another replica,
 * after which the process should exit, as controller-runtime's managers do.
 */
export class LeaderElector {
  private readonly client: KubeClient;
  private readonly options: LeaderElectionOptions;
  private readonly timings: LeaseTimings;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private observed: Observation | undefined;
  private lastRenewedMs = 0;
  private leading = false;
  private stopped = false;

  constructor(options: LeaderElectionOptions) {
    this.client = options.client;
    this.options = options;
    this.timings = options.timings ?? defaultLeaseTimings;
    this.now = options.now ?? (() => performance.now());
    const bad = invalidTimings(this.timings);
    if (bad) throw new Error(`leader election: --${bad.flag} ${bad.message}`);
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Tries to acquire every retry period (jittered), then renews every retry period; resolves at once. */
  start(onStarted: () => void, onStopped: () => void): void {
    const { logger, name } = this.options;
    const { retryPeriodMs, renewDeadlineMs } = this.timings;
    const schedule = (ms: number, fn: () => Promise<void>): void => {
      if (!this.stopped) this.timer = setTimeout(() => void fn(), Math.max(0, ms));
    };
    const acquire = async (): Promise<void> => {
      if (this.stopped) return;
      const result = await this.attempt(retryPeriodMs).catch((err: unknown) => {
        logger.warn({ err }, 'Failed to read or take the leader lease');
        return 'failed' as const;
      });
      if (result === 'ok' && !this.stopped) {
        this.leading = true;
        this.lastRenewedMs = this.now();
        logger.info({ lease: name }, 'Acquired the leader lease');
        onStarted();
        schedule(retryPeriodMs, renew);
        return;
      }
      // Jittered so that standbys do not poll in step; by at most a fifth (client-go's factor of 1.2
      // would let a handover take up to two further retry periods past the lease duration).
      schedule(retryPeriodMs * (1 + 0.2 * Math.random()), acquire);
    };
    let failures = 0;
    const renew = async (): Promise<void> => {
      if (this.stopped) return;
      const left = this.lastRenewedMs + renewDeadlineMs - this.now();
      const result = await this.attempt(renewAttemptTimeout(left, renewDeadlineMs)).catch((err: unknown) => {
        failures++;
        logger.warn({ err, failures, deadlineInMs: Math.round(this.lastRenewedMs + renewDeadlineMs - this.now()) }, 'Failed to renew the leader lease; retrying until the renew deadline');
        return 'failed' as const;
      });
      if (this.stopped) return;
      if (result === 'ok') {
        if (failures > 0) logger.info({ failures }, 'Renewed the leader lease again');
        failures = 0;
        this.lastRenewedMs = this.now();
        schedule(retryPeriodMs, renew);
        return;
      }
      if (result === 'held') {
        this.leading = false;
        logger.error({ lease: name }, 'Lost the leader lease: another replica holds it');
        onStopped();
        return;
      }
      if (renewDeadlinePassed(this.lastRenewedMs, this.now(), renewDeadlineMs)) {
        this.leading = false;
        logger.error({ lease: name, failures, renewDeadlineMs }, 'Lost the leader lease: no renewal succeeded within the renew deadline');
        onStopped();
        return;
      }
      schedule(Math.min(retryPeriodMs, this.lastRenewedMs + renewDeadlineMs - this.now()), renew);
    };
    void acquire();
  }

  /** Stops renewing and, when leading, releases the lease so another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    const { identity } = this.options;
    const release = async (): Promise<void> => {
      const lease = await this.client.call<V1Lease>('GET', this.leasePath());
      if (lease.spec?.holderIdentity !== identity) return;
      // As client-go's release: no holder, and a one-second duration from now.
      const now = microTime();
      lease.spec = { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: now, acquireTime: now };
      await this.client.call('PUT', this.leasePath(), { body: lease });
    };
    await withTimeout(release(), this.timings.retryPeriodMs).catch((err: unknown) => this.options.logger.warn({ err }, 'Could not release the leader lease'));
  }

  /**
   * One read and, when allowed, one write of the lease, given up after timeoutMs. Given up means
   * aborted: a request left running would land later, and a renewal that the API server accepts
   * after the leader stopped acting (its renew deadline passed while the server was down, and the
   * write went out once it was back) would show a lease renewed by a replica that no longer leads,
   * holding off a standby for another lease duration.
   */
  private attempt(timeoutMs: number): Promise<'ok' | 'held'> {
    const abort = new AbortController();
    return withTimeout(this.tryAcquireOrRenew(abort.signal), timeoutMs, () => abort.abort());
  }

  private leasePath(): string {
    return resourcePath('coordination.k8s.io/v1', 'Lease', this.options.namespace, this.options.name);
  }

  private async tryAcquireOrRenew(signal: AbortSignal): Promise<'ok' | 'held'> {
    const { namespace, name, identity } = this.options;
    const leaseDurationSeconds = Math.ceil(this.timings.leaseDurationMs / 1000);
    // Lease times are MicroTime on the wire (six fractional digits); a plain Date is refused.
    const wall = microTime();
    let lease: V1Lease;
    try {
      lease = await this.client.call<V1Lease>('GET', this.leasePath(), { signal });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
      const created = await this.client.call<V1Lease>('POST', resourcePath('coordination.k8s.io/v1', 'Lease', namespace), {
        body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace }, spec: { holderIdentity: identity, leaseDurationSeconds, acquireTime: wall, renewTime: wall, leaseTransitions: 0 } },
        signal,
      });
      this.observed = observe(undefined, created, this.now());
      return 'ok';
    }
    this.observed = observe(this.observed, lease, this.now());
    const action = decide(lease, identity, this.observed, this.now(), this.timings.leaseDurationMs);
    if (action === 'wait') return 'held';
    const spec = lease.spec ?? {};
    lease.spec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds,
      renewTime: wall,
      ...(action === 'take' ? { acquireTime: wall, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
    };
    // A 409 (another replica wrote first) throws like any failure: the next attempt reads who holds it.
    const written = await this.client.call<V1Lease>('PUT', this.leasePath(), { body: lease, signal });
    this.observed = observe(this.observed, written, this.now());
    return 'ok';
  }
}

/**
 * The words for an attempt given up on: the time that really passed since it began (a stalled event
 * loop fires the timer late, so it can be far more than the limit), and the limit (pure).
 */
export function timeoutMessage(elapsedMs: number, limitMs: number): string {
  const elapsed = Math.round(elapsedMs);
  const limit = Math.round(limitMs);
  const late = elapsed > limit + 100 ? `; the timer fired ${elapsed - limit}ms late, so this process was stalled` : '';
  return `no answer from the API server after ${elapsed}ms (the attempt's limit was ${limit}ms${late})`;
}

function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout?: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const started = performance.now();
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout?.();
      reject(new AttemptTimeout(timeoutMessage(performance.now() - started, ms)));
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
