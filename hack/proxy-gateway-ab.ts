// A/B of the proxy's HTTP/1.1 path to the members (the JSON gateway), which `npm run bench:proxy`
// does not drive (etcd's benchmark tool speaks gRPC): the baseline build and this checkout, both
// compiled as the image runs them with the DaemonSet's V8 flags, in front of one real etcd member.
// Each round runs, per build in turn, 1 client and then 50 clients over keep-alive connections
// sending POST /v3/kv/range (serializable) for DURATION_MS; medians over the rounds of req/s and of
// the proxy process's CPU time per request (utime + stime from /proc/PID/stat over the cell), which
// the other tenants of a shared machine disturb less than req/s.
//   node hack/proxy-gateway-ab.ts --baseline=DIR [--rounds=N]
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { EtcdCluster } from '../test/harness/etcd-cluster.ts';
import { freePort, waitFor } from '../test/harness/ports.ts';
import { PROXY_NODE_OPTIONS } from '../src/operator/components/proxy-daemonset/proxy-daemonset.ts';
import { buildProxy } from './proxy-footprint.ts';

const root = path.join(import.meta.dirname, '..');
const arg = (name: string): string | undefined => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const baselineDir = arg('baseline');
if (baselineDir === undefined) throw new Error('--baseline=DIR is required: the checkout to compare this one with');
const rounds = Number(arg('rounds') ?? 3);
const DURATION_MS = 5000;
const CLIENTS = [1, 50];

/** CPU seconds (user + system) the process has used so far. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 a second on Linux).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Requests answered 200 per second by `clients` loops sending range requests to port for DURATION_MS. */
async function load(port: number, clients: number): Promise<{ rps: number; ok: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const body = JSON.stringify({ key: Buffer.from('/bench/key').toString('base64'), serializable: true });
  const deadline = performance.now() + DURATION_MS;
  let ok = 0;
  const one = (): Promise<number> =>
    new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v3/kv/range', agent, headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(body);
    });
  const started = performance.now();
  await Promise.all(Array.from({ length: clients }, async () => {
    while (performance.now() < deadline) if ((await one()) === 200) ok++;
  }));
  agent.destroy();
  return { rps: ok / ((performance.now() - started) / 1000), ok };
}

async function main(): Promise<void> {
  const cluster = await EtcdCluster.start({ size: 1 });
  const builds = { baseline: await buildProxy(path.resolve(baselineDir!), 'baseline'), 'this build': await buildProxy(root, 'current') };
  const children: ReturnType<typeof spawn>[] = [];
  try {
    const ports: Record<string, number> = {};
    const pids: Record<string, number> = {};
    for (const [name, cli] of Object.entries(builds)) {
      const [port, metrics] = [await freePort(), await freePort()];
      const child = spawn(process.execPath, [cli, 'proxy', `--endpoints=${cluster.endpoints}`, `--listen-client-urls=http://127.0.0.1:${port}`, `--metrics-addr=127.0.0.1:${metrics}`], {
        stdio: 'ignore',
        env: { ...process.env, LOG_LEVEL: 'warn', NODE_OPTIONS: PROXY_NODE_OPTIONS },
      });
      children.push(child);
      await waitFor(`${name} to serve`, async () => (await fetch(`http://127.0.0.1:${metrics}/readyz`).catch(() => undefined))?.status === 200, { timeoutMs: 60_000 });
      ports[name] = port;
      pids[name] = child.pid!;
    }
    const results: Record<string, number[]> = {};
    const cpu: Record<string, number[]> = {};
    for (let round = 1; round <= rounds; round++) {
      for (const clients of CLIENTS) {
        for (const name of Object.keys(builds)) {
          const before = await cpuSeconds(pids[name]!);
          const { rps, ok } = await load(ports[name]!, clients);
          const us = ((await cpuSeconds(pids[name]!)) - before) / ok * 1e6;
          (results[`${name}|${clients}`] ??= []).push(rps);
          (cpu[`${name}|${clients}`] ??= []).push(us);
          console.error(`round ${round}, ${clients} clients, ${name}: ${rps.toFixed(0)} req/s, ${us.toFixed(0)} µs CPU a request`);
        }
      }
    }
    const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    console.log(`| JSON gateway range (median of ${rounds}) | baseline req/s | this build req/s | this / baseline (rounds) | baseline CPU µs a request | this build CPU µs a request | this / baseline |`);
    console.log('| --- | ---: | ---: | --- | ---: | ---: | ---: |');
    for (const clients of CLIENTS) {
      const a = results[`baseline|${clients}`]!;
      const b = results[`this build|${clients}`]!;
      const ca = med(cpu[`baseline|${clients}`]!);
      const cb = med(cpu[`this build|${clients}`]!);
      console.log(`| ${clients} client${clients === 1 ? '' : 's'} | ${med(a).toFixed(0)} | ${med(b).toFixed(0)} | ${(med(b) / med(a)).toFixed(2)} (${b.map((x, i) => (x / a[i]!).toFixed(2)).join(', ')}) | ${ca.toFixed(0)} | ${cb.toFixed(0)} | ${(cb / ca).toFixed(2)} |`);
    }
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await cluster.stop();
  }
}

await main();
