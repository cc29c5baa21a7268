import { Cron } from 'croner';

/**
 * The one cron dialect of the API (spec.backup.schedule, spec.maintenance.defragmentation.window):
 * five fields (minute hour day-of-month month day-of-week), evaluated in UTC. Numbers, `*`, ranges,
 * lists, steps and JAN-DEC / SUN-SAT names; no seconds, no years, no `@hourly` shorthands, so that
 * what the API server's pattern admits and what the operator evaluates are the same language.
 */
export const CRON_FIELD = '(\\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?';
/** The admission pattern of a cron field list: five space-separated fields of CRON_FIELD items. */
export const CRON_PATTERN = `^\\s*${Array.from({ length: 5 }, () => `${CRON_FIELD}(,${CRON_FIELD})*`).join('\\s+')}\\s*$`;

function compile(expression: string): Cron {
  // Paused: croner never schedules anything here, it only answers questions about the expression.
  return new Cron(expression, { timezone: 'UTC', mode: '5-part', paused: true });
}

/** Why a cron expression is refused, or undefined when it is a valid 5-field UTC expression. */
export function cronError(expression: string): string | undefined {
  if (!new RegExp(CRON_PATTERN).test(expression)) return `"${expression}" is not five cron fields (minute hour day-of-month month day-of-week)`;
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
