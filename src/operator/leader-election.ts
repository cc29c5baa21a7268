import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from '../telemetry/logger.ts';

/** Options of leader election on a coordination.k8s.io Lease. */
export interface LeaderElectionOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds?: number;
  renewEveryMs?: number;
  logger: Logger;
}

/** Why a holder may or may not take the lease now, from the lease as read (pure). */
export function mayAcquire(lease: V1Lease | undefined, identity: string, now: Date): boolean {
  const spec = lease?.spec;
  if (!spec?.holderIdentity || spec.holderIdentity === identity) return true;
  const renewed = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
  return now.getTime() > renewed + (spec.leaseDurationSeconds ?? 15) * 1000;
}

/**
 * Leader election on a Lease with optimistic concurrency (replace carries the resourceVersion read),
 * so that two replicas never both act. onStarted runs once this replica leads; onStopped runs if it
 * loses the lease, after which the process should exit, as controller-runtime's managers do.
 */
export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private readonly options: Required<Omit<LeaderElectionOptions, 'kubeConfig'>>;
  private timer: NodeJS.Timeout | undefined;
  private leading = false;
  private stopped = false;

  constructor(options: LeaderElectionOptions) {
    this.api = options.kubeConfig.makeApiClient(CoordinationV1Api);
    this.options = { leaseDurationSeconds: 15, renewEveryMs: 5000, ...options };
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Tries to acquire, then keeps renewing; resolves at once. */
  start(onStarted: () => void, onStopped: () => void): void {
    const tick = async (): Promise<void> => {
      if (this.stopped) return;
      const ok = await this.tryAcquireOrRenew().catch((err: unknown) => {
        this.options.logger.warn({ err }, 'Failed to acquire or renew the leader lease');
        return false;
      });
      if (ok && !this.leading) {
        this.leading = true;
        this.options.logger.info({ lease: this.options.name }, 'Acquired the leader lease');
        onStarted();
      } else if (!ok && this.leading) {
        this.leading = false;
        this.options.logger.error({ lease: this.options.name }, 'Lost the leader lease');
        onStopped();
        return;
      }
      this.timer = setTimeout(() => void tick(), this.options.renewEveryMs);
    };
    void tick();
  }

  /** Stops renewing and, when leading, releases the lease so another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    const { namespace, name, identity } = this.options;
    const lease = await this.api.readNamespacedLease({ name, namespace }).catch(() => undefined);
    if (lease?.spec?.holderIdentity !== identity) return;
    lease.spec.holderIdentity = undefined;
    lease.spec.renewTime = undefined;
    await this.api.replaceNamespacedLease({ name, namespace, body: lease }).catch(() => undefined);
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity, leaseDurationSeconds } = this.options;
    // Lease times are MicroTime on the wire (six fractional digits); a plain Date is refused.
    const now = new V1MicroTime();
    let lease: V1Lease | undefined;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
      await this.api.createNamespacedLease({
        namespace,
        body: { metadata: { name, namespace }, spec: { holderIdentity: identity, leaseDurationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 } },
      });
      return true;
    }
    if (!mayAcquire(lease, identity, now)) return false;
    const spec = lease.spec ?? {};
    const transition = spec.holderIdentity !== identity;
    lease.spec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds,
      renewTime: now,
      ...(transition ? { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
    };
    try {
      await this.api.replaceNamespacedLease({ name, namespace, body: lease });
      return true;
    } catch (err) {
      // 409: another replica wrote first; it leads this round.
      if ((err as { code?: number }).code === 409) return false;
      throw err;
    }
  }
}
