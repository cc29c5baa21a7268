import { describe, expect, it } from 'vitest';
import { memberConfigHash, memberStatefulSet } from '../member-statefulset/member-statefulset.ts';
import { context, topology } from '../testing.ts';
import { snapshotDeadlineSeconds, snapshotJob } from './snapshot-job.ts';

const s3 = { bucket: 'b-1', region: 'eu-west-1', endpoint: 'https://s3.internal', prefix: 'p/', forcePathStyle: true, credentialsSecret: 'creds', caSecret: { name: 'ca', key: 'bundle.pem' } };

describe('snapshot Job', () => {
  const t = topology({ backup: { s3 } });
  const job = snapshotJob(t, { name: 'main-backup-x', image: context.proxyImage, verb: 'take', destination: t.spec.backup!, args: ['--endpoint=http://10.0.0.1:2379', '--member=main-member-1', '--keep=24'], reason: 'Scheduled', deadlineSeconds: 400 });
  const pod = job.spec!.template.spec!;
  const c = pod.containers[0]!;

  it('runs `snapshot take` once, in this image, non-root, read-only, with no API token', () => {
    expect(job.spec).toMatchObject({ backoffLimit: 0, activeDeadlineSeconds: 400 });
    expect(pod).toMatchObject({ restartPolicy: 'Never', automountServiceAccountToken: false, securityContext: { runAsNonRoot: true, runAsUser: 65532 } });
    expect(c.image).toBe(context.proxyImage);
    expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(c.args).toEqual([
      'snapshot', 'take', '--topology=etcd/main',
      '--s3-bucket=b-1', '--s3-region=eu-west-1', '--s3-prefix=p/', '--s3-endpoint=https://s3.internal', '--s3-force-path-style', '--s3-ca-file=/etc/etcd-topology/s3-ca/bundle.pem',
      '--endpoint=http://10.0.0.1:2379', '--member=main-member-1', '--keep=24',
    ]);
  });

  it('takes the credentials from the Secret itself: the operator never reads them', () => {
    expect(c.env).toEqual([
      { name: 'NODE_OPTIONS', value: '--max-semi-space-size=2 --max-old-space-size=96' },
      { name: 'AWS_ACCESS_KEY_ID', valueFrom: { secretKeyRef: { name: 'creds', key: 'AWS_ACCESS_KEY_ID' } } },
      { name: 'AWS_SECRET_ACCESS_KEY', valueFrom: { secretKeyRef: { name: 'creds', key: 'AWS_SECRET_ACCESS_KEY' } } },
    ]);
    expect(pod.volumes).toEqual([{ name: 's3-ca', secret: { secretName: 'ca', items: [{ key: 'bundle.pem', path: 'bundle.pem' }] } }]);
  });

  it('is owned by the topology and labelled as its backup, with the reason', () => {
    expect(job.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'EtcdTopology', name: 'main', uid: 'uid-1', controller: true });
    expect(job.metadata?.labels).toMatchObject({ 'app.kubernetes.io/instance': 'main', 'app.kubernetes.io/component': 'backup', 'app.kubernetes.io/managed-by': 'etcd-topology', 'etcdtopology.io/backup-reason': 'Scheduled' });
  });

  it('mounts a volume destination read-write to take, read-only to resolve', () => {
    const v = topology({ backup: { volume: { claimName: 'vol' } } });
    const take = snapshotJob(v, { name: 'j', image: 'i', verb: 'take', destination: v.spec.backup!, args: [], reason: 'OnDemand', deadlineSeconds: 1 });
    const resolve = snapshotJob(v, { name: 'j', image: 'i', verb: 'resolve', destination: v.spec.backup!, args: [], reason: 'Restore', deadlineSeconds: 1 });
    expect(take.spec!.template.spec!.volumes).toEqual([{ name: 'backup', persistentVolumeClaim: { claimName: 'vol', readOnly: false } }]);
    expect(resolve.spec!.template.spec!.containers[0]!.volumeMounts).toEqual([{ name: 'backup', mountPath: '/var/lib/etcd-topology/backup', readOnly: true }]);
    expect(take.spec!.template.spec!.containers[0]!.args).toContain('--volume-dir=/var/lib/etcd-topology/backup');
  });

  it('scales its deadline with the database', () => {
    expect(snapshotDeadlineSeconds(0)).toBe(300);
    expect(snapshotDeadlineSeconds(8 * 2 ** 30)).toBe(300 + 820);
  });
});

describe('restore init container of the member StatefulSet', () => {
  const t = topology({ bootstrap: { fromBackup: { s3, key: 'latest' } } });
  const restore = { key: 'p/etcd/main/20261201T000000Z-r9.db', sha256: 'a'.repeat(64) };

  it('keeps the TLS Secret volumes beside the backup volume it restores from', () => {
    const fromVolume = topology({ bootstrap: { fromBackup: { volume: { claimName: 'etcd-backups' }, key: 'latest' } } });
    const sts = memberStatefulSet.desired(fromVolume, { ...context, restore })!;
    expect(sts.spec!.template.spec!.volumes?.map((v) => v.name)).toEqual(['tls-server', 'tls-peer', 'backup']);
  });

  it('restores every member of a new cluster from the one resolved backup, with its own name and a new token', () => {
    const sts = memberStatefulSet.desired(t, { ...context, restore })!;
    const init = sts.spec!.template.spec!.initContainers!;
    expect(init).toHaveLength(1);
    expect(init[0]!.image).toBe(context.proxyImage);
    expect(init[0]!.args).toEqual(expect.arrayContaining([
      'snapshot', 'restore', '--key=p/etcd/main/20261201T000000Z-r9.db', `--sha256=${'a'.repeat(64)}`, '--name=$(POD_NAME)',
      '--initial-cluster=main-member-0=https://main-member-0.main-peer.etcd.svc:2380,main-member-1=https://main-member-1.main-peer.etcd.svc:2380,main-member-2=https://main-member-2.main-peer.etcd.svc:2380',
      '--initial-cluster-token=etcd-main-restored-uid-1', '--initial-advertise-peer-urls=https://$(POD_NAME).main-peer.etcd.svc:2380', '--data-dir=/var/lib/etcd/data',
    ]));
    expect(init[0]!.volumeMounts).toEqual(expect.arrayContaining([{ name: 'data', mountPath: '/var/lib/etcd' }]));
  });

  it('is gone once etcd has members (a later member joins empty), and never changes the configuration hash', () => {
    const formed = memberStatefulSet.desired(t, { ...context, restore, members: [{ name: 'main-member-0' }, { name: 'main-member-1' }, { name: 'main-member-2' }] })!;
    expect(formed.spec!.template.spec!.initContainers).toBeUndefined();
    expect(memberConfigHash(t)).toBe(memberConfigHash(topology({})));
    expect(memberStatefulSet.desired(t, context)!.spec!.template.spec!.initContainers).toBeUndefined();
  });
});
