import { execFile } from 'node:child_process';
import { open, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONFIG_HASH_ANNOTATION, MEMBER_HEALTHY_GATE } from '../../src/operator/components/member-statefulset/member-statefulset.ts';
import { DEFAULT_ETCD_VERSION } from '../../src/api/etcd-topology.ts';
import { PREVIOUS_ETCD_VERSION } from '../harness/cluster/images.ts';
import { KubeError } from '../harness/cluster/kube-rest.ts';
import { CENTRAL_LABEL, CENTRAL_TAINT, defaultNodes, type LocalCluster } from '../harness/cluster/local-cluster.ts';
import type { Pod } from '../harness/cluster/types.ts';
import { waitFor } from '../harness/ports.ts';
import { MemberTls } from '../tls/tls-client.ts';
import { request } from 'undici';
import { startOperatorCluster, topologyManifest, type OperatorCluster, type TopologyStatus } from '../operator/setup.ts';

// Quorum safety on the local cluster: a real API server, controller manager (disruption controller,
// pod GC, StatefulSet controller) and scheduler, the operator from dist/, and real etcd members running
// as processes in pods. One cluster with seven central nodes serves every case, in order; each case
// starts by waiting until the topology is settled, so a case never inherits another's disruption.

const repo = path.resolve(import.meta.dirname, '..', '..');
const NS = 'default';
const NAME = 'qs';
const MEMBER_SELECTOR = `app.kubernetes.io/instance=${NAME},app.kubernetes.io/component=member`;
const member = (i: number): string => `${NAME}-member-${i}`;

