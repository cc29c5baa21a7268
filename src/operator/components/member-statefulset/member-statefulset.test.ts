import { describe, expect, it } from 'vitest';
import type { EtcdTopologySpecInput } from '../../../api/etcd-topology.ts';
import { context, topology } from '../testing.ts';
import { CONFIG_HASH_ANNOTATION, MEMBER_HEALTHY_GATE, memberConfigHash, memberImage, memberStatefulSet } from './member-statefulset.ts';

const render = (spec: EtcdTopologySpecInput = {}, members?: { name: string; isLearner?: boolean }[]) => memberStatefulSet.desired(topology(spec), { ...context, members })!;
const etcd = (spec: EtcdTopologySpecInput = {}, members?: { name: string }[]) => render(spec, members).spec!.template.spec!.containers[0]!;
const arg = (args: string[] | undefined, flag: string): string | undefined => args?.find((a) => a.startsWith(`--${flag}=`))?.slice(flag.length + 3);

const peer = (i: number) => `main-member-${i}=https://main-member-${i}.main-peer.etcd.svc:2380`;

describe('member StatefulSet', () => {
  it('is updated only by the operator (OnDelete), managed in parallel, through the peer Service', () => {
    const sts = render();
    expect(sts.metadata?.name).toBe('main-member');
    expect(sts.spec).toMatchObject({
      serviceName: 'main-peer',
      replicas: 3,
      podManagementPolicy: 'Parallel',
      updateStrategy: { type: 'OnDelete' },
      persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
    });
  });

  it.each([
    {
      name: 'bootstrap: every ordinal of the spec, a new cluster',
      count: 3,
      members: undefined,
      replicas: 3,
      state: 'new',
      cluster: [peer(0), peer(1), peer(2)],
    },
    {
      name: 'bootstrap of 5',
      count: 5,
      members: undefined,
      replicas: 5,
      state: 'new',
      cluster: [0, 1, 2, 3, 4].map(peer),
    },
    {
      name: 'a learner joins the existing cluster of 3',
      count: 5,
      members: [{ name: 'main-member-0' }, { name: 'main-member-1' }, { name: 'main-member-2' }, { name: 'main-member-3', isLearner: true }],
      replicas: 4,
      state: 'existing',
      cluster: [0, 1, 2, 3].map(peer),
    },
    {
      name: 'scale in: a removed member takes its pod away',
      count: 3,
      members: [{ name: 'main-member-0' }, { name: 'main-member-1' }, { name: 'main-member-2' }, { name: 'main-member-3' }],
      replicas: 4,
      state: 'existing',
      cluster: [0, 1, 2, 3].map(peer),
    },
    {
      name: 'a member in the middle is being replaced: the ordinals above keep their pods',
      count: 3,
      members: [{ name: 'main-member-0' }, { name: 'main-member-2' }],
      replicas: 3,
      state: 'existing',
      cluster: [peer(0), peer(2)],
    },
    {
      name: 'foreign members are no pods of ours',
      count: 3,
      members: [{ name: 'main-member-0' }, { name: 'main-member-1' }, { name: 'main-member-2' }, { name: 'http://10.0.0.9:2380' }],
      replicas: 3,
      state: 'existing',
      cluster: [0, 1, 2].map(peer),
    },
  ])('$name', ({ count, members, replicas, state, cluster }) => {
    const sts = render({ members: { count } }, members);
    expect(sts.spec?.replicas).toBe(replicas);
    const args = sts.spec!.template.spec!.containers[0]!.args;
    expect(arg(args, 'initial-cluster-state')).toBe(state);
    expect(arg(args, 'initial-cluster')?.split(',')).toEqual(cluster);
  });

  it('runs etcd with the flags of the spec, listening on the pod IP and advertising stable names, with TLS by default', () => {
    const c = etcd({ members: { quotaBackendBytes: '2Gi', autoCompaction: { mode: 'revision', retention: '5000' } } });
    expect(c.command).toEqual(['etcd']);
    expect(c.args?.filter((a) => !a.startsWith('--initial-cluster=') && !a.startsWith('--initial-cluster-state'))).toEqual([
      '--name=$(POD_NAME)',
      '--data-dir=/var/lib/etcd/data',
      '--listen-client-urls=https://$(POD_IP):2379',
      '--advertise-client-urls=https://$(POD_NAME).main-peer.etcd.svc:2379',
      '--listen-peer-urls=https://$(POD_IP):2380',
      '--initial-advertise-peer-urls=https://$(POD_NAME).main-peer.etcd.svc:2380',
      '--listen-metrics-urls=http://$(POD_IP):2381',
      '--initial-cluster-token=etcd-main',
      '--quota-backend-bytes=2147483648',
      '--auto-compaction-mode=revision',
      '--auto-compaction-retention=5000',
      '--feature-gates=StopGRPCServiceOnDefrag=true',
      '--cert-file=/etc/etcd/tls/server/tls.crt',
      '--key-file=/etc/etcd/tls/server/tls.key',
      '--trusted-ca-file=/etc/etcd/tls/server/ca.crt',
      '--client-cert-auth',
      '--peer-cert-file=/etc/etcd/tls/peer/tls.crt',
      '--peer-key-file=/etc/etcd/tls/peer/tls.key',
      '--peer-trusted-ca-file=/etc/etcd/tls/peer/ca.crt',
      '--peer-client-cert-auth',
      '--peer-skip-client-san-verification',
      '--peer-cert-allowed-cn=main-peer',
      '--tls-min-version=TLS1.2',
    ]);
    expect(c.env?.map((e) => `${e.name}=${e.valueFrom?.fieldRef?.fieldPath}`)).toEqual(['POD_NAME=metadata.name', 'POD_NAMESPACE=metadata.namespace', 'POD_IP=status.podIP']);
  });

  it('mounts the built-in server and peer Secrets, or the user\'s, and no Secret in plaintext', () => {
    const volumes = (spec: Record<string, unknown>) => render(spec).spec!.template.spec!.volumes?.map((v) => `${v.name}=${v.secret?.secretName}`);
    expect(volumes({})).toEqual(['tls-server=main-server-tls', 'tls-peer=main-peer-tls']);
    expect(volumes({ tls: { secrets: { server: 's', peer: 'p', client: 'c' } } })).toEqual(['tls-server=s', 'tls-peer=p']);
    expect(volumes({ tls: { enabled: false } })).toBeUndefined();
    // A user CA names its peers as it likes: no allowed common name then.
    expect(etcd({ tls: { secrets: { server: 's', peer: 'p', client: 'c' } } }).args?.filter((a) => a.startsWith('--peer-cert-allowed-cn'))).toEqual([]);
  });

  it('without TLS serves clients and peers in plaintext, with no TLS flag', () => {
    const args = etcd({ tls: { enabled: false } }).args ?? [];
    expect(args.filter((a) => /https|tls|cert|trusted/.test(a))).toEqual([]);
    expect(arg(args, 'listen-peer-urls')).toBe('http://$(POD_IP):2380');
    expect(arg(args, 'initial-cluster')?.split(',')[0]).toBe('main-member-0=http://main-member-0.main-peer.etcd.svc:2380');
  });

  it.each([
    ['3.6.16', 'StopGRPCServiceOnDefrag=true'],
    ['3.6.0', 'StopGRPCServiceOnDefrag=true'],
    ['3.7.1', 'StopGRPCServiceOnDefrag=true'],
    ['3.5.21', undefined],
  ])('etcd %s: members stop serving gRPC health while they defragment (--feature-gates %s)', (version, gates) => {
    expect(arg(etcd({ version }).args, 'feature-gates')).toBe(gates);
  });

  it.each([
    [{ autoCompaction: { mode: 'periodic' } }, '1h'],
    [{ autoCompaction: { mode: 'revision' } }, '1000'],
    [{}, '1h'],
  ] as const)('defaults the compaction retention by mode: %j -> %s', (members, retention) => {
    expect(arg(etcd({ members }).args, 'auto-compaction-retention')).toBe(retention);
  });

  it('probes /livez and /readyz on the metrics port and gates readiness on etcd health', () => {
    const sts = render();
    const c = sts.spec!.template.spec!.containers[0]!;
    expect(c.readinessProbe?.httpGet).toMatchObject({ path: '/readyz', port: 2381 });
    expect(c.livenessProbe?.httpGet).toMatchObject({ path: '/livez', port: 2381 });
    expect(c.startupProbe?.httpGet).toMatchObject({ path: '/livez', port: 2381 });
    expect(sts.spec!.template.spec!.readinessGates).toEqual([{ conditionType: MEMBER_HEALTHY_GATE }]);
    expect(MEMBER_HEALTHY_GATE).toBe('etcdtopology.io/member-healthy');
  });

  it('places one member per central node, spread over zones, tolerating the central taint', () => {
    const pod = render().spec!.template.spec!;
    expect(pod.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms).toEqual([
      { matchExpressions: [{ key: 'etcdtopology.io/role', operator: 'In', values: ['central'] }] },
    ]);
    expect(pod.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution).toEqual([
      {
        labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'etcd-topology', 'app.kubernetes.io/instance': 'main', 'app.kubernetes.io/component': 'member' } },
        topologyKey: 'kubernetes.io/hostname',
      },
    ]);
    expect(pod.topologySpreadConstraints).toMatchObject([{ maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway' }]);
    expect(pod.tolerations).toEqual([{ key: 'etcdtopology.io/central', operator: 'Exists', effect: 'NoSchedule' }]);
  });

  it('uses a custom central selector with every label required', () => {
    const pod = render({ members: { nodeSelector: { pool: 'etcd', 'disk': 'ssd' } } }).spec!.template.spec!;
    expect(pod.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms).toEqual([
      { matchExpressions: [{ key: 'pool', operator: 'In', values: ['etcd'] }, { key: 'disk', operator: 'In', values: ['ssd'] }] },
    ]);
  });

  it('runs non-root with a read-only root file system and no capabilities', () => {
    const pod = render().spec!.template.spec!;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, fsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.containers[0]!.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, runAsUser: 65532, capabilities: { drop: ['ALL'] } });
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.serviceAccountName).toBe('main-member');
  });

  it.each([
    [{}, 'gcr.io/etcd-development/etcd:v3.6.16'],
    [{ version: '3.6.10' }, 'gcr.io/etcd-development/etcd:v3.6.10'],
    [{ image: 'mirror.example/etcd:custom' }, 'mirror.example/etcd:custom'],
  ])('image for %j is %s', (spec, image) => {
    expect(memberImage(topology(spec))).toBe(image);
    expect(etcd(spec).image).toBe(image);
  });

  it.each([
    [{}, { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '8Gi' } } }],
    [{ members: { storage: { size: '20Gi', storageClassName: 'fast' } } }, { accessModes: ['ReadWriteOnce'], storageClassName: 'fast', resources: { requests: { storage: '20Gi' } } }],
    [{ members: { storage: { size: 1073741824 } } }, { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1073741824' } } }],
  ])('volume claim template for %j', (spec, claim) => {
    const templates = render(spec).spec!.volumeClaimTemplates!;
    expect(templates).toHaveLength(1);
    expect(templates[0]!.metadata?.name).toBe('data');
    expect(templates[0]!.spec).toEqual(claim);
    expect(etcd(spec).volumeMounts).toEqual([
      { name: 'data', mountPath: '/var/lib/etcd' },
      { name: 'tls-server', mountPath: '/etc/etcd/tls/server', readOnly: true },
      { name: 'tls-peer', mountPath: '/etc/etcd/tls/peer', readOnly: true },
    ]);
  });

  it('passes resources through as strings', () => {
    expect(etcd({ members: { resources: { requests: { cpu: '500m', memory: 1073741824 } } } }).resources).toEqual({ requests: { cpu: '500m', memory: '1073741824' } });
    expect(etcd().resources).toBeUndefined();
  });

  describe('configuration hash', () => {
    it('is on the pod template and ignores membership, which needs no restart', () => {
      const a = render({}, undefined);
      const b = render({}, [{ name: 'main-member-0' }, { name: 'main-member-1' }]);
      expect(a.spec!.template.metadata?.annotations?.[CONFIG_HASH_ANNOTATION]).toBe(memberConfigHash(topology()));
      expect(b.spec!.template.metadata?.annotations?.[CONFIG_HASH_ANNOTATION]).toBe(memberConfigHash(topology()));
    });

    it.each([
      ['version', { version: '3.6.15' }],
      ['image', { image: 'x/etcd:1' }],
      ['quota', { members: { quotaBackendBytes: '4Gi' } }],
      ['resources', { members: { resources: { limits: { memory: '2Gi' } } } }],
      ['tolerations', { members: { tolerations: [] } }],
    ])('changes with the %s', (_, spec) => {
      expect(memberConfigHash(topology(spec))).not.toBe(memberConfigHash(topology()));
    });

    it('does not change with the proxy or the disruption budget', () => {
      expect(memberConfigHash(topology({ proxy: { mode: 'readonly' }, disruption: { maxUnavailable: 0 } }))).toBe(memberConfigHash(topology()));
    });
  });
});

describe('member StatefulSet hold hook', () => {
  const live = { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'main-member' } };
  const members = [{ name: 'main-member-0' }];
  const open = { holdMembers: false };
  it.each([
    { name: 'an existing StatefulSet whose member set has not been read from etcd', live, members: undefined, guards: open, held: 'the member set has not been read from etcd yet' },
    { name: 'a new StatefulSet while members must not start (a restore, certificates being replaced)', live: undefined, members: undefined, guards: { holdMembers: true }, held: 'no member may start yet' },
    { name: 'an existing StatefulSet while members are held (it has its pods already)', live, members, guards: { holdMembers: true }, held: undefined },
    { name: 'a new StatefulSet before etcd was read (a new cluster has no etcd yet)', live: undefined, members: undefined, guards: open, held: undefined },
    { name: 'an existing StatefulSet otherwise', live, members, guards: open, held: undefined },
  ])('$name: $held', ({ live: l, members: m, guards, held }) => {
    expect(memberStatefulSet.hold!(l, { ...context, members: m }, guards)).toBe(held);
  });
});
