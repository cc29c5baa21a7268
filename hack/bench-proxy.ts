// Benchmarks the proxy against a member directly and against `etcd grpc-proxy` from the same etcd
// build, with etcd's own benchmark tool: range (linearizable and serializable), put and watch, at
// 1 client and at 100 clients over 10 connections. Targets run interleaved, round after round, and
// the report (docs/bench/proxy.md) gives medians and ratios. It then opens 10,000 watch streams
// through each proxy and reports their resident memory.
//   npm run bench:proxy [-- --rounds=3]
import { spawn, type ChildProcess } from 'node:child_process';
import http2 from 'node:http2';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { binaries } from '../test/harness/binaries.ts';
import { EtcdCluster } from '../test/harness/etcd-cluster.ts';
import { freePort, waitFor } from '../test/harness/ports.ts';
import { run } from '../test/harness/run.ts';

const root = path.join(import.meta.dirname, '..');
const rounds = Number(process.argv.find((a) => a.startsWith('--rounds='))?.split('=')[1] ?? 3);
const WATCH_STREAMS = 10_000;

type Target = 'direct' | 'grpc-proxy' | 'etcd-topology';
interface Workload { name: string; args: (conc: Conc) => string[]; summary: 'first' | 'last' }
interface Conc { name: string; flags: string[]; scale: number }
interface Result { rps: number; p99: number; avg: number }

const concs: Conc[] = [
  { name: '1 client', flags: ['--conns=1', '--clients=1'], scale: 1 },
  { name: '100 clients / 10 conns', flags: ['--conns=10', '--clients=100'], scale: 8 },
];
const workloads: Workload[] = [
  { name: 'range linearizable', args: (c) => ['range', '/bench/key', '--consistency=l', `--total=${1500 * c.scale}`], summary: 'first' },
  { name: 'range serializable', args: (c) => ['range', '/bench/key', '--consistency=s', `--total=${2500 * c.scale}`], summary: 'first' },
  { name: 'put', args: (c) => ['put', '--key-size=8', '--val-size=256', `--total=${1000 * c.scale}`], summary: 'first' },
  {
    name: 'watch (events delivered)',
    args: (c) => ['watch', `--streams=${c.scale === 1 ? 1 : 10}`, '--watch-per-stream=10', `--put-total=${500 * c.scale}`],
    summary: 'last',
  },
];

function parse(out: string, which: 'first' | 'last'): Result {
  const summaries = out.split('Summary:').slice(1);
  const s = which === 'first' ? summaries[0] : summaries[summaries.length - 1];
  if (s === undefined) throw new Error(`benchmark printed no summary:\n${out.slice(-2000)}`);
  const num = (re: RegExp): number => Number(re.exec(s)?.[1] ?? NaN);
  return { rps: num(/Requests\/sec:\s+([\d.]+)/), p99: num(/99% in ([\d.]+) secs/) * 1000, avg: num(/Average:\s+([\d.]+) secs/) * 1000 };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
}

/** Opens n gRPC Watch streams on target (host:port) and resolves once every one is created. */
async function openWatches(target: string, n: number): Promise<() => void> {
  // WatchRequest{create_request: WatchCreateRequest{key: "/rss"}}
  const key = Buffer.from('/rss');
  const create = Buffer.concat([Buffer.from([0x0a, key.length]), key]);
  const msg = Buffer.concat([Buffer.from([0x0a, create.length]), create]);
  const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, msg.length]), msg]);
  const sessions = Array.from({ length: 10 }, () => http2.connect(`http://${target}`, { peerMaxConcurrentStreams: 100_000 }));
  let created = 0;
  const streams: http2.ClientHttp2Stream[] = [];
  for (let i = 0; i < n; i++) {
    const s = sessions[i % sessions.length]!.request({ ':method': 'POST', ':path': '/etcdserverpb.Watch/Watch', 'content-type': 'application/grpc', te: 'trailers' });
    s.once('data', () => created++);
    s.on('error', () => undefined);
    s.write(frame);
    streams.push(s);
  }
  await waitFor(`${n} watches created on ${target}`, () => created === n, { timeoutMs: 120_000, intervalMs: 500 });
  return () => {
    for (const s of sessions) s.destroy();
  };
}

function start(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
  let tail = '';
  child.stderr.on('data', (d: Buffer) => (tail = (tail + d.toString()).slice(-4000)));
  // A target that dies mid-run would hang the benchmark tool: say so loudly and stop.
  child.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(`${path.basename(file)} ${args[0]} exited (${code ?? signal}) during the benchmark; last output:\n${tail}`);
      process.exit(1);
    }
  });
  return child;
}
let stopping = false;