interface EtcdMember {
  ID: string;
  name?: string;
  peerURLs?: string[];
  isLearner?: boolean;
}
interface EtcdStatus {
  header: { member_id: string };
  leader: string;
  version: string;
}
interface Pdb {
  spec: { minAvailable: number };
  status?: { currentHealthy?: number; desiredHealthy?: number; disruptionsAllowed?: number; observedGeneration?: number };
  metadata: { generation?: number };
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const unb64 = (s: string): string => Buffer.from(s, 'base64').toString();
const urlOf = (p: Pod): string => `https://${p.status!.podIP}:2379`;
/** Mutual TLS to the members (TLS is on by default), set once the cluster runs. */
let memberTls: MemberTls | undefined;
const conditionOf = (p: Pod | undefined, type: string): string | undefined => p?.status?.conditions?.find((c) => c.type === type)?.status;
const podReady = (p: Pod | undefined): boolean => conditionOf(p, 'Ready') === 'True';
const live = (p: Pod): boolean => !p.metadata.deletionTimestamp && p.status?.podIP !== undefined;

/** A member's name as etcd lists it: its own once started, else the pod name in its peer URL. */
function etcdName(m: EtcdMember): string {
  if (m.name) return m.name;
  const host = m.peerURLs?.[0] ? new URL(m.peerURLs[0]).hostname : '';
  return host.split('.')[0] ?? m.ID;
}

/** One call to a member's JSON gateway. */
async function gateway<T>(url: string, route: string, body: unknown, timeoutMs = 3000): Promise<T> {
  const res = await request(`${url}${route}`, {
    method: 'POST',
    dispatcher: await memberTls!.dispatcher(),
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.body.text();
  if (res.statusCode < 200 || res.statusCode > 299) throw new Error(`${url}${route}: ${res.statusCode} ${text}`);
  return JSON.parse(text) as T;
}

const memberList = async (url: string): Promise<EtcdMember[]> => (await gateway<{ members?: EtcdMember[] }>(url, '/v3/cluster/member/list', { linearizable: true })).members ?? [];

/** The member list from the first member pod that answers. */
async function memberListFromAny(pods: readonly Pod[]): Promise<EtcdMember[]> {
  let last: unknown = new Error('no member pod has an address');
  for (const p of pods.filter(live)) {
    try {
      return await memberList(urlOf(p));
    } catch (err) {
      last = err;
    }
  }
  throw last;
}

/** Writes n keys under prefix through one member, a few at a time. */
async function putKeys(url: string, prefix: string, n: number): Promise<void> {
  for (let i = 0; i < n; i += 20) {
    await Promise.all(
      Array.from({ length: Math.min(20, n - i) }, (_, j) => i + j).map((k) => gateway(url, '/v3/kv/put', { key: b64(`${prefix}${String(k).padStart(4, '0')}`), value: b64(`value-${k}`) })),
    );
  }
}

/** Every key under prefix as one member serves it (a linearizable read: it has caught up, then reads its own store). */
async function readKeys(url: string, prefix: string): Promise<Map<string, string>> {
  const end = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
  const res = await gateway<{ kvs?: { key: string; value: string }[] }>(url, '/v3/kv/range', { key: b64(prefix), range_end: b64(end) }, 10_000);
  return new Map((res.kvs ?? []).map((kv) => [unb64(kv.key), unb64(kv.value)]));
}

function expectedKeys(prefix: string, n: number): Map<string, string> {
  return new Map(Array.from({ length: n }, (_, k) => [`${prefix}${String(k).padStart(4, '0')}`, `value-${k}`]));
}

/**
 * The leader as etcd itself reports it now, and how many members answer status with a leader, asking
 * every live member pod. ids accumulates member ID → name across calls, so a leader whose own pod is
 * going away is still named.
 */
async function etcdView(pods: readonly Pod[], ids: Map<string, string>): Promise<{ leader: string | undefined; withLeader: number }> {
  const answers = await Promise.all(
    pods.filter(live).map(async (p) => {
      const s = await gateway<EtcdStatus>(urlOf(p), '/v3/maintenance/status', {}, 2000).catch(() => undefined);
      if (s) ids.set(s.header.member_id, p.metadata.name);
      return s;
    }),
  );
  const withLeader = answers.filter((s) => s !== undefined && s.leader !== '0');
  const leaderId = withLeader[0]?.leader;
  return { leader: leaderId === undefined ? undefined : ids.get(leaderId), withLeader: withLeader.length };
}

describe('quorum safety on the local cluster', () => {
  let env: OperatorCluster;
  let cluster: LocalCluster;

  const memberPods = async (): Promise<Pod[]> =>
    (await cluster.api.call<{ items: Pod[] }>('GET', `/api/v1/namespaces/${NS}/pods?labelSelector=${encodeURIComponent(MEMBER_SELECTOR)}`)).items.sort((a, b) =>
      a.metadata.name.localeCompare(b.metadata.name),
    );
  const getPod = async (name: string): Promise<Pod | undefined> =>
    cluster.api.call<Pod>('GET', `/api/v1/namespaces/${NS}/pods/${name}`).catch((err: unknown) => {
      if (err instanceof KubeError && err.status === 404) return undefined;
      throw err;
    });
  const topology = (): Promise<TopologyStatus> => cluster.api.call<TopologyStatus>('GET', `/apis/etcdtopology.io/v1alpha1/namespaces/${NS}/etcdtopologies/${NAME}`);
  const patchSpec = (spec: Record<string, unknown>): Promise<string> => cluster.kubectl(['patch', 'etop', NAME, '-n', NS, '--type=merge', '-p', JSON.stringify({ spec })]);
  const pdb = (): Promise<Pdb> => cluster.api.call<Pdb>('GET', `/apis/policy/v1/namespaces/${NS}/poddisruptionbudgets/${NAME}-member`);
  const evict = (pod: string): Promise<unknown> =>
    cluster.api.call('POST', `/api/v1/namespaces/${NS}/pods/${pod}/eviction`, { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: pod, namespace: NS } });
  const claims = async (): Promise<string[]> =>
    (await cluster.api.call<{ items: Pod[] }>('GET', `/api/v1/namespaces/${NS}/persistentvolumeclaims?labelSelector=${encodeURIComponent(MEMBER_SELECTOR)}`)).items
      .map((c) => c.metadata.name)
      .sort();

  /**
   * Follows the member pods through a watch, so that every state the API server held counts, not only
   * the sampled ones: after each change, the desired members whose pod is missing, terminating or not
   * Ready. Counting starts once the watch has listed every desired pod.
   */
  function watchUnavailable(names: readonly string[]): { synced(): boolean; worst(): number; moments: string[]; stop(): void } {
    const pods = new Map<string, Pod>();
    const moments: string[] = [];
    let worst = 0;
    let synced = false;
    let active = true;
    cluster.api.watch<Pod>(
      `/api/v1/namespaces/${NS}/pods`,
      (e) => {
        if (!active) return;
        const name = e.object.metadata.name;
        if (e.type === 'DELETED') {
          if (pods.get(name)?.metadata.uid === e.object.metadata.uid) pods.delete(name);
        } else pods.set(name, e.object);
        synced ||= names.every((n) => pods.has(n));
        if (!synced) return;
        const down = names.filter((n) => {
          const p = pods.get(n);
          return p === undefined || p.metadata.deletionTimestamp !== undefined || !podReady(p);
        });
        worst = Math.max(worst, down.length);
        if (down.length > 1) {
          const state = down.map((n) => `${n} ${pods.get(n) ? (pods.get(n)!.metadata.deletionTimestamp ? 'terminating' : `Ready=${conditionOf(pods.get(n), 'Ready')} gate=${conditionOf(pods.get(n), MEMBER_HEALTHY_GATE)}`) : 'missing'}`);
          moments.push(`${new Date().toISOString()} ${e.type} ${name}: ${state.join('; ')}`);
        }
      },
      `labelSelector=${encodeURIComponent(MEMBER_SELECTOR)}`,
    );
    return {
      synced: () => synced,
      worst: () => worst,
      moments,
      stop: () => {
        active = false;
      },
    };
  }

  /** `etcd-topology check drain NODE`: its exit code and output. */
  const checkDrain = (node: string): Promise<{ code: number; out: string }> =>
    new Promise((resolve, reject) => {
      execFile(process.execPath, [path.join(repo, 'dist', 'cli.js'), 'check', 'drain', node, '--kubeconfig', cluster.kubeconfig], (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') reject(new Error(`check drain ${node}: ${err.message}`));
        else resolve({ code: err ? Number(err.code) : 0, out: `${stdout}${stderr}` });
      });
    });

  /** The PID of a member pod's etcd: the node agent execs etcd in place of its container process. */
  async function etcdPid(p: Pod): Promise<number> {
    const pid = Number(/^local:\/\/(\d+)$/.exec(p.status?.containerStatuses?.[0]?.containerID ?? '')?.[1]);
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    expect(cmdline).toContain(`--name=${p.metadata.name}`);
    expect(cmdline).toContain(`--listen-client-urls=${urlOf(p)}`);
    return pid;
  }

  /**
   * The topology settled at count members: every voter healthy in status and in etcd, every pod Ready,
   * nothing in progress. Throws what is still missing otherwise, which waitFor keeps as its reason.
   */
  async function settledNow(count: number): Promise<{ t: TopologyStatus; pods: Pod[]; members: EtcdMember[] }> {
    const [t, pods] = await Promise.all([topology(), memberPods()]);
    const s = t.status;
    const cond = (type: string): string => {
      const c = s?.conditions?.find((x) => x.type === type);
      return `${c?.status}/${c?.reason}`;
    };
    const want = Array.from({ length: count }, (_, i) => member(i));
    const why = (what: string): Error =>
      new Error(
        `${what}; generation ${t.metadata.generation} observed ${s?.observedGeneration}, Available=${cond('Available')} Progressing=${cond('Progressing')} Degraded=${cond('Degraded')} ` +
          `(${s?.conditions?.find((c) => c.type === 'Progressing')?.message}), members ${JSON.stringify(s?.members?.map((m) => [m.name, m.role, m.healthy]))}, ` +
          `pods ${pods.map((p) => `${p.metadata.name}${p.metadata.deletionTimestamp ? '(terminating)' : ''} Ready=${conditionOf(p, 'Ready')} on ${p.spec?.nodeName}`).join(', ')}`,
      );
    if (s?.observedGeneration !== t.metadata.generation || !cond('Available').startsWith('True') || !cond('Progressing').startsWith('False')) throw why('not settled');
    if (s.quorum?.healthy !== count || s.members?.length !== count || !s.members.every((m) => m.healthy && m.role !== 'learner')) throw why(`not ${count} healthy voters`);
    if (pods.map((p) => p.metadata.name).join() !== want.join() || !pods.every((p) => podReady(p) && !p.metadata.deletionTimestamp)) throw why('member pods not as wanted');
    const members = await memberListFromAny(pods);
    if (members.map(etcdName).sort().join() !== want.join() || members.some((m) => m.isLearner)) throw why(`etcd lists ${JSON.stringify(members.map((m) => [etcdName(m), m.isLearner === true]))}`);
    return { t, pods, members };
  }
  const waitSettled = (count: number, timeoutMs = 180_000): Promise<{ t: TopologyStatus; pods: Pod[]; members: EtcdMember[] }> =>
    waitFor(`${NAME} settled at ${count} healthy voters`, () => settledNow(count), { timeoutMs, intervalMs: 500 }).catch(async (err: unknown) => {
      const log = await readFile(path.join(cluster.dir, 'operator.log'), 'utf8').catch(() => '');
      throw new Error(`${(err as Error).message}\noperator log (last lines):\n${log.split('\n').slice(-25).join('\n')}`);
    });

  beforeAll(async () => {
    // Seven central nodes so that the scale-out to 7 has somewhere to go; two workers as in a real pool.
    // Proxies are off: these cases are about members, and the machine has two cores.
    env = await startOperatorCluster({ nodes: defaultNodes(7, 2) });
    cluster = env.cluster;
    memberTls = new MemberTls(cluster, NS, NAME);
    // The members start one etcd release behind, for the version rolling update to have somewhere to go.
    await cluster.kubectl(['apply', '-f', '-'], topologyManifest(NAME, NS, { version: PREVIOUS_ETCD_VERSION, members: { count: 3 }, proxy: { enabled: false } }));
    await waitSettled(3, 240_000);
  });
  afterAll(async () => {
    await memberTls?.close();
    await env?.stop();
  });

  it('a member etcd holds unhealthy while its container still passes its probes blocks the eviction of another member', async () => {
    // What this shows. SIGSTOP freezes the member's etcd: its sockets stay open but nothing answers.
    // The kubelet's view lags: the readiness probe (etcd's /readyz, every 10 s, 5 s timeout, 3
    // failures) keeps the container ready for about half a minute, so ContainersReady stays True.
    // The operator asks etcd instead, finds the member silent and sets the readiness gate
    // etcdtopology.io/member-healthy to False; the pod's Ready condition is ContainersReady AND every
    // readiness gate, so Ready turns False while ContainersReady is still True. The test asserts exactly
    // that moment, then that the disruption controller counts 2 healthy pods against minAvailable 2,
    // that the eviction API refuses to evict a healthy member with 429, and that check drain answers
    // UNSAFE naming the frozen member. Without the gate the PDB would have counted 3 ready pods and let
    // the eviction through, leaving one healthy voter of three.
    const { t, pods } = await waitSettled(3);
    const leader = t.status!.leader!;
    const [frozen, target] = pods.filter((p) => p.metadata.name !== leader);
    const frozenName = frozen!.metadata.name;
    const targetName = target!.metadata.name;
    const pid = await etcdPid(frozen!);

    process.kill(pid, 'SIGSTOP');
    let continued = false;
    try {
      const flipped = await waitFor(
        `the operator to mark ${frozenName} unhealthy`,
        async () => {
          const [pod, t] = await Promise.all([getPod(frozenName), topology()]);
          const m = t.status?.members?.find((x) => x.name === frozenName);
          return conditionOf(pod, MEMBER_HEALTHY_GATE) === 'False' && m?.healthy === false && conditionOf(pod, 'Ready') === 'False' ? { pod: pod!, t } : false;
        },
        { timeoutMs: 30_000, intervalMs: 250 },
      );
      // The kubelet still holds the container ready: only etcd's own view made the pod not Ready.
      expect(conditionOf(flipped.pod, 'ContainersReady')).toBe('True');
      expect(flipped.pod.status?.containerStatuses?.[0]?.ready).toBe(true);
      expect(flipped.t.status?.quorum).toMatchObject({ healthy: 2, disruptionsAllowed: 0 });

      const budget = await waitFor(
        'the disruption controller to count only etcd-healthy pods',
        async () => {
          const b = await pdb();
          return b.status?.observedGeneration === b.metadata.generation && b.status?.currentHealthy === 2 && b.status.disruptionsAllowed === 0 ? b : false;
        },
        { timeoutMs: 20_000, intervalMs: 250 },
      );
      expect(budget.spec.minAvailable).toBe(2);

      const refused = await evict(targetName).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(refused).toBeInstanceOf(KubeError);
      expect((refused as KubeError).status).toBe(429);
      const still = await getPod(targetName);
      expect(still?.metadata.uid).toBe(target!.metadata.uid);
      expect(still?.metadata.deletionTimestamp).toBeUndefined();

      const drain = await checkDrain(target!.spec!.nodeName!);
      expect(drain.code, drain.out).toBe(1);
      expect(drain.out).toMatch(new RegExp(`^UNSAFE ${NS}/${NAME} ${targetName}: OtherMembersUnhealthy: .*\\b${frozenName} is not healthy`, 'm'));
      // The frozen member's own node may be drained: evicting it costs no healthy vote.
      const drainFrozen = await checkDrain(frozen!.spec!.nodeName!);
      expect(drainFrozen.code, drainFrozen.out).toBe(0);
      expect(drainFrozen.out).toMatch(new RegExp(`^SAFE +${NS}/${NAME} ${frozenName}: NotHealthy:`, 'm'));

      // The frozen member was never restarted behind the test's back (the liveness probe needs a minute and a half).
      const pod = await getPod(frozenName);
      expect(pod?.metadata.uid).toBe(frozen!.metadata.uid);
      expect(pod?.status?.containerStatuses?.[0]?.restartCount).toBe(frozen!.status?.containerStatuses?.[0]?.restartCount);
      process.kill(pid, 'SIGCONT');
      continued = true;
    } finally {
      if (!continued) process.kill(pid, 'SIGCONT');
    }

    await waitFor(
      `${frozenName} healthy again and the budget open`,
      async () => {
        const [pod, b] = await Promise.all([getPod(frozenName), pdb()]);
        return conditionOf(pod, MEMBER_HEALTHY_GATE) === 'True' && podReady(pod) && b.status?.currentHealthy === 3 && b.status.disruptionsAllowed === 1;
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    const drain = await checkDrain(target!.spec!.nodeName!);
    expect(drain.code, drain.out).toBe(0);
    // A real eviction now goes through: the pod is deleted and the StatefulSet brings the member back on its volume.
    await evict(targetName);
    await waitFor(`${targetName} evicted`, async () => {
      const p = await getPod(targetName);
      return p === undefined || p.metadata.uid !== target!.metadata.uid || p.metadata.deletionTimestamp !== undefined;
    });
    const after = await waitSettled(3);
    expect(after.pods.find((p) => p.metadata.name === targetName)?.metadata.uid).not.toBe(target!.metadata.uid);
  }, 240_000);

  it('rolls a version upgrade one member at a time, the leader last, with quorum at every sample', async () => {
    const { pods } = await waitSettled(3);
    // Every member runs the previous release, as etcd itself reports.
    for (const p of pods) expect((await gateway<EtcdStatus>(urlOf(p), '/v3/maintenance/status', {})).version, p.metadata.name).toBe(PREVIOUS_ETCD_VERSION);
    const names = pods.map((p) => p.metadata.name);
    const uidBefore = new Map(pods.map((p) => [p.metadata.name, p.metadata.uid]));
    const hashBefore = pods[0]!.metadata.annotations?.[CONFIG_HASH_ANNOTATION];
    expect(hashBefore).toBeTruthy();
    const ids = new Map<string, string>();
    const start = await etcdView(pods, ids);
    expect(start.leader).toBeDefined();

    const watched = watchUnavailable(names);
    await waitFor('the pod watch to list every member', () => watched.synced(), { timeoutMs: 10_000 });
    // A new etcd release and a flag change in one spec change: both are in the member configuration hash.
    await patchSpec({ version: DEFAULT_ETCD_VERSION, members: { autoCompaction: { mode: 'periodic', retention: '2h' } } });

    const order: string[] = [];
    let worstUnavailable = 0;
    let worstStatusHealthy = Infinity;
    let worstEtcdHealthy = Infinity;
    const trouble: string[] = [];
    const samples = { n: 0 };
    const final = await waitFor(
      'every member replaced with the new configuration',
      async () => {
        const [now, t] = await Promise.all([memberPods(), topology()]);
        const view = await etcdView(now, ids);
        samples.n++;
        for (const name of names) {
          const p = now.find((x) => x.metadata.name === name);
          const replaced = p === undefined || p.metadata.deletionTimestamp !== undefined || p.metadata.uid !== uidBefore.get(name);
          if (replaced && !order.includes(name)) order.push(name);
        }
        const unavailable = names.filter((name) => {
          const p = now.find((x) => x.metadata.name === name);
          return p === undefined || p.metadata.deletionTimestamp !== undefined || !podReady(p);
        });
        worstUnavailable = Math.max(worstUnavailable, unavailable.length);
        if (unavailable.length > 1) trouble.push(`${new Date().toISOString()} unavailable at once: ${unavailable.join(', ')}`);
        const statusHealthy = t.status?.quorum?.healthy ?? 0;
        worstStatusHealthy = Math.min(worstStatusHealthy, statusHealthy);
        worstEtcdHealthy = Math.min(worstEtcdHealthy, view.withLeader);
        if (statusHealthy < 2 || view.withLeader < 2) trouble.push(`${new Date().toISOString()} status.quorum.healthy ${statusHealthy}, members answering with a leader ${view.withLeader}`);
        if (order.length < names.length) return false;
        return settledNow(3);
      },
      { timeoutMs: 300_000, intervalMs: 250 },
    );

    watched.stop();
    expect(watched.moments).toEqual([]);
    expect(watched.worst()).toBeLessThanOrEqual(1);
    expect(trouble).toEqual([]);
    expect(worstUnavailable).toBeLessThanOrEqual(1);
    expect(worstStatusHealthy).toBeGreaterThanOrEqual(2);
    expect(worstEtcdHealthy).toBeGreaterThanOrEqual(2);
    expect(samples.n).toBeGreaterThan(10);
    // Followers first; the member that led at the start goes last, and no member is taken down while it leads.
    expect(order).toHaveLength(3);
    expect(order[2]).toBe(start.leader);
    // etcd's own word at the moment each old member stopped: on SIGTERM a leader hands leadership over
    // and logs that it does; a follower logs that it skips the transfer. No member may stop as the leader.
    for (const old of pods) {
      // The log spans the pod's container restarts: its last shutdown is the one that counts.
      const last = await waitFor(`${old.metadata.name}'s shutdown in its log`, async () => {
        const log = await cluster.containerLog(old, 'etcd');
        return log.split('\n').findLast((line) => /leadership transfer (starting|for single)|skipped leadership transfer; local server is not leader/.test(line)) ?? false;
      });
      expect(last, `${old.metadata.name} when it was replaced`).toContain('skipped leadership transfer; local server is not leader');
    }

    const hashes = final.pods.map((p) => p.metadata.annotations?.[CONFIG_HASH_ANNOTATION]);
    expect(new Set(hashes).size).toBe(1);
    expect(hashes[0]).not.toBe(hashBefore);
    const sts = await cluster.api.call<{ spec: { template: { metadata: { annotations: Record<string, string> } } } }>('GET', `/apis/apps/v1/namespaces/${NS}/statefulsets/${NAME}-member`);
    expect(hashes[0]).toBe(sts.spec.template.metadata.annotations[CONFIG_HASH_ANNOTATION]);
    for (const p of final.pods) {
      expect(p.metadata.uid).not.toBe(uidBefore.get(p.metadata.name));
      expect(p.spec?.containers[0]?.image).toBe(`gcr.io/etcd-development/etcd:v${DEFAULT_ETCD_VERSION}`);
      expect((await gateway<EtcdStatus>(urlOf(p), '/v3/maintenance/status', {})).version, p.metadata.name).toBe(DEFAULT_ETCD_VERSION);
      expect(p.spec?.containers[0]?.args).toContain('--auto-compaction-retention=2h');
    }
  }, 330_000);

  it('scales 3 → 5 → 7 → 3: new members join as learners and are promoted, removed members leave etcd and keep their volumes, every key survives', async () => {
    const { pods } = await waitSettled(3);
    const keys = expectedKeys('scale/', 200);
    await putKeys(urlOf(pods[0]!), 'scale/', 200);

    const learners = new Set<string>();
    let worstHealthy = Infinity;
    /** Scales out and waits until settled, noting every learner seen and the fewest healthy voters in status. */
    const scaleOutTo = async (count: number): Promise<Awaited<ReturnType<typeof settledNow>>> => {
      await patchSpec({ members: { count } });
      return waitFor(
        `${count} healthy voters`,
        async () => {
          const [now, t] = await Promise.all([memberPods(), topology()]);
          for (const m of t.status?.members ?? []) if (m.role === 'learner') learners.add(m.name);
          const list = await memberListFromAny(now).catch(() => []);
          for (const m of list) if (m.isLearner) learners.add(etcdName(m));
          if (t.status?.quorum) worstHealthy = Math.min(worstHealthy, t.status.quorum.healthy);
          return settledNow(count);
        },
        { timeoutMs: 300_000, intervalMs: 250 },
      );
    };
    const up = await scaleOutTo(5);
    expect([...learners].sort()).toEqual([member(3), member(4)]);
    expect(worstHealthy).toBeGreaterThanOrEqual(2);
    expect(up.members).toHaveLength(5);
    expect(up.t.status?.quorum).toEqual({ size: 3, healthy: 5, faultTolerance: 2, disruptionsAllowed: 1 });
    expect(new Set(up.pods.map((p) => p.spec?.nodeName)).size).toBe(5);
    for (const p of up.pods) expect(await readKeys(urlOf(p), 'scale/'), `keys on ${p.metadata.name}`).toEqual(keys);

    const top = await scaleOutTo(7);
    expect([...learners].sort()).toEqual([3, 4, 5, 6].map(member));
    expect(worstHealthy).toBeGreaterThanOrEqual(3);
    expect(top.t.status?.quorum).toEqual({ size: 4, healthy: 7, faultTolerance: 3, disruptionsAllowed: 1 });
    expect(new Set(top.pods.map((p) => p.spec?.nodeName)).size).toBe(7);
    for (const p of top.pods) expect(await readKeys(urlOf(p), 'scale/'), `keys on ${p.metadata.name}`).toEqual(keys);
    const ids = new Map(top.members.map((m) => [etcdName(m), m.ID]));

    await patchSpec({ members: { count: 3 } });
    const down = await waitFor(
      '3 healthy voters and the removed pods gone',
      async () => {
        const t = await topology();
        if (t.status?.quorum) worstHealthy = Math.min(worstHealthy, t.status.quorum.healthy);
        return settledNow(3);
      },
      { timeoutMs: 240_000, intervalMs: 250 },
    );
    expect(worstHealthy).toBeGreaterThanOrEqual(3);
    // The members that stay are the same etcd members; the removed ones are gone from etcd.
    expect(new Map(down.members.map((m) => [etcdName(m), m.ID]))).toEqual(new Map([0, 1, 2].map((i) => [member(i), ids.get(member(i))])));
    expect(down.pods.map((p) => p.metadata.name)).toEqual([member(0), member(1), member(2)]);
    for (const i of [3, 4, 5, 6]) expect(await getPod(member(i))).toBeUndefined();
    expect(await claims()).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => `data-${member(i)}`));
    expect(down.t.status?.quorum).toEqual({ size: 2, healthy: 3, faultTolerance: 1, disruptionsAllowed: 1 });
    for (const p of down.pods) expect(await readKeys(urlOf(p), 'scale/'), `keys on ${p.metadata.name}`).toEqual(keys);
  }, 570_000);

  it('replaces a member whose node was deleted with a fresh learner on a new central node', async () => {
    const { pods, members } = await waitSettled(3);
    // The pool shrinks back to exactly three central nodes, so the replacement has to wait for a new one.
    const used = new Set(pods.map((p) => p.spec!.nodeName!));
    const central = [...cluster.agent.nodes.values()].filter((n) => n.spec.labels?.['etcdtopology.io/role'] === 'central').map((n) => n.spec.name);
    for (const spare of central.filter((n) => !used.has(n))) await cluster.agent.deleteNode(spare);
    const keys = expectedKeys('replace/', 100);
    await putKeys(urlOf(pods[0]!), 'replace/', 100);

    const lost = member(2);
    const lostNode = pods.find((p) => p.metadata.name === lost)!.spec!.nodeName!;
    const lostId = members.find((m) => etcdName(m) === lost)!.ID;
    const survivors = pods.filter((p) => p.metadata.name !== lost);
    await cluster.agent.deleteNode(lostNode);

    // With no central node to go to, the operator still removes the lost member from etcd at once:
    // two healthy voters of two keep quorum, where two of three would have tolerated no further failure.
    await waitFor(
      `${lost} removed from etcd`,
      async () => {
        const list = await memberListFromAny(survivors);
        return !list.some((m) => m.ID === lostId);
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );

    await cluster.agent.addNode({ name: 'central-5', labels: { ...CENTRAL_LABEL }, taints: [CENTRAL_TAINT] });
    const learners = new Map<string, string>();
    const done = await waitFor(
      `a fresh ${lost} on central-5`,
      async () => {
        const [now, t] = await Promise.all([memberPods(), topology()]);
        for (const m of t.status?.members ?? []) if (m.role === 'learner') learners.set(m.name, m.id);
        const list = await memberListFromAny(now.filter((p) => p.metadata.name !== lost)).catch(() => []);
        for (const m of list) if (m.isLearner) learners.set(etcdName(m), BigInt(m.ID).toString(16));
        return settledNow(3);
      },
      { timeoutMs: 240_000, intervalMs: 250 },
    );
    const fresh = done.members.find((m) => etcdName(m) === lost)!;
    expect(fresh.ID).not.toBe(lostId);
    expect([...learners.keys()]).toEqual([lost]);
    expect(learners.get(lost)).toBe(BigInt(fresh.ID).toString(16));
    expect(done.pods.find((p) => p.metadata.name === lost)?.spec?.nodeName).toBe('central-5');
    expect(done.t.status?.members?.find((m) => m.name === lost)).toMatchObject({ node: 'central-5', healthy: true });
    expect(done.t.status?.quorum).toEqual({ size: 2, healthy: 3, faultTolerance: 1, disruptionsAllowed: 1 });
    for (const p of done.pods) expect(await readKeys(urlOf(p), 'replace/'), `keys on ${p.metadata.name}`).toEqual(keys);
  }, 300_000);

  it('replaces a member that crash-loops on a corrupt data directory, and keeps the corrupt volume', async () => {
    const { pods, members } = await waitSettled(3);
    const keys = expectedKeys('corrupt/', 50);
    await putKeys(urlOf(pods[0]!), 'corrupt/', 50);
    const leaderId = (await gateway<EtcdStatus>(urlOf(pods[0]!), '/v3/maintenance/status', {})).leader;
    const victim = pods.find((p) => members.find((m) => etcdName(m) === p.metadata.name)?.ID !== leaderId)!;
    const name = victim.metadata.name;
    const oldId = members.find((m) => etcdName(m) === name)!.ID;
    const oldClaim = await cluster.api.call<{ metadata: { uid: string }; spec: { volumeName: string } }>('GET', `/api/v1/namespaces/${NS}/persistentvolumeclaims/data-${name}`);
    const pvPath = `/api/v1/persistentvolumes/${oldClaim.spec.volumeName}`;
    const dir = (await cluster.api.call<{ spec: { local: { path: string } } }>('GET', pvPath)).spec.local.path;
    const db = path.join(dir, 'data', 'member', 'snap', 'db');

    // Frozen first, so that etcd cannot write its meta pages back; then the database's first pages are
    // overwritten and the process killed: every restart now fails to open the database.
    const pid = await etcdPid(victim);
    process.kill(pid, 'SIGSTOP');
    const handle = await open(db, 'r+');
    try {
      await handle.write(Buffer.alloc(16_384, 0x5a), 0, 16_384, 0);
    } finally {
      await handle.close();
    }
    process.kill(pid, 'SIGKILL');

    let worstEtcdHealthy = Infinity;
    const messages = new Set<string>();
    const survivors = pods.filter((p) => p !== victim);
    const done = await waitFor(
      `${name} replaced by a fresh member`,
      async () => {
        const now = await memberPods();
        const view = await etcdView(now, new Map());
        worstEtcdHealthy = Math.min(worstEtcdHealthy, view.withLeader);
        const p = now.find((x) => x.metadata.name === name);
        const message = p?.status?.containerStatuses?.[0]?.lastState?.terminated?.message;
        if (message) messages.add(message);
        const list = await memberListFromAny(survivors).catch(() => []);
        if (list.some((m) => m.ID === oldId)) return false;
        return settledNow(3);
      },
      { timeoutMs: 240_000, intervalMs: 250 },
    );
    // The kubelet's FallbackToLogsOnError message is how the operator knew: etcd's own last words.
    expect([...messages].some((m) => m.includes('panic: failed to open database')), [...messages].join('\n---\n')).toBe(true);
    expect(worstEtcdHealthy).toBeGreaterThanOrEqual(2);
    const fresh = done.members.find((m) => etcdName(m) === name)!;
    expect(fresh.ID).not.toBe(oldId);
    for (const p of done.pods) expect(await readKeys(urlOf(p), 'corrupt/'), `keys on ${p.metadata.name}`).toEqual(keys);

    // The old claim is gone, a new one holds the fresh member, and the old volume was kept, corrupt bytes and all.
    const claimNow = await cluster.api.call<{ metadata: { uid: string }; spec: { volumeName: string } }>('GET', `/api/v1/namespaces/${NS}/persistentvolumeclaims/data-${name}`);
    expect(claimNow.metadata.uid).not.toBe(oldClaim.metadata.uid);
    expect(claimNow.spec.volumeName).not.toBe(oldClaim.spec.volumeName);
    const kept = await cluster.api.call<{ spec: { persistentVolumeReclaimPolicy: string }; status: { phase: string } }>('GET', pvPath);
    expect(kept.spec.persistentVolumeReclaimPolicy).toBe('Retain');
    expect(kept.status.phase).toBe('Released');
    expect((await readFile(db)).subarray(0, 16_384).every((b) => b === 0x5a)).toBe(true);
    const events = await cluster.api.call<{ items: { reason: string; message: string }[] }>('GET', `/api/v1/namespaces/${NS}/events?fieldSelector=${encodeURIComponent('reason=VolumeRetained')}`);
    expect(events.items.map((e) => e.message)).toContainEqual(expect.stringContaining(`PersistentVolume ${oldClaim.spec.volumeName} keeps the data of ${name}`));
  }, 300_000);

  /**
   * Freezes two of the three members (SIGSTOP), so that the third is left without a quorum, runs body,
   * and lets them go again whatever happens.
   */
  async function withQuorumLost<T>(pods: readonly Pod[], body: () => Promise<T>): Promise<T> {
    const frozen = await Promise.all(pods.slice(0, 2).map(etcdPid));
    for (const pid of frozen) process.kill(pid, 'SIGSTOP');
    try {
      return await body();
    } finally {
      for (const pid of frozen) process.kill(pid, 'SIGCONT');
    }
  }

  it('with quorum lost, says QuorumLost with the runbook, and deletes, restarts and changes nothing', async () => {
    const { pods, members } = await waitSettled(3);
    const uids = pods.map((p) => p.metadata.uid);
    const restarts = pods.map((p) => p.status?.containerStatuses?.[0]?.restartCount);
    await withQuorumLost(pods, async () => {
      const seen: string[] = [];
      const t = await waitFor(
        'Degraded QuorumLost',
        async () => {
          const t = await topology();
          const line = ['Available', 'Progressing', 'Degraded'].map((type) => `${type}=${t.status?.conditions?.find((c) => c.type === type)?.status}/${t.status?.conditions?.find((c) => c.type === type)?.reason}`).join(' ');
          if (seen.at(-1) !== line) seen.push(line);
          return t.status?.conditions?.find((c) => c.type === 'Degraded')?.reason === 'QuorumLost' ? t : false;
        },
        { timeoutMs: 60_000, intervalMs: 500 },
      ).catch((err: unknown) => {
        throw new Error(`${(err as Error).message}; conditions seen: ${seen.join(' | ')}`);
      });
      const condition = (type: string) => t.status?.conditions?.find((c) => c.type === type);
      expect(condition('Degraded')).toMatchObject({ status: 'True', reason: 'QuorumLost' });
      expect(condition('Degraded')?.message).toContain('docs/runbooks/quorum-loss.md');
      expect(condition('Progressing')).toMatchObject({ status: 'False', reason: 'QuorumLost' });
      expect(condition('Available')?.status).toBe('False');
      expect(t.status?.quorum?.disruptionsAllowed).toBe(0);
      const events = await cluster.api.call<{ items: { reason: string; type: string; involvedObject: { name: string } }[] }>('GET', `/api/v1/namespaces/${NS}/events?fieldSelector=${encodeURIComponent(`involvedObject.name=${NAME}`)}`);
      expect(events.items.some((e) => e.type === 'Warning' && e.reason === 'QuorumLost')).toBe(true);
      // The operator deleted nothing while quorum was gone.
      const now = await memberPods();
      expect(now.map((p) => p.metadata.uid)).toEqual(uids);
      expect(now.every((p) => p.metadata.deletionTimestamp === undefined)).toBe(true);
    });
    // Quorum comes back by itself once the members answer again; the same members, never restarted.
    const after = await waitSettled(3);
    expect(after.pods.map((p) => p.metadata.uid)).toEqual(uids);
    expect(after.pods.map((p) => p.status?.containerStatuses?.[0]?.restartCount)).toEqual(restarts);
    expect(after.members.map((m) => m.ID).sort()).toEqual(members.map((m) => m.ID).sort());
  }, 180_000);
});
