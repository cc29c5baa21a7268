// npm run bench:backup [-- --rounds 3 --size-mib 256]
// A real etcd member filled to about --size-mib of database, a real S3-compatible server (versitygw) on
// 127.0.0.1, and this checkout's dist/cli.js: the time of `etcd-topology snapshot take` (what a backup
// Job runs) and of `etcd-topology snapshot restore` (what a member's restore init container runs, etcdutl
// included), and the peak RSS of each process (VmHWM), over rounds with medians. Writes docs/bench/backup.md.
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { SNAPSHOT_NODE_OPTIONS } from '../src/operator/components/snapshot-job/snapshot-job.ts';
import { binaries } from '../test/harness/binaries.ts';
import { EtcdCluster } from '../test/harness/etcd-cluster.ts';
import { S3Server } from '../test/harness/s3-server.ts';

const exec = promisify(execFile);
const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, 'size-mib': { type: 'string', default: '256' } }, strict: true });
const rounds = Number(values.rounds);
const sizeMiB = Number(values['size-mib']);
if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(sizeMiB) || sizeMiB < 1) {
  console.error('bench:backup: --rounds and --size-mib must be whole numbers >= 1');
  process.exit(2);
}
const repo = path.resolve(import.meta.dirname, '..');
// The Node flags the backup Job and the restore init container run with (their containers' NODE_OPTIONS);
// BENCH_BACKUP_NODE_OPTIONS replaces them (set it to a space for Node's defaults).
const CHILD_NODE_FLAGS = (process.env['BENCH_BACKUP_NODE_OPTIONS'] ?? SNAPSHOT_NODE_OPTIONS).split(' ').filter(Boolean);
const cli = path.join(repo, 'dist', 'cli.js');
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Runs the CLI, sampling the process's peak RSS (VmHWM) until it exits; resolves seconds, MiB and its result line. */
function measured(args: string[], env: NodeJS.ProcessEnv): Promise<{ seconds: number; peakMiB: number; out: string }> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn(process.execPath, [...CHILD_NODE_FLAGS, cli, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let peak = 0;
    let out = '';
    let err = '';
    const sample = (): void => {
      readFile(`/proc/${child.pid}/status`, 'utf8').then((s) => {
        peak = Math.max(peak, Number(/VmHWM:\s+(\d+) kB/.exec(s)?.[1] ?? 0) / 1024);
      }, () => undefined);
    };
    const timer = setInterval(sample, 20);
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('exit', (code) => {
      clearInterval(timer);
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      if (code === 0) resolve({ seconds, peakMiB: peak, out });
      else reject(new Error(`etcd-topology ${args.slice(0, 2).join(' ')} exited with ${code}: ${err.slice(-500)}`));
    });
  });
}

