import { describe, expect, it } from 'vitest';
import { newValidity, renewalDecision, type RenewalState } from './renewal.ts';

const at = (s: string): Date => new Date(`2026-01-01T${s}Z`);
// A 90-minute certificate: renewal due at 60 min (2/3), expiring soon from 81 min (the last tenth).
const times = { notBefore: at('00:00:00'), notAfter: at('01:30:00') };

describe('renewalDecision', () => {
  const cases: { now: string; state: RenewalState; renew: boolean; ready: boolean }[] = [
    { now: '00:00:00', state: 'Valid', renew: false, ready: true },
    { now: '00:59:59', state: 'Valid', renew: false, ready: true },
    { now: '01:00:00', state: 'RenewalDue', renew: true, ready: true },
    { now: '01:20:59', state: 'RenewalDue', renew: true, ready: true },
    { now: '01:21:00', state: 'ExpiringSoon', renew: true, ready: false },
    { now: '01:29:59', state: 'ExpiringSoon', renew: true, ready: false },
    { now: '01:30:00', state: 'Expired', renew: true, ready: false },
    { now: '02:00:00', state: 'Expired', renew: true, ready: false },
  ];
  it.each(cases)('at $now: $state', ({ now, state, renew, ready }) => {
    const d = renewalDecision(times, at(now));
    expect({ state: d.state, renew: d.renew, ready: d.ready }).toEqual({ state, renew, ready });
    expect(d.renewAt).toEqual(at('01:00:00'));
    expect(d.warnAt).toEqual(at('01:21:00'));
  });

  it('a certificate not valid yet is neither renewed nor ready', () => {
    const d = renewalDecision({ notBefore: at('00:10:00'), notAfter: at('01:00:00') }, at('00:05:00'));
    expect(d).toMatchObject({ state: 'NotYetValid', renew: false, ready: false });
  });
});

describe('newValidity', () => {
  it('backdates by a twentieth of the lifetime, at most five minutes', () => {
    expect(newValidity(60_000, at('00:10:00'))).toEqual({ notBefore: at('00:09:57'), notAfter: at('00:11:00') });
    expect(newValidity(2160 * 3_600_000, at('00:10:00')).notBefore).toEqual(at('00:05:00'));
  });
});
