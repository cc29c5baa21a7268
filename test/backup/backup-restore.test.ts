import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topologyPrefix } from '../../src/backup/keys.ts';
import { parseManifest } from '../../src/backup/manifest.ts';
import { resolveBackup, restoreMember, type ResolvedBackup } from '../../src/backup/restore.ts';
import { S3Store } from '../../src/backup/s3-store.ts';
import type { BackupStore } from '../../src/backup/store.ts';
import { takeBackup } from '../../src/backup/take.ts';
import { VolumeStore } from '../../src/backup/volume-store.ts';
import { EtcdAdminClient } from '../../src/etcd/admin-client.ts';
import { binaries } from '../harness/binaries.ts';
import { EtcdCluster, printEtcdLogsOnFailure } from '../harness/etcd-cluster.ts';
import { freePort } from '../harness/ports.ts';
import { S3Server } from '../harness/s3-server.ts';

const exec = promisify(execFile);

/** Corrupts one byte of a stored object behind the store's back. */
async function flipByte(file: string, offset: number): Promise<void> {
  const bytes = await readFile(file);
  bytes.writeUInt8(bytes.readUInt8(offset) ^ 0xff, offset);
  await writeFile(file, bytes);
}

/** A one-member restore that must fail before etcd could ever start (its peer URL is unused). */
function restoreInput(store: BackupStore, backup: ResolvedBackup, dataDir: string) {
  return { store, backup, dataDir, name: 'x0', initialCluster: 'x0=http://127.0.0.1:1', initialClusterToken: 't', initialAdvertisePeerUrls: 'http://127.0.0.1:1', etcdutl: binaries().etcdutl, log: () => undefined };
}

