import { InvalidSpecError } from '../errors.ts';
import { etcdTopologySchema, type EtcdTopology } from './etcd-topology.ts';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

/** The value at a path in an object, for "got ..." in messages. */
function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  return path.reduce<unknown>((v, k) => (isObject(v) ? v[k as string] : undefined), raw);
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * Parses an EtcdTopology as read from the API server. One the CRD's schema let through but this
 * operator cannot read (an older CRD, an object written around the schema) is an InvalidSpecError
 * naming the field, what it holds and what is accepted. A status the operator cannot read is dropped,
 * not refused: the operator writes status itself and will write a new one.
 */
export function parseTopology(raw: unknown): EtcdTopology {
  const parsed = etcdTopologySchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues;
  if (isObject(raw) && issues.every((i) => i.path[0] === 'status')) {
    const withoutStatus = etcdTopologySchema.safeParse({ ...raw, status: undefined });
    if (withoutStatus.success) return withoutStatus.data;
  }
  const where = (path: readonly PropertyKey[]): string => (path.length === 0 ? '(the object)' : path.map(String).join('.'));
  const listed = issues.slice(0, 3).map((i) => `${where(i.path)}: ${i.message} (got ${describe(valueAt(raw, i.path))})`);
  const more = issues.length > 3 ? `; and ${issues.length - 3} more` : '';
  const metadata = isObject(raw) && isObject(raw['metadata']) ? raw['metadata'] : {};
  const text = (v: unknown): string => (typeof v === 'string' ? v : '?');
  const name = `${text(metadata['namespace'])}/${text(metadata['name'])}`;
  throw new InvalidSpecError(where(issues[0]?.path ?? []), `EtcdTopology ${name} cannot be read by this operator: ${listed.join('; ')}${more}`);
}
