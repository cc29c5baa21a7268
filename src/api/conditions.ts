import { z } from 'zod';
import { TopologyError } from '../errors.ts';

/** The condition types of an EtcdTopology. */
export const CONDITION_TYPES = ['Available', 'Progressing', 'Degraded', 'BackupReady', 'TLSReady'] as const;
export type ConditionType = (typeof CONDITION_TYPES)[number];
export type ConditionStatus = 'True' | 'False' | 'Unknown';

const REASON_PATTERN = /^[A-Z][A-Za-z0-9]*$/;

/** metav1.Condition, as the Kubernetes API conventions define it. */
export const conditionSchema = z.object({
  type: z.string().regex(/^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/).max(316),
  status: z.enum(['True', 'False', 'Unknown']),
  observedGeneration: z.int().min(0).optional(),
  lastTransitionTime: z.string().meta({ format: 'date-time' }),
  reason: z.string().min(1).max(1024).regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/),
  message: z.string().max(32768),
});

export type Condition = z.infer<typeof conditionSchema>;

/** What a reconcile step decides about one condition; the helpers add the time and generation. */
export interface ConditionUpdate {
  type: ConditionType;
  status: ConditionStatus;
  /** PascalCase, stable, machine-readable: e.g. InsufficientCentralNodes. */
  reason: string;
  /** For humans: what is the case and what to do. */
  message: string;
}

/** The source of "now", injected so that condition updates are deterministic in tests. */
export interface Clock {
  now(): Date;
}

/** The wall clock. */
export const systemClock: Clock = { now: () => new Date() };

/** The condition of the given type, if present. */
export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** Whether the condition of the given type is present with status True. */
export function isConditionTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === 'True';
}

/**
 * Returns conditions with the update applied (the input is not modified): lastTransitionTime moves
 * only when status changes; reason, message and observedGeneration always follow the update.
 * Other conditions keep their place, a new type is appended.
 */
export function setCondition(conditions: readonly Condition[] | undefined, update: ConditionUpdate, generation: number, clock: Clock): Condition[] {
  if (!REASON_PATTERN.test(update.reason)) {
    throw new TopologyError('ETOP_CONDITION_REASON', `condition ${update.type}: reason "${update.reason}" is not PascalCase`);
  }
  const list = [...(conditions ?? [])];
  const i = list.findIndex((c) => c.type === update.type);
  const previous = i === -1 ? undefined : list[i];
  const next: Condition = {
    type: update.type,
    status: update.status,
    observedGeneration: generation,
    lastTransitionTime: previous !== undefined && previous.status === update.status ? previous.lastTransitionTime : rfc3339(clock.now()),
    reason: update.reason,
    message: update.message,
  };
  if (i === -1) list.push(next);
  else list[i] = next;
  return list;
}

/** Applies several updates in order; see setCondition. */
export function setConditions(conditions: readonly Condition[] | undefined, updates: readonly ConditionUpdate[], generation: number, clock: Clock): Condition[] {
  return updates.reduce<Condition[]>((acc, u) => setCondition(acc, u, generation, clock), [...(conditions ?? [])]);
}

/** Kubernetes serializes metav1.Time with second precision. */
function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
