import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdCluster } from '../harness/etcd-cluster.ts';
import { freePort, waitFor } from '../harness/ports.ts';
import { etcdClients, type EtcdClients } from './grpc-client.ts';
import { startProxyProcess, type ProxyProcess } from './proxy-process.ts';
import { ResumingWatcher } from './resuming-watcher.ts';
import { RetryingWriter, type Put } from './retrying-writer.ts';

const PREFIX = 'surge/';

/**
 * Puts over gRPC through target on a new connection every 10 writes and for every retry, so that
 * while two proxies share the port the kernel hands the connections to both.
 */
function grpcPut(target: string): { put: Put; close(): void } {
  let clients: EtcdClients | undefined;
  let writes = 0;
  const put: Put = async (key, retry) => {
    if (clients === undefined || retry || writes++ % 10 === 0) {
      clients?.close();
      clients = etcdClients(target);
    }
    const c = clients;
    try {
      const r = await c.unary<{ header: { revision: string } }>(c.kv, 'Put', { key: Buffer.from(key), value: Buffer.from('v') }, undefined, { deadline: Date.now() + 5000 });
      return Number(r.header.revision);
    } catch (err) {
      return (err as Error).message;
    }
  };
  return { put, close: () => clients?.close() };
}

/** A readiness probe as the kubelet sends it: a new connection each time (no keep-alive), so it may reach either process. */
function readyz(metricsPort: number, revision: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: metricsPort, path: `/readyz?revision=${revision}`, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

// What a host-network proxy DaemonSet does on every node as it rolls with maxSurge 1: the new proxy
// binds the same client and metrics ports beside the old one (--reuse-port, SO_REUSEPORT), becomes
// ready, and the old one is sent SIGTERM and drains.
describe('two proxies on one port, as a host-network DaemonSet rolls', () => {
  let cluster: EtcdCluster;
  let old: ProxyProcess;
  let port: number;
  let metricsPort: number;
  const started: ProxyProcess[] = [];

  beforeAll(async () => {
    cluster = await EtcdCluster.start({ size: 1 });
    [port, metricsPort] = [await freePort(), await freePort()];
    old = await startProxyProcess(cluster.endpoints, ['--reuse-port=true', '--revision=old'], { port, metricsPort });
    started.push(old);
  });
  afterAll(async () => {
    for (const p of started) await p.stop();
    await cluster?.stop();
  });

  it('cannot bind a port in use without --reuse-port', async () => {
    const other = await startProxyProcess(cluster.endpoints, [], { port, waitReady: false });
    started.push(other);
    expect(await waitFor('the second proxy to exit', () => other.child.exitCode ?? undefined, { timeoutMs: 20_000 })).toBe(1);
    expect(other.output()).toMatch(/already in use|EADDRINUSE/);
  });

  it('starts the new proxy beside the old one; the old one drains; no write is lost beyond one retry and the watch resumes', { timeout: 120_000 }, async () => {
    // A probe for the new revision that reaches the old process is refused.
    expect(await readyz(metricsPort, 'new')).toEqual({ status: 503, body: 'this is the proxy of pod template revision old; the probe asks for new\n' });
    expect((await readyz(metricsPort, 'old')).status).toBe(200);

    const target = `127.0.0.1:${port}`;
    const watcher = new ResumingWatcher(() => target, { key: PREFIX, rangeEnd: 'surge0' });
    await watcher.start();
    // Four clients, so that calls are in flight on the old proxy when it is told to stop.
    const puts = [0, 1, 2, 3].map(() => grpcPut(target));
    const writers = puts.map((p, i) => new RetryingWriter(`${PREFIX}${i}/`, p.put, 10));
    for (const w of writers) w.start();
    const acked = (): number => writers.reduce((n, w) => n + w.acked.size, 0);
    let fresh: ProxyProcess;
    try {
      await waitFor('writes through the old proxy', () => acked() >= 40, { timeoutMs: 30_000, intervalMs: 50 });
      fresh = await startProxyProcess(cluster.endpoints, ['--reuse-port=true', '--revision=new'], { port, metricsPort, waitReady: false });
      started.push(fresh);
      // The kubelet's view: ready once a probe for the new revision is answered, which only the new process does.
      await waitFor('the new proxy ready', async () => {
        if (fresh.child.exitCode !== null) throw new Error(`the new proxy exited ${fresh.child.exitCode}: ${fresh.output()}`);
        return (await readyz(metricsPort, 'new').catch(() => ({ status: 0 }))).status === 200;
      }, { timeoutMs: 30_000, intervalMs: 100 });
      // The old pod's probes reach either process, and both answer them ready: the new one answers for
      // the proxy it replaces, so the old pod cannot turn unready while the new one starts.
      expect(fresh.output()).toContain('Starting beside the proxy of another revision');
      const oldProbes = await Promise.all(Array.from({ length: 20 }, () => readyz(metricsPort, 'old')));
      expect(oldProbes.map((p) => p.status)).toEqual(Array<number>(20).fill(200));
      const beforeStop = acked();
      await waitFor('writes while both proxies serve', () => acked() >= beforeStop + 100, { timeoutMs: 30_000, intervalMs: 50 });
      const stopping = old.stop('SIGTERM');
      // While the old one drains, the new pod's probes all reach the new process (the old one closed its metrics port).
      await waitFor('the old proxy draining', () => old.output().includes('Draining: stopped accepting connections'), { timeoutMs: 10_000, intervalMs: 20 });
      const newProbes = await Promise.all(Array.from({ length: 20 }, () => readyz(metricsPort, 'new')));
      expect(newProbes.map((p) => p.status)).toEqual(Array<number>(20).fill(200));
      expect(await stopping).toBe(0);
      const afterStop = acked();
      await waitFor('writes through the new proxy alone', () => acked() >= afterStop + 100, { timeoutMs: 30_000, intervalMs: 50 });
    } finally {
      for (const w of writers) await w.stop();
      for (const p of puts) p.close();
    }
    const ackedWrites = new Map(writers.flatMap((w) => [...w.acked]));
    const lost = writers.flatMap((w) => w.lost);
    const retries = writers.reduce((n, w) => n + w.retries, 0);
    const last = Math.max(...ackedWrites.values());
    await waitFor('the watch caught up with the last write', () => watcher.seen.some((e) => e.revision >= last), { timeoutMs: 30_000, intervalMs: 100 });
    watcher.stop();

    console.log(
      `host surge: ${ackedWrites.size} writes acknowledged, ${retries} retried, ${lost.length} lost; ` +
        `watch: ${watcher.seen.length} events, resumed ${watcher.resumes.length}x (${watcher.resumes.join('; ')})`,
    );
    expect(lost).toEqual([]);
    expect(watcher.lost).toEqual([]);
    // The watch was opened on the old proxy (the only one then) and ended by its drain.
    expect(watcher.resumes.length).toBeGreaterThanOrEqual(1);
    expect(watcher.resumes[0]).toContain('etcd-topology proxy is shutting down');
    const revisions = watcher.seen.map((e) => e.revision);
    expect(revisions).toEqual([...revisions].sort((a, b) => a - b));
    expect(new Set(revisions).size).toBe(revisions.length);
    const seenKeys = new Set(watcher.seen.map((e) => e.key));
    expect([...ackedWrites.keys()].filter((k) => !seenKeys.has(k))).toEqual([]);
    // The old one drained and stopped; the new one holds both ports now.
    expect(old.output()).toContain('Draining: stopped accepting connections');
    expect(old.output()).toContain('Stopped the etcd proxy');
    // Another revision than its own and its predecessor's is refused.
    expect(await readyz(metricsPort, 'other')).toEqual({ status: 503, body: 'this is the proxy of pod template revision new; the probe asks for other\n' });
    expect(await fresh!.metric('etcd_topology_proxy_requests_total', { method: 'Put' })).toBeGreaterThan(0);
  });
});
