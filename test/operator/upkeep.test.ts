import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdAdminClient } from '../../src/etcd/admin-client.ts';
import { defaultNodes, type LocalCluster } from '../harness/cluster/local-cluster.ts';
import type { Pod } from '../harness/cluster/types.ts';
import { waitFor } from '../harness/ports.ts';
import { AckedWriter, QuorumSampler } from '../quorum/upgrade-load.ts';
import { MemberTls } from '../tls/tls-client.ts';
import { componentPods, getTopology, isReady, startOperatorCluster, topologyManifest, type OperatorCluster } from './setup.ts';

// Upkeep on the local cluster with real etcd members and a 16 MiB quota: fragmentation by churn is
// defragmented member by member, the leader last after leadership moved, within the budget; a database
// filled to NOSPACE is recovered (compact, defragment each member, disarm) and accepts writes again.

const NS = 'default';
const NAME = 'upk';
const MiB = 2 ** 20;
const QUOTA = 16 * MiB;
const b64 = (s: string): string => Buffer.from(s).toString('base64');
/** A proxy's plaintext client URL. */
const urlOf = (p: Pod): string => `http://${p.status!.podIP}:2379`;
/** A member's client URL: TLS, with the topology's client certificate (TLS is on by default). */
const memberUrlOf = (p: Pod): string => `https://${p.status!.podIP}:2379`;
const memberHostOf = (p: Pod): string => `${p.metadata.name}.${NAME}-peer.${NS}.svc`;

interface MemberStatus {
  name: string;
  role: string;
  healthy: boolean;
  dbSize?: number;
  dbSizeInUse?: number;
  lastDefragmentation?: { time: string; bytesFreed: number };
}
interface Status {
  members?: MemberStatus[];
  quorum?: { healthy: number };
  leader?: string;
  alarms?: { alarm: string; memberId: string; member?: string }[];
  conditions?: { type: string; status: string; reason: string; message: string }[];
}
interface KubeEvent {
  reason: string;
  type: string;
  message: string;
  involvedObject: { name: string };
}

