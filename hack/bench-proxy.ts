// Benchmarks the proxy against a member directly and against `etcd grpc-proxy` from the same etcd
// build, with etcd's own benchmark tool: range (linearizable and serializable), put and watch, at
// 1 client and at 100 clients over 10 connections. Targets run interleaved, round after round, and
// the report (docs/bench/proxy.md) gives medians, ratios and each process's CPU time per request
// (utime + stime from /proc/PID/stat over a run, divided by the requests in it). It then opens 10,000
// watch streams through each proxy and reports their resident memory.
//   npm run bench:proxy [-- --rounds=3] [-- --baseline=DIR] [-- --tls-only]
// --baseline=DIR adds a fourth target: the proxy as built from DIR/src/cli.ts (for example an older
// commit exported with `git archive`), to compare two builds side by side in one run.
// Then, on a 3-member cluster, puts at 100 clients through the proxy with leader routing on and off
// (--leader-routing=false), next to the benchmark's own client spread over the members.
// --only=leader-routing runs that part alone and replaces only its section of the report.
// Last, 10,000 watchers on 10 keys go through our proxy with watch coalescing on and off, and the
// report gives the member's CPU and RSS and the proxy's RSS for each. --only=coalescing runs that
// part alone and replaces only its section of docs/bench/proxy.md.
// --only=footprint measures resident memory as deployed: the proxy compiled to JavaScript as the image
// has it (tsc -p tsconfig.build.json; running src/*.ts through Node's type stripping costs ~30 MiB
// more), with and without the DaemonSet's V8 flags, beside grpc-proxy and the --baseline build: idle,
// after the throughput runs (which it also reports, ours against the baseline, interleaved), and with
// 10,000 open watch streams. It replaces only its section of docs/bench/proxy.md; a full run ends with it.
// Every run also measures the proxy against a second member that serves mutual TLS (the proxy
// presenting its client certificate, as deployed) beside the plaintext one; --tls-only runs just
// those two targets and replaces only that section of docs/bench/proxy.md (with --baseline=DIR, the
// baseline build against both members as well, and the ratios between the two builds).
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import http2 from 'node:http2';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createCa, issueLeaf } from '../src/pki/issuer.ts';
import { binaries } from '../test/harness/binaries.ts';
import { spawnLogged, terminate } from '../test/harness/cluster/processes.ts';
import { EtcdCluster } from '../test/harness/etcd-cluster.ts';
import { freePort, waitFor } from '../test/harness/ports.ts';
import { run } from '../test/harness/run.ts';
import { PROXY_NODE_OPTIONS } from '../src/operator/components/proxy-daemonset/proxy-daemonset.ts';
import { frameMessage } from '../src/proxy/grpc-frame.ts';
import { MessageWriter } from '../src/proxy/protobuf.ts';
import { decodeWatchResponse } from '../src/proxy/watch/wire.ts';
import { buildProxy, memoryOf, type Memory } from './proxy-footprint.ts';

const root = path.join(import.meta.dirname, '..');
const arg = (name: string): string | undefined => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=').slice(1).join('=');
const rounds = Number(arg('rounds') ?? 3);
const baselineDir = arg('baseline');
const only = arg('only');
if (only !== undefined && only !== 'leader-routing' && only !== 'coalescing' && only !== 'footprint') {
  throw new Error(`--only=${only}: expected --only=leader-routing, --only=coalescing or --only=footprint`);
}
const tlsOnly = process.argv.includes('--tls-only');
const PLAIN = 'etcd-topology';
const MTLS = 'etcd-topology (mTLS to member)';
const TLS_SECTION = '## Proxy → member over mutual TLS';
const baselineName = (name: string): string => `${name} (baseline)`;
const WATCH_STREAMS = 10_000;
// One benchmark run never takes this long on a working target; past it the run is redone.
const RUN_TIMEOUT_MS = 180_000;

interface Workload { name: string; args: (conc: Conc) => string[]; summary: 'first' | 'last' }
interface Conc { name: string; flags: string[]; one: boolean }
interface Result { rps: number; p99: number; avg: number; /** CPU µs per request of the target's process, when it has one and the run counts requests. */ cpu?: number }

// Sizes: large enough that a run lasts a few seconds even directly, small enough that 3 rounds of
// 8 cells x 3 targets stay under ~15 minutes on a shared 2-core machine.
const concs: Conc[] = [
  { name: '1 client', flags: ['--conns=1', '--clients=1'], one: true },
  { name: '100 clients / 10 conns', flags: ['--conns=10', '--clients=100'], one: false },
];
const total = (c: Conc, one: number, many: number): string => `--total=${c.one ? one : many}`;
const workloads: Workload[] = [
  { name: 'range linearizable', args: (c) => ['range', '/bench/key', '--consistency=l', total(c, 4000, 40000)], summary: 'first' },
  { name: 'range serializable', args: (c) => ['range', '/bench/key', '--consistency=s', total(c, 5000, 50000)], summary: 'first' },
  { name: 'put', args: (c) => ['put', '--key-size=8', '--val-size=256', total(c, 3000, 30000)], summary: 'first' },
  {
    name: 'watch (events delivered)',
    args: (c) => ['watch', `--streams=${c.one ? 1 : 10}`, '--watch-per-stream=10', `--put-total=${c.one ? 1000 : 8000}`],
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

// Clock ticks per second of utime and stime in /proc/PID/stat (USER_HZ, 100 on Linux).
const CLK_TCK = Number((await run('getconf', ['CLK_TCK'])).trim()) || 100;

/** CPU time (user + system) the process has used so far, in microseconds. */
async function cpuMicros(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces), from field 3 on: utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLK_TCK;
}

/** The requests one run sends, from its --total flag (undefined for the watch workload). */
function requestsIn(args: string[]): number | undefined {
  const t = args.find((a) => a.startsWith('--total='));
  return t === undefined ? undefined : Number(t.slice('--total='.length));
}

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
  for (const s of sessions) s.on('error', () => undefined);
  let created = 0;
  for (let i = 0; i < n; i++) {
    const s = sessions[i % sessions.length]!.request({ ':method': 'POST', ':path': '/etcdserverpb.Watch/Watch', 'content-type': 'application/grpc', te: 'trailers' });
    s.once('data', () => created++);
    s.on('error', () => undefined);
    s.write(frame);
  }
  await waitFor(`${n} watches created on ${target}`, () => created === n, { timeoutMs: 120_000, intervalMs: 500 });
  return () => {
    for (const s of sessions) s.destroy();
  };
}

