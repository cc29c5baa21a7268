import { TopologyError } from '../errors.ts';
import { kubeApiError } from './kube.ts';

/**
 * What a reconcile step answers: go on; go on and visit the topology again within ms (the earliest
 * such visit of a round wins); or stop here with a coded error. No step waits or sleeps.
 */
export type StepResult = { next: 'continue' } | { next: 'requeueAfter'; ms: number } | { next: 'error'; error: TopologyError };

export const CONTINUE: StepResult = { next: 'continue' };

/** Go on, and look again within ms (undefined: no wish). */
export const requeueAfter = (ms: number | undefined): StepResult => (ms === undefined ? CONTINUE : { next: 'requeueAfter', ms });

/** One named step of a reconcile; it reads and extends the round. */
export interface NamedStep<R> {
  name: string;
  run(round: R): Promise<StepResult>;
}

/** The step that stopped a round, and why. */
export interface StepFailure {
  step: string;
  error: TopologyError;
}

/**
 * What a run of steps came to: the earliest visit any step asked for, the failure that stopped it, or
 * the step it stopped before because the operator may no longer act (stopping, or its leader lease lost).
 */
export interface StepsOutcome {
  requeueAfterMs?: number;
  failure?: StepFailure;
  haltedBefore?: string;
}

/**
 * Every error a step lets escape, with a code: ours as they are, a Kubernetes client's (an HTTP status
 * in code) wrapped as kube.ts wraps its own calls, anything else as an internal error.
 */
export function coded(err: unknown): TopologyError {
  if (err instanceof TopologyError) return err;
  if (typeof (err as { code?: unknown }).code === 'number') return kubeApiError(err, { verb: 'call', object: 'the Kubernetes API' });
  return new TopologyError('ETOP_INTERNAL', `unexpected error: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

/**
 * Runs the steps in order until one fails; a step that throws fails with its error, coded. Once acting
 * is aborted no further step starts (the one in flight finishes): a leader that lost its lease acts no
 * more. onStep hears how long each step that ran took, in seconds (etcd_topology_operator_step_duration_seconds).
 */
export async function runSteps<R>(
  steps: readonly NamedStep<R>[],
  round: R,
  options: { acting?: AbortSignal | undefined; onStep?: ((step: string, seconds: number) => void) | undefined } = {},
): Promise<StepsOutcome> {
  const { acting, onStep } = options;
  let requeueAfterMs: number | undefined;
  for (const step of steps) {
    if (acting?.aborted) return { haltedBefore: step.name };
    let result: StepResult;
    const start = performance.now();
    try {
      result = await step.run(round);
    } catch (err) {
      result = { next: 'error', error: coded(err) };
    }
    onStep?.(step.name, (performance.now() - start) / 1000);
    if (result.next === 'error') return { ...(requeueAfterMs !== undefined ? { requeueAfterMs } : {}), failure: { step: step.name, error: result.error } };
    if (result.next === 'requeueAfter') requeueAfterMs = Math.min(requeueAfterMs ?? Infinity, result.ms);
  }
  return requeueAfterMs !== undefined ? { requeueAfterMs } : {};
}

/** The error a failed round ends with, for the work queue's back-off and the log: the step, and the step's error as its cause. */
export class StepError extends TopologyError {
  readonly step: string;
  constructor(failure: StepFailure) {
    // The cause's message follows this one wherever the error is logged (the logger appends causes).
    super(failure.error.code, `reconcile step ${failure.step} failed`, { cause: failure.error });
    this.name = 'StepError';
    this.step = failure.step;
  }
}