await exec(process.execPath, [path.join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(repo, 'tsconfig.build.json')]);
const started = Date.now();
const load = os.loadavg().map((l) => l.toFixed(1)).join(' ');
const [etcd, s3] = await Promise.all([EtcdCluster.start({ size: 1, extraArgs: ['--quota-backend-bytes=4294967296'] }), S3Server.start()]);
const tmp = await mkdtemp(path.join(os.tmpdir(), 'bench-backup-'));
try {
  await s3.createBucket('bench');
  const member = etcd.members[0]!;
  // 1 MiB values, distinct keys: the database grows by about that much per put.
  const value = Buffer.alloc(1024 * 1024, 'x').toString('base64').slice(0, 1024 * 1024);
  for (let i = 0; i < sizeMiB; i += 8) {
    await Promise.all(Array.from({ length: Math.min(8, sizeMiB - i) }, (_, j) =>
      fetch(`${member.clientUrl}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: Buffer.from(`/bench/${i + j}`).toString('base64'), value: Buffer.from(value).toString('base64') }) }).then((r) => r.text())));
  }
  const status = JSON.parse(await (await fetch(`${member.clientUrl}/v3/maintenance/status`, { method: 'POST', body: '{}' })).text()) as { dbSize: string };
  const dbMiB = Number(status.dbSize) / 1024 / 1024;
  const env = { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey };
  const dest = ['--s3-bucket=bench', `--s3-endpoint=${s3.endpoint}`, '--s3-force-path-style', '--topology=bench/main', `--termination-log=${path.join(tmp, 'result')}`];
  const take: { seconds: number; peakMiB: number }[] = [];
  const restore: { seconds: number; peakMiB: number }[] = [];
  let size = 0;
  for (let r = 0; r < rounds; r++) {
    const t = await measured(['snapshot', 'take', ...dest, `--endpoint=${member.clientUrl}`, `--member=${member.name}`, '--keep=1'], env);
    take.push(t);
    const result = JSON.parse(t.out.trim().split('\n').pop()!) as { key: string; sha256: string; size: number };
    size = result.size;
    const dataDir = path.join(tmp, `restore-${r}`, 'data');
    restore.push(await measured(['snapshot', 'restore', ...dest, `--key=${result.key}`, `--sha256=${result.sha256}`, '--name=r0', '--initial-cluster=r0=http://127.0.0.1:2380', '--initial-cluster-token=bench', '--initial-advertise-peer-urls=http://127.0.0.1:2380', `--data-dir=${dataDir}`, `--etcdutl=${binaries().etcdutl}`], env));
    await rm(path.dirname(dataDir), { recursive: true, force: true });
    console.error(`round ${r + 1}: take ${t.seconds.toFixed(1)} s / ${t.peakMiB.toFixed(0)} MiB, restore ${restore[r]!.seconds.toFixed(1)} s / ${restore[r]!.peakMiB.toFixed(0)} MiB`);
  }
  const row = (name: string, xs: { seconds: number; peakMiB: number }[]): string =>
    `| ${name} | ${median(xs.map((x) => x.seconds)).toFixed(1)} | ${Math.min(...xs.map((x) => x.seconds)).toFixed(1)} - ${Math.max(...xs.map((x) => x.seconds)).toFixed(1)} | ${(size / 1024 / 1024 / median(xs.map((x) => x.seconds))).toFixed(0)} | ${median(xs.map((x) => x.peakMiB)).toFixed(0)} | ${Math.max(...xs.map((x) => x.peakMiB)).toFixed(0)} |`;
  const report = `# Backup benchmark

Generated by \`npm run bench:backup -- --rounds=${rounds} --size-mib=${sizeMiB}\` on ${new Date().toISOString().slice(0, 10)}.

- Machine: ${os.cpus().length} CPUs, ${Math.round(os.totalmem() / 2 ** 30)} GiB, shared (load average ${load} at the start, ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} at the end). Node ${process.version}, etcd v3.6.16 (one member), versitygw on 127.0.0.1 over a local directory.
- Database: ${dbMiB.toFixed(0)} MiB (etcd's dbSize), filled with ${sizeMiB} values of 1 MiB; the stored snapshot is ${(size / 1024 / 1024).toFixed(0)} MiB.
- **take**: \`etcd-topology snapshot take\`, what a backup Job runs: etcd's snapshot stream through the JSON gateway, its sha256 checked on the way, a multipart upload in 8 MiB parts (two in flight), the manifest, retention.
- **restore**: \`etcd-topology snapshot restore\`, what a member's restore init container runs: download, sha256 against the manifest, \`etcdutl snapshot restore\` (a child process, not counted in the RSS).
- Both run with the Node flags their containers get (\`NODE_OPTIONS=${CHILD_NODE_FLAGS.join(' ')}\`); peak RSS is the process's VmHWM, sampled every 20 ms. ${rounds} rounds, medians; the run took ${((Date.now() - started) / 60_000).toFixed(1)} minutes.

| step | median s | min - max s | MiB/s | median peak RSS MiB | max peak RSS MiB |
| --- | ---: | --- | ---: | ---: | ---: |
${row('take (backup)', take)}
${row('restore', restore)}

The snapshot is never held whole: take holds one gateway message and at most two 8 MiB upload parts at a
time, restore one read buffer. Compare runs with \`--size-mib\` to see that the peak does not follow the
database; run with \`BENCH_BACKUP_NODE_OPTIONS=' '\` to see Node's default heap sizing let garbage pile up.
`;
  await writeFile(path.join(repo, 'docs', 'bench', 'backup.md'), report);
  console.log(report);
} finally {
  await etcd.stop();
  await s3.stop();
  await rm(tmp, { recursive: true, force: true });
}
