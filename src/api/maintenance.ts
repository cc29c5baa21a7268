import { z } from 'zod';
import { CRON_PATTERN, cronError } from './cron.ts';
import { QUANTITY_PATTERN } from './quantity.ts';
import { refineWith, toValidation, type Rule } from './rules.ts';

/** Rule on spec.maintenance.defragmentation.quotaUsageAbove: a share of the quota, above 0 and at most 1. */
export const quotaUsageRule: Rule<number> = {
  rule: 'self > 0.0 && self <= 1.0',
  message:
    'maintenance.defragmentation.quotaUsageAbove must be above 0 and at most 1: it is the share of members.quotaBackendBytes ' +
    'at which a member is defragmented, such as 0.8 for 80%',
  holds: (v) => v > 0 && v <= 1,
};

/** Rule on spec.maintenance.defragmentation: minReclaimBytes is a size, never negative. */
export const minReclaimRule: Rule<{ minReclaimBytes: number | string }> = {
  rule: "!has(self.minReclaimBytes) || (type(self.minReclaimBytes) == int ? self.minReclaimBytes >= 0 : !self.minReclaimBytes.startsWith('-'))",
  message: 'maintenance.defragmentation.minReclaimBytes must be a size of zero or more, such as 64Mi or 67108864',
  fieldPath: '.minReclaimBytes',
  holds: ({ minReclaimBytes: v }) => (typeof v === 'number' ? v >= 0 : !v.startsWith('-')),
};

/** Rule on spec.maintenance.defragmentation.window: five cron fields; the operator also checks ranges and names. */
export const windowRule: Rule<string> = {
  rule: `self.matches('${CRON_PATTERN.replaceAll('\\', '\\\\')}')`,
  message:
    'maintenance.defragmentation.window must be a cron expression of five fields in UTC (minute hour day-of-month month day-of-week), ' +
    "such as '* 1-4 * * *' for 01:00-04:59 every day; defragmentation starts only in the minutes it matches",
  holds: (v) => cronError(v) === undefined,
};

const defragmentation = z
  .object({
    enabled: z.boolean().default(true).meta({ description: 'Defragment members whose database is near the quota or holds much free space, one at a time.' }),
    quotaUsageAbove: z
      .number()
      .superRefine(refineWith(quotaUsageRule))
      .default(0.8)
      .meta({
        description: 'Defragment a member once its database file reaches this share of members.quotaBackendBytes (and defragmenting frees something).',
        'x-kubernetes-validations': [toValidation(quotaUsageRule)],
      }),
    minReclaimBytes: z
      .union([z.int(), z.string().regex(new RegExp(QUANTITY_PATTERN), 'expected a quantity such as 64Mi or 67108864')])
      .meta({ 'x-kubernetes-int-or-string': true })
      .default('64Mi')
      .meta({ description: 'Also defragment a member below the quota share when at least this much (and a tenth of its file) would be freed.' }),
    window: z
      .string()
      .max(128)
      // The rule's message, and what exactly is wrong (a minute of 61, a range backwards).
      .superRefine((v, ctx) => {
        if (!windowRule.holds(v)) ctx.addIssue({ code: 'custom', message: `${windowRule.message}; ${cronError(v) ?? ''}` });
      })
      .optional()
      .meta({
        description:
          "A 5-field cron expression (UTC); a defragmentation by rule starts only in a minute it matches, e.g. '* 1-4 * * 6,0' for 01:00-04:59 on weekends. " +
          'NOSPACE recovery ignores it. Unset: any time.',
        'x-kubernetes-validations': [toValidation(windowRule)],
      }),
  })
  .superRefine(refineWith(minReclaimRule))
  .meta({ 'x-kubernetes-validations': [toValidation(minReclaimRule)] });

/** spec.maintenance: upkeep the operator performs through the planner, within the disruption budget. */
export const maintenanceSchema = z.object({
  defragmentation: defragmentation.prefault({}).meta({ description: 'Defragmentation by rule, one member at a time, followers first, the leader last after a leadership transfer.' }),
  noSpaceRecovery: z.boolean().default(true).meta({
    description: 'On a NOSPACE alarm: compact to the current revision, defragment every member one at a time, then disarm the alarm.',
  }),
});

export type Maintenance = z.infer<typeof maintenanceSchema>;
