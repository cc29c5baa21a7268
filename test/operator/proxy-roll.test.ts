import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import type { LocalCluster } from '../harness/cluster/local-cluster.ts';
import { freePort, waitFor } from '../harness/ports.ts';
import { ResumingWatcher } from '../proxy/resuming-watcher.ts';
import { RetryingWriter, type Put } from '../proxy/retrying-writer.ts';
import { componentPods, conditionOf, getTopology, isReady, startOperatorCluster, topologyManifest, type OperatorCluster } from './setup.ts';

const NS = 'default';
const NAME = 'roll';
const NODE = 'worker-0';
const b64 = (s: string): string => Buffer.from(s).toString('base64');

/**
 * Puts over the JSON gateway, as a pod's client on the node: through the proxy where target() says
 * at each call (host:port: the node-local Service, resolved as a pod there would, or the node's
 * 127.0.0.1 in the host network), one keep-alive connection per address.
 */
function gatewayPut(target: () => string | undefined): { put: Put; close(): Promise<void> } {
  const agents = new Map<string, Agent>();
  const put: Put = async (key) => {
    const ip = target();
    if (ip === undefined) return 'no ready proxy on the node';
    let agent = agents.get(ip);
    if (!agent) agents.set(ip, (agent = new Agent({ keepAliveTimeout: 10_000, connections: 1 })));
    try {
      const res = await request(`http://${ip}/v3/kv/put`, {
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
  };
  return { put, close: async () => void (await Promise.all([...agents.values()].map((a) => a.close()))) };
}

/** What a roll under load saw: the client's writes and watch, and how often the node had no ready proxy. */
interface RollResult {
  writer: RetryingWriter;
  watcher: ResumingWatcher;
  gaps: number;
  samples: number;
}

/**
 * Starts a writer and a watch under prefix through target(), samples readyOnNode() every 100 ms,
 * applies patch to the topology and waits until every proxy pod is new and ready (count of them),
 * keeping the load 3 s before and after.
 */
async function rollUnderLoad(cluster: LocalCluster, o: { target: () => string | undefined; readyOnNode: () => Promise<boolean>; prefix: string; patch: object; count: number }): Promise<RollResult> {
  const before = new Set((await componentPods(cluster, NAME, NS, 'proxy')).map((p) => p.metadata.uid));
  const gateway = gatewayPut(o.target);
  const writer = new RetryingWriter(o.prefix, gateway.put, 20);
  // The range of every key that starts with prefix ("roll/" -> "roll0").
  const rangeEnd = o.prefix.slice(0, -1) + String.fromCharCode(o.prefix.charCodeAt(o.prefix.length - 1) + 1);
  const watcher = new ResumingWatcher(o.target, { key: o.prefix, rangeEnd });
  await watcher.start();
  writer.start();
  let gaps = 0;
  let samples = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      samples++;
      if (!(await o.readyOnNode())) gaps++;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  try {
    await new Promise((r) => setTimeout(r, 3000));
    await cluster.kubectl(['patch', 'etop', NAME, '-n', NS, '--type=merge', '-p', JSON.stringify({ spec: o.patch })]);
    await waitFor('every proxy replaced and ready', async () => {
      const pods = await componentPods(cluster, NAME, NS, 'proxy');
      return pods.length === o.count && pods.every((p) => !before.has(p.metadata.uid) && isReady(p) && !p.metadata.deletionTimestamp);
    }, { timeoutMs: 300_000, intervalMs: 500 });
    await new Promise((r) => setTimeout(r, 3000));
  } finally {
    sampling = false;
    await sampler;
    await writer.stop();
    await gateway.close();
  }
  // The watch has seen every acknowledged write once the last one's revision has arrived.
  const last = Math.max(...writer.acked.values());
  await waitFor('the watch caught up with the last write', () => watcher.seen.some((e) => e.revision >= last), { timeoutMs: 30_000, intervalMs: 200 });
  watcher.stop();
  return { writer, watcher, gaps, samples };
}

/** The roll's promises: no write lost beyond one retry, every event once and in order, a ready proxy at every sample. */
function expectNoGap(what: string, { writer, watcher, gaps, samples }: RollResult): void {
  console.log(
    `${what}: ${writer.acked.size} writes acknowledged, ${writer.retries} retried, ${writer.lost.length} lost; ` +
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
}

// A roll of the proxy DaemonSet (a flag change) under a client load on a worker: with maxSurge 1 and
// maxUnavailable 0 the node keeps a ready proxy throughout, the old one drains, and the client neither
// loses a write beyond one retry nor an event of its watch. First on the pod network, then on the host
// network, where both proxies share the node's port (SO_REUSEPORT).
describe('proxy DaemonSet roll under load', () => {
  let env: OperatorCluster;
  let cluster: LocalCluster;
  const viaService = (): string | undefined => {
    const ip = cluster.agent.resolve(NODE, NS, `${NAME}-proxy`);
    return ip === undefined ? undefined : `${ip}:2379`;
  };

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
    const result = await rollUnderLoad(cluster, {
      target: viaService,
      readyOnNode: () => Promise.resolve(viaService() !== undefined),
      prefix: 'roll/',
      patch: { proxy: { refreshInterval: '20s' } },
      count: 2,
    });
    expectNoGap('proxy roll', result);
  });

  // Every node of the local cluster shares the machine's 127.0.0.1, so the host-network proxies run
  // on worker-0 alone (two nodes' proxies would otherwise share one port as if they were one node),
  // on a free port rather than 2379.
  it('on the host network: the new proxy shares the node\'s port, the old one drains, no gap', { timeout: 900_000 }, async () => {
    const port = await freePort();
    const hostNetwork = { proxy: { hostNetwork: true, port, nodeSelector: { 'kubernetes.io/hostname': NODE } } };
    await cluster.kubectl(['patch', 'etop', NAME, '-n', NS, '--type=merge', '-p', JSON.stringify({ spec: hostNetwork })]);
    const target = `127.0.0.1:${port}`;
    const readyOnNode = async (): Promise<boolean> =>
      (await componentPods(cluster, NAME, NS, 'proxy')).some((p) => p.spec?.nodeName === NODE && p.spec.hostNetwork === true && isReady(p) && !p.metadata.deletionTimestamp);
    await waitFor('one ready host-network proxy, on worker-0', async () => {
      const pods = await componentPods(cluster, NAME, NS, 'proxy');
      return pods.length === 1 && (await readyOnNode());
    }, { timeoutMs: 300_000, intervalMs: 500 });
    const result = await rollUnderLoad(cluster, { target: () => target, readyOnNode, prefix: 'hostroll/', patch: { proxy: { refreshInterval: '25s' } }, count: 1 });
    expectNoGap('host-network proxy roll', result);
    // The old proxy was ended by its drain, so the watch resumed on the new one.
    expect(result.watcher.resumes.some((r) => r.includes('etcd-topology proxy is shutting down'))).toBe(true);
  });
});
