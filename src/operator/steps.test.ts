import { describe, expect, it } from 'vitest';
import { KubeApiError, TopologyError } from '../errors.ts';
import { coded, CONTINUE, requeueAfter, runSteps, StepError, type NamedStep, type StepResult } from './steps.ts';

const step = (name: string, result: StepResult | (() => never), ran: string[]): NamedStep<unknown> => ({
  name,
  run: () => {
    ran.push(name);
    return typeof result === 'function' ? Promise.resolve().then(result) : Promise.resolve(result);
  },
});

describe('runSteps', () => {
  it('runs every step in order and keeps the earliest requeue asked for', async () => {
    const ran: string[] = [];
    const outcome = await runSteps([step('a', requeueAfter(5000), ran), step('b', CONTINUE, ran), step('c', requeueAfter(1000), ran), step('d', requeueAfter(undefined), ran)], {});
    expect(ran).toEqual(['a', 'b', 'c', 'd']);
    expect(outcome).toEqual({ requeueAfterMs: 1000 });
  });

  it('stops at the step that fails and names it', async () => {
    const ran: string[] = [];
    const error = new TopologyError('ETOP_KUBE_INVALID', 'refused');
    const outcome = await runSteps([step('a', requeueAfter(3000), ran), step('apply', { next: 'error', error }, ran), step('c', CONTINUE, ran)], {});
    expect(ran).toEqual(['a', 'apply']);
    expect(outcome).toEqual({ requeueAfterMs: 3000, failure: { step: 'apply', error } });
  });

  it('starts no step once acting is aborted, and says which it stopped before', async () => {
    const ran: string[] = [];
    const acting = new AbortController();
    const lose: NamedStep<unknown> = { name: 'plan', run: () => { ran.push('plan'); acting.abort(); return Promise.resolve(CONTINUE); } };
    const outcome = await runSteps([step('observe', CONTINUE, ran), lose, step('perform', CONTINUE, ran), step('backups', CONTINUE, ran)], {}, { acting: acting.signal });
    expect(ran).toEqual(['observe', 'plan']);
    expect(outcome).toEqual({ haltedBefore: 'perform' });
  });

  it('reports how long each step that ran took, the failed one included', async () => {
    const timed: [string, number][] = [];
    const slow: NamedStep<unknown> = { name: 'slow', run: () => new Promise((r) => setTimeout(() => r(CONTINUE), 30)) };
    const error = new TopologyError('ETOP_KUBE_INVALID', 'refused');
    await runSteps([slow, step('apply', { next: 'error', error }, []), step('never', CONTINUE, [])], {}, { onStep: (name, seconds) => timed.push([name, seconds]) });
    expect(timed.map(([name]) => name)).toEqual(['slow', 'apply']);
    expect(timed[0]![1]).toBeGreaterThanOrEqual(0.025);
    expect(timed[1]![1]).toBeLessThan(timed[0]![1]);
  });

  it('a step that throws fails with its error, coded', async () => {
    const ran: string[] = [];
    const outcome = await runSteps([step('tls', () => { throw Object.assign(new Error('HTTP-Code: 403'), { code: 403, body: '{"kind":"Status","reason":"Forbidden","message":"secrets is forbidden"}' }); }, ran)], {});
    expect(outcome.failure?.step).toBe('tls');
    expect(outcome.failure?.error).toBeInstanceOf(KubeApiError);
    expect(outcome.failure?.error).toMatchObject({ code: 'ETOP_KUBE_FORBIDDEN', apiMessage: 'secrets is forbidden' });
  });
});

describe('coded', () => {
  it('keeps our errors, wraps a Kubernetes client error, and calls anything else internal', () => {
    const ours = new TopologyError('ETOP_RENDER', 'no uid');
    expect(coded(ours)).toBe(ours);
    expect(coded(Object.assign(new Error('x'), { code: 500, body: '' }))).toMatchObject({ code: 'ETOP_KUBE_UNAVAILABLE', status: 500 });
    const bug = new TypeError("Cannot read properties of undefined (reading 'name')");
    expect(coded(bug)).toMatchObject({ code: 'ETOP_INTERNAL', message: "unexpected error: Cannot read properties of undefined (reading 'name')", cause: bug });
  });
});

describe('StepError', () => {
  it('carries the step, the code of its cause and the cause itself', () => {
    const cause = new TopologyError('ETOP_KUBE_INVALID', 'apply Service ns/x failed: denied');
    const err = new StepError({ step: 'apply', error: cause });
    expect(err).toMatchObject({ step: 'apply', code: 'ETOP_KUBE_INVALID', message: 'reconcile step apply failed', cause });
    expect(err).toBeInstanceOf(TopologyError);
  });
});