// The coalescing comparison: 10,000 watch streams, one watch each, on 10 keys; then 20 puts on each
// key, so that 200,000 events reach the watchers.
const CO_WATCHERS = 10_000;
const CO_KEYS = 10;
const CO_PUTS_PER_KEY = 20;
const CO_SECTION = '## 10,000 watchers on 10 keys, watch coalescing on and off';

const watchCreate = (key: string): Buffer => frameMessage(new MessageWriter().bytesField(1, new MessageWriter().bytesField(1, Buffer.from(key)).finish()).finish());
const putRequest = (key: string, value: string): Buffer => frameMessage(new MessageWriter().bytesField(1, Buffer.from(key)).bytesField(2, Buffer.from(value)).finish());

/**
 * Opens CO_WATCHERS Watch streams through target over 10 connections, watchers i on key /co/(i mod
 * CO_KEYS); resolves once all are created, with a function that resolves once each has received
 * `events` more responses, and a close.
 */
async function openKeyWatchers(target: string): Promise<{ untilDelivered(events: number): Promise<void>; close(): void }> {
  const sessions = Array.from({ length: 10 }, () => http2.connect(`http://${target}`, { peerMaxConcurrentStreams: 100_000 }));
  for (const s of sessions) s.on('error', () => undefined);
  // Per watcher: its created response seen, and the events received. Events, not messages: a proxy
  // (or etcd, for a watcher that fell behind) may send several events in one response.
  const created = new Uint8Array(CO_WATCHERS);
  const counts = new Int32Array(CO_WATCHERS);
  // One connection's streams at a time, each batch created before the next opens.
  const perSession = CO_WATCHERS / sessions.length;
  for (let c = 0; c < sessions.length; c++) {
    for (let i = c * perSession; i < (c + 1) * perSession; i++) {
      const s = sessions[c]!.request({ ':method': 'POST', ':path': '/etcdserverpb.Watch/Watch', 'content-type': 'application/grpc', te: 'trailers' });
      s.on('error', () => undefined);
      // Whole gRPC messages: 5-byte prefix, then the length it gives.
      let pending: Buffer = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        pending = pending.length === 0 ? d : Buffer.concat([pending, d]);
        while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
          const end = 5 + pending.readUInt32BE(1);
          const r = decodeWatchResponse(pending.subarray(5, end));
          pending = pending.subarray(end);
          if (r.created) created[i] = 1;
          counts[i]! += r.events;
        }
      });
      s.write(watchCreate(`/co/${i % CO_KEYS}`));
    }
    const batch = created.subarray(c * perSession, (c + 1) * perSession);
    await waitFor(`${perSession} watches created on connection ${c + 1} to ${target}`, () => batch.every((n) => n === 1), { timeoutMs: 60_000, intervalMs: 100 });
  }
  return {
    untilDelivered: async (events) => void await waitFor(`${events} events at every watcher on ${target}`, () => counts.every((n) => n >= events), { timeoutMs: 300_000, intervalMs: 200 }),
    close: () => {
      for (const s of sessions) s.destroy();
    },
  };
}

interface CoalescingResult { memberWatchers: number; memberCpuMs: number; memberRssMiB: number; proxyRssMiB: number; proxyCpuMs: number; deliverSeconds: number }

/**
 * One measurement: the member restarted (so that its RSS starts from the same point), a fresh proxy
 * with coalescing on or off, the watchers opened, the puts made and delivered everywhere.
 */
async function measureCoalescing(cluster: EtcdCluster, startProxy: (coalescing: boolean) => Promise<Target>, coalescing: boolean, etcdctl: string): Promise<CoalescingResult> {
  const member = cluster.members[0]!;
  await cluster.kill(member.name);
  await cluster.restart(member.name);
  const proxy = await startProxy(coalescing);
  proxy.start();
  try {
    // A member just restarted on a loaded machine can take a while to serve through a new proxy.
    await proxy.ready(etcdctl, 120_000);
    const memberPid = member.process!.pid!;
    const proxyPid = proxy.child!.pid!;
    const memberCpu0 = await cpuMicros(memberPid);
    const proxyCpu0 = await cpuMicros(proxyPid);
    const watchers = await openKeyWatchers(proxy.addr);
    const memberWatchers = await memberGauge(member.clientUrl, 'etcd_debugging_mvcc_watcher_total');
    const t0 = performance.now();
    const put = http2.connect(member.clientUrl);
    put.on('error', () => undefined);
    for (let round = 0; round < CO_PUTS_PER_KEY; round++) {
      await Promise.all(Array.from({ length: CO_KEYS }, (_, k) => new Promise<void>((resolve, reject) => {
        const req = put.request({ ':method': 'POST', ':path': '/etcdserverpb.KV/Put', 'content-type': 'application/grpc', te: 'trailers' });
        req.on('error', reject);
        req.on('data', () => undefined);
        req.on('end', () => resolve());
        req.end(putRequest(`/co/${k}`, `value ${round}`));
      })));
    }
    await watchers.untilDelivered(CO_PUTS_PER_KEY);
    const deliverSeconds = (performance.now() - t0) / 1000;
    const result = {
      memberWatchers,
      memberCpuMs: ((await cpuMicros(memberPid)) - memberCpu0) / 1000,
      proxyCpuMs: ((await cpuMicros(proxyPid)) - proxyCpu0) / 1000,
      memberRssMiB: (await rssKiB(memberPid)) / 1024,
      proxyRssMiB: (await rssKiB(proxyPid)) / 1024,
      deliverSeconds,
    };
    put.close();
    watchers.close();
    return result;
  } finally {
    proxy.stop();
    await new Promise((res) => setTimeout(res, 1000));
  }
}

