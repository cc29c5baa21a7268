// Quantiles of what a Prometheus histogram observed between two scrapes, for the benchmarks' reports.

/** Count and the bucket bounds (upper bounds, in the histogram's unit) of p50 and p99. */
export interface HistogramFigures {
  count: number;
  p50: number;
  p99: number;
}

/** From two snapshots of one histogram's cumulative buckets (upper bound -> count). */
export function between(before: ReadonlyMap<number, number>, after: ReadonlyMap<number, number>): HistogramFigures {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const cumulative = bounds.map((le) => (after.get(le) ?? 0) - (before.get(le) ?? 0));
  const count = cumulative.at(-1) ?? 0;
  const bound = (q: number): number => bounds[cumulative.findIndex((c) => c >= q * count)] ?? NaN;
  return { count, p50: bound(0.5), p99: bound(0.99) };
}
