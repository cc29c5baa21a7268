import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PREVIOUS_ETCD_VERSION } from '../harness/cluster/images.ts';
import type { LocalCluster } from '../harness/cluster/local-cluster.ts';
import { binaries } from '../harness/binaries.ts';
import { waitFor } from '../harness/ports.ts';
import { S3Server } from '../harness/s3-server.ts';
import { componentPods, conditionOf, startOperatorCluster, topologyManifest, type OperatorCluster } from '../operator/setup.ts';

// Backups and restores end to end on the local cluster: the operator, its Jobs and the restore init
// containers run this checkout's dist/ in pods, the members are real etcd, the bucket a real
// S3-compatible server (versitygw) on 127.0.0.1. One cluster serves every case, in order.

const exec = promisify(execFile);
const repo = path.resolve(import.meta.dirname, '..', '..');
const NS = 'default';
const BUCKET = 'etcd-backups';
const b64 = (s: string): string => Buffer.from(s).toString('base64');
const unb64 = (s: string): string => Buffer.from(s, 'base64').toString();

interface BackupStatusView {
  lastSuccess?: { time: string; key: string; revision: number; size: number; sha256: string; member?: string };
  lastFailure?: { time: string; message: string };
  active?: { job: string; reason: string };
  onDemand?: string;
}
interface Topology {
  metadata: { generation: number; uid: string };
  status?: {
    conditions?: { type: string; status: string; reason: string; message: string }[];
    backup?: BackupStatusView;
    restore?: { key?: string; revision?: number; phase: string; message?: string };
    leader?: string;
    members?: { name: string; role: string }[];
  };
}