/** A gauge from the member's own /metrics. */
async function memberGauge(clientUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${clientUrl}/metrics`)).text();
  return Number(text.split('\n').find((l) => l.startsWith(`${name} `))?.split(' ')[1] ?? NaN);
}

/** Runs the coalescing comparison, modes interleaved round by round, and returns its report section. */
async function coalescingSection(cluster: EtcdCluster, startProxy: (coalescing: boolean) => Promise<Target>, etcdctl: string): Promise<string[]> {
  const runs = new Map<boolean, CoalescingResult[]>([[true, []], [false, []]]);
  const redone: string[] = [];
  for (let round = 1; round <= rounds; round++) {
    // Alternate which mode goes first, so neither always runs on a warmer machine.
    for (const coalescing of round % 2 === 1 ? [true, false] : [false, true]) {
      let r: CoalescingResult;
      try {
        r = await measureCoalescing(cluster, startProxy, coalescing, etcdctl);
      } catch (err) {
        // Redone once, and said so in the report.
        const why = (err as Error).message.split('\n')[0]!;
        redone.push(`round ${round}, coalescing ${coalescing ? 'on' : 'off'}: ${why}`);
        console.error(`${why}; redoing the measurement`);
        r = await measureCoalescing(cluster, startProxy, coalescing, etcdctl);
      }
      runs.get(coalescing)!.push(r);
      console.log(`round ${round} coalescing ${coalescing ? 'on' : 'off'}: ${r.memberWatchers} watchers on the member, member CPU ${r.memberCpuMs.toFixed(0)} ms, member RSS ${r.memberRssMiB.toFixed(0)} MiB, proxy RSS ${r.proxyRssMiB.toFixed(0)} MiB, proxy CPU ${r.proxyCpuMs.toFixed(0)} ms, delivered in ${r.deliverSeconds.toFixed(1)} s`);
    }
  }
  const m = (on: boolean, f: (r: CoalescingResult) => number): number => median(runs.get(on)!.map(f));
  const row = (on: boolean): string =>
    `| ${on ? 'on (default)' : 'off (--watch-coalescing=false)'} | ${m(on, (r) => r.memberWatchers).toFixed(0)} | ${m(on, (r) => r.memberCpuMs).toFixed(0)} | ${m(on, (r) => r.memberRssMiB).toFixed(0)} MiB | ${m(on, (r) => r.proxyCpuMs).toFixed(0)} | ${m(on, (r) => r.proxyRssMiB).toFixed(0)} MiB | ${m(on, (r) => r.deliverSeconds).toFixed(1)} |`;
  const ratio = (f: (r: CoalescingResult) => number): string => (m(false, f) / m(true, f)).toFixed(1);
  return [
    CO_SECTION,
    '',
    `Measured ${new Date().toISOString().slice(0, 10)} with \`npm run bench:proxy${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}\`, ${rounds} rounds, the two modes interleaved; medians.`,
    `${CO_WATCHERS.toLocaleString('en')} Watch streams (one watch each, from now) over 10 HTTP/2 connections to our proxy, watcher i on key /co/(i mod ${CO_KEYS});`,
    `then ${CO_PUTS_PER_KEY} puts on each key straight to the member, until every watcher has all ${CO_PUTS_PER_KEY} events (${(CO_WATCHERS * CO_PUTS_PER_KEY).toLocaleString('en')} events delivered).`,
    'The member is restarted before each measurement. CPU is utime + stime from /proc/PID/stat from before the streams open until the',
    'last event is delivered; RSS is VmRSS with the streams open, after the events.',
    '',
    '| watch coalescing | watchers on the member (etcd_debugging_mvcc_watcher_total) | member CPU ms | member RSS | proxy CPU ms | proxy RSS | seconds to deliver |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    row(true),
    row(false),
    '',
    `Off / on: member CPU ${ratio((r) => r.memberCpuMs)} x, member RSS ${ratio((r) => r.memberRssMiB)} x, proxy CPU ${ratio((r) => r.proxyCpuMs)} x, proxy RSS ${ratio((r) => r.proxyRssMiB)} x.`,
    `Load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} at the end of this part.`,
    ...(redone.length > 0 ? ['', 'Measurements redone after a failure:', '', ...redone.map((r) => `- ${r}`)] : []),
    '',
  ];
}

/** Replaces the coalescing section of an existing report (or appends it). */
function spliceSection(report: string, section: string[]): string {
  const lines = report.split('\n');
  const start = lines.indexOf(CO_SECTION);
  if (start === -1) {
    const at = lines.indexOf('## Target restarts');
    lines.splice(at === -1 ? lines.length : at, 0, ...section);
    return lines.join('\n');
  }
  let end = start + 1;
  while (end < lines.length && !lines[end]!.startsWith('## ')) end++;
  lines.splice(start, end - start, ...section);
  return lines.join('\n');
}

/** A process under test that can be restarted when it dies, with its output kept in a log file. */
class Target {
  readonly name: string;
  readonly addr: string;
  readonly restarts: string[] = [];
  child: ChildProcess | undefined;
  private readonly file: string;
  private readonly args: string[];
  private readonly env: NodeJS.ProcessEnv;
  private readonly log: string | undefined;
  private tail = '';
  private exited: Promise<string> = new Promise(() => undefined);

  private readonly fixedPid: (() => number | undefined) | undefined;

  constructor(name: string, addr: string, command?: { file: string; args: string[]; env?: NodeJS.ProcessEnv; log: string }, pid?: () => number | undefined) {
    this.name = name;
    this.fixedPid = pid;
    this.addr = addr;
    this.file = command?.file ?? '';
    this.args = command?.args ?? [];
    this.env = command?.env ?? process.env;
    this.log = command?.log;
  }

  start(): void {
    if (this.log === undefined) return; // the member itself, run by the cluster helper
    const child = spawn(this.file, this.args, { stdio: ['ignore', 'pipe', 'pipe'], env: this.env });
    const log = createWriteStream(this.log, { flags: 'a' });
    const keep = (d: Buffer): void => {
      log.write(d);
      this.tail = (this.tail + d.toString()).slice(-2000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(`exited (${code ?? signal}); last output: ${this.tail.trim().split('\n').slice(-3).join(' | ')}`)));
    this.child = child;
  }

  /** The process serving this target (the member's for direct). */
  pid(): number | undefined {
    return this.fixedPid?.() ?? this.child?.pid;
  }

  alive(): boolean {
    return this.log === undefined || (this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null);
  }

  /** Resolves with a description once the process exits; never for the member. */
  died(): Promise<string> {
    return this.exited;
  }

  async ready(etcdctl: string, timeoutMs = 30_000): Promise<void> {
    await waitFor(`${this.name} at ${this.addr} to serve`, () => run(etcdctl, [`--endpoints=${this.addr}`, 'put', '/bench/key', 'v']).then(() => true), { timeoutMs });
  }

  stop(): void {
    this.child?.kill('SIGTERM');
  }
}

