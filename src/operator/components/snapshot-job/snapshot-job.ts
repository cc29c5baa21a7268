import type { V1Container, V1EnvVar, V1Job, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { Destination } from '../../../api/backup.ts';
import type { EtcdTopology } from '../../../api/etcd-topology.ts';
import { labels, nameOf, namespaceOf, objectMeta, restrictedContainerSecurity } from '../meta.ts';

/**
 * Node's heap flags for `snapshot take` and `snapshot restore`: the stream's garbage is collected as it
 * goes instead of piling up to V8's default limits. Measured by `npm run bench:backup`: peak RSS of take
 * 161-185 MiB for databases of 64-512 MiB with them, 257-347 MiB without.
 */
export const SNAPSHOT_NODE_OPTIONS = '--max-semi-space-size=2 --max-old-space-size=96';

/** Where a backup volume is mounted in a Job or a restore init container. */
export const BACKUP_VOLUME_MOUNT = '/var/lib/etcd-topology/backup';
const S3_CA_MOUNT = '/etc/etcd-topology/s3-ca';

/** The flags, environment and volumes that hand one destination to `etcd-topology snapshot`. */
export function destinationWiring(d: Destination, { readOnly }: { readOnly: boolean }): { args: string[]; env: V1EnvVar[]; volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  if (d.volume) {
    return {
      args: [`--volume-dir=${BACKUP_VOLUME_MOUNT}`, `--volume-claim=${d.volume.claimName}`],
      env: [],
      volumes: [{ name: 'backup', persistentVolumeClaim: { claimName: d.volume.claimName, readOnly } }],
      mounts: [{ name: 'backup', mountPath: BACKUP_VOLUME_MOUNT, readOnly }],
    };
  }
  const s3 = d.s3!;
  const secretEnv = (name: string): V1EnvVar => ({ name, valueFrom: { secretKeyRef: { name: s3.credentialsSecret, key: name } } });
  return {
    args: [
      `--s3-bucket=${s3.bucket}`,
      `--s3-region=${s3.region}`,
      `--s3-prefix=${s3.prefix}`,
      ...(s3.endpoint ? [`--s3-endpoint=${s3.endpoint}`] : []),
      ...(s3.forcePathStyle ? ['--s3-force-path-style'] : []),
      ...(s3.caSecret ? [`--s3-ca-file=${S3_CA_MOUNT}/${s3.caSecret.key}`] : []),
    ],
    env: [secretEnv('AWS_ACCESS_KEY_ID'), secretEnv('AWS_SECRET_ACCESS_KEY')],
    volumes: s3.caSecret ? [{ name: 's3-ca', secret: { secretName: s3.caSecret.name, items: [{ key: s3.caSecret.key, path: s3.caSecret.key }] } }] : [],
    mounts: s3.caSecret ? [{ name: 's3-ca', mountPath: S3_CA_MOUNT, readOnly: true }] : [],
  };
}

export interface SnapshotJobInput {
  /** The Job's name (unique per attempt). */
  name: string;
  /** This project's image (the operator's own). */
  image: string;
  verb: 'take' | 'resolve';
  destination: Destination;
  /** Verb-specific flags (--endpoint, --member, --keep / --key). */
  args: string[];
  /** Why it runs (OnDemand, Scheduled, BeforeChange, Resolve), as a label for people. */
  reason: string;
  /** How long the Job may run before Kubernetes stops it. */
  deadlineSeconds: number;
  /** Extra volumes and flags, e.g. the client certificate for a TLS member. */
  extra?: { args: string[]; volumes: V1Volume[]; mounts: V1VolumeMount[] };
}

/**
 * A one-shot Job running `etcd-topology snapshot take|resolve` in this project's image: the snapshot
 * streams through its process, never through the operator's, so the operator's memory does not grow
 * with the database and a slow upload never holds a reconcile. The result is its termination message.
 */
export function snapshotJob(t: EtcdTopology, input: SnapshotJobInput): V1Job {
  const wiring = destinationWiring(input.destination, { readOnly: input.verb === 'resolve' });
  const podLabels = { ...labels(t, 'backup'), 'etcdtopology.io/backup-reason': input.reason };
  const container: V1Container = {
    name: 'snapshot',
    image: input.image,
    args: ['snapshot', input.verb, `--topology=${namespaceOf(t)}/${nameOf(t)}`, ...wiring.args, ...input.args, ...(input.extra?.args ?? [])],
    env: [{ name: 'NODE_OPTIONS', value: SNAPSHOT_NODE_OPTIONS }, ...wiring.env],
    volumeMounts: [...wiring.mounts, ...(input.extra?.mounts ?? [])],
    resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } },
    terminationMessagePolicy: 'FallbackToLogsOnError',
    securityContext: restrictedContainerSecurity,
  };
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { ...objectMeta(t, input.name, 'backup'), labels: podLabels },
    spec: {
      // One attempt per Job: the operator decides about retries (with a back-off) and reports each failure.
      backoffLimit: 0,
      activeDeadlineSeconds: input.deadlineSeconds,
      ttlSecondsAfterFinished: 6 * 3600,
      template: {
        metadata: { labels: podLabels },
        spec: {
          restartPolicy: 'Never',
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [container],
          volumes: [...wiring.volumes, ...(input.extra?.volumes ?? [])],
        },
      },
    },
  };
}

/** The deadline of a backup Job: five minutes plus the database at a modest 10 MiB/s. */
export function snapshotDeadlineSeconds(dbSizeBytes: number): number {
  return 300 + Math.ceil(dbSizeBytes / (10 * 1024 * 1024));
}
