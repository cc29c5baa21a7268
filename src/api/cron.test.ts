import { describe, expect, it } from 'vitest';
import { cronError, cronMatches, nextCronRun } from './cron.ts';

describe('cron (5 fields, UTC)', () => {
  it.each([
    ['0 * * * *', undefined],
    ['*/15 1-4 * JAN-MAR MON-FRI', undefined],
    ['61 * * * *', 'minute 0-59'],
    ['0 24 * * *', 'hour 0-23'],
    ['* * * *', 'is not five cron fields'],
    ['0 0 * * * *', 'is not five cron fields'],
    ['@hourly', 'is not five cron fields'],
    ['* * 30 2 *', 'never matches a date'],
  ])('%j: %s', (expr, error) => {
    const got = cronError(expr);
    if (error === undefined) expect(got).toBeUndefined();
    else expect(got).toContain(error);
  });

  it('names the next run strictly after a time, in UTC', () => {
    expect(nextCronRun('0 * * * *', new Date('2026-03-01T10:00:00Z'))?.toISOString()).toBe('2026-03-01T11:00:00.000Z');
    expect(nextCronRun('0 * * * *', new Date('2026-03-01T10:59:59Z'))?.toISOString()).toBe('2026-03-01T11:00:00.000Z');
    expect(nextCronRun('30 2 * * SUN', new Date('2026-03-02T00:00:00Z'))?.toISOString()).toBe('2026-03-08T02:30:00.000Z');
  });

  it('matches every second of a minute in the window and none outside it', () => {
    expect(cronMatches('* 2-4 * * *', new Date('2026-03-01T02:00:00Z'))).toBe(true);
    expect(cronMatches('* 2-4 * * *', new Date('2026-03-01T04:59:59.999Z'))).toBe(true);
    expect(cronMatches('* 2-4 * * *', new Date('2026-03-01T05:00:00Z'))).toBe(false);
    expect(cronMatches('* 2-4 * * *', new Date('2026-03-01T01:59:59Z'))).toBe(false);
  });
});
