import { Cron } from 'croner';

/**
 * The one cron dialect of the API (spec.backup.schedule, spec.maintenance.defragmentation.window):
 * five fields (minute hour day-of-month month day-of-week), evaluated in UTC. Numbers, `*`, ranges,
 * lists, steps and JAN-DEC / SUN-SAT names; no seconds, no years, no `@hourly` shorthands, so that
 * what the API server's pattern admits and what the operator evaluates are the same language.
 */
const cronField = (value: string): string => {
  const item = `([*]|${value}(-${value})?)(/[1-9][0-9]*)?`;
  return `${item}(,${item})*`;
};
const MONTHS = 'JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC';
const DAYS = 'SUN|MON|TUE|WED|THU|FRI|SAT';
const FIELDS = [
  cronField('([0-5]?[0-9])'),
  cronField('([01]?[0-9]|2[0-3])'),
  cronField('(0?[1-9]|[12][0-9]|3[01])'),
  cronField(`(0?[1-9]|1[0-2]|${MONTHS})`),
  cronField(`([0-7]|${DAYS})`),
].join('[ ]+');
/**
 * The admission pattern (RE2, for CEL): five fields with their value ranges (minute 0-59, hour 0-23,
 * day of month 1-31, month 1-12 or JAN-DEC, day of week 0-7 or SUN-SAT). No backslashes, so CEL needs
 * no escaping, and case-insensitive names.
 */
export const CRON_PATTERN = `^(?i)[ ]*${FIELDS}[ ]*$`;
/** The same pattern for JavaScript, which has no inline (?i). */
const CRON_REGEXP = new RegExp(`^[ ]*${FIELDS}[ ]*$`, 'i');

function compile(expression: string): Cron {
  // Paused: croner never schedules anything here, it only answers questions about the expression.
  return new Cron(expression, { timezone: 'UTC', mode: '5-part', paused: true });
}

/** Why a cron expression is refused, or undefined when it is a valid 5-field UTC expression. */
export function cronError(expression: string): string | undefined {
  if (!CRON_REGEXP.test(expression)) return `"${expression}" is not five cron fields (minute 0-59, hour 0-23, day of month 1-31, month 1-12 or JAN-DEC, day of week 0-7 or SUN-SAT)`;
  try {
    // A year is enough to reach any month and weekday combination that exists (31 February does not).
    const from = new Date(Date.UTC(2000, 0, 1));
    const next = compile(expression).nextRun(from);
    if (next === null || next.getTime() - from.getTime() > 8 * 366 * 86_400_000) return `"${expression}" never matches a date`;
    return undefined;
  } catch (err) {
    return `"${expression}" is not a valid cron expression: ${err instanceof Error ? err.message : String(err)}`;
  }
}

/** The first time strictly after `after` that the expression fires (UTC), or undefined if it never does. */
export function nextCronRun(expression: string, after: Date): Date | undefined {
  return compile(expression).nextRun(after) ?? undefined;
}

/** Whether the minute containing `at` is one the expression matches (UTC): a window is the set of minutes it matches. */
export function cronMatches(expression: string, at: Date): boolean {
  const minute = new Date(Math.floor(at.getTime() / 60_000) * 60_000);
  return compile(expression).match(minute);
}

/** What the backup policy needs of a schedule at `now`: the latest slot at or before it, the next one, and the interval. */
export function scheduleFacts(expression: string, now: Date): { latestSlot: Date | undefined; nextSlot: Date | undefined; intervalMs: number | undefined } {
  const c = compile(expression.trim());
  const latestSlot = c.previousRuns(1, new Date(now.getTime() + 1))[0];
  const [nextSlot, after] = c.nextRuns(2, now);
  const intervalMs = nextSlot && after ? after.getTime() - nextSlot.getTime() : undefined;
  return { latestSlot, nextSlot, intervalMs };
}
