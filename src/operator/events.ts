import type { Logger } from '../telemetry/logger.ts';
import type { KubeWriter } from './kube.ts';

/** The object an Event is about. */
export interface EventTarget {
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
  uid?: string;
}

/**
 * Records Kubernetes Events for what the operator did or found. Identical events within a short
 * window are sent once, so a reconcile that retries does not flood the namespace.
 */
export class EventRecorder {
  private readonly writer: KubeWriter;
  private readonly logger: Logger;
  private readonly recent = new Map<string, number>();
  private readonly component: string;

  constructor(writer: KubeWriter, logger: Logger, component = 'etcd-topology-operator') {
    this.writer = writer;
    this.logger = logger;
    this.component = component;
  }

  /** Emits one Event; never throws (an Event is worth less than the reconcile that made it). */
  record(target: EventTarget, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const key = `${target.namespace}/${target.name}/${reason}/${message}`;
    const now = Date.now();
    if ((this.recent.get(key) ?? 0) > now - 5 * 60_000) return;
    this.recent.set(key, now);
    if (this.recent.size > 1000) for (const [k, t] of this.recent) if (t < now - 5 * 60_000) this.recent.delete(k);
    const time = new Date();
    void this.writer
      .createEvent(target.namespace, {
        metadata: { generateName: `${target.name}.`, namespace: target.namespace },
        involvedObject: { apiVersion: target.apiVersion, kind: target.kind, name: target.name, namespace: target.namespace, uid: target.uid },
        type,
        reason,
        message,
        source: { component: this.component },
        firstTimestamp: time,
        lastTimestamp: time,
        count: 1,
      })
      .catch((err: unknown) => this.logger.warn({ err, reason }, 'Failed to record an Event'));
  }
}