/** Runs the benchmark tool; rejects when the target dies or the run exceeds RUN_TIMEOUT_MS. */
function runBenchmark(file: string, args: string[], target: Target): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`benchmark still running after ${RUN_TIMEOUT_MS / 1000}s`));
    }, RUN_TIMEOUT_MS);
    void target.died().then((why) => {
      child.kill('SIGKILL');
      reject(new Error(`${target.name} ${why}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`benchmark exited ${code}: ${out.slice(-1000)}`));
    });
  });
}

const LEADER_SECTION = '## Writes at 100 clients on 3 members: leader routing on and off';
const LEADER_PUTS = 20_000;

/** Runs one measurement on target, redoing it (after a restart if the target died) up to 3 times. */
async function measure(bin: ReturnType<typeof binaries>, t: Target, args: string[], summary: 'first' | 'last', what: string): Promise<Result> {
  for (let attempt = 1; ; attempt++) {
    try {
      const pid = t.pid();
      const cpuBefore = pid === undefined ? NaN : await cpuMicros(pid);
      const r = parse(await runBenchmark(bin.benchmark, [`--endpoints=${t.addr}`, ...args], t), summary);
      const requests = requestsIn(args);
      if (pid !== undefined && requests !== undefined) r.cpu = ((await cpuMicros(pid)) - cpuBefore) / requests;
      return r;
    } catch (err) {
      if (attempt >= 3) throw err;
      // A target that died (or hung) is restarted and the measurement redone; the report says so.
      const why = (err as Error).message.split('\n')[0]!;
      t.restarts.push(`${what}: ${why}`);
      console.error(`${t.name}: ${why}; restarting it and redoing the run`);
      if (!t.alive() || why.includes('still running')) {
        t.stop();
        await new Promise((res) => setTimeout(res, 500));
        t.start();
      }
      await t.ready(bin.etcdctl);
    }
  }
}

/**
 * Puts at 100 clients over 10 connections on a 3-member cluster: the benchmark's own client spread
 * over the members (followers forward to the leader), and the proxy with leader routing on and off,
 * interleaved round after round. Returns the report section.
 */
async function leaderRoutingSection(bin: ReturnType<typeof binaries>): Promise<{ lines: string[]; restarts: string[] }> {
  const cluster = await EtcdCluster.start({ size: 3 });
  const endpoints = cluster.members.map((m) => m.clientUrl).join(',');
  const proxy = async (name: string, extra: string[]): Promise<Target> => {
    const port = await freePort();
    const metricsPort = await freePort();
    return new Target(name, `127.0.0.1:${port}`, {
      file: process.execPath,
      args: [path.join(root, 'src', 'cli.ts'), 'proxy', `--endpoints=${endpoints}`, `--listen-client-urls=http://127.0.0.1:${port}`, `--metrics-addr=127.0.0.1:${metricsPort}`, ...extra],
      env: { ...process.env, LOG_LEVEL: 'warn', NODE_OPTIONS: PROXY_NODE_OPTIONS },
      log: path.join(cluster.dir, `${name}.log`),
    });
  };
  const targets = [
    new Target('direct (client over the 3 members)', cluster.members.map((m) => m.clientUrl.replace('http://', '')).join(',')),
    await proxy('etcd-topology, leader routing on', []),
    await proxy('etcd-topology, --leader-routing=false', ['--leader-routing=false']),
  ];
  const args = ['--conns=10', '--clients=100', 'put', '--key-size=8', '--val-size=256', `--total=${LEADER_PUTS}`];
  const results = new Map<string, Result[]>();
  try {
    for (const t of targets) t.start();
    for (const t of targets) await t.ready(bin.etcdctl);
    for (let round = 1; round <= rounds; round++) {
      for (const t of targets) {
        const r = await measure(bin, t, args, 'first', `leader routing, round ${round}`);
        results.set(t.name, [...(results.get(t.name) ?? []), r]);
        console.log(`round ${round} put on 3 members, 100 clients, ${t.name}: ${r.rps.toFixed(0)} req/s, p99 ${r.p99.toFixed(2)} ms${r.cpu === undefined ? '' : `, CPU ${r.cpu.toFixed(0)} µs/request`}`);
      }
    }
  } finally {
    for (const t of targets) t.stop();
    await cluster.stop();
  }
  const fmt = (n: number, d = 0): string => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');
  const m = (t: Target, f: (r: Result) => number): number => median((results.get(t.name) ?? []).map(f));
  const [, on, off] = targets as [Target, Target, Target];
  const lines = [LEADER_SECTION, ''];
  lines.push(`Three members (\`--unsafe-no-fsync\`), \`benchmark --conns=10 --clients=100 put --key-size=8 --val-size=256 --total=${LEADER_PUTS}\`,`);
  lines.push(`${rounds} rounds, the three targets interleaved in each; medians. With leader routing off the proxy spreads writes like`);
  lines.push('reads (least outstanding requests), so two in three reach a follower, which forwards them to the leader; the');
  lines.push('benchmark\'s own client spreads over the members the same way. CPU is the proxy process alone.', '');
  lines.push('| target | put req/s | p99 ms | proxy CPU µs/request |', '| --- | ---: | ---: | ---: |');
  for (const t of targets) lines.push(`| ${t.name} | ${fmt(m(t, (r) => r.rps))} | ${fmt(m(t, (r) => r.p99), 2)} | ${t.child === undefined ? 'n/a' : fmt(m(t, (r) => r.cpu ?? NaN))} |`);
  const perRound = (results.get(on.name) ?? []).map((r, i) => fmt(r.rps / (results.get(off.name)?.[i]?.rps ?? NaN), 2));
  lines.push('', `Leader routing on / off: ${fmt(m(on, (r) => r.rps) / m(off, (r) => r.rps), 2)} x the writes per second (round by round: ${perRound.join(', ')}), ${fmt(m(on, (r) => r.p99) / m(off, (r) => r.p99), 2)} x the p99.`);
  lines.push(`Load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} at the end of this part.`, '');
  return { lines, restarts: targets.flatMap((t) => t.restarts.map((r) => `- ${t.name}: ${r}`)) };
}

/** Replaces the leader-routing section of the existing report (or adds it before the restarts), leaving the rest as it was. */
async function spliceLeaderSection(section: string[]): Promise<string> {
  const file = path.join(root, 'docs', 'bench', 'proxy.md');
  const doc = await readFile(file, 'utf8');
  const start = doc.indexOf(LEADER_SECTION);
  const before = start === -1 ? doc.indexOf('## Target restarts') : start;
  const next = start === -1 ? before : doc.indexOf('\n## ', start + LEADER_SECTION.length) + 1;
  if (before === -1 || next === 0) throw new Error(`${file} has no "## Target restarts" section to put the leader routing section before`);
  const out = doc.slice(0, before) + section.join('\n') + '\n' + doc.slice(next);
  await writeFile(file, out);
  return out;
}

/**
 * A second single member that serves its clients TLS only, with --client-cert-auth, from certificates
 * of the built-in issuer (ECDSA P-256), and the files a proxy presents to it. Its other flags are the
 * plaintext member's (test/harness/etcd-cluster.ts), so the two differ in TLS alone.
 */
