import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCluster } from '../harness/cluster/local-cluster.ts';
import { waitFor } from '../harness/ports.ts';
import { OperatorProcess } from './operator-process.ts';
import { conditionOf, getTopology, startOperatorCluster, topologyManifest, type OperatorCluster } from './setup.ts';

// Leader election on the local cluster with the default timings (lease 15 s, renew deadline 10 s,
// retry 2 s): the API server stopped for 5 s does not make the leader give up, restart or repeat a
// step; with two replicas, SIGKILL of the leader hands over after the lease expired, as observed by
// the standby, and the standby writes nothing until then.
//
// The outage the test causes is the API server's kill, 5 s down, and its start until /readyz: the
// start alone took 3.8 s and 13.3 s on a loaded machine, so the outage is measured, and what is
// asserted is what the design promises for the outage that happened: the leader keeps leading when
// the API answered again early enough for a renewal before its renew deadline, and exits when it
// did not answer before the deadline.

const NS = 'default';
const NAME = 'le';
const LEASE_MS = 15_000;
const RENEW_DEADLINE_MS = 10_000;
const RETRY_MS = 2_000;
// A renewal after the API answers again: the next retry (at most a retry period later) and the
// request itself, with its connection set up again.
const RENEWAL_AFTER_OUTAGE_MS = RETRY_MS + 1_500;
const WRITES = 'etcd_topology_operator_api_writes_total';

interface Lease {
  metadata: { resourceVersion: string };
  spec: { holderIdentity?: string; acquireTime?: string; renewTime?: string; leaseTransitions?: number };
}

