import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { CENTRAL_LABEL, CENTRAL_TAINT, type LocalCluster } from '../harness/cluster/local-cluster.ts';
import type { Pod } from '../harness/cluster/types.ts';
import { waitFor } from '../harness/ports.ts';
import type { EndpointTls } from '../../src/etcd/admin-client.ts';
import { MemberTls } from '../tls/tls-client.ts';
import { componentPods, conditionOf, getTopology, isReady, startOperatorCluster, topologyManifest, type OperatorCluster } from '../operator/setup.ts';
import { AckedWriter, QuorumSampler, STALL_LISTED_MS } from './upgrade-load.ts';

const NS = 'default';
const NAME = 'pool';

// npm run test:upgrade: a node-pool upgrade under load. A client writes continuously through a
// worker's proxy and records every acknowledged write; meanwhile every central node is cordoned and
// drained in turn (with a concurrent attempt to drain a second one, which the budget must refuse),
// and then every central node is replaced (a new labelled node added, the old one drained and
// deleted). etcd's own view of healthy voters is sampled throughout.
describe('node-pool upgrade under load', () => {
  let env: OperatorCluster;
  let cluster: LocalCluster;
  let writer: AckedWriter;
  let direct: AckedWriter;
  let sampler: QuorumSampler;
  const refusedDrains: string[] = [];
  /** Set when a step failed: afterAll then keeps the cluster's logs and objects before it goes. */
  let failed = false;
  const keepOnFailure = ({ onTestFailed }: TestContext): void => onTestFailed(() => void (failed = true));

  const members = (): Promise<Pod[]> => componentPods(cluster, NAME, NS, 'member');
  /** True when all is well; otherwise throws what is not, which a timed-out waitFor reports. */
  const healthyAndAvailable = async (): Promise<boolean> => {
    const t = await getTopology(cluster, NAME, NS);
    const pods = await members();
    const ok =
      conditionOf(t, 'Available')?.status === 'True' &&
      t.status?.quorum?.healthy === 3 &&
      t.status.members?.filter((m) => m.role !== 'learner').length === 3 &&
      pods.length === 3 &&
      pods.every((p) => isReady(p) && !p.metadata.deletionTimestamp);
    if (ok) return true;
    const conditions = t.status?.conditions?.map((c) => `${c.type}=${c.status}/${c.reason}: ${c.message}`).join('; ');
    const memberState = t.status?.members?.map((m) => `${m.name}(${m.role},${m.healthy ? 'healthy' : 'unhealthy'},${m.node})`).join(' ');
    const podState = pods.map((p) => `${p.metadata.name}@${p.spec?.nodeName ?? '-'}:${p.status?.phase}${isReady(p) ? ',ready' : ` (${whyNotRunning(p)})`}`).join(' ');
    // What etcd itself complains about in the pods that are not ready, for a timeout to say why.
    const complaints = await Promise.all(
      pods
        .filter((p) => !isReady(p))
        .map(async (p) => {
          const log = await cluster.containerLog(p, 'etcd').catch((err: unknown) => String(err));
          const lines = log.split('\n').filter((l) => /"level":"(warn|error|fatal|panic)"|^panic/.test(l));
          // Which half of Ready is missing: the container's readiness probe, or the operator's gate.
          const container = p.status?.containerStatuses?.[0];
          const gate = p.status?.conditions?.find((c) => c.type === 'etcdtopology.io/member-healthy');
          const readyz = p.status?.podIP
            ? await fetch(`http://${p.status.podIP}:2381/readyz?verbose`, { signal: AbortSignal.timeout(2000) }).then(
                async (r) => `${r.status} ${(await r.text()).replaceAll('\n', ' ')}`,
                (err: unknown) => String(err),
              )
            : 'no pod IP';
          const state = `container ready=${container?.ready} started=${container?.started}, gate=${gate?.status ?? 'unset'}, /readyz now: ${readyz}`;
          return `${p.metadata.name} (${container?.restartCount ?? 0} restarts; ${state}): ${lines.slice(-4).join(' | ')}`;
        }),
    );
    throw new Error(`members ${memberState}; pods ${podState}; ${conditions}${complaints.length ? `; etcd says: ${complaints.join(' || ')}` : ''}`);
  };
  const memberOn = async (node: string): Promise<Pod | undefined> => (await members()).find((p) => p.spec?.nodeName === node);
  const leaderNode = async (): Promise<string | undefined> => {
    const t = await getTopology(cluster, NAME, NS);
    return t.status?.members?.find((m) => m.role === 'leader')?.node;
  };
  /** Cordons a node, waits until etcd's leader is elsewhere (the operator moves it), then drains it. */
  const cordonAndDrain = async (node: string): Promise<void> => {
    await cluster.kubectl(['cordon', node]);
    await waitFor(`the leader off ${node}`, async () => (await leaderNode()) !== node, { timeoutMs: 60_000, intervalMs: 500 });
    await cluster.kubectl(['drain', node, '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=120s']);
  };

  beforeAll(async () => {
    failed = true;
    env = await startOperatorCluster();
    cluster = env.cluster;
    await cluster.kubectl(['apply', '-f', '-'], topologyManifest(NAME, NS, { members: { count: 3 } }));
    await waitFor('the topology Available with ready proxies', async () => {
      const proxies = await componentPods(cluster, NAME, NS, 'proxy');
      return (await healthyAndAvailable()) && proxies.length === 2 && proxies.every(isReady);
    }, { timeoutMs: 240_000, intervalMs: 1000 });
    const proxy = (await componentPods(cluster, NAME, NS, 'proxy')).find((p) => p.spec?.nodeName === 'worker-0')!;
    writer = new AckedWriter(`http://${proxy.status!.podIP}:2379`, 'upgrade/proxy/');
    // TLS is on by default: the sampler and the direct client present the topology's client
    // certificate, as the operator does, and verify each member's DNS name.
    const memberTls = new MemberTls(cluster, NS, NAME);
    const pem = await memberTls.pem();
    const memberTargets = async (): Promise<{ name: string; url: string; tls: EndpointTls }[]> =>
      (await members())
        .filter((p) => p.status?.podIP && !p.metadata.deletionTimestamp)
        .map((p) => ({ name: p.metadata.name, url: `https://${p.status!.podIP}:2379`, tls: { ...pem, servername: `${p.metadata.name}.${NAME}-peer.${NS}.svc` } }));
    // The same load straight to the members, for the proxy's figures to be read against.
    direct = new AckedWriter(memberTargets, 'upgrade/direct/');
    sampler = new QuorumSampler(memberTargets);
    writer.start();
    direct.start();
    sampler.start(2);
    failed = false;
  });
  afterAll(async () => {
    try {
      // UPGRADE_KEEP_EVIDENCE=1 keeps them after a pass too (to read the proxy's log around a stall).
      if ((failed || process.env['UPGRADE_KEEP_EVIDENCE'] === '1') && cluster) {
        const dest = process.env['UPGRADE_EVIDENCE_DIR'] ?? path.join(os.tmpdir(), 'etcd-topology-upgrade-failures', new Date().toISOString().replace(/[:.]/g, '-'));
        await cluster.keepEvidence(dest);
        console.log(`node-pool upgrade ${failed ? 'failed' : 'passed'}: the cluster's logs (operator, node agent, control plane, containers), objects and events are kept in ${dest}`);
      }
      await writer?.stop();
      await direct?.stop();
      await sampler?.stop();
      await writer?.close();
      await direct?.close();
    } finally {
      await env?.stop();
    }
  });

  it('drains each central node in turn, refusing a concurrent second drain', { timeout: 900_000 }, async (ctx) => {
    keepOnFailure(ctx);
    for (const node of ['central-0', 'central-1', 'central-2']) {
      await cordonAndDrain(node);
      const other = ['central-0', 'central-1', 'central-2'].find((n) => n !== node)!;
      // The drained member is down and cannot come back while its node is cordoned: a second drain must not pass.
      const second = await cluster.kubectl(['drain', other, '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=8s']).then(
        () => 'drained',
        (err: Error) => err.message,
      );
      expect(second).toMatch(/disruption budget/);
      refusedDrains.push(`${other} while ${node} was drained`);
      expect(await memberOn(other)).toBeDefined();
      await cluster.kubectl(['uncordon', other]);
      await cluster.kubectl(['uncordon', node]);
      await waitFor(`the member on ${node} back and all healthy`, healthyAndAvailable, { timeoutMs: 180_000, intervalMs: 1000 });
    }
    expect(refusedDrains).toHaveLength(3);
  });

  it('replaces each central node: add a new one, drain and delete the old; a fresh member joins on the new node', { timeout: 1_200_000 }, async (ctx) => {
    keepOnFailure(ctx);
    for (const [i, old] of ['central-0', 'central-1', 'central-2'].entries()) {
      const fresh = `central-new-${i}`;
      await cluster.agent.addNode({ name: fresh, labels: { ...CENTRAL_LABEL }, taints: [CENTRAL_TAINT] });
      await cordonAndDrain(old);
      await cluster.agent.deleteNode(old);
      await waitFor(`a member on ${fresh} and all healthy`, async () => (await memberOn(fresh)) !== undefined && (await healthyAndAvailable()), {
        timeoutMs: 300_000,
        intervalMs: 1000,
      });
    }
    expect((await members()).map((p) => p.spec?.nodeName).sort()).toEqual(['central-new-0', 'central-new-1', 'central-new-2']);
  });

  it('kept quorum at every sample and lost no acknowledged write', async (ctx) => {
    keepOnFailure(ctx);
    await Promise.all([writer.stop(), direct.stop()]);
    await sampler.stop();
    const [missing, missingDirect] = [await writer.missing(), await direct.missing()];
    const report = (label: string, w: AckedWriter): string =>
      `${label}: ${w.acked.size} writes acknowledged, ${w.failures} failed attempts, longest write stall ${w.longestStallMs} ms (from ${new Date(w.longestStallFrom).toISOString()}; ` +
      `all over ${STALL_LISTED_MS} ms: ${w.stalls.map((x) => `${new Date(x.from).toISOString().slice(11, 23)} ${x.ms}`).join(', ') || 'none'})` +
      (w.failed.length > 0 ? ` (failures: ${w.failed.slice(0, 5).map((f) => `${new Date(f.sent).toISOString()} ${f.target}: ${f.error}`).join('; ')})` : '');
    console.log(
      `node-pool upgrade: ${report('through the proxy', writer)}; ${report('straight to the members', direct)}; ` +
        `${sampler.samples} quorum samples, fewest healthy voters ${sampler.minHealthy}; refused drains: ${refusedDrains.join('; ')}`,
    );
    expect(sampler.samples).toBeGreaterThan(50);
    expect(sampler.lowSamples).toEqual([]);
    expect(sampler.minHealthy).toBeGreaterThanOrEqual(2);
    expect(writer.acked.size).toBeGreaterThan(100);
    expect(missing).toEqual([]);
    expect(missingDirect).toEqual([]);
  });
});

/** Why a pod is not running and ready, as the kubelet and scheduler report it: unscheduled, a waiting container, a false condition. */
function whyNotRunning(p: Pod): string {
  const scheduled = p.status?.conditions?.find((c) => c.type === 'PodScheduled');
  if (!p.spec?.nodeName) return `unscheduled: ${scheduled?.reason ?? '-'} ${scheduled?.message ?? ''}`.trim();
  const containers = [...(p.status?.initContainerStatuses ?? []).map((c) => ({ ...c, name: `init:${c.name}` })), ...(p.status?.containerStatuses ?? [])];
  const states = containers.map((c) => {
    const state = c.state?.waiting ? `waiting ${c.state.waiting.reason}${c.state.waiting.message ? `: ${c.state.waiting.message}` : ''}` : c.state?.running ? 'running' : `terminated ${c.state?.terminated?.exitCode}`;
    return `${c.name} ${state}`;
  });
  const falseConditions = (p.status?.conditions ?? []).filter((c) => c.status !== 'True').map((c) => `${c.type}=${c.status}${c.reason ? `/${c.reason}` : ''}`);
  return [states.length ? states.join(', ') : 'no container status (the node agent wrote none)', ...falseConditions].join('; ');
}
