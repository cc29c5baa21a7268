import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import type { LocalCluster } from '../harness/cluster/local-cluster.ts';
import { waitFor } from '../harness/ports.ts';
import { ResumingWatcher } from '../proxy/resuming-watcher.ts';
import { componentPods, conditionOf, getTopology, isReady, startOperatorCluster, topologyManifest, type OperatorCluster } from './setup.ts';

const NS = 'default';
const NAME = 'roll';
const NODE = 'worker-0';
const PREFIX = 'roll/';
const b64 = (s: string): string => Buffer.from(s).toString('base64');

/**
 * A pod's client on one node: it reaches the node's proxy through the node-local Service (resolved
 * as a pod there would, for every new connection) and writes continuously, retrying a failed write
 * once, as etcd's clients do for a connection that went away.
 */
class RetryingWriter {
  readonly acked = new Map<string, number>();
  /** Writes that failed on the first try and on the retry. */
  readonly lost: string[] = [];
  retries = 0;
  private running = false;
  private loop: Promise<void> | undefined;
  private agents = new Map<string, Agent>();
  private readonly address: () => string | undefined;

  constructor(address: () => string | undefined) {
    this.address = address;
  }

  start(): void {
    this.running = true;
    this.loop = (async () => {
      for (let n = 0; this.running; n++) {
        const key = `${PREFIX}${String(n).padStart(6, '0')}`;
        const first = await this.put(key);
        if (typeof first !== 'number') {
          this.retries++;
          const second = await this.put(key);
          if (typeof second === 'number') this.acked.set(key, second);
          else this.lost.push(`${key}: ${first}, then on the retry ${second}`);
        } else this.acked.set(key, first);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    for (const a of this.agents.values()) await a.close();
  }

  /** The revision of the write, or why it failed. */
  private async put(key: string): Promise<number | string> {
    const ip = this.address();
    if (ip === undefined) return 'no ready proxy on the node';
    let agent = this.agents.get(ip);
    if (!agent) this.agents.set(ip, (agent = new Agent({ keepAliveTimeout: 10_000, connections: 1 })));
    try {
      const res = await request(`http://${ip}:2379/v3/kv/put`, {
        method: 'POST',
        dispatcher: agent,
        body: JSON.stringify({ key: b64(key), value: b64('v') }),
        headers: { 'content-type': 'application/json' },
        headersTimeout: 5000,
        bodyTimeout: 5000,
      });
      const text = await res.body.text();
      if (res.statusCode !== 200) return `HTTP ${res.statusCode} from ${ip}: ${text.slice(0, 120)}`;
      return Number((JSON.parse(text) as { header: { revision: string } }).header.revision);
    } catch (err) {
      return `${(err as Error).message} (${ip})`;
    }
  }
}

// A roll of the proxy DaemonSet (a flag change) under a client load on a worker: with maxSurge 1 and
// maxUnavailable 0 the node keeps a ready proxy throughout, the old one drains, and the client neither
// loses a write beyond one retry nor an event of its watch.
describe('proxy DaemonSet roll under load', () => {
  let env: OperatorCluster;
  let cluster: LocalCluster;
  const address = (): string | undefined => cluster.agent.resolve(NODE, NS, `${NAME}-proxy`);

  beforeAll(async () => {
    env = await startOperatorCluster();
    cluster = env.cluster;
    await cluster.kubectl(['apply', '-f', '-'], topologyManifest(NAME, NS, { members: { count: 3 } }));
    await waitFor('the topology Available with ready proxies', async () => {
      const t = await getTopology(cluster, NAME, NS);
      const proxies = await componentPods(cluster, NAME, NS, 'proxy');
      return conditionOf(t, 'Available')?.status === 'True' && proxies.length === 2 && proxies.every(isReady);
    }, { timeoutMs: 240_000, intervalMs: 1000 });
  }, 420_000);
  afterAll(async () => {
    await env?.stop();
  });

  it('keeps a ready proxy on the node, loses no write beyond one retry and no watch event', { timeout: 600_000 }, async () => {
    const before = new Set((await componentPods(cluster, NAME, NS, 'proxy')).map((p) => p.metadata.uid));
    const writer = new RetryingWriter(address);
    const watcher = new ResumingWatcher(() => {
      const ip = address();
      return ip === undefined ? undefined : `${ip}:2379`;
    }, { key: PREFIX, rangeEnd: 'roll0' });
    await watcher.start();
    writer.start();
    let gaps = 0;
    let samples = 0;
    const sampling = setInterval(() => {
      samples++;
      if (address() === undefined) gaps++;
    }, 100);
    try {
      await new Promise((r) => setTimeout(r, 3000));
      await cluster.kubectl(['patch', 'etop', NAME, '-n', NS, '--type=merge', '-p', JSON.stringify({ spec: { proxy: { refreshInterval: '20s' } } })]);
      await waitFor('every proxy replaced and ready', async () => {
        const pods = await componentPods(cluster, NAME, NS, 'proxy');
        return pods.length === 2 && pods.every((p) => !before.has(p.metadata.uid) && isReady(p) && !p.metadata.deletionTimestamp);
      }, { timeoutMs: 300_000, intervalMs: 500 });
      await new Promise((r) => setTimeout(r, 3000));
    } finally {
      clearInterval(sampling);
      await writer.stop();
    }
    // The watch has seen every acknowledged write once the last one's revision has arrived.
    const last = Math.max(...writer.acked.values());
    await waitFor('the watch caught up with the last write', () => watcher.seen.some((e) => e.revision >= last), { timeoutMs: 30_000, intervalMs: 200 });
    watcher.stop();

    console.log(
      `proxy roll: ${writer.acked.size} writes acknowledged, ${writer.retries} retried, ${writer.lost.length} lost; ` +
        `watch: ${watcher.seen.length} events, ${watcher.resumes.length} resumed after UNAVAILABLE (${watcher.resumes.join('; ')}); ` +
        `${gaps} of ${samples} samples found no ready proxy on ${NODE}`,
    );
    expect(writer.acked.size).toBeGreaterThan(100);
    expect(writer.lost).toEqual([]);
    expect(watcher.lost).toEqual([]);
    expect(gaps).toBe(0);
    const revisions = watcher.seen.map((e) => e.revision);
    expect(revisions).toEqual([...revisions].sort((a, b) => a - b));
    expect(new Set(revisions).size).toBe(revisions.length);
    const seenKeys = new Set(watcher.seen.map((e) => e.key));
    expect([...writer.acked.keys()].filter((k) => !seenKeys.has(k))).toEqual([]);
  });
});
