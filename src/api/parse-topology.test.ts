import { describe, expect, it } from 'vitest';
import { InvalidSpecError } from '../errors.ts';
import { parseTopology } from './parse-topology.ts';

const object = (spec: unknown, status?: unknown): Record<string, unknown> => ({
  apiVersion: 'etcdtopology.io/v1alpha1',
  kind: 'EtcdTopology',
  metadata: { name: 'main', namespace: 'etcd', uid: 'u', generation: 2 },
  spec,
  ...(status !== undefined ? { status } : {}),
});

function refusal(raw: unknown): InvalidSpecError {
  try {
    parseTopology(raw);
  } catch (err) {
    if (err instanceof InvalidSpecError) return err;
    throw err;
  }
  throw new Error('parsed');
}

describe('parseTopology', () => {
  it('parses a valid object with its defaults', () => {
    expect(parseTopology(object({ members: { count: 1 } })).spec.members.count).toBe(1);
  });

  it('names the field, what it holds and what is accepted', () => {
    const err = refusal(object({ members: { count: 4 } }));
    expect(err).toMatchObject({ code: 'ETOP_INVALID_SPEC', field: 'spec.members.count' });
    expect(err.message).toMatch(/^EtcdTopology etcd\/main cannot be read by this operator: spec\.members\.count: .*1, 3, 5 or 7.* \(got 4\)$/);
  });

  it('a field of the wrong type, as an older CRD or a hand edit lets through', () => {
    const err = refusal(object({ members: { count: 3 }, proxy: { mode: 'writeonly' } }));
    expect(err.field).toBe('spec.proxy.mode');
    expect(err.message).toContain('spec.proxy.mode: ');
    expect(err.message).toContain('(got "writeonly")');
  });

  it('lists at most three problems and counts the rest', () => {
    const err = refusal(object({ members: { count: 'three', quotaBackendBytes: 'lots', storage: { size: 'big' } }, proxy: { port: 0, mode: 'x' } }));
    expect(err.message).toMatch(/; and \d+ more$/);
  });

  it('drops a status it cannot read rather than refusing the object: the operator writes a new one', () => {
    const t = parseTopology(object({ members: { count: 3 } }, { conditions: [{ type: 'Available', status: 'Maybe' }] }));
    expect(t.status).toBeUndefined();
    expect(t.spec.members.count).toBe(3);
  });

  it('an object without its kind is refused naming the field', () => {
    expect(refusal({ ...object({}), kind: 'Other' }).field).toBe('kind');
  });
});