async function startTlsMember(dir: string): Promise<{ url: string; proxyFlags: string[]; stop: () => Promise<void> }> {
  const validity = { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 24 * 3_600_000) };
  const ca = await createCa('bench-ca', validity);
  const server = await issueLeaf(ca, { commonName: 'bench-member', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usages: ['server', 'client'] }, validity);
  const client = await issueLeaf(ca, { commonName: 'bench-proxy', dnsNames: [], ipAddresses: [], usages: ['client'] }, validity);
  await mkdir(dir, { recursive: true });
  const file = (name: string): string => path.join(dir, name);
  await Promise.all([
    writeFile(file('ca.crt'), ca.cert),
    writeFile(file('server.crt'), server.cert),
    writeFile(file('server.key'), server.key, { mode: 0o600 }),
    writeFile(file('client.crt'), client.cert),
    writeFile(file('client.key'), client.key, { mode: 0o600 }),
  ]);
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const url = `https://localhost:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const child = spawnLogged(
    binaries().etcd,
    [
      '--name=tls0',
      `--data-dir=${file('data')}`,
      `--listen-client-urls=https://127.0.0.1:${clientPort}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=tls0=${peer}`,
      '--initial-cluster-token=etcd-topology-bench-tls',
      `--cert-file=${file('server.crt')}`,
      `--key-file=${file('server.key')}`,
      `--trusted-ca-file=${file('ca.crt')}`,
      '--client-cert-auth',
      '--tls-min-version=TLS1.2',
      '--heartbeat-interval=50',
      '--election-timeout=1000',
      '--unsafe-no-fsync',
      '--log-level=warn',
    ],
    file('etcd.log'),
  );
  // etcdctl and the proxy take the same three flags.
  const flags = [`--cacert=${file('ca.crt')}`, `--cert=${file('client.crt')}`, `--key=${file('client.key')}`];
  await waitFor('the TLS member to serve', () => run(binaries().etcdctl, [`--endpoints=${url}`, ...flags, 'put', '/bench/key', 'v']).then(() => true), { timeoutMs: 30_000 });
  return { url, proxyFlags: flags, stop: () => terminate(child) };
}

const FOOTPRINT_SECTION = '## Footprint: resident memory as deployed, and throughput against the baseline';
const NO_FLAGS = 'etcd-topology, no V8 flags';

/**
 * The footprint part (--only=footprint): the built proxy with the DaemonSet's V8 flags, the same
 * without them, grpc-proxy and the --baseline build, all started together on one member. Memory is
 * read once they serve and have been idle 5 s, after `rounds` rounds of the throughput workloads
 * (interleaved, which also gives ours against the baseline), and with 10,000 watch streams open.
 */
async function footprintSection(bin: ReturnType<typeof binaries>, cluster: EtcdCluster, proxy: (name: string, cli: string, extra?: string[], upstream?: string[], env?: NodeJS.ProcessEnv) => Promise<Target>, built: { current: string; baseline: string | undefined }): Promise<{ lines: string[]; restarts: string[] }> {
  const started = Date.now();
  const member = cluster.members[0]!;
  const grpcProxyPort = await freePort();
  const targets: Target[] = [
    new Target('grpc-proxy', `127.0.0.1:${grpcProxyPort}`, {
      file: bin.etcd,
      args: ['grpc-proxy', 'start', `--endpoints=${member.clientUrl}`, `--listen-addr=127.0.0.1:${grpcProxyPort}`, `--advertise-client-url=127.0.0.1:${grpcProxyPort}`],
      log: path.join(cluster.dir, 'grpc-proxy.log'),
    }),
    await proxy(PLAIN, built.current),
    await proxy(NO_FLAGS, built.current, [], undefined, { NODE_OPTIONS: '' }),
  ];
  if (built.baseline !== undefined) targets.push(await proxy('etcd-topology (baseline)', built.baseline));
  const idle = new Map<string, Memory>();
  const loaded = new Map<string, Memory>();
  const watching = new Map<string, Memory>();
  const results = new Map<string, Result[]>();
  const loadStart = os.loadavg();
  try {
    for (const t of targets) t.start();
    for (const t of targets) await t.ready(bin.etcdctl);
    await new Promise((r) => setTimeout(r, 5000));
    for (const t of targets) idle.set(t.name, await memoryOf(t.pid()!));
    for (let round = 1; round <= rounds; round++) {
      for (const w of workloads) {
        for (const c of concs) {
          for (const t of targets) {
            const r = await measure(bin, t, [...c.flags, ...w.args(c)], w.summary, `footprint round ${round}, ${w.name}, ${c.name}`);
            const k = `${w.name}|${c.name}|${t.name}`;
            results.set(k, [...(results.get(k) ?? []), r]);
            console.log(`footprint round ${round} ${w.name}, ${c.name}, ${t.name}: ${r.rps.toFixed(0)} req/s`);
          }
        }
      }
    }
    for (const t of targets) loaded.set(t.name, await memoryOf(t.pid()!));
    for (const t of targets) {
      const close = await openWatches(t.addr, WATCH_STREAMS);
      watching.set(t.name, await memoryOf(t.pid()!));
      console.log(`${WATCH_STREAMS} watch streams through ${t.name}: ${JSON.stringify(watching.get(t.name))}`);
      close();
      await new Promise((res) => setTimeout(res, 2000));
    }
  } finally {
    for (const t of targets) t.stop();
  }
  const fmt = (n: number, d = 0): string => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');
  const mem = (m: Memory | undefined): string => (m === undefined ? 'n/a' : `${fmt(m.rss)} MiB (${fmt(m.anon)} + ${fmt(m.file)})`);
  const lines = [FOOTPRINT_SECTION, ''];
  lines.push(`Measured by \`npm run bench:proxy -- ${process.argv.slice(2).join(' ')}\` on ${new Date().toISOString().slice(0, 10)}: ${rounds} rounds, ${fmt((Date.now() - started) / 60_000, 1)} minutes,`);
  lines.push(`load average ${loadStart.map((l) => l.toFixed(1)).join(' ')} at the start and ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} at the end. Every proxy here is the compiled JavaScript`);
  lines.push('the image runs (`tsc -p tsconfig.build.json`), not src/*.ts through Node\'s type stripping (which adds about 30 MiB).');
  lines.push(`**${PLAIN}** runs with the DaemonSet's \`NODE_OPTIONS=${PROXY_NODE_OPTIONS}\`, **${NO_FLAGS}** with Node's defaults;`);
  lines.push('the baseline is the build given with --baseline, with the DaemonSet\'s flags. RSS is VmRSS from /proc/PID/status, as');
  lines.push('private (RssAnon) + file-backed (RssFile: pages of the mapped node or etcd binary, shared between processes and');
  lines.push('reclaimable). Idle: serving, 5 s after the first request. After load: after every throughput run below. Watches:');
  lines.push(`${WATCH_STREAMS.toLocaleString('en')} Watch streams over 10 connections, each created, after the load. Where the memory goes: [proxy-memory.md](proxy-memory.md).`, '');
  lines.push('| process | RSS idle | RSS after load | RSS with 10,000 watches |', '| --- | ---: | ---: | ---: |');
  for (const t of targets) lines.push(`| ${t.name} | ${mem(idle.get(t.name))} | ${mem(loaded.get(t.name))} | ${mem(watching.get(t.name))} |`);
  const names = targets.map((t) => t.name);
  lines.push('', `Throughput in the same run (req/s, medians of ${rounds} rounds; for watch, events delivered per second):`, '');
  const base = built.baseline === undefined ? undefined : 'etcd-topology (baseline)';
  lines.push(`| workload | clients | ${names.join(' | ')} |${base === undefined ? '' : ' ours / baseline (rounds) |'} ours / no V8 flags |`);
  lines.push(`| --- | --- | ${names.map(() => '---:').join(' | ')} |${base === undefined ? '' : ' ---: |'} ---: |`);
  for (const w of workloads) {
    for (const c of concs) {
      const runs = (t: string): Result[] => results.get(`${w.name}|${c.name}|${t}`) ?? [];
      const m = (t: string): number => median(runs(t).map((r) => r.rps));
      const perRound = (t: string): string => runs(PLAIN).map((r, i) => fmt(r.rps / (runs(t)[i]?.rps ?? NaN), 2)).join(', ');
      const vsBase = base === undefined ? '' : ` ${fmt(m(PLAIN) / m(base), 2)} (${perRound(base)}) |`;
      lines.push(`| ${w.name} | ${c.name} | ${names.map((t) => fmt(m(t))).join(' | ')} |${vsBase} ${fmt(m(PLAIN) / m(NO_FLAGS), 2)} |`);
    }
  }
  lines.push('', 'Targets (issue 11): idle at most 50 MiB, after the load and with 10,000 watches at most 150 MiB, throughput unchanged.', '');
  return { lines, restarts: targets.flatMap((t) => t.restarts.map((r) => `- ${t.name}: ${r}`)) };
}

