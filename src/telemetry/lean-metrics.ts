import { createRequire } from 'node:module';
import type * as Prom from 'prom-client';

// prom-client's index loads everything it has: the Pushgateway (node:https, node:zlib), cluster
// aggregation, summaries with t-digest, and through the process CPU metric @opentelemetry/api (for
// exemplars): about 14 MiB of resident memory in a bare Node process against about 3.5 MiB for the
// registry and the three metric types (docs/bench/proxy-memory.md), and 6-7 MiB in the operator
// (docs/bench/operator-memory.md). The proxy (on every worker node) and the operator load the pieces
// they use; the metrics and their names are exactly prom-client's.
const load = createRequire(import.meta.url);
export const Registry = load('prom-client/lib/registry.js') as typeof Prom.Registry;
export const Counter = load('prom-client/lib/counter.js') as typeof Prom.Counter;
export const Gauge = load('prom-client/lib/gauge.js') as typeof Prom.Gauge;
export const Histogram = load('prom-client/lib/histogram.js') as typeof Prom.Histogram;
export type Registry = Prom.Registry;
export type Counter<T extends string = string> = Prom.Counter<T>;
export type Gauge<T extends string = string> = Prom.Gauge<T>;
export type Histogram<T extends string = string> = Prom.Histogram<T>;

type DefaultMetric = (registry: Registry, config: { prefix: string; eventLoopMonitoringPrecision: number }) => void;

// prom-client's default metrics (lib/defaultMetrics.js) but processCpuTotal, the one that loads
// @opentelemetry/api; processCpu below exposes the same three counters.
const defaults = [
  'processStartTime',
  'osMemoryHeap',
  'processOpenFileDescriptors',
  'processMaxFileDescriptors',
  'eventLoopLag',
  'processResources',
  'processHandles',
  'processRequests',
  'heapSizeAndUsed',
  'heapSpacesSizeAndUsed',
  'version',
  'gc',
];

/** A registry with prom-client's default process metrics under the prefix, without loading the whole of prom-client. */
export function createLeanRegistry(prefix: string): Registry {
  const registry = new Registry();
  const config = { prefix, eventLoopMonitoringPrecision: 10 };
  for (const name of defaults) (load(`prom-client/lib/metrics/${name}.js`) as DefaultMetric)(registry, config);
  processCpu(registry, prefix);
  return registry;
}

/** process_cpu_{user,system}_seconds_total and process_cpu_seconds_total, as prom-client's processCpuTotal without exemplars. */
function processCpu(registry: Registry, prefix: string): void {
  let last = process.cpuUsage();
  const registers = [registry];
  const user: Counter = new Counter({
    name: `${prefix}process_cpu_user_seconds_total`,
    help: 'Total user CPU time spent in seconds.',
    registers,
    // This one metric's collect sets all three, as in prom-client: it is registered first, so it runs first.
    collect() {
      const now = process.cpuUsage();
      const u = now.user - last.user;
      const s = now.system - last.system;
      last = now;
      user.inc(u / 1e6);
      system.inc(s / 1e6);
      total.inc((u + s) / 1e6);
    },
  });
  const system = new Counter({ name: `${prefix}process_cpu_system_seconds_total`, help: 'Total system CPU time spent in seconds.', registers });
  const total = new Counter({ name: `${prefix}process_cpu_seconds_total`, help: 'Total user and system CPU time spent in seconds.', registers });
}