async function main(): Promise<void> {
  const bin = binaries();
  const cluster = await EtcdCluster.start({ size: 1 });
  const member = cluster.members[0]!;
  const grpcProxyPort = await freePort();
  const ourPort = await freePort();
  const metricsPort = await freePort();
  const grpcProxy = start(bin.etcd, ['grpc-proxy', 'start', `--endpoints=${member.clientUrl}`, `--listen-addr=127.0.0.1:${grpcProxyPort}`]);
  const ours = start(process.execPath, [
    path.join(root, 'src', 'cli.ts'), 'proxy', `--endpoints=${member.clientUrl}`, `--listen-client-urls=http://127.0.0.1:${ourPort}`,
    `--metrics-addr=127.0.0.1:${metricsPort}`,
  ], { ...process.env, LOG_LEVEL: 'warn' });
  const targets: Record<Target, string> = {
    direct: member.clientUrl.replace('http://', ''),
    'grpc-proxy': `127.0.0.1:${grpcProxyPort}`,
    'etcd-topology': `127.0.0.1:${ourPort}`,
  };
  try {
    for (const t of Object.values(targets)) {
      await waitFor(`${t} to serve`, () => run(bin.etcdctl, [`--endpoints=${t}`, 'put', '/bench/key', 'v']).then(() => true), { timeoutMs: 30_000 });
    }
    const results = new Map<string, Result[]>();
    for (let round = 1; round <= rounds; round++) {
      for (const w of workloads) {
        for (const c of concs) {
          for (const t of Object.keys(targets) as Target[]) {
            const out = await run(bin.benchmark, [`--endpoints=${targets[t]}`, ...c.flags, ...w.args(c)]);
            const r = parse(out, w.summary);
            const k = `${w.name}|${c.name}|${t}`;
            results.set(k, [...(results.get(k) ?? []), r]);
            console.log(`round ${round} ${w.name}, ${c.name}, ${t}: ${r.rps.toFixed(0)} req/s, p99 ${r.p99.toFixed(2)} ms`);
          }
        }
      }
    }

    const rssIdle = { 'grpc-proxy': await rssKiB(grpcProxy.pid!), 'etcd-topology': await rssKiB(ours.pid!) };
    const rssWatch: Record<string, number> = {};
    for (const t of ['etcd-topology', 'grpc-proxy'] as const) {
      const close = await openWatches(targets[t], WATCH_STREAMS);
      rssWatch[t] = await rssKiB(t === 'grpc-proxy' ? grpcProxy.pid! : ours.pid!);
      console.log(`${WATCH_STREAMS} watch streams through ${t}: RSS ${(rssWatch[t] / 1024).toFixed(0)} MiB`);
      close();
    }

    const lines: string[] = [];
    const fmt = (n: number, d = 0): string => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');
    lines.push('# Proxy benchmark', '');
    lines.push(`Generated by \`npm run bench:proxy\` on ${new Date().toISOString().slice(0, 10)}: ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? 'unknown'}),`);
    lines.push(`Node ${process.version}, etcd v3.6.16 (one member, \`--unsafe-no-fsync\`), etcd's \`benchmark\` tool. Every process (member, proxies,`);
    lines.push(`benchmark client) shares the same machine. ${rounds} rounds, targets interleaved within each round; medians shown.`);
    lines.push('', '- **direct**: the benchmark talks to the member.', '- **grpc-proxy**: `etcd grpc-proxy start` from the same etcd binary.', '- **etcd-topology**: `etcd-topology proxy` (this repository).', '');
    lines.push('| workload | clients | direct req/s | grpc-proxy req/s | etcd-topology req/s | vs direct | vs grpc-proxy | p99 ms direct / grpc-proxy / etcd-topology |');
    lines.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |');
    const added: string[] = [];
    for (const w of workloads) {
      for (const c of concs) {
        const m = (t: Target, f: (r: Result) => number): number => median((results.get(`${w.name}|${c.name}|${t}`) ?? []).map(f));
        const [d, g, o] = (['direct', 'grpc-proxy', 'etcd-topology'] as Target[]).map((t) => m(t, (r) => r.rps)) as [number, number, number];
        const [pd, pg, po] = (['direct', 'grpc-proxy', 'etcd-topology'] as Target[]).map((t) => m(t, (r) => r.p99)) as [number, number, number];
        lines.push(`| ${w.name} | ${c.name} | ${fmt(d)} | ${fmt(g)} | ${fmt(o)} | ${fmt(o / d, 2)} | ${fmt(o / g, 2)} | ${fmt(pd, 2)} / ${fmt(pg, 2)} / ${fmt(po, 2)} |`);
        if (c.scale === 1) added.push(`| ${w.name} | ${fmt(po - pd, 2)} | ${fmt(pg - pd, 2)} |`);
      }
    }
    lines.push('', '## Added p99 latency at 1 client (ms, median p99 minus direct median p99)', '');
    lines.push('| workload | etcd-topology | grpc-proxy |', '| --- | ---: | ---: |', ...added);
    lines.push('', `## Memory with ${WATCH_STREAMS.toLocaleString('en')} open watch streams`, '');
    lines.push('| proxy | RSS after the runs above | RSS with the streams open |', '| --- | ---: | ---: |');
    for (const t of ['etcd-topology', 'grpc-proxy'] as const) lines.push(`| ${t} | ${fmt(rssIdle[t] / 1024)} MiB | ${fmt(rssWatch[t]! / 1024)} MiB |`);
    lines.push('', `Targets (issue 3): throughput at least 0.9 x direct and 1.0 x grpc-proxy; added p99 at 1 client at most 0.5 ms.`);
    lines.push('The numbers above are what this run measured; nothing in the benchmark is tuned to them.', '');
    await mkdir(path.join(root, 'docs', 'bench'), { recursive: true });
    await writeFile(path.join(root, 'docs', 'bench', 'proxy.md'), lines.join('\n'));
    console.log(lines.join('\n'));
  } finally {
    stopping = true;
    grpcProxy.kill('SIGTERM');
    ours.kill('SIGTERM');
    await cluster.stop();
  }
}

await main();
