import { Agent, request } from 'undici';
import { EtcdAdminClient, type EndpointTls } from '../../src/etcd/admin-client.ts';
import { memberName, toMemberHealth } from '../../src/etcd/member-health.ts';
import type { StatusResponse } from '../../src/etcd/responses.ts';
import { healthyVotersOf, votersOf } from '../../src/quorum/members.ts';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

/**
 * A client that writes continuously through one proxy (etcd's JSON gateway over HTTP/1.1) and
 * records every write etcd acknowledged, and the longest time between two acknowledgements.
 */
export class AckedWriter {
  readonly acked = new Map<string, string>();
  failures = 0;
  longestStallMs = 0;
  /** When each failed write was sent and when it failed (epoch ms), to tell what it overlapped. */
  readonly failed: { sent: number; failed: number; why?: string }[] = [];
  private readonly agent = new Agent({ keepAliveTimeout: 10_000, connections: 2 });
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly url: string;

  constructor(proxyUrl: string) {
    this.url = proxyUrl;
  }

  start(): void {
    this.running = true;
    this.loop = (async () => {
      let last = Date.now();
      for (let n = 0; this.running; n++) {
        const key = `upgrade/${String(n).padStart(6, '0')}`;
        const value = `v${n}`;
        const sent = Date.now();
        const failed = (why: string): void => {
          this.failures++;
          this.failed.push({ sent, failed: Date.now(), why });
        };
        try {
          const res = await request(`${this.url}/v3/kv/put`, {
            method: 'POST',
            dispatcher: this.agent,
            body: JSON.stringify({ key: b64(key), value: b64(value) }),
            headers: { 'content-type': 'application/json' },
            headersTimeout: 5000,
            bodyTimeout: 5000,
          });
          const text = await res.body.text();
          if (res.statusCode === 200) {
            this.acked.set(key, value);
            const now = Date.now();
            this.longestStallMs = Math.max(this.longestStallMs, now - last);
            last = now;
          } else failed(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
        } catch (err) {
          failed((err as Error).message);
        }
        this.longestStallMs = Math.max(this.longestStallMs, Date.now() - last);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  /** Reads every key under upgrade/ through the proxy and returns the ones missing or wrong. */
  async missing(): Promise<string[]> {
    const prefix = 'upgrade/';
    const res = await request(`${this.url}/v3/kv/range`, {
      method: 'POST',
      dispatcher: this.agent,
      body: JSON.stringify({ key: b64(prefix), range_end: b64('upgrade0') }),
      headers: { 'content-type': 'application/json' },
    });
    const body = (await res.body.json()) as { kvs?: { key: string; value: string }[] };
    const stored = new Map((body.kvs ?? []).map((kv) => [Buffer.from(kv.key, 'base64').toString(), Buffer.from(kv.value, 'base64').toString()]));
    return [...this.acked].filter(([k, v]) => stored.get(k) !== v).map(([k]) => k);
  }

  async close(): Promise<void> {
    if (!this.agent.closed) await this.agent.close();
  }
}

/** Samples, as etcd itself reports it, how many voters are healthy; keeps the minimum seen. */
export class QuorumSampler {
  samples = 0;
  minHealthy = Infinity;
  readonly lowSamples: string[] = [];
  private readonly admin = new EtcdAdminClient({ timeoutMs: 1500 });
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly endpoints: () => Promise<{ name: string; url: string; tls?: EndpointTls }[]>;

  constructor(endpoints: () => Promise<{ name: string; url: string; tls?: EndpointTls }[]>) {
    this.endpoints = endpoints;
  }

  start(quorum: number): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        const eps = await this.endpoints().catch(() => undefined);
        // Not knowing where the members are (the API server was slow) is no sample, not a lost quorum.
        if (eps === undefined || eps.length === 0) {
          await new Promise((r) => setTimeout(r, 500));
          continue;
        }
        for (const e of eps) this.admin.setEndpointTls(e.url, e.tls);
        try {
          const list = await this.admin.onFirstAvailable(eps.map((e) => e.url), (u) => this.admin.memberList(u));
          const statuses = new Map<string, StatusResponse | Error>();
          await Promise.all(
            list.members.map(async (m) => {
              const url = eps.find((e) => e.name === memberName(m))?.url;
              statuses.set(m.ID, url ? await this.admin.status(url).catch((e: unknown) => e as Error) : new Error('no pod'));
            }),
          );
          const members = toMemberHealth(list.members, statuses);
          const healthy = healthyVotersOf(members).length;
          this.samples++;
          this.minHealthy = Math.min(this.minHealthy, healthy);
          if (healthy < quorum) {
            // What each member answered, to tell a real loss (no leader, errors) from a stale endpoint.
            const said = list.members.map((m) => {
              const st = statuses.get(m.ID);
              return `${memberName(m)}: ${st instanceof Error ? st.message : `leader ${st?.leader} index ${st?.raftIndex}`}`;
            });
            this.lowSamples.push(`${new Date().toISOString()}: ${healthy} of ${votersOf(members).length} voters healthy (${said.join('; ')})`);
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
