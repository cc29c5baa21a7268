import { readFileSync, writeFileSync } from 'node:fs';
import { Agent } from 'undici';
import { z } from 'zod';
import { EtcdAdminClient } from '../etcd/admin-client.ts';
import { TopologyError, UsageError } from '../errors.ts';
import { parseFlags, toKebab } from '../flags.ts';
import { topologyPrefix } from './keys.ts';
import { resolveBackup, restoreMember } from './restore.ts';
import { S3Store } from './s3-store.ts';
import type { BackupStore } from './store.ts';
import { takeBackup } from './take.ts';
import { VolumeStore } from './volume-store.ts';

const usage = `usage: etcd-topology snapshot take|resolve|restore [flags]

The steps the operator runs in Jobs and init containers; a person rarely calls them.
  take      stream a member's snapshot to the destination, verify it, write its manifest, apply retention
  resolve   find a backup ("latest" or a key) and print its manifest
  restore   restore this member's data directory from a backup (does nothing if it holds data)

destination (one of):
  --s3-bucket B [--s3-region R] [--s3-endpoint URL] [--s3-prefix P] [--s3-force-path-style] [--s3-ca-file F]
                                   credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
  --volume-dir DIR [--volume-claim NAME]
common:
  --topology NS/NAME               the topology whose folder is used (<prefix>NS/NAME/)
  --termination-log FILE           where the result goes as one JSON line (default /dev/termination-log)
take:     --endpoint URL --member NAME [--keep N] [--cacert F --cert F --key F]
resolve:  --key KEY|latest
restore:  --key KEY [--sha256 HEX] --name M --initial-cluster C --initial-cluster-token T
          --initial-advertise-peer-urls URL --data-dir DIR [--etcdutl PATH]`;

const flagsSchema = z.object({
  s3Bucket: z.string().optional(),
  s3Region: z.string().default('us-east-1'),
  s3Endpoint: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).optional(),
  s3Prefix: z.string().default(''),
  s3ForcePathStyle: z.boolean().default(false),
  s3CaFile: z.string().optional(),
  volumeDir: z.string().optional(),
  volumeClaim: z.string().optional(),
  topology: z.string().regex(/^[a-z0-9-]+\/[a-z0-9-]+$/, 'expected NAMESPACE/NAME').optional(),
  terminationLog: z.string().default('/dev/termination-log'),
  endpoint: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).optional(),
  member: z.string().optional(),
  keep: z.coerce.number().int().min(1).default(24),
  cacert: z.string().optional(),
  cert: z.string().optional(),
  key: z.string().optional(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 hex digits').optional(),
  name: z.string().optional(),
  initialCluster: z.string().optional(),
  initialClusterToken: z.string().optional(),
  initialAdvertisePeerUrls: z.string().optional(),
  dataDir: z.string().optional(),
  etcdutl: z.string().default('etcdutl'),
  help: z.boolean().default(false),
});
type Flags = z.infer<typeof flagsSchema>;

function need<K extends keyof Flags>(flags: Flags, verb: string, ...names: K[]): void {
  const missing = names.filter((n) => flags[n] === undefined);
  if (missing.length > 0) throw new UsageError(`snapshot ${verb}: missing ${missing.map((n) => `--${toKebab(n)}`).join(', ')}`);
}

/** The destination the flags name; exactly one of S3 and volume. */
export function storeFromFlags(flags: Flags, env: NodeJS.ProcessEnv = process.env): BackupStore {
  if ((flags.s3Bucket === undefined) === (flags.volumeDir === undefined)) throw new UsageError('snapshot: give exactly one destination: --s3-bucket or --volume-dir');
  if (flags.volumeDir !== undefined) return new VolumeStore(flags.volumeDir, flags.volumeClaim);
  const accessKeyId = env['AWS_ACCESS_KEY_ID'];
  const secretAccessKey = env['AWS_SECRET_ACCESS_KEY'];
  if (!accessKeyId || !secretAccessKey) {
    throw new UsageError('snapshot: S3 credentials missing: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (the keys of spec.backup.s3.credentialsSecret)');
  }
  return new S3Store({
    bucket: flags.s3Bucket!,
    region: flags.s3Region,
    endpoint: flags.s3Endpoint,
    forcePathStyle: flags.s3ForcePathStyle,
    accessKeyId,
    secretAccessKey,
    ca: flags.s3CaFile ? readFileSync(flags.s3CaFile, 'utf8') : undefined,
  });
}