async function gateway<T>(url: string, route: string, body: unknown, timeoutMs = 5000): Promise<T> {
  const res = await fetch(`${url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${url}${route}: ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

describe('backups and restores on the local cluster', () => {
  let env: OperatorCluster;
  let cluster: LocalCluster;
  let s3: S3Server;
  const k = (...args: string[]): Promise<string> => cluster.kubectl(args);
  const get = async (name: string): Promise<Topology> => JSON.parse(await k('get', 'etop', name, '-n', NS, '-o', 'json')) as Topology;
  const cli = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    exec(process.execPath, [path.join(repo, 'dist', 'cli.js'), ...args, '--kubeconfig', cluster.kubeconfig]).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );
  const s3Spec = (prefix: string) => ({ endpoint: s3.endpoint, bucket: BUCKET, prefix, forcePathStyle: true, credentialsSecret: 's3-credentials' });
  /** The finished backups (those with a manifest) of one topology in the bucket, oldest first. */
  const finished = async (prefix: string, name: string): Promise<string[]> => {
    const dir = path.join(s3.dir, BUCKET, prefix, NS, name);
    const files = await readdir(dir).catch(() => [] as string[]);
    return files.filter((f) => f.endsWith('.db') && files.includes(`${f}.json`)).sort();
  };
  const proxyUrl = async (name: string): Promise<string> => {
    const proxies = await waitFor(`a ready proxy of ${name}`, async () => {
      const l = (await componentPods(cluster, name, NS, 'proxy')).filter((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
      return l.length > 0 ? l : false;
    }, { timeoutMs: 120_000 });
    return `http://${proxies[0]!.status!.podIP}:2379`;
  };
  const available = (name: string, timeoutMs = 240_000): Promise<Topology> =>
    waitFor(`${name} Available`, async () => {
      const t = await get(name);
      return conditionOf(t as never, 'Available')?.status === 'True' ? t : false;
    }, { timeoutMs, intervalMs: 1000 });
  const backupNow = (name: string) => cli('backup', name, '-n', NS, '--wait', '--timeout', '3m');

  beforeAll(async () => {
    [env, s3] = await Promise.all([startOperatorCluster(), S3Server.start()]);
    cluster = env.cluster;
    await s3.createBucket(BUCKET);
    await k('create', 'secret', 'generic', 's3-credentials', '-n', NS, `--from-literal=AWS_ACCESS_KEY_ID=${s3.accessKeyId}`, `--from-literal=AWS_SECRET_ACCESS_KEY=${s3.secretAccessKey}`);
  });
  afterAll(async () => {
    await env?.stop();
    await s3?.stop();
  });

  it('refuses a bad backup spec at admission with the reason', async () => {
    const bad = (name: string, backup: unknown) => cluster.kubectl(['apply', '-f', '-'], topologyManifest(name, NS, { backup }));
    await expect(bad('bad-cron', { schedule: '61 * * * *', s3: s3Spec('') })).rejects.toThrow(/backup.schedule must be a 5-field cron expression in UTC/);
    await expect(bad('bad-cron6', { schedule: '0 0 * * * *', s3: s3Spec('') })).rejects.toThrow(/backup.schedule must be a 5-field cron expression/);
    await expect(bad('bad-both', { s3: s3Spec(''), volume: { claimName: 'x' } })).rejects.toThrow(/exactly one destination must be set/);
    await expect(bad('bad-none', { retention: { count: 3 } })).rejects.toThrow(/exactly one destination must be set/);
  });

  it('takes scheduled backups every minute, verified, and keeps retention.count', { timeout: 420_000 }, async () => {
    await cluster.kubectl(['apply', '-f', '-'], topologyManifest('main', NS, { version: PREVIOUS_ETCD_VERSION, backup: { schedule: '* * * * *', retention: { count: 2 }, s3: s3Spec('scheduled/') } }));
    await available('main');
    const url = await proxyUrl('main');
    for (let i = 0; i < 1000; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => i + j).map((n) => gateway(url, '/v3/kv/put', { key: b64(`/drill/${String(n).padStart(4, '0')}`), value: b64(`value-${n}`) })));
    }
    const two = await waitFor('two scheduled backups', async () => {
      const l = await finished('scheduled', 'main');
      return l.length >= 2 ? l : false;
    }, { timeoutMs: 200_000, intervalMs: 2000 });
    const newest = path.join(s3.dir, BUCKET, 'scheduled', NS, 'main', two[two.length - 1]!);
    const { stdout } = await exec(binaries().etcdutl, ['snapshot', 'status', newest, '-w', 'json']);
    expect((JSON.parse(stdout) as { totalKey: number }).totalKey).toBeGreaterThanOrEqual(1000);
    const manifest = JSON.parse(await readFile(`${newest}.json`, 'utf8')) as { member: string; sha256: string };
    const t = await get('main');
    // From a follower, never the leader of a cluster that has followers.
    expect(manifest.member).not.toBe(t.status?.leader);
    expect(conditionOf(t as never, 'BackupReady')).toMatchObject({ status: 'True', reason: 'BackupSucceeded' });

    // A third (on demand), then exactly two are left.
    const out = await backupNow('main');
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/^scheduled\/default\/main\/\d{8}T\d{6}Z-r\d+\.db revision \d+\n$/);
    const after = await finished('scheduled', 'main');
    expect(after).toHaveLength(2);
    expect(after).toContain(path.basename(out.stdout.split(' ')[0]!));
    expect(await env.operator.series('etcd_topology_backup_last_success_timestamp_seconds')).toEqual({ '{namespace="default",name="main"}': expect.any(Number) as number });
  });

  it('takes a backup while a follower is stopped, from the other follower', { timeout: 240_000 }, async () => {
    const t = await get('main');
    const followers = (t.status?.members ?? []).filter((m) => m.role === 'follower').map((m) => m.name);
    const pods = await componentPods(cluster, 'main', NS, 'member');
    const stopped = pods.find((p) => p.metadata.name === followers[0])!;
    const pid = Number(/^local:\/\/(\d+)$/.exec(stopped.status?.containerStatuses?.[0]?.containerID ?? '')?.[1]);
    expect(pid).toBeGreaterThan(0);
    process.kill(pid, 'SIGSTOP');
    try {
      const out = await backupNow('main');
      expect(out.code, out.stderr).toBe(0);
      const b = (await get('main')).status!.backup!;
      expect(b.lastSuccess!.member).toBe(followers[1]);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  });

  it('turns BackupReady False with the S3 error for wrong credentials, and recovers when the Secret is fixed', { timeout: 240_000 }, async () => {
    await k('create', 'secret', 'generic', 's3-credentials', '-n', NS, `--from-literal=AWS_ACCESS_KEY_ID=${s3.accessKeyId}`, '--from-literal=AWS_SECRET_ACCESS_KEY=wrong', '--dry-run=client', '-o', 'yaml').then((y) => cluster.kubectl(['apply', '-f', '-'], y));
    const failed = await backupNow('main');
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/backup failed: .*SignatureDoesNotMatch/);
    const t = await get('main');
    expect(conditionOf(t as never, 'BackupReady')).toMatchObject({ status: 'False', reason: 'BackupFailed' });
    expect(conditionOf(t as never, 'BackupReady')?.message).toMatch(/SignatureDoesNotMatch/);
    await k('create', 'secret', 'generic', 's3-credentials', '-n', NS, `--from-literal=AWS_ACCESS_KEY_ID=${s3.accessKeyId}`, `--from-literal=AWS_SECRET_ACCESS_KEY=${s3.secretAccessKey}`, '--dry-run=client', '-o', 'yaml').then((y) => cluster.kubectl(['apply', '-f', '-'], y));
    const ok = await backupNow('main');
    expect(ok.code, ok.stderr).toBe(0);
    expect(conditionOf((await get('main')) as never, 'BackupReady')).toMatchObject({ status: 'True', reason: 'BackupSucceeded' });
  });

  it('takes a backup before the first member of a version rolling update is replaced', { timeout: 400_000 }, async () => {
    const before = await componentPods(cluster, 'main', NS, 'member');
    const oldUids = new Set(before.map((p) => p.metadata.uid));
    // No scheduled backup in between: only the gate can have taken the one we look for.
    await k('patch', 'etop', 'main', '-n', NS, '--type=merge', '-p', JSON.stringify({ spec: { version: '3.6.16', backup: { schedule: null } } }));
    const firstNew = await waitFor('a member pod of the new version', async () => {
      const l = (await componentPods(cluster, 'main', NS, 'member')).filter((p) => !oldUids.has(p.metadata.uid));
      return l.length > 0 ? l.sort((a, b) => String(a.metadata.creationTimestamp).localeCompare(String(b.metadata.creationTimestamp)))[0] : false;
    }, { timeoutMs: 180_000, intervalMs: 500 });
    const jobs = JSON.parse(await k('get', 'jobs', '-n', NS, '-l', 'app.kubernetes.io/instance=main,etcdtopology.io/backup-reason=BeforeChange', '-o', 'json')) as { items: { metadata: { name: string }; status?: { completionTime?: string } }[] };
    expect(jobs.items.length).toBeGreaterThanOrEqual(1);
    const done = jobs.items.map((j) => j.status?.completionTime).filter((c): c is string => c !== undefined).sort()[0];
    expect(done).toBeDefined();
    expect(Date.parse(done!)).toBeLessThanOrEqual(Date.parse(String(firstNew.metadata.creationTimestamp)));
    await waitFor('every member on 3.6.16 and settled', async () => {
      const t = await get('main');
      const pods = await componentPods(cluster, 'main', NS, 'member');
      return pods.length === 3 && pods.every((p) => !oldUids.has(p.metadata.uid)) && conditionOf(t as never, 'Progressing')?.status === 'False' && conditionOf(t as never, 'Available')?.status === 'True';
    }, { timeoutMs: 240_000, intervalMs: 1000 });
  });

  it('restores a deleted topology from its latest backup: every key, a new cluster ID, the backup named in status', { timeout: 600_000 }, async () => {
    const url = await proxyUrl('main');
    const oldCluster = (await gateway<{ header: { cluster_id: string } }>(url, '/v3/maintenance/status', {})).header.cluster_id;
    const out = await backupNow('main');
    expect(out.code, out.stderr).toBe(0);
    const key = out.stdout.split(' ')[0]!;

    await k('delete', 'etop', 'main', '-n', NS, '--wait=true', '--timeout=120s');
    await waitFor('the old member pods gone', async () => (await componentPods(cluster, 'main', NS, 'member')).length === 0, { timeoutMs: 120_000, intervalMs: 1000 });
    await k('delete', 'pvc', '-n', NS, '-l', 'app.kubernetes.io/instance=main,app.kubernetes.io/component=member', '--wait=true', '--timeout=120s');

    await cluster.kubectl(['apply', '-f', '-'], topologyManifest('main', NS, { bootstrap: { fromBackup: { s3: s3Spec('scheduled/'), key: 'latest' } } }));
    const t = await available('main', 300_000);
    const restored = await waitFor('status.restore Restored', async () => {
      const r = (await get('main')).status?.restore;
      return r?.phase === 'Restored' ? r : false;
    }, { timeoutMs: 60_000 });
    expect(restored.key).toBe(key);
    expect(t.status?.members).toHaveLength(3);

    const newUrl = await proxyUrl('main');
    const range = await gateway<{ kvs?: { key: string; value: string }[] }>(newUrl, '/v3/kv/range', { key: b64('/drill/'), range_end: b64('/drill0') }, 15_000);
    const kvs = new Map((range.kvs ?? []).map((kv) => [unb64(kv.key), unb64(kv.value)]));
    expect(kvs.size).toBe(1000);
    for (let n = 0; n < 1000; n++) expect(kvs.get(`/drill/${String(n).padStart(4, '0')}`)).toBe(`value-${n}`);
    const newCluster = (await gateway<{ header: { cluster_id: string } }>(newUrl, '/v3/maintenance/status', {})).header.cluster_id;
    expect(newCluster).not.toBe(oldCluster);

    // bootstrap is read once: changing it afterwards is refused.
    await expect(k('patch', 'etop', 'main', '-n', NS, '--type=merge', '-p', JSON.stringify({ spec: { bootstrap: { fromBackup: { s3: s3Spec('scheduled/'), key: 'other' } } } }))).rejects.toThrow(/bootstrap is immutable/);
  });

  it('refuses to start members from a backup that does not exist, and says why', { timeout: 180_000 }, async () => {
    await cluster.kubectl(['apply', '-f', '-'], topologyManifest('ghost', NS, { members: { count: 1 }, bootstrap: { fromBackup: { s3: s3Spec('scheduled/'), key: 'scheduled/default/ghost/20200101T000000Z-r1.db' } } }));
    const t = await waitFor('ghost Degraded RestoreFailed', async () => {
      const t = await get('ghost');
      return conditionOf(t as never, 'Degraded')?.reason === 'RestoreFailed' ? t : false;
    }, { timeoutMs: 120_000, intervalMs: 1000 });
    expect(conditionOf(t as never, 'Degraded')?.message).toMatch(/backup scheduled\/default\/ghost\/20200101T000000Z-r1\.db does not exist in s3:\/\/etcd-backups/);
    expect(await componentPods(cluster, 'ghost', NS, 'member')).toEqual([]);
    await k('delete', 'etop', 'ghost', '-n', NS, '--wait=true');
  });

  it('backs up to a volume and restores from it the same way', { timeout: 400_000 }, async () => {
    // A volume every node can mount (a hostPath PersistentVolume without node affinity stands in for
    // NFS): restoring a topology of several members from a volume needs that, as docs/backup.md says.
    const shared = path.join(cluster.dir, 'shared-backups');
    await cluster.kubectl(['apply', '-f', '-'], JSON.stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [
        { apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name: 'etcd-backups' }, spec: { capacity: { storage: '1Gi' }, accessModes: ['ReadWriteMany'], storageClassName: '', hostPath: { path: shared }, claimRef: { namespace: NS, name: 'etcd-backups' } } },
        { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'etcd-backups', namespace: NS }, spec: { accessModes: ['ReadWriteMany'], storageClassName: '', volumeName: 'etcd-backups', resources: { requests: { storage: '1Gi' } } } },
      ],
    }));
    await cluster.kubectl(['apply', '-f', '-'], topologyManifest('vol', NS, { backup: { volume: { claimName: 'etcd-backups' } } }));
    await available('vol');
    const url = await proxyUrl('vol');
    await gateway(url, '/v3/kv/put', { key: b64('/vol/marker'), value: b64('on-a-volume') });
    const out = await backupNow('vol');
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/^default\/vol\/\d{8}T\d{6}Z-r\d+\.db revision \d+\n$/);
    await k('delete', 'etop', 'vol', '-n', NS, '--wait=true');
    await waitFor('vol pods gone', async () => (await componentPods(cluster, 'vol', NS, 'member')).length === 0, { timeoutMs: 120_000, intervalMs: 1000 });
    await k('delete', 'pvc', '-n', NS, '-l', 'app.kubernetes.io/instance=vol,app.kubernetes.io/component=member', '--wait=true');
    await cluster.kubectl(['apply', '-f', '-'], topologyManifest('vol', NS, { bootstrap: { fromBackup: { volume: { claimName: 'etcd-backups' }, key: 'latest' } } }));
    await available('vol', 300_000);
    const got = await gateway<{ kvs?: { value: string }[] }>(await proxyUrl('vol'), '/v3/kv/range', { key: b64('/vol/marker') });
    expect(unb64(got.kvs?.[0]?.value ?? '')).toBe('on-a-volume');
    expect((await get('vol')).status?.restore).toMatchObject({ phase: 'Restored', key: out.stdout.split(' ')[0] });
    // One resolve Job per restore, however often the topology was reconciled meanwhile.
    const resolves = JSON.parse(await k('get', 'jobs', '-n', NS, '-l', 'app.kubernetes.io/instance=vol,etcdtopology.io/backup-reason=Restore', '-o', 'json')) as { items: unknown[] };
    expect(resolves.items).toHaveLength(1);
  });
});

