// Where the proxy's resident memory goes at start (docs/bench/proxy-memory.md): a bare Node process,
// the same with each package the proxy could load, and the proxy itself (compiled as the image runs
// it, and from src/*.ts) idle in front of a real etcd member with several V8 flag sets. Each case is
// started RUNS times, one after the other, and read 4 s after it serves; medians of VmRSS, RssAnon
// (private) and RssFile (file-backed: the mapped node binary, shared and reclaimable).
//   node hack/proxy-memory.ts [--baseline=DIR]     (DIR: another checkout, as for bench:proxy)
//   node hack/proxy-memory.ts --baseline=DIR --ab [--build=NAME=DIR ...] [--runs=N]: only the proxies,
//   with the DaemonSet's flags: the baseline, each --build (else this checkout), started alternately
//   N times each (default 5), for an A/B of builds in one run.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { EtcdCluster } from '../test/harness/etcd-cluster.ts';
import { freePort, waitFor } from '../test/harness/ports.ts';
import { PROXY_NODE_OPTIONS } from '../src/operator/components/proxy-daemonset/proxy-daemonset.ts';
import { buildProxy, memoryOf, type Memory } from './proxy-footprint.ts';

const root = path.join(import.meta.dirname, '..');
const baselineDir = process.argv.find((a) => a.startsWith('--baseline='))?.slice('--baseline='.length);
const ab = process.argv.includes('--ab');
const RUNS = Number(process.argv.find((a) => a.startsWith('--runs='))?.slice('--runs='.length) ?? (ab ? 5 : 3));
const builds = process.argv.filter((a) => a.startsWith('--build=')).map((a) => {
  const [name, dir] = a.slice('--build='.length).split('=');
  if (name === undefined || dir === undefined || !/^[a-z0-9-]+$/.test(name)) throw new Error(`${a}: expected --build=NAME=DIR (NAME of a-z, 0-9 and -)`);
  return { name, dir };
});
if (ab && baselineDir === undefined) throw new Error('--ab needs --baseline=DIR: the build to compare this one with');

/** Starts argv, waits until ready() (or 1 s for a bare process), 4 s more, reads its memory, stops it. */
async function measureOnce(argv: string[], env: NodeJS.ProcessEnv, ready: () => Promise<boolean>): Promise<Memory> {
  const child = spawn(process.execPath, argv, { stdio: 'ignore', env: { ...process.env, LOG_LEVEL: 'warn', NODE_OPTIONS: '', ...env }, cwd: root });
  try {
    await waitFor(`${argv.join(' ')} to serve`, () => {
      if (child.exitCode !== null) throw new Error(`${argv.join(' ')} exited ${child.exitCode}`);
      return ready();
    }, { timeoutMs: 60_000, intervalMs: 200 });
    await new Promise((r) => setTimeout(r, 4000));
    return await memoryOf(child.pid!);
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
  }
}

/** nodeFlags go on the command line: NODE_OPTIONS refuses some V8 flags (--single-threaded). */
async function measure(argv: () => Promise<{ argv: string[]; ready: () => Promise<boolean> }>, env: NodeJS.ProcessEnv = {}, nodeFlags: string[] = []): Promise<Memory> {
  const runs: Memory[] = [];
  for (let i = 0; i < RUNS; i++) {
    const c = await argv();
    runs.push(await measureOnce([...nodeFlags, ...c.argv], env, c.ready));
  }
  return median(runs);
}

function median(runs: Memory[]): Memory {
  const med = (f: (m: Memory) => number): number => runs.map(f).sort((a, b) => a - b)[Math.floor(runs.length / 2)]!;
  return { rss: med((m) => m.rss), anon: med((m) => m.anon), file: med((m) => m.file) };
}

/** Each case started once per round, the cases alternating, RUNS rounds: medians and every run's VmRSS. */
async function measureAlternately(cases: { name: string; start: () => Promise<{ argv: string[]; ready: () => Promise<boolean> }>; env: NodeJS.ProcessEnv }[]): Promise<[string, Memory, number[]][]> {
  const runs = cases.map((): Memory[] => []);
  for (let i = 0; i < RUNS; i++) {
    for (const [k, c] of cases.entries()) {
      const s = await c.start();
      runs[k]!.push(await measureOnce(s.argv, c.env, s.ready));
      console.error(`${c.name} run ${i + 1}: ${JSON.stringify(runs[k]!.at(-1))}`);
    }
  }
  return cases.map((c, k) => [c.name, median(runs[k]!), runs[k]!.map((m) => m.rss)]);
}

const bare = (imports: string[]) => () =>
  Promise.resolve({ argv: ['--input-type=module', '-e', `${imports.map((m) => `await import(${JSON.stringify(m)});`).join(' ')} setInterval(() => {}, 1000);`], ready: () => Promise.resolve(true) });

