import { describe, expect, it } from 'vitest';
import type { KubernetesObject } from '@kubernetes/client-node';
import { APPLIED_HASH_ANNOTATION, containedIn, desiredHash, needsApply, withAppliedHash } from './apply.ts';

describe('containedIn', () => {
  it.each([
    [{ a: 1 }, { a: 1, b: 2 }, true],
    [{ a: { b: [1, { c: 2 }] } }, { a: { b: [1, { c: 2, d: 3 }] } }, true],
    [{ a: [1, 2] }, { a: [1, 2, 3] }, false],
    [{ a: 1 }, { a: '1' }, false],
    [{ a: { b: 1 } }, { a: null }, false],
    [{ a: undefined }, {}, true],
    [{ hostNetwork: false, tolerations: [], resources: {}, n: 0, s: '' }, {}, true],
    [{ hostNetwork: true }, {}, false],
    [{ tolerations: [{ key: 'k' }] }, {}, false],
  ])('%j in %j is %s', (desired, live, expected) => expect(containedIn(desired, live)).toBe(expected));
});

describe('needsApply', () => {
  const desired = withAppliedHash({ apiVersion: 'v1', kind: 'Service', metadata: { name: 's', labels: { a: 'b' } }, spec: { ports: [{ port: 2379 }] } });

  it('is false for a live object that carries the same hash and fields, server defaults included', () => {
    const live = { ...desired, metadata: { ...desired.metadata, resourceVersion: '7', uid: 'u' }, spec: { ports: [{ port: 2379, protocol: 'TCP' }], type: 'ClusterIP' } };
    expect(needsApply(desired, live)).toBe(false);
  });

  it('is true when the object is missing, the hash differs, a field drifted, or a label was removed', () => {
    expect(needsApply(desired, undefined)).toBe(true);
    expect(needsApply(desired, { ...desired, metadata: { ...desired.metadata, annotations: { [APPLIED_HASH_ANNOTATION]: 'old' } } })).toBe(true);
    expect(needsApply(desired, { ...desired, spec: { ports: [{ port: 2380 }] } } as KubernetesObject)).toBe(true);
    expect(needsApply(desired, { ...desired, metadata: { ...desired.metadata, labels: {} } })).toBe(true);
  });

  it('hashes independently of key order', () => {
    expect(desiredHash({ a: 1, b: { c: 2, d: 3 } })).toBe(desiredHash({ b: { d: 3, c: 2 }, a: 1 }));
    expect(desiredHash({ a: 1 })).not.toBe(desiredHash({ a: 2 }));
  });
});
