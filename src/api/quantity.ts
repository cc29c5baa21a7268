import { z } from 'zod';
import { TopologyError } from '../errors.ts';

/** The Kubernetes resource.Quantity string syntax, as the core API's OpenAPI schema states it. */
export const QUANTITY_PATTERN = '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$';

/**
 * A Kubernetes quantity ("8Gi", "500m", 1024): an integer or a string, exactly as core types accept it.
 * The CRD generator turns the meta marker into the structural int-or-string form.
 */
export const quantity = z
  .union([z.int(), z.string().regex(new RegExp(QUANTITY_PATTERN), 'expected a quantity such as 8Gi, 512Mi or 1000')])
  .meta({ 'x-kubernetes-int-or-string': true });

export type Quantity = z.infer<typeof quantity>;

const multipliers: Record<string, number> = {
  '': 1,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
  n: 1e-9, u: 1e-6, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
};

/** Converts a quantity to a whole number of units (bytes for sizes), rounding up as Kubernetes does. */
export function quantityToNumber(q: Quantity): number {
  if (typeof q === 'number') return q;
  const m = /^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:([eE][+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))|([KMGTPE]i|[numkMGTPE]))?$/.exec(q);
  if (m === null) throw new TopologyError('ETOP_QUANTITY', `"${q}" is not a Kubernetes quantity such as 8Gi, 512Mi or 1000`);
  const base = Number(m[1]);
  const value = m[2] !== undefined ? base * 10 ** Number(m[2].slice(1)) : base * multipliers[m[3] ?? '']!;
  return Math.ceil(value);
}
