import { Agent, request } from 'undici';
import { EtcdAdminClient, type EndpointTls } from '../../src/etcd/admin-client.ts';
import { memberName, toMemberHealth } from '../../src/etcd/member-health.ts';
import type { StatusResponse } from '../../src/etcd/responses.ts';
import { healthyVotersOf, leaderOf, votersOf } from '../../src/quorum/members.ts';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

/** Gaps between acknowledgements longer than this are listed, to set the proxy's beside the direct client's. */
export const STALL_LISTED_MS = 1000;

/** Where an AckedWriter sends its writes: a URL and, for https, the client certificate and the name to verify. */
export interface WriteTarget {
  url: string;
  tls?: EndpointTls;
}

/**
 * A client that writes continuously (etcd's JSON gateway over HTTP/1.1) and records every write etcd
 * acknowledged, and the longest time between two acknowledgements. With one target it is a pod's
 * client of the node's proxy; with the members as targets it is a client that balances over the
 * members itself, moving to the next one after a failure, as etcd's clients do.
 */
export class AckedWriter {
  readonly acked = new Map<string, string>();
  failures = 0;
  longestStallMs = 0;
  /** When the longest stall began (epoch ms): the last acknowledgement before it. */
  longestStallFrom = 0;
  /** Every gap between acknowledgements longer than STALL_LISTED_MS: when it began and how long it was. */
  readonly stalls: { from: number; ms: number }[] = [];
  /** When each failed write was sent and when it failed (epoch ms), to tell what it overlapped. */
  readonly failed: { sent: number; failed: number; target: string; error: string }[] = [];
  private readonly agents = new Map<string, { key: string; agent: Agent }>();
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly prefix: string;
  private readonly targets: () => Promise<WriteTarget[]>;
  private readonly reresolveMs: number;

  /**
   * target: a proxy's URL, or the members to balance over; every key written starts with prefix.
   * The targets are looked up again after a failure and, with reresolveMs, also that often (a client
   * that reads its certificate files again when they change).
   */
  constructor(target: string | (() => Promise<WriteTarget[]>), prefix = 'upgrade/', options: { reresolveMs?: number } = {}) {
    this.prefix = prefix;
    this.targets = typeof target === 'string' ? () => Promise.resolve([{ url: target }]) : target;
    this.reresolveMs = options.reresolveMs ?? Infinity;
  }