// Real etcd members, a real S3 server (versitygw), the real etcdutl: the backup path a Job runs and
// the restore path a member's init container runs, without Kubernetes around them.
describe('backup and restore against etcd, versitygw and etcdutl', () => {
  let etcd: EtcdCluster;
  let s3: S3Server;
  let tmp: string;
  const admin = new EtcdAdminClient({ timeoutMs: 10_000 });
  const bucket = 'etcd-backups';
  const folder = topologyPrefix('clusters/', 'prod', 'main');
  const storeOf = (o: Partial<ConstructorParameters<typeof S3Store>[0]> = {}): S3Store =>
    new S3Store({ bucket, region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, ...o });
  const follower = (): { name: string; clientUrl: string } => etcd.members[1]!;
  const take = (store: BackupStore, keep = 24) => takeBackup({ endpoint: follower().clientUrl, member: follower().name, topology: 'prod/main', folder, keep, store, admin });

  beforeAll(async () => {
    [etcd, s3] = await Promise.all([EtcdCluster.start({ size: 3 }), S3Server.start()]);
    await s3.createBucket(bucket);
    tmp = await mkdtemp(path.join(os.tmpdir(), 'backup-test-'));
    for (let i = 0; i < 200; i++) await etcd.etcdctl(['put', `/registry/k${String(i).padStart(4, '0')}`, `value-${i}`]);
  });
  printEtcdLogsOnFailure(() => etcd);
  afterAll(async () => {
    await admin.close();
    await Promise.all([etcd?.stop(), s3?.stop()]);
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('stores a verified snapshot and a manifest that etcdutl and sha256 agree with', async () => {
    const store = storeOf();
    const { manifest } = await take(store);
    expect(manifest.key).toMatch(/^clusters\/prod\/main\/\d{8}T\d{6}Z-r\d+\.db$/);
    expect(manifest.member).toBe(follower().name);
    expect(manifest.revision).toBeGreaterThanOrEqual(201);
    const file = s3.objectPath(bucket, manifest.key);
    const bytes = await readFile(file);
    expect(bytes.length).toBe(manifest.size);
    const { stdout: sum } = await exec('sha256sum', [file]);
    expect(sum.split(' ')[0]).toBe(manifest.sha256);
    expect(parseManifest('m', await readFile(`${file}.json`, 'utf8'))).toEqual(manifest);
    const { stdout } = await exec(binaries().etcdutl, ['snapshot', 'status', file, '-w', 'json']);
    const status = JSON.parse(stdout) as { revision: number; totalKey: number };
    expect(status.revision).toBeGreaterThanOrEqual(manifest.revision);
    expect(status.totalKey).toBeGreaterThanOrEqual(200);
  });

  it('keeps the newest retention.count backups and never touches objects it did not write', async () => {
    const store = storeOf();
    await store.putText('clusters/prod/main/README.txt', 'not a backup');
    await store.putText('clusters/prod/other/20200101T000000Z-r1.db', 'another topology');
    for (let i = 0; i < 3; i++) {
      await etcd.etcdctl(['put', '/retention', String(i)]);
      await take(store, 2);
      // Keys carry whole seconds: let the next one get a later name.
      await new Promise((r) => setTimeout(r, 1100));
    }
    const keys = await store.list('clusters/prod/');
    const backups = keys.filter((k) => /main\/\d{8}T\d{6}Z-r\d+\.db$/.test(k));
    expect(backups).toHaveLength(2);
    for (const k of backups) expect(keys).toContain(`${k}.json`);
    expect(keys).toContain('clusters/prod/main/README.txt');
    expect(keys).toContain('clusters/prod/other/20200101T000000Z-r1.db');
  });

  it('names what is wrong for bad credentials, a missing bucket and an unreachable endpoint', async () => {
    await expect(take(storeOf({ secretAccessKey: 'wrong' }))).rejects.toThrow(/s3:\/\/etcd-backups at http:\/\/127\.0\.0\.1:\d+: upload .* failed: SignatureDoesNotMatch/);
    await expect(take(storeOf({ bucket: 'no-such-bucket' }))).rejects.toThrow(/upload .* failed: NoSuchBucket/);
    const closed = `http://127.0.0.1:${await freePort()}`;
    await expect(take(storeOf({ endpoint: closed }))).rejects.toThrow(/upload .* failed: .*ECONNREFUSED/);
  });

  it('restores a member from "latest", and the restored cluster serves every key under a new cluster ID', async () => {
    await etcd.etcdctl(['put', '/restore/marker', 'present']);
    const store = storeOf();
    await new Promise((r) => setTimeout(r, 1100));
    const { manifest } = await take(store);
    const resolved = await resolveBackup(store, folder, 'latest');
    expect(resolved).toMatchObject({ key: manifest.key, sha256: manifest.sha256, revision: manifest.revision });

    const [client, peer] = [await freePort(), await freePort()];
    const peerUrl = `http://127.0.0.1:${peer}`;
    const dataDir = path.join(tmp, 'restored', 'data');
    const logs: string[] = [];
    const input = { store, backup: resolved, dataDir, name: 'r0', initialCluster: `r0=${peerUrl}`, initialClusterToken: 'restored-token', initialAdvertisePeerUrls: peerUrl, etcdutl: binaries().etcdutl, log: (m: string) => void logs.push(m) };
    expect(await restoreMember(input)).toBe('restored');
    expect(await restoreMember(input)).toBe('kept');
    expect(await readdir(path.dirname(dataDir))).toEqual(['data']);

    const { spawn } = await import('node:child_process');
    const child = spawn(binaries().etcd, ['--name=r0', `--data-dir=${dataDir}`, `--listen-client-urls=http://127.0.0.1:${client}`, `--advertise-client-urls=http://127.0.0.1:${client}`, `--listen-peer-urls=${peerUrl}`, `--initial-advertise-peer-urls=${peerUrl}`], { stdio: 'ignore' });
    try {
      const endpoint = `http://127.0.0.1:${client}`;
      const { waitFor } = await import('../harness/ports.ts');
      await waitFor('restored etcd', async () => (await admin.health(endpoint)).healthy);
      const ctl = (args: string[]) => exec(binaries().etcdctl, [`--endpoints=${endpoint}`, ...args]).then((r) => r.stdout);
      expect(await ctl(['get', '/restore/marker', '--print-value-only'])).toBe('present\n');
      expect((await ctl(['get', '/registry/', '--prefix', '--keys-only'])).split('\n').filter((l) => l.startsWith('/registry/'))).toHaveLength(200);
      const [restoredStatus, originalStatus] = await Promise.all([admin.status(endpoint), admin.status(etcd.members[0]!.clientUrl)]);
      expect(restoredStatus.header.cluster_id).not.toBe(originalStatus.header.cluster_id);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('refuses a corrupt object before etcdutl runs, and leaves no data directory behind', async () => {
    const store = storeOf();
    const resolved = await resolveBackup(store, folder, 'latest');
    await flipByte(s3.objectPath(bucket, resolved.key), 4096);
    const dataDir = path.join(tmp, 'corrupt', 'data');
    const input = restoreInput(store, resolved, dataDir);
    // The S3 client's own checksum of the object catches it first, while streaming.
    await expect(restoreMember(input)).rejects.toThrow(new RegExp(`backup ${resolved.key.replaceAll('.', '\\.')} in s3://etcd-backups at .* could not be read whole: Checksum mismatch`));
    expect(await readdir(path.dirname(dataDir))).toEqual([]);
  });

  it('says which backup is missing', async () => {
    await expect(resolveBackup(storeOf(), folder, 'clusters/prod/main/20200101T000000Z-r5.db')).rejects.toThrow(/backup clusters\/prod\/main\/20200101T000000Z-r5\.db does not exist in s3:\/\/etcd-backups/);
    await expect(resolveBackup(storeOf(), topologyPrefix('', 'prod', 'nothing'), 'latest')).rejects.toThrow(/no finished backup under prod\/nothing\/ in s3:\/\/etcd-backups/);
  });

  it('works the same on a volume', async () => {
    const root = path.join(tmp, 'volume');
    const store = new VolumeStore(root, 'backups');
    const volFolder = topologyPrefix('', 'prod', 'main');
    const { manifest } = await takeBackup({ endpoint: follower().clientUrl, member: follower().name, topology: 'prod/main', folder: volFolder, keep: 1, store, admin });
    await new Promise((r) => setTimeout(r, 1100));
    const second = await takeBackup({ endpoint: follower().clientUrl, member: follower().name, topology: 'prod/main', folder: volFolder, keep: 1, store, admin });
    expect((await readdir(path.join(root, 'prod', 'main'))).sort()).toEqual([path.basename(second.manifest.key), `${path.basename(second.manifest.key)}.json`]);
    expect(manifest.key).not.toBe(second.manifest.key);
    const { stdout } = await exec(binaries().etcdutl, ['snapshot', 'status', path.join(root, second.manifest.key), '-w', 'json']);
    expect((JSON.parse(stdout) as { totalKey: number }).totalKey).toBeGreaterThanOrEqual(200);
    const resolved = await resolveBackup(store, volFolder, 'latest');
    expect(resolved).toMatchObject({ key: second.manifest.key, sha256: second.manifest.sha256 });

    // No checksum from a volume: our sha256 against the manifest is what catches a flipped byte.
    await flipByte(path.join(root, resolved.key), 8192);
    const dataDir = path.join(tmp, 'corrupt-volume', 'data');
    const input = restoreInput(store, resolved, dataDir);
    await expect(restoreMember(input)).rejects.toThrow(new RegExp(`backup ${resolved.key.replaceAll('.', '\\.')} in volume backups is corrupt: its sha256 is [0-9a-f]{64} \\(\\d+ bytes\\) but its manifest says ${resolved.sha256}`));
    expect(await readdir(path.dirname(dataDir))).toEqual([]);
  });
});
