import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binaries } from '../harness/binaries.ts';
import { LocalCluster } from '../harness/cluster/local-cluster.ts';
import type { Pod } from '../harness/cluster/types.ts';
import { waitFor } from '../harness/ports.ts';
import { run } from '../harness/run.ts';
import { etcdStatefulSet, sleeperDaemonSet } from './fixtures.ts';

const NS = 'default';

describe('local cluster', () => {
  let cluster: LocalCluster;
  const pods = async (selector: string): Promise<Pod[]> =>
    (JSON.parse(await cluster.kubectl(['get', 'pods', '-n', NS, '-l', selector, '-o', 'json'])) as { items: Pod[] }).items;
  const ready = (p: Pod): boolean => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
  const etcdctl = (endpoints: string[], args: string[]): Promise<string> =>
    run(binaries().etcdctl, [`--endpoints=${endpoints.join(',')}`, '--dial-timeout=2s', '--command-timeout=5s', ...args]);
  const memberIds = async (pod: Pod): Promise<string> =>
    (await etcdctl([`http://${pod.status!.podIP}:2379`], ['endpoint', 'status', '-w', 'json'])).match(/"member_id":(\d+)/)![1]!;

  beforeAll(async () => {
    cluster = await LocalCluster.start();
    await cluster.kubectl(['wait', '--for=condition=Ready', 'node', '--all', '--timeout=60s']);
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('runs a 3-member etcd StatefulSet, one member per central node, healthy through its pod addresses', async () => {
    await cluster.kubectl(['apply', '-f', '-'], etcdStatefulSet(NS));
    const members = await waitFor('3 ready etcd pods', async () => {
      const list = await pods('app=etcd');
      return list.length === 3 && list.every(ready) ? list : false;
    }, { timeoutMs: 180_000, intervalMs: 1000 });
    expect(members.map((p) => p.spec!.nodeName).sort()).toEqual(['central-0', 'central-1', 'central-2']);
    const endpoints = members.map((p) => `http://${p.status!.podIP}:2379`);
    const health = await etcdctl(endpoints, ['endpoint', 'health', '-w', 'json']);
    expect((JSON.parse(health) as { health: boolean }[]).map((h) => h.health)).toEqual([true, true, true]);
    await etcdctl(endpoints, ['put', 'harness-key', 'kept']);
  });

  it('refuses a second eviction while the PodDisruptionBudget has none left', async () => {
    await waitFor('the PDB to allow one disruption', async () => {
      const pdb = JSON.parse(await cluster.kubectl(['get', 'pdb', 'etcd', '-n', NS, '-o', 'json'])) as { status?: { disruptionsAllowed?: number } };
      return pdb.status?.disruptionsAllowed === 1;
    });
    const evict = (name: string): Promise<unknown> =>
      cluster.api.call('POST', `/api/v1/namespaces/${NS}/pods/${name}/eviction`, { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace: NS } });
    await evict('etcd-1');
    await expect(evict('etcd-2')).rejects.toMatchObject({ status: 429 });
    await waitFor('etcd-1 back and all 3 ready', async () => {
      const list = await pods('app=etcd');
      return list.length === 3 && list.every((p) => ready(p) && !p.metadata.deletionTimestamp);
    }, { timeoutMs: 120_000, intervalMs: 1000 });
  });

  it('drains a central node: its member is evicted, and after uncordon it returns with its data', async () => {
    const before = (await pods('app=etcd')).find((p) => p.spec!.nodeName === 'central-0')!;
    const name = before.metadata.name;
    const idBefore = await memberIds(before);
    const pvcBefore = JSON.parse(await cluster.kubectl(['get', 'pvc', `data-${name}`, '-n', NS, '-o', 'json'])) as { spec: { volumeName: string } };

    await cluster.kubectl(['drain', 'central-0', '--ignore-daemonsets', '--delete-emptydir-data', '--timeout=120s']);
    // Anti-affinity and the central selector leave the evicted member nowhere else to go.
    const pending = await waitFor(`${name} recreated and Pending`, async () => {
      const p = (await pods('app=etcd')).find((x) => x.metadata.name === name);
      return p && p.metadata.uid !== before.metadata.uid && p.status?.phase === 'Pending' ? p : false;
    }, { timeoutMs: 60_000 });
    expect(pending.spec?.nodeName).toBeUndefined();
    const others = (await pods('app=etcd')).filter((p) => p.metadata.name !== name).map((p) => `http://${p.status!.podIP}:2379`);
    await etcdctl(others, ['put', 'written-while-drained', 'yes']);

    await cluster.kubectl(['uncordon', 'central-0']);
    const after = await waitFor(`${name} ready again`, async () => {
      const p = (await pods('app=etcd')).find((x) => x.metadata.name === name);
      return p && ready(p) ? p : false;
    }, { timeoutMs: 120_000, intervalMs: 1000 });
    expect(after.spec!.nodeName).toBe('central-0');
    const pvcAfter = JSON.parse(await cluster.kubectl(['get', 'pvc', `data-${name}`, '-n', NS, '-o', 'json'])) as { spec: { volumeName: string } };
    expect(pvcAfter.spec.volumeName).toBe(pvcBefore.spec.volumeName);
    // Same data directory, same member: a member that lost its data could not rejoin under its old ID.
    expect(await memberIds(after)).toBe(idBefore);
    const self = [`http://${after.status!.podIP}:2379`];
    expect(await etcdctl(self, ['get', 'harness-key', '--print-value-only'])).toBe('kept\n');
    expect(await etcdctl(self, ['get', 'written-while-drained', '--print-value-only'])).toBe('yes\n');
  });

  it('runs a DaemonSet once per worker and never on the tainted central nodes', async () => {
    await cluster.kubectl(['apply', '-f', '-'], sleeperDaemonSet(NS));
    const list = await waitFor('2 ready sleeper pods', async () => {
      const l = await pods('app=sleeper');
      return l.length === 2 && l.every(ready) ? l : false;
    }, { timeoutMs: 60_000 });
    expect(list.map((p) => p.spec!.nodeName).sort()).toEqual(['worker-0', 'worker-1']);
  });

  it('gives a pod whose image has no local mapping a clear failed status', async () => {
    await cluster.kubectl(['run', 'nginx', '-n', NS, '--image=nginx:1.27', '--restart=Never', '--overrides={"spec":{"nodeName":"worker-0"}}']);
    const pod = await waitFor('the nginx pod to fail', async () => {
      const p = (await pods('run=nginx'))[0];
      return p?.status?.phase === 'Failed' ? p : false;
    });
    expect(pod.status?.reason).toBe('UnsupportedImage');
    expect(pod.status?.message).toMatch(/image "nginx:1.27" has no mapping to a local command/);
  });

  it('keeps a pod whose Secret volume cannot be read yet in ContainerCreating, and starts it once the Secret exists', async () => {
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'mounter', namespace: NS, labels: { app: 'mounter' } },
      spec: {
        nodeName: 'worker-0',
        terminationGracePeriodSeconds: 1,
        volumes: [{ name: 's', secret: { secretName: 'later' } }],
        // Runs only if the Secret's content is there (else it exits, and the test sees restarts).
        containers: [{ name: 'c', image: 'busybox:1.36', command: ['sh', '-c', 'test "$(cat /s/token)" = hello && sleep 3600'], volumeMounts: [{ name: 's', mountPath: '/s' }] }],
      },
    };
    // The service account admission refuses pods until the namespace's default account exists.
    await waitFor('the default service account', () => cluster.kubectl(['get', 'serviceaccount', 'default', '-n', NS]).then(() => true, () => false), { timeoutMs: 30_000 });
    await cluster.kubectl(['apply', '-f', '-'], JSON.stringify(pod));
    const waiting = await waitFor('the pod to wait for its volume', async () => {
      const p = (await pods('app=mounter'))[0];
      return p?.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'ContainerCreating' ? p : false;
    }, { timeoutMs: 30_000 });
    expect(waiting.status?.phase).toBe('Pending');
    await cluster.kubectl(['create', 'secret', 'generic', 'later', '-n', NS, '--from-literal=token=hello']);
    const started = await waitFor('the pod to run with the Secret mounted', async () => {
      const p = (await pods('app=mounter'))[0];
      return p && ready(p) ? p : false;
    }, { timeoutMs: 30_000 });
    expect(started.status?.containerStatuses?.[0]?.restartCount).toBe(0);
  });

  it('marks a stopped node NotReady with its pods not ready, and recovers it when started', async () => {
    await cluster.agent.stopNode('worker-1');
    await waitFor('worker-1 NotReady', async () => {
      const node = JSON.parse(await cluster.kubectl(['get', 'node', 'worker-1', '-o', 'json'])) as { status: { conditions: { type: string; status: string }[] } };
      return node.status.conditions.find((c) => c.type === 'Ready')?.status === 'Unknown';
    }, { timeoutMs: 90_000, intervalMs: 1000 });
    await waitFor('the sleeper pod on worker-1 not ready', async () => {
      const p = (await pods('app=sleeper')).find((x) => x.spec!.nodeName === 'worker-1');
      return p !== undefined && !ready(p);
    }, { timeoutMs: 60_000 });

    await cluster.agent.startNode('worker-1');
    const back = await waitFor('the sleeper pod on worker-1 ready again', async () => {
      const p = (await pods('app=sleeper')).find((x) => x.spec!.nodeName === 'worker-1');
      return p && ready(p) ? p : false;
    }, { timeoutMs: 90_000, intervalMs: 1000 });
    expect(back.status?.containerStatuses?.[0]?.restartCount).toBeGreaterThanOrEqual(1);
  });
});