  start(): void {
    this.running = true;
    this.loop = (async () => {
      let last = Date.now();
      let pick = 0;
      let targets: WriteTarget[] = [];
      let resolvedAt = 0;
      for (let n = 0; this.running; n++) {
        const key = `${this.prefix}${String(n).padStart(6, '0')}`;
        const value = `v${n}`;
        const sent = Date.now();
        // The targets are looked up again after a failure, as a client re-resolves its endpoints.
        if (targets.length === 0 || sent - resolvedAt >= this.reresolveMs) {
          targets = await this.targets().catch(() => []);
          resolvedAt = sent;
        }
        const target = targets[pick % Math.max(1, targets.length)];
        const failed = (error: string): void => {
          this.failures++;
          this.failed.push({ sent, failed: Date.now(), target: target?.url ?? 'none', error });
          pick++;
          targets = [];
        };
        if (target === undefined) failed('no target');
        else {
          try {
            const res = await request(`${target.url}/v3/kv/put`, {
              method: 'POST',
              dispatcher: this.agentFor(target),
              body: JSON.stringify({ key: b64(key), value: b64(value) }),
              headers: { 'content-type': 'application/json' },
              headersTimeout: 5000,
              bodyTimeout: 5000,
            });
            const text = await res.body.text();
            if (res.statusCode === 200) {
              this.acked.set(key, value);
              const now = Date.now();
              this.noteStall(last, now);
              last = now;
            } else failed(`HTTP ${res.statusCode}: ${text.slice(0, 120)}`);
          } catch (err) {
            failed((err as Error).message);
          }
        }
        this.noteStall(last, Date.now());
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  private noteStall(from: number, to: number): void {
    // A stall is recorded once, when it ends (from is then the acknowledgement before it).
    if (to - from > STALL_LISTED_MS && this.stalls.at(-1)?.from !== from) this.stalls.push({ from, ms: to - from });
    else if (to - from > STALL_LISTED_MS) this.stalls.at(-1)!.ms = to - from;
    if (to - from <= this.longestStallMs) return;
    this.longestStallMs = to - from;
    this.longestStallFrom = from;
  }

  /** Reads every key this writer wrote through its first target and returns the ones missing or wrong. */
  async missing(): Promise<string[]> {
    const target = (await this.targets())[0]!;
    const res = await request(`${target.url}/v3/kv/range`, {
      method: 'POST',
      dispatcher: this.agentFor(target),
      body: JSON.stringify({ key: b64(this.prefix), range_end: b64(prefixEnd(this.prefix)) }),
      headers: { 'content-type': 'application/json' },
    });
    const body = (await res.body.json()) as { kvs?: { key: string; value: string }[] };
    const stored = new Map((body.kvs ?? []).map((kv) => [Buffer.from(kv.key, 'base64').toString(), Buffer.from(kv.value, 'base64').toString()]));
    return [...this.acked].filter(([k, v]) => stored.get(k) !== v).map(([k]) => k);
  }

  async close(): Promise<void> {
    for (const { agent } of this.agents.values()) await agent.close();
    this.agents.clear();
  }

  /** One keep-alive agent per target and TLS material (a renewed certificate gets a new agent). */
  private agentFor(target: WriteTarget): Agent {
    const key = target.tls ? `${target.tls.cert}|${target.tls.ca}|${target.tls.servername ?? ''}` : '';
    const current = this.agents.get(target.url);
    if (current?.key === key) return current.agent;
    if (current) void current.agent.close().catch(() => undefined);
    const tls = target.tls;
    const agent = new Agent({ keepAliveTimeout: 10_000, connections: 2, ...(tls ? { connect: { ca: tls.ca, cert: tls.cert, key: tls.key, servername: tls.servername } } : {}) });
    this.agents.set(target.url, { key, agent });
    return agent;
  }
}

/** The end of etcd's range for every key that starts with prefix (the prefix with its last byte plus one). */
function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

/** Samples, as etcd itself reports it, how many voters are healthy; keeps the minimum seen. */
export class QuorumSampler {
  samples = 0;
  minHealthy = Infinity;
  /** Samples asked again because the answers straddled a leader change (no member named itself leader). */
  straddled = 0;
  readonly lowSamples: string[] = [];
  private readonly admin = new EtcdAdminClient({ timeoutMs: 1500 });
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly endpoints: () => Promise<{ name: string; url: string; tls?: EndpointTls }[]>;

  private readonly fresh: (() => Promise<{ name: string; url: string; tls?: EndpointTls }[]>) | undefined;
  /** Samples below quorum asked again at freshly read endpoints (a member had none, or a stale one, in the cached list). */
  reread = 0;

  /**
   * endpoints: where the members are, as cheap as each sample needs (a cache); fresh, when given: read
   * them now, for a sample below quorum in which a member had no endpoint or did not answer at it.
   */
  constructor(endpoints: () => Promise<{ name: string; url: string; tls?: EndpointTls }[]>, fresh?: () => Promise<{ name: string; url: string; tls?: EndpointTls }[]>) {
    this.endpoints = endpoints;
    this.fresh = fresh;
  }

  start(quorum: number): void {
    this.running = true;
    this.loop = (async () => {
      let retrying = false;
      while (this.running) {
        const cached = await this.endpoints().catch(() => undefined);
        // Not knowing where the members are (the API server was slow) is no sample, not a lost quorum.
        if (cached === undefined || cached.length === 0) {
          await new Promise((r) => setTimeout(r, 500));
          continue;
        }
        let eps = cached;
        for (const e of eps) this.admin.setEndpointTls(e.url, e.tls);
        try {
          // A member list that times out is asked once more with 4 s, as Status below: on a loaded
          // machine a slow answer is not a lost quorum (without quorum the linearizable list fails either way).
          const urls = eps.map((e) => e.url);
          const list = await this.admin
            .onFirstAvailable(urls, (u) => this.admin.memberList(u))
            .catch(() => this.admin.onFirstAvailable(urls, (u) => this.admin.memberList(u, { timeoutMs: 4000 })));
          const statuses = new Map<string, StatusResponse | Error>();
          // Status is answered by each member alone: a call that times out is asked once more with a
          // longer deadline, since a slow answer on a loaded machine is not a member without a leader.
          const statusOf = (url: string): Promise<StatusResponse | Error> =>
            this.admin.status(url).catch(() => this.admin.status(url, { timeoutMs: 4000 }).catch((e: unknown) => e as Error));
          const askAll = (): Promise<unknown> =>
            Promise.all(
              list.members.map(async (m) => {
                const url = eps.find((e) => e.name === memberName(m))?.url;
                statuses.set(m.ID, url ? await statusOf(url) : new Error('no pod'));
              }),
            );
          await askAll();
          let members = toMemberHealth(list.members, statuses);
          // The members are asked one by one: answers that straddle a leader change (a MoveLeader takes
          // a few milliseconds) can each name a leader while none names itself, and the sample then
          // has no leader to count from. Such a sample is asked again once; a member without a leader
          // ('0') still counts as unhealthy either way.
          const namesALeader = (st: StatusResponse | Error | undefined): boolean => st !== undefined && !(st instanceof Error) && st.leader !== '0';
          if (leaderOf(members) === undefined && list.members.some((m) => namesALeader(statuses.get(m.ID)))) {
            this.straddled++;
            await askAll();
            members = toMemberHealth(list.members, statuses);
          }
          // A member the cached endpoints miss (a pod replaced a moment ago) or that refused at a cached
          // address is asked once more where the API server says it is now; the answer there counts.
          if (this.fresh !== undefined && healthyVotersOf(members).length < quorum && list.members.some((m) => statuses.get(m.ID) instanceof Error)) {
            const now = await this.fresh().catch(() => undefined);
            if (now !== undefined && now.length > 0) {
              this.reread++;
              eps = now;
              for (const e of now) this.admin.setEndpointTls(e.url, e.tls);
              await askAll();
              members = toMemberHealth(list.members, statuses);
            }
          }
          const healthy = healthyVotersOf(members).length;
          // The Status calls of one sample are answered at different instants: across a leader
          // change every voter can name a leader while none names itself (it was asked just before it
          // won, or just after it handed over). Such a sample says nothing about quorum: it is taken again.
          if (healthy < quorum && !leaderOf(members) && votersOf(members).filter((m) => m.healthy).length >= quorum && !retrying) {
            retrying = true;
            continue;
          }
          retrying = false;
          this.samples++;
          this.minHealthy = Math.min(this.minHealthy, healthy);
          if (healthy < quorum) {
            const why = list.members.map((m) => {
              const s = statuses.get(m.ID);
              return `${memberName(m)}${m.isLearner ? ' (learner)' : ''}: ${s instanceof Error ? s.message : s === undefined ? 'not asked' : s.leader === '0' ? 'no leader' : s.leader === m.ID ? 'leader' : 'follower'}`;
            });
            this.lowSamples.push(`${new Date().toISOString()}: ${healthy} of ${votersOf(members).length} voters healthy (${why.join('; ')})`);
          }
        } catch (err) {
          // No member answered at all: that is a sample with zero healthy voters.
          this.samples++;
          this.minHealthy = 0;
          this.lowSamples.push(`${new Date().toISOString()}: no member answered (${(err as Error).message})`);
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    })();
  }

  /** Stops sampling and closes the client; calling it again does nothing. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    await this.loop;
    await this.admin.close();
  }
}
