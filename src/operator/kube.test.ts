import { describe, expect, it } from 'vitest';
import { KubeApiError, TopologyError } from '../errors.ts';
import { describeObject, kubeApiError, kubeErrorCode } from './kube.ts';

const apiException = (code: number, body: unknown): Error => Object.assign(new Error(`HTTP-Code: ${code}\nMessage: Unsuccessful HTTP Request\nBody: ...\nHeaders: {...}`), { code, body });
const request = { verb: 'apply', object: describeObject('StatefulSet', 'default', 'main-member') };

describe('kubeApiError', () => {
  it("names the request and quotes the API server's Status (as a JSON string, the way client-node's object API passes it)", () => {
    const body = JSON.stringify({
      kind: 'Status',
      status: 'Failure',
      reason: 'Invalid',
      code: 422,
      message: 'statefulsets.apps "main-member" is forbidden: ValidatingAdmissionPolicy \'deny\' with binding \'deny\' denied request: no members here',
    });
    const err = kubeApiError(apiException(422, body), request);
    expect(err).toBeInstanceOf(KubeApiError);
    expect(err).toMatchObject({ code: 'ETOP_KUBE_INVALID', status: 422, reason: 'Invalid', verb: 'apply', object: 'StatefulSet default/main-member' });
    expect(err.message).toBe(
      'apply StatefulSet default/main-member failed: the API server answered 422 Invalid: statefulsets.apps "main-member" is forbidden: ValidatingAdmissionPolicy \'deny\' with binding \'deny\' denied request: no members here',
    );
  });

  it('reads a Status object too (the typed APIs deserialize it), and a body that is plain text', () => {
    expect(kubeApiError(apiException(403, { reason: 'Forbidden', message: 'pods "x" is forbidden: User "op" cannot delete resource "pods"' }), request)).toMatchObject({
      code: 'ETOP_KUBE_FORBIDDEN',
      apiMessage: 'pods "x" is forbidden: User "op" cannot delete resource "pods"',
    });
    expect(kubeApiError(apiException(502, 'Bad Gateway'), request)).toMatchObject({ code: 'ETOP_KUBE_UNAVAILABLE', apiMessage: 'Bad Gateway', reason: undefined });
    expect(kubeApiError(apiException(500, undefined), request)).toMatchObject({ apiMessage: 'HTTP 500' });
  });

  it('a request that got no answer says so, with the transport error under it', () => {
    const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443'), { code: 'ECONNREFUSED' });
    const fetchFailed = new TypeError('fetch failed', { cause });
    const err = kubeApiError(fetchFailed, request);
    expect(err).toMatchObject({ code: 'ETOP_KUBE_UNAVAILABLE', status: undefined, cause: fetchFailed });
    expect(err.message).toBe('apply StatefulSet default/main-member failed: no answer from the API server: fetch failed: connect ECONNREFUSED 127.0.0.1:6443');
  });

  it('wraps once: an error that is already ours passes through', () => {
    const once = kubeApiError(apiException(409, '{"reason":"Conflict","message":"the object has been modified"}'), request);
    expect(kubeApiError(once, { verb: 'delete', object: 'x' })).toBe(once);
    const other = new TopologyError('ETOP_RENDER', 'no uid');
    expect(kubeApiError(other, request)).toBe(other);
  });
});

describe('kubeErrorCode', () => {
  it.each([
    [401, 'ETOP_KUBE_FORBIDDEN'],
    [403, 'ETOP_KUBE_FORBIDDEN'],
    [400, 'ETOP_KUBE_INVALID'],
    [422, 'ETOP_KUBE_INVALID'],
    [404, 'ETOP_KUBE_NOT_FOUND'],
    [409, 'ETOP_KUBE_CONFLICT'],
    [429, 'ETOP_KUBE_UNAVAILABLE'],
    [503, 'ETOP_KUBE_UNAVAILABLE'],
    [410, 'ETOP_KUBE_API'],
  ])('HTTP %i is %s', (status, code) => expect(kubeErrorCode(status)).toBe(code));
});

describe('describeObject', () => {
  it('names a namespaced object by namespace/name and a cluster-scoped one by name', () => {
    expect(describeObject('Service', 'ns', 'x')).toBe('Service ns/x');
    expect(describeObject('PersistentVolume', undefined, 'pv-1')).toBe('PersistentVolume pv-1');
  });
});
