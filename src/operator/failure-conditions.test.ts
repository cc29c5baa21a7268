import { describe, expect, it } from 'vitest';
import { invalidSpecConditions, stepFailedConditions } from './failure-conditions.ts';

describe('stepFailedConditions', () => {
  const failure = { step: 'apply', error: { code: 'ETOP_KUBE_INVALID' as const, message: 'apply Service ns/x-client failed: the API server answered 422 Invalid: denied: no Services here' } };

  it('makes Degraded True and Progressing False with reason ReconcileFailed, naming the step, the object, the answer and what to do', () => {
    const [degraded, progressing] = stepFailedConditions(failure);
    expect(degraded).toEqual({
      type: 'Degraded',
      status: 'True',
      reason: 'ReconcileFailed',
      message:
        'reconcile step apply failed (ETOP_KUBE_INVALID): apply Service ns/x-client failed: the API server answered 422 Invalid: denied: no Services here; ' +
        'the API server, an admission policy or a webhook refused the object; its answer above says which and why; retrying with back-off',
    });
    expect(progressing).toEqual({ ...degraded, type: 'Progressing', status: 'False' });
  });

  it('keeps a fault the observation found as well, after the failure', () => {
    const [degraded] = stepFailedConditions(failure, { type: 'Degraded', status: 'True', reason: 'MemberUnhealthy', message: 'x-member-2 not healthy or not caught up' });
    expect(degraded!.message).toMatch(/; retrying with back-off; also MemberUnhealthy: x-member-2 not healthy or not caught up$/);
    const [fine] = stepFailedConditions(failure, { type: 'Degraded', status: 'False', reason: 'AsExpected', message: 'no fault observed' });
    expect(fine!.message).not.toContain('also');
  });

  it("does not repeat an earlier round's failure kept by a round that failed before observing", () => {
    const [first] = stepFailedConditions(failure);
    const [again] = stepFailedConditions(failure, first);
    expect(again).toEqual(first);
  });

  it('a code without advice just says it retries', () => {
    const [degraded] = stepFailedConditions({ step: 'observe', error: { code: 'ETOP_INTERNAL', message: 'unexpected error: boom' } });
    expect(degraded!.message).toBe('reconcile step observe failed (ETOP_INTERNAL): unexpected error: boom; retrying with back-off');
  });
});

describe('invalidSpecConditions', () => {
  it('makes Degraded True and Progressing False with reason InvalidSpec and says nothing changes', () => {
    expect(invalidSpecConditions('spec.members.count: must be 1, 3, 5 or 7 (got 4)')).toEqual([
      { type: 'Degraded', status: 'True', reason: 'InvalidSpec', message: 'spec.members.count: must be 1, 3, 5 or 7 (got 4); the operator changes nothing for this topology until the object is fixed' },
      { type: 'Progressing', status: 'False', reason: 'InvalidSpec', message: 'spec.members.count: must be 1, 3, 5 or 7 (got 4); the operator changes nothing for this topology until the object is fixed' },
    ]);
  });
});