describe('upkeep on the local cluster', () => {
  let env: OperatorCluster;
  let cluster: LocalCluster;
  const agent = new Agent({ connections: 4 });
  const admin = new EtcdAdminClient({ timeoutMs: 2000 });
  let memberTls: MemberTls;
  /** The admin client, with the client certificate for this member's URL. */
  const adminFor = async (p: Pod): Promise<EtcdAdminClient> => {
    admin.setEndpointTls(memberUrlOf(p), { ...(await memberTls.pem()), servername: memberHostOf(p) });
    return admin;
  };

  const status = async (): Promise<Status> => ((await getTopology(cluster, NAME, NS)) as unknown as { status?: Status }).status ?? {};
  const members = async (): Promise<Pod[]> => (await componentPods(cluster, NAME, NS, 'member')).filter((p) => !p.metadata.deletionTimestamp && p.status?.podIP);
  const events = async (): Promise<KubeEvent[]> =>
    (JSON.parse(await cluster.kubectl(['get', 'events', '-n', NS, '-o', 'json'])) as { items: KubeEvent[] }).items.filter((e) => e.involvedObject.name === NAME);

  /** One JSON gateway call; resolves the HTTP status and parsed body. */
  async function gateway(url: string, route: string, body: unknown, timeoutMs = 10_000): Promise<{ status: number; body: { message?: string; header?: { revision?: string } } }> {
    const dispatcher = url.startsWith('https:') ? await memberTls.dispatcher() : agent;
    const res = await request(`${url}${route}`, { method: 'POST', dispatcher, body: JSON.stringify(body), headers: { 'content-type': 'application/json' }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    const text = await res.body.text();
    return { status: res.statusCode, body: JSON.parse(text) as { message?: string } };
  }
  const put = (url: string, key: string, value: string): Promise<{ status: number; body: { message?: string; header?: { revision?: string } } }> =>
    gateway(url, '/v3/kv/put', { key: b64(key), value: b64(value) });

  /** Settled: Available, nothing in progress, three healthy voters, every member pod ready. */
  async function settled(): Promise<{ s: Status; pods: Pod[] }> {
    const [s, pods] = await Promise.all([status(), members()]);
    if (cond(s, 'Available') !== 'True' || cond(s, 'Progressing') !== 'False' || s.quorum?.healthy !== 3 || pods.length !== 3 || !pods.every(isReady)) {
      throw new Error(`not settled: ${JSON.stringify(s.conditions?.map((x) => [x.type, x.status, x.reason, x.message]))}`);
    }
    return { s, pods };
  }

  /**
   * From a member's own etcd log: its "starting defragment" .. "finished defragment" windows, and when
   * raft made it a follower (a leadership transfer away from it ends so).
   */
  async function etcdLog(pod: Pod): Promise<{ windows: { start: number; end: number }[]; becameFollower: number[] }> {
    const log = await cluster.containerLog(pod, 'etcd');
    const windows: { start: number; end: number }[] = [];
    const becameFollower: number[] = [];
    for (const line of log.split('\n')) {
      if (!line.startsWith('{')) continue;
      const entry = JSON.parse(line) as { ts?: string; msg?: string };
      const ts = Date.parse(entry.ts ?? '');
      if (entry.msg === 'starting defragment') windows.push({ start: ts, end: Infinity });
      if (entry.msg === 'finished defragment' && windows.length > 0) windows[windows.length - 1]!.end = ts;
      if (/ became follower at term /.test(entry.msg ?? '')) becameFollower.push(ts);
    }
    return { windows, becameFollower };
  }
  const cond = (s: Status, type: string): string | undefined => s.conditions?.find((c) => c.type === type)?.status;
  /** waitFor, and on a time-out the topology's status, Events and the operator's last log lines. */
  async function waitOrExplain<T>(what: string, check: () => Promise<T | false>, timeoutMs: number): Promise<T> {
    return waitFor(what, check, { timeoutMs, intervalMs: 500 }).catch(async (err: unknown) => {
      const s = await status().catch(() => ({}));
      const e = (await events().catch(() => [])).map((x) => `${x.type} ${x.reason}: ${x.message}`);
      const log = (await readFile(path.join(cluster.dir, 'operator.log'), 'utf8').catch(() => '')).split('\n').slice(-40);
      throw new Error(`${(err as Error).message}\nstatus: ${JSON.stringify(s)}\nevents:\n${e.join('\n')}\noperator log:\n${log.join('\n')}`);
    });
  }

  const patchSpec = (spec: unknown): Promise<string> => cluster.kubectl(['patch', 'etop', NAME, '-n', NS, '--type=merge', '-p', JSON.stringify({ spec })]);

  /**
   * Churn: 80 overwrites of 128 KiB over ten keys (10 MiB written, 1.25 MiB of it live), then a
   * compaction to the newest revision: the file stays above half the quota with most of it free. The
   * compaction call waits only for the member that received it; this waits until every member shows
   * the space free, and returns each member's sizes then.
   */
  async function churn(pods: Pod[]): Promise<{ name: string; dbSize: number; dbSizeInUse: number }[]> {
    const url = memberUrlOf(pods[0]!);
    const value = 'x'.repeat(128 * 1024);
    let revision = '0';
    for (let i = 0; i < 80; i++) {
      const r = await put(url, `churn/${i % 10}`, value);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      revision = r.body.header!.revision!;
    }
    const compacted = await gateway(url, '/v3/kv/compaction', { revision, physical: true }, 30_000);
    expect(compacted.status, JSON.stringify(compacted.body)).toBe(200);
    const seen = new Map<string, { dbSize: number; dbSizeInUse: number }>();
    // bbolt hands the pages a compaction freed to its free list only at the next write transaction: on an
    // idle member dbSizeInUse stays where it was. A small write per look makes every member commit.
    await waitFor('every member to apply the compaction', async () => {
      await put(url, 'churn/tick', String(Date.now()));
      const now: string[] = [];
      for (const p of pods) {
        const st = await (await adminFor(p)).status(memberUrlOf(p)).catch((err: unknown) => err as Error);
        now.push(`${p.metadata.name}: ${st instanceof Error ? st.message : `${st.dbSize} in use ${st.dbSizeInUse}`}`);
        if (!(st instanceof Error) && st.dbSize - st.dbSizeInUse > 6 * MiB && !seen.has(p.metadata.name)) seen.set(p.metadata.name, st);
      }
      if (seen.size < pods.length) throw new Error(`compacted at revision ${revision}; ${now.join(', ')}`);
      return true;
    }, { timeoutMs: 30_000, intervalMs: 100 });
    const sizes = [...seen].map(([name, st]) => ({ name, dbSize: st.dbSize, dbSizeInUse: st.dbSizeInUse }));
    for (const m of sizes) expect(m.dbSize, `${m.name} dbSize`).toBeGreaterThanOrEqual(0.5 * QUOTA);
    return sizes;
  }

  beforeAll(async () => {
    // Three central nodes and one worker for a proxy; the operator resyncs every 3 s.
    env = await startOperatorCluster({ nodes: defaultNodes(3, 1) });
    cluster = env.cluster;
    memberTls = new MemberTls(cluster, NS, NAME);
    // Defragment at half the quota, so that churn well below NOSPACE qualifies; off until the churn is
    // written and compacted (while the churn is written, bbolt's own free pages may already pass the rule).
    const spec = { members: { count: 3, quotaBackendBytes: QUOTA }, maintenance: { defragmentation: { quotaUsageAbove: 0.5, enabled: false } } };
    await cluster.kubectl(['apply', '-f', '-'], topologyManifest(NAME, NS, spec));
    await waitFor(`${NAME} settled`, settled, { timeoutMs: 240_000, intervalMs: 1000 });
  });
  afterAll(async () => {
    await env?.stop();
    await admin.close();
    await memberTls?.close();
    await agent.close();
  });

  it.each([
    [{ quotaUsageAbove: 0 }, /quotaUsageAbove must be above 0 and at most 1/],
    [{ quotaUsageAbove: 1.5 }, /quotaUsageAbove must be above 0 and at most 1/],
    [{ minReclaimBytes: -1 }, /minReclaimBytes must be a size of zero or more/],
    [{ minReclaimBytes: '-64Mi' }, /minReclaimBytes must be a size of zero or more/],
    [{ window: '* 1-4 * *' }, /window must be a cron expression of five fields/],
  ])('refuses maintenance.defragmentation %j at admission, with the reason', async (defragmentation, message) => {
    const bad = topologyManifest('bad-maintenance', NS, { maintenance: { defragmentation } });
    await expect(cluster.kubectl(['apply', '-f', '-'], bad)).rejects.toThrow(message);
  });

  it('defragments every member over the rule one at a time, the leader last after moving leadership, within the budget', async () => {
    const { s: before, pods } = await settled();
    const leaderAtStart = before.leader!;
    const proxy = await waitFor('a ready proxy', async () => (await componentPods(cluster, NAME, NS, 'proxy')).find(isReady), { timeoutMs: 60_000 });
    const writer = new AckedWriter(urlOf(proxy));
    const pem = await memberTls.pem();
    const sampler = new QuorumSampler(async () => (await members()).map((p) => ({ name: p.metadata.name, url: memberUrlOf(p), tls: { ...pem, servername: memberHostOf(p) } })));
    const statusHealthy: number[] = [];
    let sampling = true;
    const startedAt = Date.now();
    const statusLoop = (async () => {
      while (sampling) {
        const s = await status().catch(() => undefined);
        if (s?.quorum) statusHealthy.push(s.quorum.healthy);
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    writer.start();
    sampler.start(2);
    try {
      const sizes = await churn(pods);
      expect((await status()).members?.some((m) => m.lastDefragmentation !== undefined)).toBe(false);
      await patchSpec({ maintenance: { defragmentation: { enabled: true } } });

      const done = await waitOrExplain(
        'every member defragmented, reported in status',
        async () => {
          const s = await status();
          const all = s.members ?? [];
          return all.length === 3 && all.every((m) => m.lastDefragmentation !== undefined && (m.dbSize ?? Infinity) < QUOTA / 2) ? s : false;
        },
        180_000,
      );
      await waitFor(`${NAME} settled again`, settled, { timeoutMs: 60_000, intervalMs: 500 });
      // On a loaded machine one quorum sample can take seconds: sample on until there are enough to count.
      await waitFor('five quorum samples', () => sampler.samples >= 5, { timeoutMs: 60_000, intervalMs: 250 });
      sampling = false;
      await statusLoop;
      await writer.stop();
      await sampler.stop();
      console.log(`upkeep: writes through the proxy during defragmentation: ${writer.acked.size} acknowledged, ${writer.failures} failed, longest stall ${writer.longestStallMs} ms`);

      for (const m of done.members!) {
        const was = sizes.find((x) => x.name === m.name)!;
        expect(m.lastDefragmentation!.bytesFreed, m.name).toBeGreaterThan(6 * MiB);
        expect(m.dbSize!, m.name).toBeLessThan(was.dbSize - 6 * MiB);
      }
      // etcd's own logs: exactly one defragmentation per member, never two at once, the first leader last.
      const logs = await Promise.all(pods.map(async (p) => ({ name: p.metadata.name, ...(await etcdLog(p)) })));
      for (const l of logs) expect(l.windows, l.name).toHaveLength(1);
      const ordered = logs.map((l) => ({ name: l.name, ...l.windows[0]!, becameFollower: l.becameFollower })).sort((a, b) => a.start - b.start);
      for (let i = 1; i < ordered.length; i++) expect(ordered[i]!.start, `${ordered[i]!.name} starts after ${ordered[i - 1]!.name} ended`).toBeGreaterThan(ordered[i - 1]!.end);
      console.log(`upkeep: defragmentations ${ordered.map((o) => `${o.name} ${o.end - o.start} ms`).join(', ')}; leader at start ${leaderAtStart}`);
      expect(ordered[2]!.name).toBe(leaderAtStart);
      // The first leader handed leadership over (raft made it a follower) during this test, before its defragmentation.
      const last = ordered[2]!;
      expect(last.becameFollower.filter((t) => t > startedAt && t < last.start)).not.toEqual([]);

      // Never fewer healthy voters than count - maxUnavailable, by etcd's word and by status, at every
      // sample. With databases this small a defragmentation takes tens of milliseconds, shorter than the
      // sampling interval: the etcd logs above (no two windows overlap) are the proof of one at a time.
      expect(sampler.samples).toBeGreaterThanOrEqual(5);
      expect(sampler.minHealthy, sampler.lowSamples.join('\n')).toBeGreaterThanOrEqual(2);
      expect(Math.min(...statusHealthy)).toBeGreaterThanOrEqual(2);
      const defragmented = (await events()).filter((e) => e.reason === 'Defragmented');
      expect(defragmented.map((e) => e.message.split(' ')[1]).sort()).toEqual(pods.map((p) => p.metadata.name).sort());
      // The client writing through the proxy the whole time: no write failed while a member defragmented,
      // and no acknowledged write is missing. (A write in flight across the leadership transfer can time
      // out: that is the transfer, see the report line, not the defragmentation.)
      expect(writer.acked.size).toBeGreaterThan(20);
      const transfer = last.becameFollower.filter((t) => t > startedAt && t < last.start);
      console.log(`upkeep: failed writes (sent..failed) ${JSON.stringify(writer.failed.map((f) => [new Date(f.sent).toISOString(), f.failed - f.sent]))}; leadership transfer at ${transfer.map((t) => new Date(t).toISOString()).join(', ')}`);
      for (const f of writer.failed) for (const o of ordered) expect(f.sent < o.end && f.failed > o.start, `a write failed while ${o.name} defragmented`).toBe(false);
      expect(await writer.missing()).toEqual([]);
    } finally {
      sampling = false;
      await statusLoop;
      await writer.stop();
      await sampler.stop();
      await writer.close();
    }
  }, 300_000);

  it('never defragments while a rolling update is in flight: the roll goes first, then each member', async () => {
    await patchSpec({ maintenance: { defragmentation: { enabled: false } } });
    const { pods: old } = await waitFor(`${NAME} settled`, settled, { timeoutMs: 60_000, intervalMs: 500 });
    await churn(old);
    // One change: a new member configuration (a rolling update) and defragmentation on again.
    const patchedAt = Date.now();
    await patchSpec({ members: { autoCompaction: { mode: 'periodic', retention: '2h' } }, maintenance: { defragmentation: { enabled: true } } });
    const uids = new Set(old.map((p) => p.metadata.uid));
    const done = await waitOrExplain(
      'every member replaced and then defragmented',
      async () => {
        const [s, pods] = await Promise.all([status(), members()]);
        const replaced = pods.length === 3 && pods.every((p) => !uids.has(p.metadata.uid) && isReady(p));
        const defragmented = (s.members ?? []).length === 3 && s.members!.every((m) => m.lastDefragmentation !== undefined && Date.parse(m.lastDefragmentation.time) >= patchedAt - 1000);
        return replaced && defragmented ? pods : false;
      },
      240_000,
    );
    // etcd's own logs: no old member defragmented after the change, and no new member before the last
    // new member had started.
    for (const p of old) expect((await etcdLog(p)).windows.filter((w) => w.end > patchedAt), `${p.metadata.name} (old pod)`).toEqual([]);
    const firstLine = async (p: Pod): Promise<number> => Date.parse((JSON.parse((await cluster.containerLog(p, 'etcd')).split('\n').find((l) => l.startsWith('{'))!) as { ts: string }).ts);
    const lastStarted = Math.max(...(await Promise.all(done.map(firstLine))));
    for (const p of done) {
      const { windows } = await etcdLog(p);
      expect(windows, p.metadata.name).toHaveLength(1);
      expect(windows[0]!.start, `${p.metadata.name} defragmented after the last new member started`).toBeGreaterThan(lastStarted);
    }
    for (const p of done) expect(p.spec?.containers[0]?.args).toContain('--auto-compaction-retention=2h');
  }, 300_000);

  it('recovers from NOSPACE: compacts, defragments each member, disarms; writes succeed again and every key is there', async () => {
    const { pods } = await settled();
    const url = memberUrlOf(pods[0]!);
    for (let i = 0; i < 50; i++) expect((await put(url, `keep/${String(i).padStart(2, '0')}`, `kept-${i}`)).status).toBe(200);
    // Fill with history: overwrite four keys with 512 KiB values until etcd refuses.
    const value = (i: number): string => `${i}:`.padEnd(512 * 1024, 'y');
    const last = new Map<string, string>();
    let refused: { message?: string } | undefined;
    let refusedWrite: [string, string] | undefined;
    for (let i = 0; i < 200 && refused === undefined; i++) {
      const key = `fill/${i % 4}`;
      const r = await put(url, key, value(i));
      if (r.status === 200) last.set(key, value(i));
      else [refused, refusedWrite] = [r.body, [key, value(i)]];
    }
    expect(refused?.message).toContain('database space exceeded');

    // The operator reports it and recovers on its own.
    await waitOrExplain(
      'the NOSPACE recovery to finish',
      async () => {
        const e = await events();
        return e.some((x) => x.reason === 'NoSpace' && x.type === 'Warning') && e.some((x) => x.reason === 'NoSpaceRecovered') ? e : false;
      },
      180_000,
    );
    const e = await events();
    expect(e.find((x) => x.reason === 'NoSpace')?.message).toContain('Degraded=True');
    expect(e.some((x) => x.reason === 'NoSpaceCompacted')).toBe(true);
    const proxy = (await componentPods(cluster, NAME, NS, 'proxy')).find(isReady)!;
    const after = await waitFor('a write through the proxy to succeed', async () => {
      const r = await put(urlOf(proxy), 'after/nospace', 'written');
      return r.status === 200 ? r : false;
    }, { timeoutMs: 30_000, intervalMs: 500 });
    expect(after.status).toBe(200);
    const s = await waitOrExplain('Degraded to clear and the alarm to leave status', async () => {
      const s = await status();
      return cond(s, 'Degraded') === 'False' && (s.alarms ?? []).length === 0 ? s : false;
    }, 60_000);
    expect(s.members?.every((m) => (m.dbSize ?? Infinity) < 0.8 * QUOTA)).toBe(true);
    const alarms = await (await adminFor(pods[0]!)).alarms(url);
    expect(alarms.alarms).toEqual([]);

    // Every key that was not deleted is there, with its last acknowledged value.
    const range = await gateway(urlOf(proxy), '/v3/kv/range', { key: b64('fill/'), range_end: b64('fill0') });
    const keep = await gateway(urlOf(proxy), '/v3/kv/range', { key: b64('keep/'), range_end: b64('keep0') });
    const kv = (r: { body: unknown }): Map<string, string> =>
      new Map(((r.body as { kvs?: { key: string; value: string }[] }).kvs ?? []).map((x) => [Buffer.from(x.key, 'base64').toString(), Buffer.from(x.value, 'base64').toString()]));
    // etcd applies the write that crosses the quota and then answers NOSPACE for it: that key holds
    // either its last acknowledged value or the refused one; every other key its last acknowledged value.
    const stored = kv(range);
    const [refusedKey, refusedValue] = refusedWrite!;
    expect([last.get(refusedKey), refusedValue]).toContain(stored.get(refusedKey));
    stored.delete(refusedKey);
    last.delete(refusedKey);
    expect(stored).toEqual(last);
    expect(kv(keep)).toEqual(new Map(Array.from({ length: 50 }, (_, i) => [`keep/${String(i).padStart(2, '0')}`, `kept-${i}`])));
  }, 300_000);
});
