import { describe, expect, it } from 'vitest';
import { compareText } from './text-order.ts';

describe('compareText', () => {
  it('orders by code unit: digits before letters, upper case before lower, a prefix first', () => {
    expect(['main-b', 'main-10', 'main-9', 'Main-0', 'main-1', 'main'].sort(compareText)).toEqual(['Main-0', 'main', 'main-1', 'main-10', 'main-9', 'main-b']);
  });

  it('is 0 only for equal strings, and antisymmetric', () => {
    expect(compareText('a', 'a')).toBe(0);
    expect(compareText('a', 'b')).toBe(-1);
    expect(compareText('b', 'a')).toBe(1);
  });

  it('orders RFC 3339 timestamps of one format in time order', () => {
    expect(['2026-12-06T10:00:00Z', '2026-01-31T23:59:59Z', '2026-12-06T09:59:59Z'].sort(compareText)).toEqual(['2026-01-31T23:59:59Z', '2026-12-06T09:59:59Z', '2026-12-06T10:00:00Z']);
  });
});
