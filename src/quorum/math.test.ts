import { describe, expect, it } from 'vitest';
import { disruptionsAllowed, effectiveMaxUnavailable, faultTolerance, minHealthyVoters, pdbMinAvailable, quorumSize } from './math.ts';

describe('quorum math (the fault-tolerance table of the source documents)', () => {
  it.each([
    [1, 1, 0],
    [3, 2, 1],
    [4, 3, 1],
    [5, 3, 2],
    [6, 4, 2],
    [7, 4, 3],
  ])('%d members: quorum %d, tolerates %d failures', (n, quorum, tolerance) => {
    expect(quorumSize(n)).toBe(quorum);
    expect(faultTolerance(n)).toBe(tolerance);
  });
});

describe('disruption budget', () => {
  it.each([
    // count, maxUnavailable, effective, min healthy voters
    [1, undefined, 0, 1],
    [1, 0, 0, 1],
    [3, undefined, 1, 2],
    [3, 1, 1, 2],
    [3, 0, 0, 3],
    [5, undefined, 1, 4],
    [5, 2, 2, 3],
    [7, 3, 3, 4],
    [7, 9, 3, 4], // clamped: never above the fault tolerance even if admission were bypassed
  ])('count %d maxUnavailable %s: effective %d, min healthy %d', (count, maxUnavailable, effective, min) => {
    expect(effectiveMaxUnavailable({ count, maxUnavailable })).toBe(effective);
    expect(minHealthyVoters({ count, maxUnavailable })).toBe(min);
    expect(pdbMinAvailable({ count, maxUnavailable })).toBe(min);
  });

  it.each([
    // healthy voters, count, maxUnavailable, voters now, allowed
    [3, 3, undefined, 3, 1],
    [2, 3, undefined, 3, 0],
    [1, 3, undefined, 3, 0],
    [1, 1, undefined, 1, 0],
    [5, 5, 2, 5, 2],
    [4, 5, 2, 5, 1],
    [3, 5, 2, 5, 0],
    [5, 5, undefined, 5, 1],
    [7, 7, 3, 7, 3],
    // scaling in from 5 to 3: the 5 voters' quorum (3) rules, not 3 - 1
    [5, 3, 1, 5, 2],
    [3, 3, 1, 5, 0],
    // scaling out from 3 to 5 with 4 voters: count - maxUnavailable = 4 rules
    [4, 5, 1, 4, 0],
  ])('%d healthy of count %d (maxUnavailable %s, %d voters) allows %d', (healthy, count, maxUnavailable, voters, allowed) => {
    expect(disruptionsAllowed(healthy, { count, maxUnavailable }, voters)).toBe(allowed);
  });

  it('PDB minAvailable follows the voters etcd has while scaling in', () => {
    expect(pdbMinAvailable({ count: 3, maxUnavailable: 1 }, 5)).toBe(3);
  });
});
