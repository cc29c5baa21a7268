import type { Condition, ConditionUpdate } from '../api/conditions.ts';
import type { ErrorCode } from '../errors.ts';

/** What to do about a failure, by its code, for the condition message. */
const ADVICE: Partial<Record<ErrorCode, string>> = {
  ETOP_KUBE_FORBIDDEN: "check the operator's RBAC (its ClusterRole and bindings) for this verb and kind",
  ETOP_KUBE_INVALID: 'the API server, an admission policy or a webhook refused the object; its answer above says which and why',
  ETOP_KUBE_CONFLICT: 'another writer changed the object first; the next attempt reads it again',
  ETOP_KUBE_UNAVAILABLE: 'the API server did not answer; the next attempt may succeed',
  ETOP_ETCD_UNAVAILABLE: 'etcd did not answer; the next attempt may succeed',
};

/**
 * Degraded and Progressing while a reconcile step fails: ReconcileFailed, naming the step and quoting
 * the error (which names the object and the API server's answer). A fault the observation found as
 * well (Degraded True for another reason) is kept in the message, after the failure.
 */
export function stepFailedConditions(failure: { step: string; error: { code: ErrorCode; message: string } }, observed?: ConditionUpdate | Condition): ConditionUpdate[] {
  const advice = ADVICE[failure.error.code];
  // Not a ReconcileFailed of an earlier round (a round that failed before observing keeps the conditions it had).
  const also = observed?.type === 'Degraded' && observed.status === 'True' && observed.reason !== 'ReconcileFailed' ? `; also ${observed.reason}: ${observed.message}` : '';
  const message = `reconcile step ${failure.step} failed (${failure.error.code}): ${failure.error.message}${advice ? `; ${advice}` : ''}; retrying with back-off${also}`;
  return [
    { type: 'Degraded', status: 'True', reason: 'ReconcileFailed', message },
    { type: 'Progressing', status: 'False', reason: 'ReconcileFailed', message },
  ];
}

/** Degraded and Progressing for an EtcdTopology the operator cannot parse: InvalidSpec, naming the field. */
export function invalidSpecConditions(message: string): ConditionUpdate[] {
  const text = `${message}; the operator changes nothing for this topology until the object is fixed`;
  return [
    { type: 'Degraded', status: 'True', reason: 'InvalidSpec', message: text },
    { type: 'Progressing', status: 'False', reason: 'InvalidSpec', message: text },
  ];
}