async function main(): Promise<void> {
  if (only === 'leader-routing') {
    const { lines, restarts } = await leaderRoutingSection(binaries());
    if (restarts.length > 0) lines.push('Runs redone after a target restart:', '', ...restarts, '');
    console.log(lines.join('\n'));
    await spliceLeaderSection(lines);
    return;
  }
  const started = Date.now();
  const bin = binaries();
  const cluster = await EtcdCluster.start({ size: 1 });
  const member = cluster.members[0]!;
  const logDir = cluster.dir;
  const grpcProxyPort = await freePort();
  const tlsMember = await startTlsMember(path.join(logDir, 'tls-member'));
  const proxy = async (name: string, cli: string, extra: string[] = [], upstream: string[] = [`--endpoints=${member.clientUrl}`], env: NodeJS.ProcessEnv = {}): Promise<Target> => {
    const port = await freePort();
    const metricsPort = await freePort();
    return new Target(name, `127.0.0.1:${port}`, {
      file: process.execPath,
      args: [cli, 'proxy', ...upstream, `--listen-client-urls=http://127.0.0.1:${port}`, `--metrics-addr=127.0.0.1:${metricsPort}`, ...extra],
      // The V8 heap flags the DaemonSet gives the proxy, so that RSS is measured as deployed.
      env: { ...process.env, LOG_LEVEL: 'warn', NODE_OPTIONS: PROXY_NODE_OPTIONS, ...env },
      log: path.join(logDir, `${name}.log`),
    });
  };
  // The proxies run as the image runs them: compiled to JavaScript.
  const cli = await buildProxy(root, 'current');
  const baselineCli = baselineDir === undefined ? undefined : await buildProxy(path.resolve(baselineDir), 'baseline');
  if (only === 'footprint') {
    try {
      const { lines, restarts } = await footprintSection(bin, cluster, proxy, { current: cli, baseline: baselineCli });
      if (restarts.length > 0) lines.push('Runs redone after a target restart:', '', ...restarts, '');
      const file = path.join(root, 'docs', 'bench', 'proxy.md');
      await writeFile(file, withSection(await readFile(file, 'utf8'), FOOTPRINT_SECTION, lines));
      console.log(lines.join('\n'));
    } finally {
      await tlsMember.stop();
      await cluster.stop();
    }
    return;
  }
  const mtls = await proxy(MTLS, cli, [], [`--endpoints=${tlsMember.url}`, ...tlsMember.proxyFlags]);
  // --tls-only with --baseline: the baseline build against both members too, interleaved, for an A/B of the TLS path.
  const tlsBaseline = tlsOnly && baselineCli !== undefined ? [await proxy(baselineName(PLAIN), baselineCli), await proxy(baselineName(MTLS), baselineCli, [], [`--endpoints=${tlsMember.url}`, ...tlsMember.proxyFlags])] : [];
  const targets: Target[] = tlsOnly ? [await proxy(PLAIN, cli), mtls, ...tlsBaseline] : [
    new Target('direct', member.clientUrl.replace('http://', ''), undefined, () => member.process?.pid),
    // --advertise-client-url must be the proxy's own address: grpc-proxy dials it at start for its
    // self health check, with a 5s blocking dial; its default (127.0.0.1:23790) has nobody listening
    // here, so without it grpc-proxy exits with "context deadline exceeded" 5s after starting.
    new Target('grpc-proxy', `127.0.0.1:${grpcProxyPort}`, {
      file: bin.etcd,
      args: ['grpc-proxy', 'start', `--endpoints=${member.clientUrl}`, `--listen-addr=127.0.0.1:${grpcProxyPort}`, `--advertise-client-url=127.0.0.1:${grpcProxyPort}`],
      log: path.join(logDir, 'grpc-proxy.log'),
    }),
    await proxy(PLAIN, cli),
  ];
  if (!tlsOnly && baselineCli !== undefined) targets.push(await proxy(baselineName(PLAIN), baselineCli));
  if (!tlsOnly) targets.push(mtls);
  const coProxy = (coalescing: boolean): Promise<Target> =>
    proxy(`etcd-topology coalescing ${coalescing ? 'on' : 'off'}`, cli, [`--watch-coalescing=${coalescing}`]);
  const reportPath = path.join(root, 'docs', 'bench', 'proxy.md');
  if (only === 'coalescing') {
    try {
      const section = await coalescingSection(cluster, coProxy, bin.etcdctl);
      await writeFile(reportPath, spliceSection(await readFile(reportPath, 'utf8'), section));
      console.log(section.join('\n'));
    } finally {
      await tlsMember.stop();
      await cluster.stop();
    }
    return;
  }
  const loadStart = os.loadavg();
  try {
    for (const t of targets) t.start();
    for (const t of targets) await t.ready(bin.etcdctl);
    const rssStart = new Map<string, number>();
    for (const t of targets) if (t.child !== undefined) rssStart.set(t.name, await rssKiB(t.child.pid!));
    const results = new Map<string, Result[]>();
    for (let round = 1; round <= rounds; round++) {
      for (const w of workloads) {
        for (const c of concs) {
          for (const t of targets) {
            const r = await measure(bin, t, [...c.flags, ...w.args(c)], w.summary, `round ${round}, ${w.name}, ${c.name}`);
            const k = `${w.name}|${c.name}|${t.name}`;
            results.set(k, [...(results.get(k) ?? []), r]);
            console.log(`round ${round} ${w.name}, ${c.name}, ${t.name}: ${r.rps.toFixed(0)} req/s, p99 ${r.p99.toFixed(2)} ms${r.cpu === undefined ? '' : `, CPU ${r.cpu.toFixed(0)} µs/request`}`);
          }
        }
      }
    }
    const tlsSection = tlsReport(results, (Date.now() - started) / 60_000, os.loadavg());
    if (tlsOnly) {
      const file = path.join(root, 'docs', 'bench', 'proxy.md');
      await writeFile(file, withSection(await readFile(file, 'utf8'), TLS_SECTION, tlsSection));
      console.log(tlsSection.join('\n'));
      return;
    }
    const leader = await leaderRoutingSection(bin);
    const benchMinutes = (Date.now() - started) / 60_000;

    const rssTargets = targets.filter((t) => t.child !== undefined);
    const rssIdle = new Map<string, number>();
    const rssWatch = new Map<string, number>();
    for (const t of rssTargets) rssIdle.set(t.name, await rssKiB(t.child!.pid!));
    for (const t of rssTargets) {
      const close = await openWatches(t.addr, WATCH_STREAMS);
      rssWatch.set(t.name, await rssKiB(t.child!.pid!));
      console.log(`${WATCH_STREAMS} watch streams through ${t.name}: RSS ${(rssWatch.get(t.name)! / 1024).toFixed(0)} MiB`);
      close();
      // Let the cancelled streams drain before the next proxy is measured.
      await new Promise((res) => setTimeout(res, 2000));
    }
    // The other targets are stopped first: the comparison restarts the member under them.
    for (const t of targets) t.stop();
    const coalescing = await coalescingSection(cluster, coProxy, bin.etcdctl);
    // Last, resident memory as deployed, with fresh processes of every build: the whole report comes from this one run.
    const footprint = await footprintSection(bin, cluster, proxy, { current: cli, baseline: baselineCli });
    const loadEnd = os.loadavg();

    const lines: string[] = [];
    const fmt = (n: number, d = 0): string => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');
    const names = targets.map((t) => t.name);
    const cpus = os.cpus();
    lines.push('# Proxy benchmark', '');
    lines.push(`Generated by \`npm run bench:proxy${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}\` on ${new Date().toISOString().slice(0, 10)}.`, '');
    lines.push(`- Machine: ${cpus.length} CPUs (${cpus[0]?.model ?? 'unknown'}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, shared: the member, the proxies and the`);
    lines.push(`  benchmark client all run on it, next to whatever else the machine runs (load average ${loadStart.map((l) => l.toFixed(1)).join(' ')} at the start, ${loadEnd.map((l) => l.toFixed(1)).join(' ')} at the end).`);
    lines.push('  With 2 cores, every CPU cycle a proxy spends is taken from etcd and the benchmark client: the ratios below measure the');
    lines.push('  proxies\' CPU cost per request as much as their latency, and a machine with spare cores would show higher ratios.');
    lines.push(`- Node ${process.version}, etcd v3.6.16 (one member, \`--unsafe-no-fsync\`), etcd's \`benchmark\` tool.`);
    lines.push(`- ${rounds} rounds, targets interleaved within each round (every cell runs each target once per round); medians shown.`);
    lines.push(`  Sizes: range linearizable --total=4000 (1 client) / 40000 (100 clients), range serializable 5000 / 50000, put 3000 / 30000`);
    lines.push(`  (--key-size=8 --val-size=256), watch --watch-per-stream=10 --streams=1 / 10 --put-total=1000 / 8000. The run took ${benchMinutes.toFixed(1)} minutes.`);
    lines.push('', '- **direct**: the benchmark talks to the member.', '- **grpc-proxy**: `etcd grpc-proxy start` from the same etcd binary.', '- **etcd-topology**: `etcd-topology proxy` (this repository).');
    if (baselineDir !== undefined) lines.push(`- **etcd-topology (baseline)**: the proxy built from \`${baselineDir}\`, for comparison.`);
    lines.push('');
    lines.push(`| workload | clients | ${names.map((n) => `${n} req/s`).join(' | ')} | ours / direct | ours / grpc-proxy | p99 ms ${names.join(' / ')} |`);
    lines.push(`| --- | --- | ${names.map(() => '---:').join(' | ')} | ---: | ---: | --- |`);
    const added: string[] = [];
    const cpuRows: string[] = [];
    for (const w of workloads) {
      for (const c of concs) {
        const m = (t: string, f: (r: Result) => number): number => median((results.get(`${w.name}|${c.name}|${t}`) ?? []).map(f));
        const rps = names.map((t) => m(t, (r) => r.rps));
        // The watch benchmark's summary counts delivered events; its latency figures are all zero.
        const p99 = names.map((t) => (w.summary === 'last' ? NaN : m(t, (r) => r.p99)));
        const [d, g, o] = rps as [number, number, number];
        lines.push(`| ${w.name} | ${c.name} | ${rps.map((x) => fmt(x)).join(' | ')} | ${fmt(o / d, 2)} | ${fmt(o / g, 2)} | ${p99.map((x) => fmt(x, 2)).join(' / ')} |`);
        if (w.summary !== 'last') cpuRows.push(`| ${w.name} | ${c.name} | ${names.map((t) => fmt(m(t, (r) => r.cpu ?? NaN))).join(' | ')} |`);
        if (c.one && w.summary !== 'last') added.push(`| ${w.name} | ${p99.slice(1).map((x) => fmt(x - p99[0]!, 2)).join(' | ')} |`);
      }
    }
    lines.push('', '## Added p99 latency at 1 client (ms, median p99 minus direct median p99)', '');
    lines.push(`| workload | ${names.slice(1).join(' | ')} |`, `| --- | ${names.slice(1).map(() => '---:').join(' | ')} |`, ...added);
    lines.push('', '## CPU time per request (µs, median)', '');
    lines.push('utime + stime of each process from /proc/PID/stat over a run, divided by the requests in it: for direct, the member itself;');
    lines.push('for the proxies, the proxy process alone (the member behind it spends about as much as under direct).', '');
    lines.push(`| workload | clients | ${names.join(' | ')} |`, `| --- | --- | ${names.map(() => '---:').join(' | ')} |`, ...cpuRows);
    lines.push('', `## Memory with ${WATCH_STREAMS.toLocaleString('en')} open watch streams`, '');
    lines.push('Opened by a small Node HTTP/2 client: 10 connections, 1,000 Watch streams each, every stream waits for its "created" response;');
    lines.push('RSS is VmRSS from /proc/PID/status of the proxy process.', '');
    lines.push('| proxy | RSS idle, before the runs | RSS after the runs above | RSS with the streams open |', '| --- | ---: | ---: | ---: |');
    for (const t of rssTargets) {
      lines.push(`| ${t.name} | ${fmt((rssStart.get(t.name) ?? NaN) / 1024)} MiB | ${fmt(rssIdle.get(t.name)! / 1024)} MiB | ${fmt(rssWatch.get(t.name)! / 1024)} MiB |`);
    }
    lines.push('', ...leader.lines);
    lines.push('', ...tlsSection);
    lines.push('', ...coalescing);
    lines.push(...footprint.lines);
    lines.push('## Target restarts', '');
    const restarts = [...targets.flatMap((t) => t.restarts.map((r) => `- ${t.name}: ${r}`)), ...leader.restarts, ...footprint.restarts];
    lines.push(...(restarts.length > 0 ? ['Each of these runs was redone after the target was restarted:', '', ...restarts] : ['None: every target stayed up for the whole run.']));
    lines.push('', `Targets (issue 3): throughput at least 0.9 x direct and 1.0 x grpc-proxy; added p99 at 1 client at most 0.5 ms.`);
    lines.push('The numbers above are what this run measured; nothing in the benchmark is tuned to them.');
    lines.push('Where the proxy\'s time goes, and what was tried: [proxy-analysis.md](proxy-analysis.md).', '');
    await mkdir(path.join(root, 'docs', 'bench'), { recursive: true });
    await writeFile(reportPath, lines.join('\n'));
    console.log(lines.join('\n'));
  } finally {
    for (const t of targets) t.stop();
    await tlsMember.stop();
    await cluster.stop();
  }
}

