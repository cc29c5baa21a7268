// Measures what a client sees through the proxy while a follower defragments a large database, with
// and without etcd's StopGRPCServiceOnDefrag feature gate: a 3-member etcd of local processes, MiB
// (default 150) of live keys plus 30 MiB of history compacted away (a defragmentation copies the live
// data, so its time follows the live size), a writer and a linearizable reader through one proxy
// (20 ms apart each), one follower defragmented. Prints the defragmentation time and the longest request.
//   node hack/bench-defrag.ts [MiB]
import { Agent, request } from 'undici';
import { EtcdAdminClient } from '../src/etcd/admin-client.ts';
import { EtcdCluster } from '../test/harness/etcd-cluster.ts';
import { startProxyProcess } from '../test/proxy/proxy-process.ts';

const MiB = 2 ** 20;
const size = Number(process.argv[2] ?? 150);
const b64 = (s: string): string => Buffer.from(s).toString('base64');
const agent = new Agent({ connections: 8 });

async function post(url: string, route: string, body: unknown, timeoutMs = 30_000): Promise<{ status: number; text: string }> {
  const res = await request(`${url}${route}`, { method: 'POST', dispatcher: agent, body: JSON.stringify(body), headers: { 'content-type': 'application/json' }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  return { status: res.statusCode, text: await res.body.text() };
}

/** Sends one request every 20 ms until stopped; records the longest and the failures in [from, to]. */
function client(name: string, send: () => Promise<{ status: number }>) {
  const samples: { start: number; ms: number; ok: boolean }[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const start = Date.now();
      const ok = await send().then((r) => r.status === 200, () => false);
      samples.push({ start, ms: Date.now() - start, ok });
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    async stop(from: number, to: number) {
      running = false;
      await loop;
      const during = samples.filter((s) => s.start + s.ms >= from && s.start <= to);
      return `${name}: ${during.length} requests overlapping the defragmentation, longest ${Math.max(0, ...during.map((s) => s.ms))} ms, ${during.filter((s) => !s.ok).length} failed`;
    },
  };
}

for (const gate of [false, true]) {
  const etcd = await EtcdCluster.start({ size: 3, extraArgs: ['--quota-backend-bytes=4294967296', ...(gate ? ['--feature-gates=StopGRPCServiceOnDefrag=true'] : [])] });
  const admin = new EtcdAdminClient({ timeoutMs: 5000, defragmentTimeoutMs: 600_000 });
  try {
    const urls = etcd.members.map((m) => m.clientUrl);
    const value = 'z'.repeat(MiB);
    let revision = '0';
    const key = (i: number): string => (i < size ? `live/${i}` : 'history');
    for (let i = 0; i < size + 30; i++) revision = (JSON.parse((await post(urls[0]!, '/v3/kv/put', { key: b64(key(i)), value: b64(value) })).text) as { header: { revision: string } }).header.revision;
    await post(urls[0]!, '/v3/kv/compaction', { revision, physical: true }, 120_000);
    const statuses = await Promise.all(urls.map(async (u) => ({ u, s: await admin.status(u) })));
    const follower = statuses.find((x) => x.s.leader !== x.s.header.member_id)!;
    const proxy = await startProxyProcess(etcd.endpoints);
    const writer = client('writes', () => post(proxy.url, '/v3/kv/put', { key: b64('bench/w'), value: b64(String(Date.now())) }, 20_000));
    const reader = client('linearizable reads', () => post(proxy.url, '/v3/kv/range', { key: b64('bench/w') }, 20_000));
    await new Promise((r) => setTimeout(r, 2000));
    const before = (await admin.status(follower.u)).dbSize;
    const from = Date.now();
    await admin.defragment(follower.u);
    const to = Date.now();
    const after = (await admin.status(follower.u)).dbSize;
    await new Promise((r) => setTimeout(r, 1000));
    console.log(`StopGRPCServiceOnDefrag=${gate}: defragmented a follower ${(before / MiB).toFixed(0)} MiB -> ${(after / MiB).toFixed(1)} MiB in ${to - from} ms`);
    console.log(`  ${await writer.stop(from, to)}`);
    console.log(`  ${await reader.stop(from, to)}`);
    await proxy.stop();
  } finally {
    await admin.close();
    await etcd.stop();
  }
}
await agent.close();
