import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdCluster, printEtcdLogsOnFailure } from '../harness/etcd-cluster.ts';
import { waitFor } from '../harness/ports.ts';

describe('etcd cluster harness', () => {
  let cluster: EtcdCluster;
  beforeAll(async () => {
    cluster = await EtcdCluster.start({ size: 3 });
  });
  printEtcdLogsOnFailure(() => cluster);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('runs three voting members that agree on the data', async () => {
    const list = await cluster.etcdctl(['member', 'list', '-w', 'json']);
    expect((JSON.parse(list) as { members: unknown[] }).members).toHaveLength(3);
    await cluster.etcdctl(['put', 'k', 'v1']);
    expect(await cluster.etcdctl(['get', 'k', '--print-value-only'], cluster.member('m2').clientUrl)).toBe('v1\n');
  });

  it('keeps serving with one member killed, and the member rejoins with its data after restart', async () => {
    await cluster.kill('m0');
    // m0 may have been the leader: the put succeeds once the other two have elected one.
    await waitFor('a put with m0 down', () => cluster.etcdctl(['put', 'k', 'v2']), { timeoutMs: 30_000 });
    await cluster.restart('m0');
    const value = await cluster.etcdctl(['get', 'k', '--print-value-only', '--consistency=s'], cluster.member('m0').clientUrl);
    // Serializable reads on the restarted member may lag a moment behind; a linearizable read does not.
    expect(['v2\n', 'v1\n']).toContain(value);
    expect(await cluster.etcdctl(['get', 'k', '--print-value-only'], cluster.member('m0').clientUrl)).toBe('v2\n');
  });

  it('adds a learner member that the cluster lists as a learner', async () => {
    await cluster.add('m3', { learner: true });
    const list = JSON.parse(await cluster.etcdctl(['member', 'list', '-w', 'json'])) as { members: { name: string; isLearner?: boolean }[] };
    expect(list.members.find((m) => m.name === 'm3')?.isLearner).toBe(true);
  });
});
