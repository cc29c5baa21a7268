import { describe, expect, it } from 'vitest';
import { caRenewAt, caRotationStep, type CaRotationFacts } from './ca-rotation.ts';

const at = (s: string): Date => new Date(`${s}Z`);
// A CA valid for three days: rotation by age is due after two.
const signing = { notBefore: at('2026-01-01T00:00:00'), notAfter: at('2026-01-04T00:00:00') };
const base: CaRotationFacts = { now: at('2026-01-02T23:59:59'), signing, phase: undefined, membersNotOnBundle: [], proxiesNotOnBundle: [], notOnSigningCa: [] };

describe('caRotationStep', () => {
  const cases: { name: string; facts: Partial<CaRotationFacts>; action: string; reason?: string; trigger?: string; to?: string; says?: string }[] = [
    { name: 'a young CA with no request: nothing', facts: {}, action: 'None' },
    { name: 'an annotation already answered: nothing', facts: { requested: 'a', answered: 'a' }, action: 'None' },
    { name: 'a new annotation value: start on demand', facts: { requested: 'b', answered: 'a' }, action: 'Start', trigger: 'OnDemand', says: '"b"' },
    { name: 'a first annotation value: start on demand', facts: { requested: 'now' }, action: 'Start', trigger: 'OnDemand' },
    { name: 'the CA at 2/3 of its lifetime: start by age', facts: { now: at('2026-01-03T00:00:00') }, action: 'Start', trigger: 'CAAging', says: '2026-01-04' },
    {
      name: 'Trusting: a member still on the old bundle holds the new CA back',
      facts: { phase: 'Trusting', membersNotOnBundle: ['demo-member-0'] },
      action: 'Wait',
      reason: 'WaitingForTrust',
      says: 'member demo-member-0 to run with the trust bundle before the new CA signs any certificate',
    },
    { name: 'Trusting: a proxy not reloaded yet holds it back', facts: { phase: 'Trusting', proxiesNotOnBundle: ['worker-1'] }, action: 'Wait', reason: 'WaitingForTrust', says: 'proxy worker-1' },
    { name: 'Trusting: everyone trusts both: the new CA signs', facts: { phase: 'Trusting' }, action: 'Advance', to: 'Reissuing' },
    { name: 'Trusting: a new request while rotating does not start another', facts: { phase: 'Trusting', requested: 'c', answered: 'b' }, action: 'Advance', to: 'Reissuing' },
    {
      name: 'Reissuing: a port still serving an old certificate holds the old CA in the bundle',
      facts: { phase: 'Reissuing', notOnSigningCa: ['demo-member-1 peer port'] },
      action: 'Wait',
      reason: 'WaitingForNewCertificates',
      says: 'demo-member-1 peer port',
    },
    { name: 'Reissuing: long lists are shortened', facts: { phase: 'Reissuing', notOnSigningCa: ['a', 'b', 'c', 'd', 'e', 'f'] }, action: 'Wait', says: 'a, b, c, d and 2 more' },
    { name: 'Reissuing: nothing on the old CA: it leaves the bundle', facts: { phase: 'Reissuing', membersNotOnBundle: ['ignored'] }, action: 'Advance', to: 'Retiring' },
    { name: 'Retiring: members still trusting the old CA', facts: { phase: 'Retiring', membersNotOnBundle: ['demo-member-2'] }, action: 'Wait', reason: 'WaitingForTrust', says: 'holds only the new CA' },
    { name: 'Retiring: everyone on the new bundle: done', facts: { phase: 'Retiring' }, action: 'Finish' },
  ];
  it.each(cases)('$name', ({ facts, action, reason, trigger, to, says }) => {
    const d = caRotationStep({ ...base, ...facts });
    expect(d.action).toBe(action);
    if (reason !== undefined) expect(d).toMatchObject({ reason });
    if (trigger !== undefined) expect(d).toMatchObject({ trigger });
    if (to !== undefined) expect(d).toMatchObject({ to });
    if (says !== undefined) expect((d as { message: string }).message).toContain(says);
  });

  it('says when the next rotation by age is due', () => {
    expect(caRotationStep(base)).toEqual({ action: 'None', renewAt: caRenewAt(signing) });
    expect(caRenewAt(signing).toISOString()).toBe('2026-01-03T00:00:00.000Z');
  });
});
