import { TopologyError } from '../errors.ts';

/** A JSON Schema / OpenAPI v3 node as z.toJSONSchema emits it and as a CRD stores it. */
export type SchemaNode = { [key: string]: unknown };

const SAFE_INT = Number.MAX_SAFE_INTEGER;

/**
 * Rewrites a zod-emitted OpenAPI 3.0 schema into a Kubernetes structural schema: no $ref, no
 * additionalProperties:false beside properties, no propertyNames, int-or-string in the one form the
 * API server accepts, no JavaScript-only integer bounds, date-times by format rather than a huge regex.
 */
export function toStructural(node: SchemaNode, path = '$'): SchemaNode {
  if ('$ref' in node || '$defs' in node) throw new TopologyError('ETOP_CRD_SCHEMA', `${path}: a $ref is not structural; inline the schema`);
  if (node['x-kubernetes-int-or-string'] === true) return intOrString(node);
  const out: SchemaNode = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === '$schema' || key === 'propertyNames') continue;
    if (key === 'additionalProperties' && value === false) continue;
    if ((key === 'minimum' && value === -SAFE_INT) || (key === 'maximum' && value === SAFE_INT)) continue;
    if (key === 'pattern' && node['format'] === 'date-time') continue;
    if (key === 'const') {
      out['enum'] = [value];
      continue;
    }
    if (key === 'properties') {
      out[key] = Object.fromEntries(Object.entries(value as Record<string, SchemaNode>).map(([k, v]) => [k, toStructural(v, `${path}.${k}`)]));
    } else if ((key === 'items' || key === 'additionalProperties') && typeof value === 'object' && value !== null) {
      out[key] = toStructural(value as SchemaNode, `${path}.${key}`);
    } else if (key === 'anyOf' || key === 'oneOf' || key === 'allOf') {
      throw new TopologyError('ETOP_CRD_SCHEMA', `${path}: ${key} is only structural for int-or-string; model the field without a union`);
    } else {
      out[key] = value;
    }
  }
  return out;
}

/** The form controller-gen emits for resource.Quantity: both types, the string pattern one level up. */
function intOrString(node: SchemaNode): SchemaNode {
  const branches = (node['anyOf'] ?? []) as SchemaNode[];
  const pattern = branches.find((b) => b['type'] === 'string')?.['pattern'];
  const out: SchemaNode = {};
  if (node['description'] !== undefined) out['description'] = node['description'];
  if (node['default'] !== undefined) out['default'] = node['default'];
  out['anyOf'] = [{ type: 'integer' }, { type: 'string' }];
  if (pattern !== undefined) out['pattern'] = pattern;
  out['x-kubernetes-int-or-string'] = true;
  return out;
}
