import { collectDefaultMetrics, Registry as FullRegistry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createLeanRegistry } from './lean-metrics.ts';

const names = async (r: { getMetricsAsJSON(): Promise<{ name: string; type: unknown }[]> }): Promise<string[]> =>
  (await r.getMetricsAsJSON()).map((m) => `${m.name} ${String(m.type)}`).sort();

describe('createLeanRegistry', () => {
  it("exposes exactly prom-client's default metrics, with the same names and types", async () => {
    const full = new FullRegistry();
    collectDefaultMetrics({ register: full, prefix: 'p_' });
    const lean = createLeanRegistry('p_');
    expect(await names(lean)).toEqual(await names(full));
  });

  it('counts the process CPU in all three counters from one collection', async () => {
    const lean = createLeanRegistry('q_');
    const end = Date.now() + 30;
    while (Date.now() < end); // some CPU to count
    const text = await lean.metrics();
    const value = (name: string): number => Number(new RegExp(`^q_${name} ([\\d.e-]+)$`, 'm').exec(text)?.[1]);
    expect(value('process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(value('process_cpu_seconds_total')).toBeCloseTo(value('process_cpu_user_seconds_total') + value('process_cpu_system_seconds_total'), 6);
  });
});