async function main(): Promise<void> {
  const cluster = await EtcdCluster.start({ size: 1 });
  // With --ab and --build, this checkout is not measured (and may be mid-edit).
  const current = ab && builds.length > 0 ? '' : await buildProxy(root, 'current');
  const baseline = baselineDir === undefined ? undefined : await buildProxy(path.resolve(baselineDir), 'baseline');
  const proxy = (cli: string) => async () => {
    const [port, metrics] = [await freePort(), await freePort()];
    return {
      argv: [cli, 'proxy', `--endpoints=${cluster.endpoints}`, `--listen-client-urls=http://127.0.0.1:${port}`, `--metrics-addr=127.0.0.1:${metrics}`],
      ready: async () => (await fetch(`http://127.0.0.1:${metrics}/readyz`).catch(() => undefined))?.status === 200,
    };
  };
  const rows: [string, Memory][] = [];
  const failed: string[] = [];
  const add = async (name: string, m: Promise<Memory>): Promise<void> => {
    try {
      rows.push([name, await m]);
      console.error(`${name}: ${JSON.stringify(rows.at(-1)![1])}`);
    } catch (err) {
      failed.push(`${name}: ${(err as Error).message}`);
    }
  };
  if (ab) {
    try {
      const env = { NODE_OPTIONS: PROXY_NODE_OPTIONS };
      const others = builds.length === 0 ? [{ name: 'this build', cli: current }] : await Promise.all(builds.map(async (b) => ({ name: b.name, cli: await buildProxy(path.resolve(b.dir), b.name) })));
      const results = await measureAlternately([{ name: 'baseline', start: proxy(baseline!), env }, ...others.map((o) => ({ name: o.name, start: proxy(o.cli), env }))]);
      console.log(`| proxy, compiled, DaemonSet flags (median of ${RUNS}, alternating) | VmRSS MiB | RssAnon MiB | RssFile MiB | VmRSS of each run |`);
      console.log('| --- | ---: | ---: | ---: | --- |');
      for (const [name, m, each] of results) console.log(`| ${name} | ${m.rss.toFixed(1)} | ${m.anon.toFixed(1)} | ${m.file.toFixed(1)} | ${each.map((r) => r.toFixed(1)).join(', ')} |`);
    } finally {
      await cluster.stop();
    }
    return;
  }
  try {
    await add('bare Node (`node -e "setInterval(...)"`)', measure(bare([])));
    for (const m of ['node:net', 'node:tls', 'node:http', 'node:http2', 'zod', 'prom-client', '@opentelemetry/api', 'undici']) await add(`bare Node + \`import('${m}')\``, measure(bare([m])));
    await add('bare Node + prom-client\'s registry, counter, gauge, histogram files', measure(bare(['prom-client/lib/registry.js', 'prom-client/lib/counter.js', 'prom-client/lib/gauge.js', 'prom-client/lib/histogram.js'])));
    await add('bare Node + undici\'s agent and request files', measure(bare(['undici/lib/dispatcher/agent.js', 'undici/lib/api/api-request.js'])));
    if (baseline !== undefined) {
      await add('baseline proxy, compiled, no V8 flags', measure(proxy(baseline)));
      await add('baseline proxy, compiled, DaemonSet flags', measure(proxy(baseline), { NODE_OPTIONS: PROXY_NODE_OPTIONS }));
    }
    await add('proxy, src/cli.ts through type stripping, DaemonSet flags', measure(proxy(path.join(root, 'src', 'cli.ts')), { NODE_OPTIONS: PROXY_NODE_OPTIONS }));
    await add('proxy, compiled, no V8 flags', measure(proxy(current)));
    await add(`proxy, compiled, DaemonSet flags (${PROXY_NODE_OPTIONS})`, measure(proxy(current), { NODE_OPTIONS: PROXY_NODE_OPTIONS }));
    for (const extra of ['--max-semi-space-size=1', '--v8-pool-size=0', '--single-threaded', '--lite-mode']) {
      await add(`proxy, compiled, DaemonSet flags + ${extra}`, measure(proxy(current), { NODE_OPTIONS: PROXY_NODE_OPTIONS }, [extra]));
    }
  } finally {
    await cluster.stop();
  }
  const fmt = (n: number): string => n.toFixed(1);
  console.log(`| case (median of ${RUNS}) | VmRSS MiB | RssAnon MiB | RssFile MiB |`);
  console.log('| --- | ---: | ---: | ---: |');
  for (const [name, m] of rows) console.log(`| ${name} | ${fmt(m.rss)} | ${fmt(m.anon)} | ${fmt(m.file)} |`);
  for (const f of failed) console.log(`\nNot measured: ${f}`);
}

await main();
