import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BackupError } from './errors.ts';
import { latestFinished, manifestKey } from './keys.ts';
import { parseManifest, type Manifest } from './manifest.ts';
import type { BackupStore } from './store.ts';

/** The backup a restore starts from: its key, and what its manifest says when it has one. */
export type ResolvedBackup = { key: string } & Partial<Pick<Manifest, 'sha256' | 'revision' | 'size' | 'time'>>;

/**
 * Finds the backup to restore: "latest" is the newest finished backup in the topology's folder; any other
 * key is taken as given and must exist. A key without a manifest (a snapshot saved by etcdctl) is accepted
 * without a recorded sha256: etcdutl still checks etcd's own hash inside it.
 */
export async function resolveBackup(store: BackupStore, folder: string, key: string): Promise<ResolvedBackup> {
  if (key === 'latest') {
    const keys = await store.list(folder);
    const newest = latestFinished(folder, keys);
    if (newest === undefined) throw new BackupError('ETOP_BACKUP_NOT_FOUND', `no finished backup under ${folder} in ${store.description} (${keys.length} objects there)`);
    key = newest;
  }
  try {
    const m = parseManifest(manifestKey(key), await store.getText(manifestKey(key)));
    return { key, sha256: m.sha256, revision: m.revision, size: m.size, time: m.time };
  } catch (err) {
    if (!(err instanceof BackupError) || err.code !== 'ETOP_BACKUP_NOT_FOUND') throw err;
  }
  const found = await store.list(key);
  if (!found.includes(key)) throw new BackupError('ETOP_BACKUP_NOT_FOUND', `backup ${key} does not exist in ${store.description}`);
  return { key };
}

export interface RestoreMemberInput {
  store: BackupStore;
  backup: ResolvedBackup;
  /** etcd's --data-dir for this member. */
  dataDir: string;
  name: string;
  initialCluster: string;
  initialClusterToken: string;
  initialAdvertisePeerUrls: string;
  etcdutl: string;
  log: (msg: string) => void;
}

/**
 * Restores one member's data directory from a backup, once: a data directory that already holds a member
 * is left alone (the pod restarted after its restore). The object is downloaded beside the data directory
 * and its sha256 checked before etcdutl sees it; etcdutl writes into a temporary directory that is renamed
 * into place only when it succeeded, so a failed restore leaves nothing that looks like data.
 */
export async function restoreMember(input: RestoreMemberInput): Promise<'restored' | 'kept'> {
  if (existsSync(path.join(input.dataDir, 'member'))) {
    input.log(`${input.dataDir} already holds a member; nothing restored`);
    return 'kept';
  }
  const parent = path.dirname(input.dataDir);
  await mkdir(parent, { recursive: true });
  const file = path.join(parent, 'restore.db');
  const staging = `${input.dataDir}.restoring`;
  await rm(staging, { recursive: true, force: true });
  const hash = createHash('sha256');
  let size = 0;
  try {
    await pipeline(
      await input.store.download(input.backup.key),
      new Transform({
        transform(chunk: Buffer, _enc, done) {
          hash.update(chunk);
          size += chunk.length;
          done(null, chunk);
        },
      }),
      createWriteStream(file, { mode: 0o600, flush: true }),
    );
  } catch (err) {
    await rm(file, { force: true });
    if (err instanceof BackupError) throw err;
    // The S3 client checks the object's own checksum as it streams: a mismatch is a corrupt backup too.
    throw new BackupError('ETOP_BACKUP_INTEGRITY', `backup ${input.backup.key} in ${input.store.description} could not be read whole: ${(err as Error).message}; nothing was restored`, { cause: err });
  }
  const sha256 = hash.digest('hex');
  if (input.backup.sha256 !== undefined && sha256 !== input.backup.sha256) {
    await rm(file, { force: true });
    throw new BackupError(
      'ETOP_BACKUP_INTEGRITY',
      `backup ${input.backup.key} in ${input.store.description} is corrupt: its sha256 is ${sha256} (${size} bytes) but its manifest says ${input.backup.sha256} (${input.backup.size ?? '?'} bytes); nothing was restored`,
    );
  }
  input.log(`downloaded ${input.backup.key} (${size} bytes, sha256 ${sha256}${input.backup.sha256 ? ', as recorded' : ', no manifest to compare with'})`);
  try {
    await run(input.etcdutl, [
    'snapshot', 'restore', file,
    `--name=${input.name}`,
    `--initial-cluster=${input.initialCluster}`,
    `--initial-cluster-token=${input.initialClusterToken}`,
    `--initial-advertise-peer-urls=${input.initialAdvertisePeerUrls}`,
    `--data-dir=${staging}`,
  ], input.log);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    await rm(file, { force: true });
    throw err;
  }
  await rename(staging, input.dataDir);
  await rm(file, { force: true });
  input.log(`restored ${input.name} into ${input.dataDir} from ${input.backup.key}`);
  return 'restored';
}

function run(cmd: string, args: string[], log: (msg: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    const keep = (b: Buffer): void => {
      tail = (tail + b.toString('utf8')).slice(-2000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (err) => reject(new BackupError('ETOP_BACKUP_RESTORE', `could not run ${cmd}: ${err.message}`, { cause: err })));
    child.on('exit', (code) => {
      if (code === 0) {
        log(`${path.basename(cmd)} ${args.slice(0, 2).join(' ')} succeeded`);
        resolve();
      } else reject(new BackupError('ETOP_BACKUP_RESTORE', `${path.basename(cmd)} snapshot restore exited with ${code}: ${tail.trim().split('\n').slice(-5).join(' | ')}`));
    });
  });
}
