import { describe, expect, it } from 'vitest';
import { mayAcquire } from './leader-election.ts';

const at = (s: string): Date => new Date(`2026-01-01T00:00:${s}Z`);

describe('mayAcquire', () => {
  it.each([
    ['no lease yet', undefined, 'a', '10', true],
    ['a released lease', { spec: { leaseDurationSeconds: 15 } }, 'a', '10', true],
    ['our own lease', { spec: { holderIdentity: 'a', renewTime: at('05'), leaseDurationSeconds: 15 } }, 'a', '10', true],
    ["another's fresh lease", { spec: { holderIdentity: 'b', renewTime: at('05'), leaseDurationSeconds: 15 } }, 'a', '10', false],
    ["another's lease at its last valid instant", { spec: { holderIdentity: 'b', renewTime: at('05'), leaseDurationSeconds: 15 } }, 'a', '20', false],
    ["another's expired lease", { spec: { holderIdentity: 'b', renewTime: at('05'), leaseDurationSeconds: 15 } }, 'a', '21', true],
  ])('%s → %s', (_what, lease, identity, now, expected) => {
    expect(mayAcquire(lease, identity, at(now))).toBe(expected);
  });
});
