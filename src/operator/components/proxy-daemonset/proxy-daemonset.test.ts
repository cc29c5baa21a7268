import { describe, expect, it } from 'vitest';
import type { EtcdTopologySpecInput } from '../../../api/etcd-topology.ts';
import { context, topology } from '../testing.ts';
import { defaultProxyResources, PROXY_NODE_OPTIONS, proxyArgs, proxyDaemonSet, proxyNodeTerms } from './proxy-daemonset.ts';

const render = (spec: EtcdTopologySpecInput = {}) => proxyDaemonSet.desired(topology(spec), context)!;

describe('proxy DaemonSet', () => {
  it('runs the operator image as `etcd-topology proxy` seeded with every member, with mutual TLS to them by default', () => {
    const ds = render();
    expect(ds.metadata?.name).toBe('main-proxy');
    const c = ds.spec!.template.spec!.containers[0]!;
    expect(c.image).toBe('registry.example/etcd-topology:1.2.3');
    expect(c.args).toEqual([
      'proxy',
      '--endpoints=https://main-member-0.main-peer.etcd.svc:2379,https://main-member-1.main-peer.etcd.svc:2379,https://main-member-2.main-peer.etcd.svc:2379',
      '--listen-client-urls=http://$(POD_IP):2379',
      '--mode=readwrite',
      '--refresh-interval=30s',
      '--metrics-addr=$(POD_IP):9091',
      '--cacert=/etc/etcd-topology/tls/ca.crt',
      '--cert=/etc/etcd-topology/tls/tls.crt',
      '--key=/etc/etcd-topology/tls/tls.key',
    ]);
    expect(c.env).toEqual([
      { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      { name: 'NODE_OPTIONS', value: '--max-semi-space-size=2 --max-old-space-size=256' },
    ]);
    expect(c.volumeMounts).toEqual([{ name: 'tls-client', mountPath: '/etc/etcd-topology/tls', readOnly: true }]);
    expect(ds.spec!.template.spec!.volumes).toEqual([{ name: 'tls-client', secret: { secretName: 'main-proxy-tls', defaultMode: 0o440 } }]);
    // The Secret's files are group-readable; the pod's group must be the one that reads them.
    expect(ds.spec!.template.spec!.securityContext?.fsGroup).toBe(65532);
  });

  it.each<{ name: string; spec: EtcdTopologySpecInput; listen: string; volumes: string[]; flags: string[] }>([
    {
      name: 'built-in serving certificate',
      spec: { proxy: { tls: { enabled: true } } },
      listen: 'https://$(POD_IP):2379',
      volumes: ['tls-client=main-proxy-tls', 'tls-serving=main-proxy-serving-tls'],
      flags: ['--listen-cert=/etc/etcd-topology/serving/tls.crt', '--listen-key=/etc/etcd-topology/serving/tls.key'],
    },
    {
      name: 'own serving Secret, client certificates required, host network',
      spec: { proxy: { hostNetwork: true, tls: { enabled: true, secret: 'mine', requireClientCertificate: true } } },
      listen: 'https://127.0.0.1:2379',
      volumes: ['tls-client=main-proxy-tls', 'tls-serving=mine'],
      flags: ['--listen-cert=/etc/etcd-topology/serving/tls.crt', '--listen-key=/etc/etcd-topology/serving/tls.key', '--listen-cacert=/etc/etcd-topology/serving/ca.crt'],
    },
  ])('serves TLS on its own port with spec.proxy.tls: $name', ({ spec, listen, volumes, flags }) => {
    const ds = render(spec);
    const c = ds.spec!.template.spec!.containers[0]!;
    expect(c.args?.find((a) => a.startsWith('--listen-client-urls='))).toBe(`--listen-client-urls=${listen}`);
    expect(c.args?.filter((a) => /^--listen-(cert|key|cacert)=/.test(a))).toEqual(flags);
    expect(ds.spec!.template.spec!.volumes?.map((v) => `${v.name}=${v.secret?.secretName}`)).toEqual(volumes);
  });

  it('mounts the user\'s client Secret, and in plaintext none and no TLS flag', () => {
    expect(render({ tls: { secrets: { server: 's', peer: 'p', client: 'c' } } }).spec!.template.spec!.volumes?.[0]?.secret?.secretName).toBe('c');
    const plain = render({ tls: { enabled: false } });
    const c = plain.spec!.template.spec!.containers[0]!;
    expect(c.args?.filter((a) => /https|cacert|cert|key/.test(a))).toEqual([]);
    expect(c.volumeMounts).toBeUndefined();
    expect(plain.spec!.template.spec!.volumes).toBeUndefined();
  });

  it('rolls with a surge (a node keeps a ready proxy) on the pod network and on the host network', () => {
    expect(render().spec!.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
    expect(render({ proxy: { hostNetwork: true } }).spec!.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
  });

  it('on the host network shares its ports with the replacement, declares no hostPort, and probes its own revision', () => {
    const pod = render({ proxy: { hostNetwork: true } }).spec!.template.spec!;
    const c = pod.containers[0]!;
    expect(c.args).toContain('--reuse-port=true');
    // Declared ports become hostPorts in the host network, and the scheduler places no second pod with them.
    expect(c.ports).toBeUndefined();
    const revision = /^--revision=([0-9a-f]{12})$/.exec(c.args!.find((a) => a.startsWith('--revision='))!)![1]!;
    expect(c.readinessProbe?.httpGet?.path).toBe(`/readyz?revision=${revision}`);
    // The revision follows every template change and only those: same spec, same revision.
    expect(render({ proxy: { hostNetwork: true } }).spec!.template.spec!.containers[0]!.args).toEqual(c.args);
    const changed = render({ proxy: { hostNetwork: true, refreshInterval: '1m' } }).spec!.template.spec!.containers[0]!;
    expect(changed.args!.find((a) => a.startsWith('--revision='))).not.toBe(`--revision=${revision}`);
    // The pod network keeps its ports, one proxy per pod IP, and needs neither.
    const plain = render().spec!.template.spec!.containers[0]!;
    expect(plain.ports?.map((p) => p.name)).toEqual(['client', 'metrics']);
    expect(plain.args!.filter((a) => /^--(reuse-port|revision)/.test(a))).toEqual([]);
    expect(plain.readinessProbe?.httpGet?.path).toBe('/readyz');
  });

  it('gives the proxy default requests and a memory limit above its V8 heap cap, unless spec.proxy.resources is set', () => {
    const c = (spec: EtcdTopologySpecInput = {}) => render(spec).spec!.template.spec!.containers[0]!;
    expect(c().resources).toEqual({ requests: { cpu: '50m', memory: '160Mi' }, limits: { memory: '512Mi' } });
    expect(defaultProxyResources.limits.memory).toBe('512Mi');
    // The limit must leave room above the old-space cap for code and buffers outside the heap.
    expect(Number(/--max-old-space-size=(\d+)/.exec(PROXY_NODE_OPTIONS)![1]) + 100).toBeLessThanOrEqual(512);
    expect(c({ proxy: { resources: { limits: { memory: '1Gi' } } } }).resources).toEqual({ limits: { memory: '1Gi' } });
  });

  it.each<{ name: string; spec: EtcdTopologySpecInput; listen: string; hostNetwork: boolean; dns: string }>([
    { name: 'pod network', spec: {}, listen: 'http://$(POD_IP):2379', hostNetwork: false, dns: 'ClusterFirst' },
    { name: 'host network on the node loopback', spec: { proxy: { hostNetwork: true } }, listen: 'http://127.0.0.1:2379', hostNetwork: true, dns: 'ClusterFirstWithHostNet' },
    { name: 'another port, readonly', spec: { proxy: { port: 12379, mode: 'readonly', refreshInterval: '1m' } }, listen: 'http://$(POD_IP):12379', hostNetwork: false, dns: 'ClusterFirst' },
  ])('$name', ({ spec, listen, hostNetwork, dns }) => {
    const t = topology(spec);
    const pod = render(spec).spec!.template.spec!;
    expect(proxyArgs(t)).toContain(`--listen-client-urls=${listen}`);
    expect(proxyArgs(t)).toContain(`--mode=${t.spec.proxy.mode}`);
    expect(proxyArgs(t)).toContain(`--refresh-interval=${t.spec.proxy.refreshInterval}`);
    expect(pod.hostNetwork).toBe(hostNetwork);
    expect(pod.dnsPolicy).toBe(dns);
    // In the host network a declared port is a hostPort, which would block the surge pod.
    expect(pod.containers[0]!.ports?.[0]).toEqual(hostNetwork ? undefined : { name: 'client', containerPort: t.spec.proxy.port, protocol: 'TCP' });
  });

  it.each<{ name: string; spec: EtcdTopologySpecInput; terms: unknown }>([
    {
      name: 'default: every node that is not central',
      spec: {},
      terms: [{ matchExpressions: [{ key: 'etcdtopology.io/role', operator: 'NotIn', values: ['central'] }] }],
    },
    {
      name: 'a central selector of two labels: a node lacking either is not central',
      spec: { members: { nodeSelector: { pool: 'etcd', zone: 'a' } } },
      terms: [
        { matchExpressions: [{ key: 'pool', operator: 'NotIn', values: ['etcd'] }] },
        { matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] },
      ],
    },
    {
      name: 'an explicit proxy selector wins',
      spec: { proxy: { nodeSelector: { 'node-role/worker': 'true' } } },
      terms: [{ matchExpressions: [{ key: 'node-role/worker', operator: 'In', values: ['true'] }] }],
    },
    {
      name: 'an empty proxy selector means the default',
      spec: { proxy: { nodeSelector: {} } },
      terms: [{ matchExpressions: [{ key: 'etcdtopology.io/role', operator: 'NotIn', values: ['central'] }] }],
    },
    { name: 'an empty central selector: proxies everywhere', spec: { members: { nodeSelector: {} } }, terms: undefined },
  ])('$name', ({ spec, terms }) => {
    expect(proxyNodeTerms(topology(spec))).toEqual(terms);
    expect(render(spec).spec!.template.spec!.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms).toEqual(terms);
  });

  it('probes readiness on /readyz of the metrics port, liveness on the port alone', () => {
    const c = render().spec!.template.spec!.containers[0]!;
    expect(c.readinessProbe?.httpGet).toMatchObject({ path: '/readyz', port: 9091 });
    expect(c.livenessProbe).toMatchObject({ tcpSocket: { port: 9091 } });
  });

  it('runs non-root with a read-only root file system, without an API token', () => {
    const pod = render().spec!.template.spec!;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.containers[0]!.securityContext).toMatchObject({ readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(pod.serviceAccountName).toBe('main-proxy');
    expect(pod.automountServiceAccountToken).toBe(false);
  });

  it('selects proxy pods only', () => {
    expect(render().spec!.selector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'etcd-topology', 'app.kubernetes.io/instance': 'main', 'app.kubernetes.io/component': 'proxy' });
  });

  it('does not exist while the proxy is disabled', () => {
    expect(proxyDaemonSet.desired(topology({ proxy: { enabled: false } }), context)).toBeUndefined();
  });
});
