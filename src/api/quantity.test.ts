import { describe, expect, it } from 'vitest';
import { quantity, quantityToNumber } from './quantity.ts';

describe('quantityToNumber', () => {
  it.each([
    ['8Gi', 8 * 2 ** 30],
    ['512Mi', 512 * 2 ** 20],
    ['1.5Gi', 1.5 * 2 ** 30],
    ['2G', 2e9],
    ['1k', 1000],
    ['100m', 1],
    ['1e3', 1000],
    ['1000', 1000],
    [4096, 4096],
  ] as const)('%s is %d', (q, n) => {
    expect(quantity.safeParse(q).success).toBe(true);
    expect(quantityToNumber(q)).toBe(n);
  });

  it.each(['8 GB', 'Gi', '8gi', ''])('refuses %j', (q) => {
    expect(quantity.safeParse(q).success).toBe(false);
    expect(() => quantityToNumber(q)).toThrow(expect.objectContaining({ code: 'ETOP_QUANTITY' }));
  });
});
