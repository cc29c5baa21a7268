import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binaries } from '../harness/binaries.ts';
import type { LocalCluster } from '../harness/cluster/local-cluster.ts';
import type { Pod } from '../harness/cluster/types.ts';
import { waitFor } from '../harness/ports.ts';
import { run } from '../harness/run.ts';
import type { OperatorProcess } from './operator-process.ts';
import { componentPods, conditionOf, getTopology, isReady, startOperatorCluster, topologyManifest, type OperatorCluster, type TopologyStatus } from './setup.ts';

const NS = 'default';
const topology = (name: string, spec: Record<string, unknown>): string => topologyManifest(name, NS, spec);

describe('operator on the local cluster', () => {
  let env: OperatorCluster;
  let cluster: LocalCluster;
  let operator: OperatorProcess;
  const k = (...args: string[]): Promise<string> => cluster.kubectl(args);
  const get = (name: string): Promise<TopologyStatus> => getTopology(cluster, name, NS);
  const condition = conditionOf;
  const pods = (name: string, component: 'member' | 'proxy'): Promise<Pod[]> => componentPods(cluster, name, NS, component);
  const ready = isReady;

  beforeAll(async () => {
    env = await startOperatorCluster();
    ({ cluster, operator } = env);
  });
  afterAll(async () => {
    await env?.stop();
  });

  it.each([
    [0, /members.count/],
    [2, /an even count tolerates no more member failures than the odd count below it/],
    [4, /an even count tolerates no more member failures than the odd count below it/],
    [9, /members.count/],
    [-1, /members.count/],
    ['three', /members.count/],
  ])('refuses members.count %j at admission', async (count, message) => {
    const attempt = cluster.kubectl(['apply', '-f', '-'], topology(`bad-${String(count).replace(/[^a-z0-9]/g, 'x')}`, { members: { count } }));
    await expect(attempt).rejects.toThrow(message);
  });

  it('brings a 3-member topology to Available: members on central nodes, proxies on workers', async () => {
    await cluster.kubectl(['apply', '-f', '-'], topology('main', { members: { count: 3 } }));
    // Available needs a quorum, not every member: wait for the third one to be healthy too.
    const t = await waitFor('main Available with 3 healthy members', async () => {
      const t = await get('main');
      return condition(t, 'Available')?.status === 'True' && t.status?.quorum?.healthy === 3 ? t : false;
    }, { timeoutMs: 240_000, intervalMs: 1000 });
    expect(t.status?.quorum).toEqual({ size: 2, healthy: 3, faultTolerance: 1, disruptionsAllowed: 1 });
    expect(t.status?.members?.filter((m) => m.role === 'leader')).toHaveLength(1);

    // The readiness gate follows etcd's view; the pods turn Ready once the node agent sees it.
    const members = await waitFor('3 ready member pods', async () => {
      const l = await pods('main', 'member');
      return l.length === 3 && l.every(ready) ? l : false;
    }, { timeoutMs: 30_000 });
    expect(members.map((p) => p.spec!.nodeName).sort()).toEqual(['central-0', 'central-1', 'central-2']);
    const proxies = await waitFor('2 ready proxies', async () => {
      const l = await pods('main', 'proxy');
      return l.length === 2 && l.every(ready) ? l : false;
    }, { timeoutMs: 120_000 });
    expect(proxies.map((p) => p.spec!.nodeName).sort()).toEqual(['worker-0', 'worker-1']);
  });

  it('makes no write call on a resync when nothing changed', async () => {
    await waitFor('main settled', async () => {
      const t = await get('main');
      return condition(t, 'Progressing')?.status === 'False' && t.status?.proxies?.ready === 2;
    }, { timeoutMs: 60_000 });
    // Settled also means the last status change has been written: the conditions above can be true
    // one reconcile before a final status patch (a member's health, the proxies' count) lands. The
    // baseline is taken once a reconcile passed without a write; a status that never stops changing
    // times this out, which is the failure this test looks for.
    const twoReconciles = async (): Promise<void> => {
      const from = await operator.counter('etcd_topology_operator_reconciles_total');
      // At least two resyncs (3 s period) pass.
      await waitFor('two more reconciles', async () => (await operator.counter('etcd_topology_operator_reconciles_total')) >= from + 2, { timeoutMs: 30_000 });
    };
    let before = await operator.series('etcd_topology_operator_api_writes_total');
    await waitFor('a reconcile without a write', async () => {
      const from = before;
      await twoReconciles();
      before = await operator.series('etcd_topology_operator_api_writes_total');
      return JSON.stringify(before) === JSON.stringify(from);
    }, { timeoutMs: 60_000 });
    await twoReconciles();
    expect(await operator.series('etcd_topology_operator_api_writes_total')).toEqual(before);
  });

  it("serves a write made through one worker's proxy to a reader on the other worker's proxy", async () => {
    const proxies = await pods('main', 'proxy');
    const [a, b] = proxies.map((p) => `http://${p.status!.podIP}:2379`);
    await run(binaries().etcdctl, [`--endpoints=${a}`, 'put', 'through-proxy', proxies[0]!.spec!.nodeName!]);
    expect(await run(binaries().etcdctl, [`--endpoints=${b}`, 'get', 'through-proxy', '--print-value-only'])).toBe(`${proxies[0]!.spec!.nodeName}\n`);
  });

  it('applies a spec change to the objects it owns', async () => {
    await k('patch', 'etop', 'main', '-n', NS, '--type=merge', '-p', '{"spec":{"proxy":{"mode":"readonly"}}}');
    await waitFor('the proxy DaemonSet in readonly mode', async () => {
      const ds = await k('get', 'daemonset', '-n', NS, '-l', 'app.kubernetes.io/instance=main,app.kubernetes.io/component=proxy', '-o', 'json');
      return ds.includes('--mode=readonly');
    }, { timeoutMs: 30_000 });
    const t = await get('main');
    await waitFor('observedGeneration caught up', async () => (await get('main')).status?.observedGeneration === t.metadata.generation, { timeoutMs: 30_000 });
  });

  it('refuses a storageClassName change', async () => {
    await expect(k('patch', 'etop', 'main', '-n', NS, '--type=merge', '-p', '{"spec":{"members":{"storage":{"storageClassName":"other"}}}}')).rejects.toThrow(/storageClassName/);
  });

  it('reports Degraded InsufficientCentralNodes when there are fewer central nodes than members, without crashing', async () => {
    await cluster.kubectl(['apply', '-f', '-'], topology('big', { members: { count: 5 } }));
    const t = await waitFor('big Degraded', async () => {
      const t = await get('big');
      return condition(t, 'Degraded')?.reason === 'InsufficientCentralNodes' ? t : false;
    }, { timeoutMs: 60_000 });
    expect(condition(t, 'Degraded')?.message).toMatch(/^3 ready node\(s\) match etcdtopology.io\/role=central but members.count is 5/);
    expect(condition(t, 'Available')?.status).toBe('False');
    expect(operator.alive).toBe(true);
    await k('delete', 'etop', 'big', '-n', NS, '--wait=true');
  });

  it('on delete, lets the garbage collector remove what it created and keeps the PVCs', async () => {
    const pvcsBefore = (await k('get', 'pvc', '-n', NS, '-l', 'app.kubernetes.io/instance=main', '-o', 'name')).trim().split('\n').filter(Boolean);
    expect(pvcsBefore.length).toBeGreaterThanOrEqual(3);
    await k('delete', 'etop', 'main', '-n', NS, '--wait=true');
    await waitFor('owned objects gone', async () => {
      const left = await k('get', 'statefulsets,daemonsets,services,poddisruptionbudgets,pods', '-n', NS, '-l', 'app.kubernetes.io/instance=main', '-o', 'name');
      return left.trim() === '';
    }, { timeoutMs: 120_000, intervalMs: 1000 });
    const pvcsAfter = (await k('get', 'pvc', '-n', NS, '-l', 'app.kubernetes.io/instance=main', '-o', 'name')).trim().split('\n').filter(Boolean);
    expect(pvcsAfter.sort()).toEqual(pvcsBefore.sort());
  });
});
