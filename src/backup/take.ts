import type { Dispatcher } from 'undici';
import type { EtcdAdminClient } from '../etcd/admin-client.ts';
import { backupKey, manifestKey, retentionPlan } from './keys.ts';
import type { Manifest } from './manifest.ts';
import { verifiedSnapshot } from './snapshot-stream.ts';
import type { BackupStore } from './store.ts';

export interface TakeBackupInput {
  /** The member's client URL. */
  endpoint: string;
  member: string;
  /** "namespace/name". */
  topology: string;
  /** The topology's folder at the store (keys.topologyPrefix). */
  folder: string;
  /** Finished backups to keep; older ones are deleted after this one is stored. */
  keep: number;
  store: BackupStore;
  admin: EtcdAdminClient;
  dispatcher?: Dispatcher;
  now?: () => Date;
}

/**
 * Streams one member's snapshot to the store and verifies it on the way, writes its manifest (which is
 * what makes it a finished backup), then applies retention. Returns the manifest and the deleted keys.
 */
export async function takeBackup(input: TakeBackupInput): Promise<{ manifest: Manifest; deleted: string[] }> {
  const now = input.now ?? (() => new Date());
  const started = now();
  const status = await input.admin.status(input.endpoint);
  const revision = status.header.revision;
  const key = backupKey(input.folder, started, revision);
  const { stream, check } = verifiedSnapshot(input.endpoint, input.dispatcher ? { dispatcher: input.dispatcher } : {});
  await input.store.upload(key, stream, {
    topology: input.topology,
    time: started.toISOString(),
    revision: String(revision),
    member: input.member,
    'etcd-version': status.version,
  });
  const digest = check.digest();
  const manifest: Manifest = {
    topology: input.topology,
    key,
    time: started.toISOString(),
    revision,
    size: digest.size,
    sha256: digest.sha256,
    member: input.member,
    etcdVersion: status.version,
    ...(status.header.cluster_id ? { clusterId: BigInt(status.header.cluster_id).toString(16) } : {}),
    durationSeconds: (now().getTime() - started.getTime()) / 1000,
  };
  await input.store.putText(manifestKey(key), `${JSON.stringify(manifest, null, 2)}\n`);
  const deleted = retentionPlan(input.folder, await input.store.list(input.folder), input.keep);
  if (deleted.length > 0) await input.store.delete(deleted);
  return { manifest, deleted };
}
