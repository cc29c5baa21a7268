import { describe, expect, it } from 'vitest';
import { TopologyError } from '../errors.ts';
import { requestKind, resourcePath, targetFromKubeconfig } from './kube-client.ts';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const kubeconfig = (user: Record<string, unknown>, cluster: Record<string, unknown> = { server: 'https://127.0.0.1:6443/', 'certificate-authority-data': b64('CA PEM') }): string =>
  JSON.stringify({
    'current-context': 'ctx',
    contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
    clusters: [{ name: 'c', cluster }],
    users: [{ name: 'u', user }],
  });

describe('targetFromKubeconfig', () => {
  it('reads the current context: server, CA and a client certificate, inline or from files relative to the kubeconfig', () => {
    const files: Record<string, string> = { '/etc/kube/certs/client.crt': 'CERT PEM', '/etc/kube/certs/client.key': 'KEY PEM' };
    const target = targetFromKubeconfig(kubeconfig({ 'client-certificate': 'certs/client.crt', 'client-key': 'certs/client.key' }), '/etc/kube', (f) => files[f]!);
    expect(target).toEqual({ server: 'https://127.0.0.1:6443', tls: { ca: 'CA PEM', cert: 'CERT PEM', key: 'KEY PEM', rejectUnauthorized: true } });
    expect(targetFromKubeconfig(kubeconfig({ 'client-certificate-data': b64('C'), 'client-key-data': b64('K') }), '/').tls).toMatchObject({ cert: 'C', key: 'K' });
  });

  it('takes a token or a token file, insecure-skip-tls-verify and tls-server-name', () => {
    expect(targetFromKubeconfig(kubeconfig({ token: 'abc' }), '/').token).toEqual({ value: 'abc' });
    expect(targetFromKubeconfig(kubeconfig({ tokenFile: 'tok' }), '/k').token).toEqual({ file: '/k/tok' });
    const target = targetFromKubeconfig(kubeconfig({}, { server: 'https://10.0.0.1', 'insecure-skip-tls-verify': true, 'tls-server-name': 'api' }), '/');
    expect(target.tls).toEqual({ ca: undefined, cert: undefined, key: undefined, rejectUnauthorized: false, servername: 'api' });
  });

  it('refuses credentials it cannot use, naming them and what is accepted', () => {
    const exec = (): unknown => targetFromKubeconfig(kubeconfig({ exec: { command: 'aws' } }), '/');
    expect(exec).toThrow(TopologyError);
    expect(exec).toThrow(
      'the kubeconfig\'s user "u" authenticates with exec, which the operator does not support; accepted: client-certificate, client-certificate-data, client-key, client-key-data, token, tokenFile, or the pod\'s service account',
    );
  });

  it('says what is missing when the current context or its cluster is not there', () => {
    expect(() => targetFromKubeconfig(JSON.stringify({ contexts: [] }), '/')).toThrow('the kubeconfig has no current context: set current-context to one of its contexts');
    expect(() => targetFromKubeconfig(JSON.stringify({ 'current-context': 'x' }), '/')).toThrow('the kubeconfig has no current context named "x"');
    expect(() => targetFromKubeconfig(JSON.stringify({ 'current-context': 'x', contexts: [{ name: 'x', context: { cluster: 'gone' } }] }), '/')).toThrow(
      'the kubeconfig\'s context "x" names no cluster with a server',
    );
  });
});

describe('resourcePath', () => {
  it.each([
    ['v1', 'Pod', 'ns', 'p-0', undefined, '/api/v1/namespaces/ns/pods/p-0'],
    ['apps/v1', 'StatefulSet', 'ns', undefined, undefined, '/apis/apps/v1/namespaces/ns/statefulsets'],
    ['v1', 'PersistentVolume', undefined, 'pv-1', undefined, '/api/v1/persistentvolumes/pv-1'],
    ['coordination.k8s.io/v1', 'Lease', 'kube-system', 'op', undefined, '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/op'],
    ['etcdtopology.io/v1alpha1', 'EtcdTopology', 'ns', 'main', 'etcdtopologies', '/apis/etcdtopology.io/v1alpha1/namespaces/ns/etcdtopologies/main'],
  ])('%s %s %s %s -> %s', (apiVersion, kind, ns, name, plural, want) => {
    expect(resourcePath(apiVersion, kind, ns, name, plural)).toBe(want);
  });

  it('refuses a kind it has no path for (or one at another version), naming the known kinds', () => {
    expect(() => resourcePath('v1', 'Widget', 'ns')).toThrow(/no REST path known for v1 Widget; known kinds: Pod, Secret/);
    expect(() => resourcePath('apps/v1beta1', 'StatefulSet', 'ns')).toThrow(/no REST path known for apps\/v1beta1 StatefulSet/);
  });
});

describe('requestKind', () => {
  it.each([
    ['GET', '/api/v1/namespaces/etcd/secrets/main-ca', false, 'get', 'secrets'],
    ['GET', '/api/v1/nodes?labelSelector=x', false, 'list', 'nodes'],
    ['GET', '/api/v1/namespaces/etcd/pods', true, 'watch', 'pods'],
    ['PATCH', '/apis/etcdtopology.io/v1alpha1/namespaces/etcd/etcdtopologies/main/status', false, 'patch', 'etcdtopologies/status'],
    ['PATCH', '/apis/apps/v1/namespaces/etcd/statefulsets/main-member', false, 'patch', 'statefulsets'],
    ['POST', '/api/v1/namespaces/etcd/events', false, 'create', 'events'],
    ['DELETE', '/api/v1/persistentvolumes/pv-1', false, 'delete', 'persistentvolumes'],
    ['PUT', '/apis/coordination.k8s.io/v1/namespaces/default/leases/etcd-topology-operator', false, 'update', 'leases'],
  ])('%s %s (watch %s) is %s %s', (method, urlPath, watch, verb, resource) => {
    expect(requestKind(method, urlPath, watch)).toEqual({ verb, resource });
  });
});
