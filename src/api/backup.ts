import { z } from 'zod';
import { cronRule, destinationRule, refineWith, toValidation } from './rules.ts';

const secretName = z.string().min(1).max(253).regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'expected the name of a Secret in the topology\'s namespace');

/** An S3-compatible bucket: AWS S3, or any store that speaks its API (endpoint set). */
export const s3DestinationSchema = z.object({
  endpoint: z.string().url('expected an http:// or https:// URL such as https://s3.example.com').optional().meta({
    description: 'URL of an S3-compatible endpoint; unset for AWS S3 in the region.',
  }),
  region: z.string().min(1).default('us-east-1').meta({ description: 'Region of the bucket (S3-compatible stores usually accept us-east-1).' }),
  bucket: z.string().min(3).max(63).regex(/^[a-z0-9][a-z0-9.-]*[a-z0-9]$/, 'expected an S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens').meta({ description: 'The bucket; it must exist.' }),
  prefix: z.string().max(512).default('').meta({ description: 'Key prefix before "<namespace>/<name>/"; end it with "/" to make it a folder.' }),
  forcePathStyle: z.boolean().default(false).meta({ description: 'Path-style requests (endpoint/bucket/key), which most S3-compatible stores need.' }),
  credentialsSecret: secretName.meta({ description: 'Secret with the keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.' }),
  caSecret: z
    .object({ name: secretName, key: z.string().min(1).default('ca.crt') })
    .optional()
    .meta({ description: 'A Secret holding the CA bundle (PEM) of a private endpoint, and its key (default ca.crt).' }),
});

/** A PersistentVolumeClaim in the topology's namespace; backups are files under "<namespace>/<name>/". */
export const volumeDestinationSchema = z.object({
  claimName: z.string().min(1).max(253).meta({ description: 'The PersistentVolumeClaim; it must exist and be bound (ReadWriteMany to restore several members from it).' }),
});

const destinationShape = {
  s3: s3DestinationSchema.optional().meta({ description: 'An S3-compatible bucket.' }),
  volume: volumeDestinationSchema.optional().meta({ description: 'A PersistentVolumeClaim.' }),
};

/** spec.backup: where snapshots go, when, and how many are kept. */
export const backupSpecSchema = z
  .object({
    schedule: z
      .string()
      .max(128)
      .superRefine(refineWith(cronRule))
      .optional()
      .meta({
        description: 'When to take a backup: a 5-field cron expression in UTC, such as "0 * * * *" (hourly). Unset: on demand and before risky changes only.',
        'x-kubernetes-validations': [toValidation(cronRule)],
      }),
    retention: z
      .object({ count: z.int().min(1).max(10_000).default(24).meta({ description: 'How many of this topology\'s newest backups are kept; older ones are deleted after each success.' }) })
      .prefault({}),
    ...destinationShape,
  })
  .superRefine(refineWith(destinationRule))
  .meta({ 'x-kubernetes-validations': [toValidation(destinationRule)] });

/** spec.bootstrap.fromBackup: the backup every member of a new topology starts from. */
export const fromBackupSchema = z
  .object({
    ...destinationShape,
    key: z.string().min(1).max(1024).meta({ description: 'The object key (or file path under the volume) of the backup, or "latest" for this topology\'s newest one.' }),
  })
  .superRefine(refineWith(destinationRule))
  .meta({ 'x-kubernetes-validations': [toValidation(destinationRule)] });

export const bootstrapSchema = z.object({
  fromBackup: fromBackupSchema.optional().meta({ description: 'Start every member from this backup. Only at creation; immutable afterwards.' }),
});

/** One backup as recorded in status and in the object's metadata. */
export const backupRecordSchema = z.object({
  time: z.string().meta({ format: 'date-time', description: 'When the snapshot was taken.' }),
  key: z.string().meta({ description: 'Object key (or path under the volume).' }),
  revision: z.int().min(0).meta({ description: 'The member\'s revision when the snapshot began; the snapshot holds at least this revision.' }),
  size: z.int().min(0).meta({ description: 'Bytes stored.' }),
  sha256: z.string().meta({ description: 'sha256 of the stored object, hex.' }),
  member: z.string().optional().meta({ description: 'The member the snapshot was streamed from.' }),
  etcdVersion: z.string().optional(),
  durationSeconds: z.number().min(0).optional(),
});

export const backupStatusSchema = z.object({
  lastSuccess: backupRecordSchema.optional(),
  lastFailure: z.object({ time: z.string().meta({ format: 'date-time' }), message: z.string() }).optional(),
  /** The backup in flight: its Job and why it was started. */
  active: z.object({ job: z.string(), reason: z.string(), startTime: z.string().meta({ format: 'date-time' }) }).optional(),
  /** The last time a backup was started (schedule catch-up counts from here). */
  lastAttemptTime: z.string().meta({ format: 'date-time' }).optional(),
  /** The value of the etcdtopology.io/backup-now annotation last taken. */
  onDemand: z.string().optional().meta({ description: 'The etcdtopology.io/backup-now value the last on-demand backup answered.' }),
  /** The generation whose risky change (rolling update, scale-in) the last successful backup preceded. */
  generation: z.int().min(0).optional().meta({ description: 'The spec generation at the time of the last successful backup.' }),
  failures: z.int().min(0).optional().meta({ description: 'Consecutive failed attempts.' }),
});

export const restoreStatusSchema = z.object({
  key: z.string().optional(),
  revision: z.int().min(0).optional(),
  sha256: z.string().optional(),
  size: z.int().min(0).optional(),
  phase: z.enum(['Resolving', 'Restoring', 'Restored', 'Failed']),
  message: z.string().optional(),
  job: z.string().optional(),
  time: z.string().meta({ format: 'date-time' }).optional().meta({ description: 'When the backup was last looked for (the resolve Job started, or failed).' }),
});

export type BackupSpec = z.infer<typeof backupSpecSchema>;
export type S3Destination = z.infer<typeof s3DestinationSchema>;
export type VolumeDestination = z.infer<typeof volumeDestinationSchema>;
export type Destination = { s3?: S3Destination | undefined; volume?: VolumeDestination | undefined };
export type FromBackup = z.infer<typeof fromBackupSchema>;
export type BackupRecord = z.infer<typeof backupRecordSchema>;
export type BackupStatus = z.infer<typeof backupStatusSchema>;
export type RestoreStatus = z.infer<typeof restoreStatusSchema>;

/** The annotation that asks for one backup now; any new value takes one. */
export const BACKUP_NOW_ANNOTATION = 'etcdtopology.io/backup-now';