/**
 * The mTLS-to-member section: the same proxy against the plaintext and the TLS member, with the ratio;
 * with --baseline, the baseline build's rows beside this build's and the ratios between the builds.
 */
function tlsReport(results: Map<string, Result[]>, minutes: number, load: number[]): string[] {
  const fmt = (n: number, d = 0): string => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');
  const m = (w: Workload, c: Conc, t: string, f: (r: Result) => number): number => median((results.get(`${w.name}|${c.name}|${t}`) ?? []).map(f));
  const builds = [{ label: 'this build', plain: PLAIN, mtls: MTLS }];
  if (results.has(`${workloads[0]!.name}|${concs[0]!.name}|${baselineName(MTLS)}`)) builds.push({ label: `baseline (${baselineDir})`, plain: baselineName(PLAIN), mtls: baselineName(MTLS) });
  const ab = builds.length > 1;
  const out = [
    TLS_SECTION,
    '',
    `Measured by \`npm run bench:proxy${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}\` on ${new Date().toISOString().slice(0, 10)} (${rounds} rounds, ${fmt(minutes, 1)} minutes, load average ${load.map((l) => l.toFixed(1)).join(' ')} at the end),`,
    `interleaved in the same rounds: the same proxy build${ab ? ' (and the baseline build)' : ''} against two members that differ only in TLS, one plaintext and one serving`,
    'TLS with `--client-cert-auth` (ECDSA P-256 certificates from src/pki, TLS 1.3 negotiated), the proxy presenting its client certificate',
    '(`--cacert/--cert/--key`) as the DaemonSet does. The benchmark talks plaintext to the proxy in both. CPU is the proxy process\'s.',
    '',
    `| workload | clients |${ab ? ' build |' : ''} plaintext req/s | mTLS req/s | mTLS / plaintext | p99 ms plaintext / mTLS | proxy CPU µs/request plaintext / mTLS |`,
    `| --- | --- |${ab ? ' --- |' : ''} ---: | ---: | ---: | --- | --- |`,
  ];
  const abRows: string[] = [];
  for (const w of workloads) {
    for (const c of concs) {
      for (const b of builds) {
        const [p, t] = [b.plain, b.mtls].map((x) => m(w, c, x, (r) => r.rps)) as [number, number];
        const p99 = w.summary === 'last' ? 'n/a' : `${fmt(m(w, c, b.plain, (r) => r.p99), 2)} / ${fmt(m(w, c, b.mtls, (r) => r.p99), 2)}`;
        const cpu = w.summary === 'last' ? 'n/a' : `${fmt(m(w, c, b.plain, (r) => r.cpu ?? NaN))} / ${fmt(m(w, c, b.mtls, (r) => r.cpu ?? NaN))}`;
        out.push(`| ${w.name} | ${c.name} |${ab ? ` ${b.label} |` : ''} ${fmt(p)} | ${fmt(t)} | ${fmt(t / p, 2)} | ${p99} | ${cpu} |`);
      }
      if (ab) {
        const ratio = (t: string, f: (r: Result) => number): string => fmt(m(w, c, t, f) / m(w, c, baselineName(t), f), 2);
        const cpu = (t: string): string => (w.summary === 'last' ? 'n/a' : ratio(t, (r) => r.cpu ?? NaN));
        abRows.push(`| ${w.name} | ${c.name} | ${ratio(PLAIN, (r) => r.rps)} | ${ratio(MTLS, (r) => r.rps)} | ${cpu(PLAIN)} | ${cpu(MTLS)} |`);
      }
    }
  }
  if (ab) {
    out.push('', 'This build / baseline (medians of the same rounds):', '');
    out.push('| workload | clients | plaintext req/s | mTLS req/s | plaintext CPU/request | mTLS CPU/request |', '| --- | --- | ---: | ---: | ---: | ---: |', ...abRows);
  }
  return out;
}

/** The report with the section under heading replaced (or added before "Target restarts"), everything else kept. */
function withSection(doc: string, heading: string, section: string[]): string {
  const lines = doc.split('\n');
  const start = lines.indexOf(heading);
  if (start >= 0) {
    const next = lines.findIndex((l, i) => i > start && l.startsWith('## '));
    lines.splice(start, (next < 0 ? lines.length : next) - start, ...section, '');
  } else {
    const at = lines.indexOf('## Target restarts');
    lines.splice(at < 0 ? lines.length : at, 0, ...section, '');
  }
  return lines.join('\n');
}

await main();
