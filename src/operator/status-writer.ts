import type { Condition } from '../api/conditions.ts';
import type { EtcdTopologyStatus } from '../api/status.ts';
import type { Logger } from '../telemetry/logger.ts';
import { desiredHash } from './apply.ts';
import type { EventRecorder, EventTarget } from './events.ts';
import type { KubeWriter } from './kube.ts';

/** A merge patch body that also removes what `before` had and `after` no longer has (JSON merge patch: null). */
export function withRemovals(before: unknown, after: unknown): unknown {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(before) || !isObject(after)) return after;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(after)) if (v !== undefined) out[k] = withRemovals(before[k], v);
  for (const k of Object.keys(before)) if (!(k in out)) out[k] = null;
  return out;
}

/**
 * Writes a topology's status when it differs from what the API server has, and records one Event per
 * condition whose status or reason changed (one per cause): a failure retried with back-off is
 * announced once, when it starts, and once more when it clears.
 */
export async function writeStatus(
  deps: { writer: KubeWriter; events: EventRecorder },
  before: EtcdTopologyStatus | undefined,
  after: EtcdTopologyStatus,
  target: EventTarget,
  log: Logger,
): Promise<void> {
  // Canonical comparison: the API server's key order and dropped empty fields are not changes.
  if (before !== undefined && desiredHash(before) === desiredHash(after)) return;
  await deps.writer.patchTopologyStatus(target.namespace, target.name, withRemovals(before, after));
  const changed = (after.conditions ?? []).flatMap((c) => {
    const prior: Condition | undefined = before?.conditions?.find((p) => p.type === c.type);
    if (prior?.status === c.status && prior.reason === c.reason) return [];
    const warning = (c.type === 'Available' && c.status === 'False' && prior !== undefined) || (c.type === 'Degraded' && c.status === 'True');
    return [{ c, warning }];
  });
  // Two conditions changed for one cause (Degraded and Progressing ReconcileFailed) say it once, as a warning if either is one.
  const said = new Set<string>();
  for (const { c, warning } of [...changed.filter((x) => x.warning), ...changed.filter((x) => !x.warning)]) {
    log.info({ type: c.type, status: c.status, reason: c.reason }, `Changed condition ${c.type} to ${c.status}`);
    if (said.has(`${c.reason}\n${c.message}`)) continue;
    said.add(`${c.reason}\n${c.message}`);
    deps.events.record(target, warning ? 'Warning' : 'Normal', c.reason, `${c.type}=${c.status}: ${c.message}`);
  }
}