describe('leader election on the local cluster', () => {
  let env: OperatorCluster;
  let cluster: LocalCluster;
  let a: OperatorProcess;
  let b: OperatorProcess | undefined;

  const lease = async (): Promise<Lease> => JSON.parse(await cluster.kubectl(['get', 'lease', 'etcd-topology-operator', '-n', NS, '-o', 'json'])) as Lease;
  const logEntries = async (op: OperatorProcess, msg: string): Promise<Record<string, unknown>[]> =>
    (await readFile(op.logFile, 'utf8'))
      .split('\n')
      .filter((l) => l.includes(`"msg":"${msg}`))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const logLines = async (op: OperatorProcess, msg: string): Promise<number> => (await logEntries(op, msg)).length;
  /** Every write the operator made except status patches, per label set. */
  const nonStatusWrites = async (op: OperatorProcess): Promise<Record<string, number>> => withoutStatus(await op.series(WRITES));
  const reconciles = (op: OperatorProcess): Promise<number> => op.counter('etcd_topology_operator_reconciles_total');

  beforeAll(async () => {
    env = await startOperatorCluster({}, ['--resync-period=3s']);
    cluster = env.cluster;
    a = env.operator;
    await cluster.kubectl(['apply', '-f', '-'], topologyManifest(NAME, NS, { members: { count: 1 } }));
    await waitFor(`${NAME} settled`, async () => {
      const t = await getTopology(cluster, NAME, NS);
      return conditionOf(t, 'Available')?.status === 'True' && conditionOf(t, 'Progressing')?.status === 'False' && t.status?.proxies?.ready === 2;
    }, { timeoutMs: 240_000, intervalMs: 1000 });
  });
  afterAll(async () => {
    await b?.stop();
    if (a !== env?.operator) await a?.stop();
    await env?.stop();
  });

  /** Waits until op is settled (two resyncs with no write at all) and resolves its writes then. */
  const settled = (op: OperatorProcess): Promise<Record<string, number>> =>
    waitFor('a resync without writes', async () => {
      const before = await op.series(WRITES);
      const r = await reconciles(op);
      await waitFor('two reconciles', async () => (await reconciles(op)) >= r + 2, { timeoutMs: 30_000 });
      return JSON.stringify(await op.series(WRITES)) === JSON.stringify(before) ? before : false;
    }, { timeoutMs: 60_000, intervalMs: 0 });
  /** Every write in writes except status patches. */
  const withoutStatus = (writes: Record<string, number>): Record<string, number> => Object.fromEntries(Object.entries(writes).filter(([l]) => !l.includes('verb="patch-status"')));

  /** Whether op, once a second past its renew deadline (by then its elector has decided), still runs and has not logged that it lost the lease. */
  const stillLeading = async (op: OperatorProcess, deadlineAt: number): Promise<boolean> => {
    await new Promise((r) => setTimeout(r, Math.max(0, deadlineAt + 1000 - Date.now())));
    return op.alive && (await logLines(op, 'Lost the leader lease')) === 0;
  };

  it('keeps one leader through a 5 s API server freeze (SIGSTOP: no answers, no start-up time), without a restart or a repeated step', async () => {
    // The restart case below cannot choose its outage (the API server's start-up took 7-14 s on a
    // loaded machine, past the renew deadline); a freeze is exactly 5 s, as seen by the operator.
    const settledWrites = await settled(a);
    const held = await lease();
    const acquired = await logLines(a, 'Acquired the leader lease');
    const frozenAt = Date.now();
    await cluster.controlPlane.freezeApiserver(5_000);
    const after = await waitFor('a renewal after the freeze', async () => {
      const l = await lease();
      return Date.parse(l.spec.renewTime!) > frozenAt + 5_000 ? l : false;
    }, { timeoutMs: RENEW_DEADLINE_MS, intervalMs: 250 });
    console.error(`API server frozen 5000 ms; first renewal after it ${Date.parse(after.spec.renewTime!) - frozenAt - 5_000} ms after SIGCONT; renewals that failed: ${(await logEntries(a, 'Failed to renew the leader lease')).filter((e) => Number(e['time']) >= frozenAt).length}`);
    const r = await reconciles(a);
    await waitFor('two reconciles after the freeze', async () => (await reconciles(a)) >= r + 2, { timeoutMs: 60_000 });
    expect(a.alive, `the operator exited (${String(a.exit)}); see ${a.logFile}`).toBe(true);
    expect(after.spec.holderIdentity).toBe(held.spec.holderIdentity);
    expect(after.spec.acquireTime).toBe(held.spec.acquireTime);
    expect(after.spec.leaseTransitions).toBe(held.spec.leaseTransitions);
    expect(await logLines(a, 'Lost the leader lease')).toBe(0);
    expect(await logLines(a, 'Acquired the leader lease')).toBe(acquired);
    expect(await nonStatusWrites(a)).toEqual(withoutStatus(settledWrites));
  });

  it('keeps one leader through a 5 s API server outage, without a restart or a repeated step (or, when the outage outlasted the renew deadline, exits as designed)', async () => {
    const settledWrites = await settled(a);
    const held = await lease();
    expect(held.spec.holderIdentity).toBeTruthy();
    const acquired = await logLines(a, 'Acquired the leader lease');
    expect(acquired).toBe(1);
    const statusWritesBefore = await a.counter(WRITES, (l) => l.includes('verb="patch-status"'));

    const killedAt = Date.now();
    const phases = await cluster.controlPlane.restartApiserver(5_000);
    const answeringAt = Date.now(); // /readyz answered 200 again
    const outageMs = answeringAt - killedAt;

    // The elector's renew deadline, as it computed it at its first failed renewal: its last
    // successful renewal plus the renew deadline. That renewal was the last before the kill, at or
    // after the renewTime read before it (the lease's times are the operator's wall clock, this
    // machine's): the deadline must lie between those two points plus 10 s.
    const failures = async () => (await logEntries(a, 'Failed to renew the leader lease')).filter((e) => Number(e['time']) >= killedAt);
    await waitFor('a failed renewal logged', async () => (await failures()).length > 0, { timeoutMs: 10_000 });
    const firstFailure = (await failures())[0]!;
    const deadlineAt = Number(firstFailure['time']) + Number(firstFailure['deadlineInMs']);
    expect(deadlineAt).toBeGreaterThanOrEqual(Date.parse(held.spec.renewTime!) + RENEW_DEADLINE_MS - 100);
    expect(deadlineAt).toBeLessThanOrEqual(killedAt + RENEW_DEADLINE_MS + 100);
    const regime = answeringAt + RENEWAL_AFTER_OUTAGE_MS <= deadlineAt ? 'keeps' : answeringAt >= deadlineAt ? 'exits' : 'either';
    console.error(
      `API server outage as seen by the test: ${outageMs} ms (${JSON.stringify(phases)}); the leader's renew deadline ${deadlineAt - killedAt} ms after the kill; the API answered ${deadlineAt - answeringAt} ms before it: the leader ${regime === 'either' ? 'may keep leading or exit' : regime}`,
    );

    if (regime === 'exits' || (regime === 'either' && !(await stillLeading(a, deadlineAt)))) {
      // No renewal could succeed before the deadline: the leader stops acting and exits so that its
      // pod restarts, and it renewed nothing after its deadline.
      await waitFor('the leader to exit', () => !a.alive, { timeoutMs: RENEW_DEADLINE_MS + 10_000 });
      const exited = a;
      const last = await lease();
      // As its pod would be, it is started again (before the checks: the next case needs a leader).
      a = await OperatorProcess.start(cluster.kubeconfig, path.join(cluster.dir, 'operator-restarted.log'), ['--resync-period=3s']);
      expect(exited.exit).toBe(1);
      expect(await logLines(exited, 'Lost the leader lease: no renewal succeeded within the renew deadline')).toBe(1);
      // The lease shows its last successful renewal (its deadline minus the renew deadline): no renewal
      // it had given up on landed once the API was back.
      expect(last.spec.holderIdentity).toBe(held.spec.holderIdentity);
      expect(Date.parse(last.spec.renewTime!)).toBeLessThanOrEqual(deadlineAt - RENEW_DEADLINE_MS + 50);
      await waitFor('the restarted operator leads', async () => (await logLines(a, 'Acquired the leader lease')) === 1, { timeoutMs: LEASE_MS + 4 * RETRY_MS });
      return;
    }

    // The informers reconnect and the resyncs go on: wait for two reconciles after the outage.
    const r = await reconciles(a);
    await waitFor('two reconciles after the outage', async () => (await reconciles(a)) >= r + 2, { timeoutMs: 60_000 });
    const after = await lease();
    const statusWrites = (await a.counter(WRITES, (l) => l.includes('verb="patch-status"'))) - statusWritesBefore;
    console.error(`status writes during and after the outage: ${statusWrites}`);

    expect(a.alive, `the operator exited (${String(a.exit)}); see ${a.logFile}`).toBe(true);
    // The same holder, never handed over and taken back: the acquire time and transitions are unchanged.
    expect(after.spec.holderIdentity).toBe(held.spec.holderIdentity);
    expect(after.spec.acquireTime).toBe(held.spec.acquireTime);
    expect(after.spec.leaseTransitions).toBe(held.spec.leaseTransitions);
    expect(after.spec.renewTime).not.toBe(held.spec.renewTime);
    // The outage reached the elector (renewals failed) and it retried instead of giving up.
    expect(await logLines(a, 'Failed to renew the leader lease')).toBeGreaterThan(0);
    expect(await logLines(a, 'Renewed the leader lease again')).toBeGreaterThan(0);
    expect(await logLines(a, 'Lost the leader lease')).toBe(0);
    expect(await logLines(a, 'Acquired the leader lease')).toBe(acquired);
    // No step repeated: nothing applied, deleted or created again; status only if it changed.
    expect(await nonStatusWrites(a)).toEqual(withoutStatus(settledWrites));
  });

  it('hands over to a standby within the lease duration after SIGKILL of the leader, and the standby acts only then', async () => {
    const leader = (await lease()).spec.holderIdentity!;
    b = await OperatorProcess.start(cluster.kubeconfig, path.join(cluster.dir, 'operator-b.log'), ['--resync-period=3s'], 'standby-b');
    // The standby sees the lease held and waits: two of its acquire attempts, no write, no reconcile.
    await new Promise((r) => setTimeout(r, 3 * RETRY_MS));
    expect((await lease()).spec.holderIdentity).toBe(leader);
    expect(await logLines(b, 'Acquired the leader lease')).toBe(0);
    expect(await b.counter(WRITES)).toBe(0);
    expect(await reconciles(b)).toBe(0);
    const lastRenewal = (await lease()).spec.renewTime;

    const killed = Date.now();
    await a.kill();
    const holders = new Set<string>();
    const taken = await waitFor('the standby holds the lease', async () => {
      const l = await lease();
      holders.add(l.spec.holderIdentity ?? '');
      if (l.spec.holderIdentity !== 'standby-b') {
        // Until it takes over, the standby did nothing.
        expect(await b!.counter(WRITES)).toBe(0);
        return false;
      }
      return Date.now() - killed;
    }, { timeoutMs: 60_000, intervalMs: 250 });
    console.error(`handover ${taken} ms after SIGKILL (lease ${LEASE_MS} ms, retry ${RETRY_MS} ms); last renewal by the old leader at ${lastRenewal}`);

    expect([...holders]).toEqual([leader, 'standby-b']);
    // Not before the lease expired as the standby observed it (the old leader's last renewal was at
    // most one jittered retry period before the kill) and not much after: one lease duration plus two
    // jittered retry periods (seeing the last renewal, then the attempt after expiry), plus polling.
    expect(taken).toBeGreaterThanOrEqual(LEASE_MS - 1.2 * RETRY_MS);
    expect(taken).toBeLessThanOrEqual(LEASE_MS + 2 * 1.2 * RETRY_MS + 1000);
    expect(await logLines(b, 'Acquired the leader lease')).toBe(1);
    expect(b.alive).toBe(true);
  });

  // A replica whose caches were filled by a list (every standby: it lists while another leads and
  // sees no change since) once re-applied every owned object on every resync: client-node's typed
  // list drops kind and apiVersion from its items, so no cached object ever contained the desired one,
  // and the apply changed nothing that a watch event would have brought back. Informers now list the
  // API's JSON, as the watch delivers it (listObjects in src/operator/kube.ts).
  it('the new leader settles after the handover: two resyncs in a row without a write', async () => {
    await waitFor('the new leader settles', async () => {
      const before = await b!.series(WRITES);
      const r = await reconciles(b!);
      await waitFor('two reconciles', async () => (await reconciles(b!)) >= r + 2, { timeoutMs: 30_000 });
      return JSON.stringify(await b!.series(WRITES)) === JSON.stringify(before);
    }, { timeoutMs: 90_000, intervalMs: 0 });
    expect(b!.alive).toBe(true);
  });
});
