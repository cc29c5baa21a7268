import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { renderCrdYaml } from './crd.ts';
import { specSchema } from './etcd-topology.ts';
import { minReclaimRule, quotaUsageRule, windowRule } from './maintenance.ts';

const issues = (maintenance: unknown): string[] => {
  const r = specSchema.safeParse({ maintenance });
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe('spec.maintenance', () => {
  it('defaults to defragmentation by rule at 80% of the quota or 64Mi to reclaim, any time, with NOSPACE recovery', () => {
    expect(specSchema.parse({}).maintenance).toEqual({ defragmentation: { enabled: true, quotaUsageAbove: 0.8, minReclaimBytes: '64Mi' }, noSpaceRecovery: true });
  });

  it.each([
    { name: 'quota share 1', m: { defragmentation: { quotaUsageAbove: 1 } }, errors: [] },
    { name: 'quota share 0.5, 100Mi, a window', m: { defragmentation: { quotaUsageAbove: 0.5, minReclaimBytes: '100Mi', window: '* 1-4 * * 6,0' } }, errors: [] },
    { name: 'minReclaimBytes 0 in bytes', m: { defragmentation: { minReclaimBytes: 0 } }, errors: [] },
    { name: 'disabled, no recovery', m: { defragmentation: { enabled: false }, noSpaceRecovery: false }, errors: [] },
    { name: 'quota share 0', m: { defragmentation: { quotaUsageAbove: 0 } }, errors: ['maintenance.defragmentation.quotaUsageAbove: maintenance.defragmentation.quotaUsageAbove must be above 0 and at most 1'] },
    { name: 'quota share above 1', m: { defragmentation: { quotaUsageAbove: 1.2 } }, errors: ['quotaUsageAbove must be above 0 and at most 1'] },
    { name: 'negative quota share', m: { defragmentation: { quotaUsageAbove: -0.5 } }, errors: ['quotaUsageAbove must be above 0 and at most 1'] },
    { name: 'quota share as a percentage string', m: { defragmentation: { quotaUsageAbove: '80%' } }, errors: ['quotaUsageAbove: Invalid input: expected number, received string'] },
    { name: 'negative size in bytes', m: { defragmentation: { minReclaimBytes: -1 } }, errors: ['maintenance.defragmentation.minReclaimBytes: maintenance.defragmentation.minReclaimBytes must be a size of zero or more'] },
    { name: 'negative size as a quantity', m: { defragmentation: { minReclaimBytes: '-64Mi' } }, errors: ['minReclaimBytes must be a size of zero or more'] },
    { name: 'size that is not a quantity', m: { defragmentation: { minReclaimBytes: '64 MB' } }, errors: ['minReclaimBytes: expected a quantity such as 64Mi or 67108864'] },
    { name: 'window of four fields', m: { defragmentation: { window: '* 1-4 * *' } }, errors: ['maintenance.defragmentation.window: maintenance.defragmentation.window must be a cron expression of five fields in UTC'] },
    { name: 'window with minute 61', m: { defragmentation: { window: '61 * * * *' } }, errors: ['minute 0-59'] },
    { name: 'window with a backward range', m: { defragmentation: { window: '* 5-3 * * *' } }, errors: ['From value is larger than to value'] },
    { name: 'window that never matches', m: { defragmentation: { window: '* * 31 2 *' } }, errors: ['never matches a date'] },
    { name: 'window shorthand', m: { defragmentation: { window: '@daily' } }, errors: ['is not five cron fields'] },
  ])('$name', ({ m, errors }) => {
    const got = issues(m);
    expect(got).toHaveLength(errors.length);
    errors.forEach((e, i) => expect(got[i]).toContain(e));
  });

  it.each([
    [0.8, true],
    [1, true],
    [0, false],
    [1.0001, false],
  ])('quotaUsageAbove %d holds %s', (v, ok) => expect(quotaUsageRule.holds(v)).toBe(ok));

  it('puts every rule into the generated CRD at its field', () => {
    const crd = parse(renderCrdYaml()) as { spec: { versions: { schema: { openAPIV3Schema: { properties: { spec: { properties: Record<string, Record<string, unknown>> } } } } }[] } };
    const m = crd.spec.versions[0]!.schema.openAPIV3Schema.properties.spec.properties['maintenance'] as { properties: { defragmentation: { properties: Record<string, { 'x-kubernetes-validations'?: { rule: string }[] }>; 'x-kubernetes-validations': { rule: string }[] } } };
    const d = m.properties.defragmentation;
    expect(d['x-kubernetes-validations'].map((v) => v.rule)).toContain(minReclaimRule.rule);
    expect(d.properties['quotaUsageAbove']!['x-kubernetes-validations']!.map((v) => v.rule)).toEqual([quotaUsageRule.rule]);
    expect(d.properties['window']!['x-kubernetes-validations']!.map((v) => v.rule)).toEqual([windowRule.rule]);
  });

  it('the window CEL pattern admits exactly the five-field syntax the operator checks', () => {
    // The CEL rule is the pattern; its JavaScript twin must agree on syntax (ranges and names the operator checks further).
    // RE2's inline (?i) is JavaScript's i flag.
    const pattern = new RegExp(/^self\.matches\('(.*)'\)$/.exec(windowRule.rule)![1]!.replaceAll('\\\\', '\\').replace('(?i)', ''), 'i');
    for (const ok of ['0 * * * *', '*/15 1-4 * JAN-MAR MON,FRI', ' 5 4 * * 0 ']) expect(pattern.test(ok), ok).toBe(true);
    for (const bad of ['* * * *', '@hourly', '0 0 * * * *', '0 0 * * ? ', '1;2 * * * *']) expect(pattern.test(bad), bad).toBe(false);
  });
});