function folderOf(flags: Flags, verb: string): string {
  need(flags, verb, 'topology');
  const [ns, name] = flags.topology!.split('/') as [string, string];
  return topologyPrefix(flags.s3Bucket !== undefined ? flags.s3Prefix : '', ns, name);
}

/** The result line; the kubelet turns this file into the container's termination message. */
function report(file: string, result: Record<string, unknown>): void {
  const line = JSON.stringify(result);
  process.stdout.write(`${line}\n`);
  try {
    writeFileSync(file, line);
  } catch {
    // Outside a pod there is no termination log; stdout has the result.
  }
}

/** Runs `snapshot take|resolve|restore`; resolves the exit code. */
export async function main(argv: string[]): Promise<number> {
  const { flags, positionals } = parseFlags('snapshot', flagsSchema, argv);
  if (flags.help) {
    console.error(usage);
    return 0;
  }
  const [verb, ...extra] = positionals;
  if (!['take', 'resolve', 'restore'].includes(verb ?? '') || extra.length > 0) throw new UsageError(`snapshot: expected take, resolve or restore, got "${positionals.join(' ')}"`);
  const log = (msg: string): void => void process.stderr.write(`${new Date().toISOString()} ${msg}\n`);
  try {
    const store = storeFromFlags(flags);
    const folder = folderOf(flags, verb!);
    if (verb === 'take') {
      need(flags, 'take', 'endpoint', 'member');
      const tls = flags.cacert || flags.cert ? { ca: flags.cacert && readFileSync(flags.cacert, 'utf8'), cert: flags.cert && readFileSync(flags.cert, 'utf8'), key: flags.key && readFileSync(flags.key, 'utf8') } : undefined;
      const dispatcher = new Agent({ connections: 2, ...(tls ? { connect: tls } : {}) });
      const admin = new EtcdAdminClient({ timeoutMs: 10_000, ...(tls ? { tls } : {}) });
      log(`taking a snapshot of ${flags.member} (${flags.endpoint}) to ${store.description}, folder ${folder}`);
      const { manifest, deleted } = await takeBackup({ endpoint: flags.endpoint!, member: flags.member!, topology: flags.topology!, folder, keep: flags.keep, store, admin, dispatcher });
      await dispatcher.close();
      log(`stored ${manifest.key}: ${manifest.size} bytes, revision ${manifest.revision}, sha256 ${manifest.sha256}, ${manifest.durationSeconds}s; retention deleted ${deleted.length}`);
      report(flags.terminationLog, { ...manifest, deleted: deleted.length });
      return 0;
    }
    if (verb === 'resolve') {
      need(flags, 'resolve', 'key');
      const resolved = await resolveBackup(store, folder, flags.key!);
      log(`resolved ${flags.key} to ${resolved.key}`);
      report(flags.terminationLog, resolved);
      return 0;
    }
    need(flags, 'restore', 'key', 'name', 'initialCluster', 'initialClusterToken', 'initialAdvertisePeerUrls', 'dataDir');
    const outcome = await restoreMember({
      store,
      backup: { key: flags.key!, ...(flags.sha256 ? { sha256: flags.sha256 } : {}) },
      dataDir: flags.dataDir!,
      name: flags.name!,
      initialCluster: flags.initialCluster!,
      initialClusterToken: flags.initialClusterToken!,
      initialAdvertisePeerUrls: flags.initialAdvertisePeerUrls!,
      etcdutl: flags.etcdutl,
      log,
    });
    report(flags.terminationLog, { outcome, key: flags.key });
    return 0;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    log(`failed: ${message}`);
    report(flags.terminationLog, { error: message, code: err instanceof TopologyError ? err.code : 'ETOP_BACKUP' });
    return 1;
  }
}
