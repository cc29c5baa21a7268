import { describe, expect, it } from 'vitest';
import { DEFAULT_ETCD_VERSION, etcdTopologySchema, specSchema, type EtcdTopologySpecInput } from './etcd-topology.ts';

/** The messages of every issue zod reports for a spec, as "path: message". */
function issues(input: unknown): string[] {
  const r = specSchema.safeParse(input);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('EtcdTopology spec defaults', () => {
  it('fills an empty spec with the documented defaults', () => {
    expect(specSchema.parse({})).toEqual({
      version: DEFAULT_ETCD_VERSION,
      members: {
        count: 3,
        nodeSelector: { 'etcdtopology.io/role': 'central' },
        tolerations: [{ key: 'etcdtopology.io/central', operator: 'Exists', effect: 'NoSchedule' }],
        storage: { size: '8Gi' },
        quotaBackendBytes: '8Gi',
        autoCompaction: { mode: 'periodic', retention: '1h' },
      },
      proxy: { enabled: true, mode: 'readwrite', hostNetwork: false, port: 2379, refreshInterval: '30s', tls: { enabled: false, requireClientCertificate: false } },
      disruption: {},
      maintenance: { defragmentation: { enabled: true, quotaUsageAbove: 0.8, minReclaimBytes: '64Mi' }, noSpaceRecovery: true },
      tls: { enabled: true, certificateLifetime: '2160h' },
    });
    expect(DEFAULT_ETCD_VERSION).toBe('3.6.16');
  });

  it('keeps what the user gave and defaults the rest of the same object', () => {
    const spec = specSchema.parse({ members: { count: 5, storage: { storageClassName: 'fast' } }, proxy: { mode: 'readonly' } });
    expect(spec.members.count).toBe(5);
    expect(spec.members.storage).toEqual({ size: '8Gi', storageClassName: 'fast' });
    expect(spec.proxy.mode).toBe('readonly');
    expect(spec.proxy.port).toBe(2379);
  });
});

const countMessage = 'members.count: members.count must be 1, 3, 5 or 7: an even count tolerates no more member failures than the odd count below it';
const budgetMessage = 'disruption.maxUnavailable: disruption.maxUnavailable must not exceed the fault tolerance of members.count, (count - 1) / 2';

describe('EtcdTopology spec validation', () => {
  const cases: { name: string; spec: EtcdTopologySpecInput | Record<string, unknown>; errors: string[] }[] = [
    { name: 'count 1', spec: { members: { count: 1 } }, errors: [] },
    { name: 'count 7 with maxUnavailable 3', spec: { members: { count: 7 }, disruption: { maxUnavailable: 3 } }, errors: [] },
    { name: 'count 1 with maxUnavailable 0', spec: { members: { count: 1 }, disruption: { maxUnavailable: 0 } }, errors: [] },
    { name: 'count 0', spec: { members: { count: 0 } }, errors: [countMessage] },
    { name: 'count 2', spec: { members: { count: 2 } }, errors: [countMessage] },
    { name: 'count 4', spec: { members: { count: 4 } }, errors: [countMessage] },
    { name: 'count 9', spec: { members: { count: 9 } }, errors: [countMessage] },
    { name: 'count -1', spec: { members: { count: -1 } }, errors: [countMessage] },
    { name: 'count as a string', spec: { members: { count: '3' } }, errors: ['members.count: Invalid input: expected number, received string'] },
    { name: 'count 3.5', spec: { members: { count: 3.5 } }, errors: ['members.count: Invalid input: expected int, received number'] },
    { name: 'maxUnavailable 2 of 3', spec: { disruption: { maxUnavailable: 2 } }, errors: [budgetMessage] },
    { name: 'maxUnavailable 1 of 1', spec: { members: { count: 1 }, disruption: { maxUnavailable: 1 } }, errors: [budgetMessage] },
    { name: 'maxUnavailable 3 of 5', spec: { members: { count: 5 }, disruption: { maxUnavailable: 3 } }, errors: [budgetMessage] },
    { name: 'negative maxUnavailable', spec: { disruption: { maxUnavailable: -1 } }, errors: ['disruption.maxUnavailable: Too small: expected number to be >=0'] },
    { name: 'revision retention 1000', spec: { members: { autoCompaction: { mode: 'revision', retention: '1000' } } }, errors: [] },
    { name: 'periodic retention 90m', spec: { members: { autoCompaction: { retention: '1h30m' } } }, errors: [] },
    { name: 'periodic retention in hours', spec: { members: { autoCompaction: { retention: '2' } } }, errors: [] },
    {
      name: 'revision retention 1h',
      spec: { members: { autoCompaction: { mode: 'revision', retention: '1h' } } },
      errors: ['members.autoCompaction.retention: autoCompaction.retention must be a duration such as 1h or 30m'],
    },
    { name: 'unknown compaction mode', spec: { members: { autoCompaction: { mode: 'hourly' } } }, errors: ['members.autoCompaction.mode: Invalid option: expected one of "periodic"|"revision"'] },
    { name: 'storage size not a quantity', spec: { members: { storage: { size: '8 GB' } } }, errors: ['members.storage.size: expected a quantity such as 8Gi, 512Mi or 1000'] },
    { name: 'storage size in bytes', spec: { members: { storage: { size: 1073741824 } } }, errors: [] },
    { name: 'proxy mode unknown', spec: { proxy: { mode: 'writeonly' } }, errors: ['proxy.mode: Invalid option: expected one of "readwrite"|"readonly"'] },
    { name: 'proxy port 0', spec: { proxy: { port: 0 } }, errors: ['proxy.port: Too small: expected number to be >=1'] },
    { name: 'refresh interval not a duration', spec: { proxy: { refreshInterval: '30' } }, errors: ['proxy.refreshInterval: expected a duration such as 500ms, 30s, 1m or 1h30m'] },
    { name: 'version not semver', spec: { version: 'latest' }, errors: ['version: expected an etcd version such as 3.6.16'] },
    { name: 'tls with the three Secrets', spec: { tls: { secrets: { server: 'a', peer: 'b', client: 'c' } } }, errors: [] },
    { name: 'tls with a server Secret only', spec: { tls: { secrets: { server: 'a' } } }, errors: ['tls.secrets: tls.secrets needs server, peer and client together'] },
    { name: 'tls lifetime 1m', spec: { tls: { certificateLifetime: '1m' } }, errors: [] },
    { name: 'tls lifetime 59s', spec: { tls: { certificateLifetime: '59s' } }, errors: ['tls.certificateLifetime: tls.certificateLifetime must be at least 1m'] },
    { name: 'tls lifetime not a duration', spec: { tls: { certificateLifetime: '90d' } }, errors: ['tls.certificateLifetime: expected a duration such as 2160h'] },
    { name: 'proxy tls with the built-in CA', spec: { proxy: { tls: { enabled: true } } }, errors: [] },
    { name: 'proxy tls without tls', spec: { tls: { enabled: false }, proxy: { tls: { enabled: true } } }, errors: ['proxy.tls: proxy.tls.enabled needs tls.enabled'] },
    {
      name: 'proxy tls with user Secrets but none for the proxy',
      spec: { tls: { secrets: { server: 'a', peer: 'b', client: 'c' } }, proxy: { tls: { enabled: true } } },
      errors: ['proxy.tls: proxy.tls.enabled needs tls.enabled'],
    },
    { name: 'proxy tls with user Secrets and its own', spec: { tls: { secrets: { server: 'a', peer: 'b', client: 'c' } }, proxy: { tls: { enabled: true, secret: 'd' } } }, errors: [] },
    { name: 'toleration effect unknown', spec: { members: { tolerations: [{ effect: 'Never' }] } }, errors: ['members.tolerations.0.effect: Invalid option: expected one of "NoSchedule"|"PreferNoSchedule"|"NoExecute"'] },
  ];

  it.each(cases)('$name', ({ spec, errors }) => {
    const got = issues(spec);
    expect(got).toHaveLength(errors.length);
    errors.forEach((e, i) => expect(got[i]).toContain(e));
  });
});

describe('EtcdTopology object', () => {
  const base = { apiVersion: 'etcdtopology.io/v1alpha1', kind: 'EtcdTopology', metadata: { name: 'main', namespace: 'etcd', uid: 'u1', generation: 2 } };

  it('parses an object from the API server and defaults a missing spec', () => {
    const t = etcdTopologySchema.parse(base);
    expect(t.spec.members.count).toBe(3);
    expect(t.metadata.name).toBe('main');
  });

  it.each([
    ['Main', false],
    ['1st', false],
    ['a'.repeat(45), true],
    ['a'.repeat(46), false],
    ['etcd-a', true],
  ])('name %s valid: %s', (name, valid) => {
    const r = etcdTopologySchema.safeParse({ ...base, metadata: { ...base.metadata, name } });
    expect(r.success).toBe(valid);
    if (!r.success) expect(r.error.issues[0]?.message).toContain('metadata.name must start with a letter');
  });
});
