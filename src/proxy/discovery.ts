import dns from 'node:dns/promises';
import net from 'node:net';
import os from 'node:os';
import type { Logger } from '../telemetry/logger.ts';
import { readJson, type HttpUpstreams } from './http1-upstreams.ts';
import type { LeaderTracker } from './leader.ts';
import { objectOf } from './json-fields.ts';
import { pointsAtListener, urlPort, type BoundAddress } from './loop.ts';
import type { ProxyMetrics } from './metrics.ts';
import type { UpstreamSet } from './upstreams.ts';
import type { MemberConnections } from './member-connections.ts';

/**
 * The client URLs to forward to, from a JSON gateway MemberList answer: every voting member's
 * advertised client URLs. Learners are left out: they refuse writes and linearizable reads.
 */
export function memberClientUrls(body: unknown): string[] | undefined {
  const o = objectOf(body);
  if (o === undefined) return undefined;
  const members = o['members'];
  if (members !== undefined && !Array.isArray(members)) return undefined;
  const urls: string[] = [];
  for (const entry of (members ?? []) as unknown[]) {
    const m = objectOf(entry);
    if (m === undefined) return undefined;
    if (m['isLearner'] === true) continue;
    const clientURLs = m['clientURLs'];
    if (clientURLs !== undefined && !Array.isArray(clientURLs)) return undefined;
    for (const u of (clientURLs ?? []) as unknown[]) {
      if (typeof u === 'string' && URL.canParse(u) && /^https?:$/.test(new URL(u).protocol)) urls.push(u.replace(/\/+$/, ''));
    }
  }
  return urls;
}

export interface DiscoveryOptions {
  seeds: readonly string[];
  refreshMs: number;
  /** The proxy's bound client listeners, for loop protection. */
  listeners: () => readonly BoundAddress[];
  upstreams: UpstreamSet;
  members: MemberConnections;
  http: HttpUpstreams;
  /** Learns the leader after every refresh that read the member list. */
  leaders: LeaderTracker;
  metrics: ProxyMetrics;
  log: Logger;
  /** Hears the member set after every refresh that read it (unchanged or not). */
  onRefreshed?: (urls: readonly string[]) => void;
}

// While the member list cannot be read, ask again soon rather than after a whole refresh interval.
const RETRY_MS = 1000;
const ASK_TIMEOUT_MS = 3000;

/**
 * Reads the member list at start and every refresh interval, drops URLs that loop back to the
 * proxy, shuffles the rest into the upstream set, and probes each member's /health so that member
 * health and /healthz reflect who answers.
 */
export class Discovery {
  private readonly o: DiscoveryOptions;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(options: DiscoveryOptions) {
    this.o = options;
  }

  /** Refreshes now, then keeps refreshing until stop. */
  async start(): Promise<void> {
    const ok = await this.refresh();
    this.schedule(ok);
  }

  /** Stops refreshing. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(ok: boolean): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.refresh().then((next) => this.schedule(next));
    }, ok ? this.o.refreshMs : Math.min(RETRY_MS, this.o.refreshMs));
    this.timer.unref();
  }

  /** Reads the member list from the first member that answers and applies it; false when none answered. */
  async refresh(): Promise<boolean> {
    const { upstreams, metrics, log } = this.o;
    const known = upstreams.list().map((m) => m.url);
    const askOrder = [...new Set([...known.filter((u) => upstreams.isAvailable(u)), ...known, ...this.o.seeds])];
    let urls: string[] | undefined;
    for (const member of askOrder) {
      const list = await this.ask(member, '/v3/cluster/member/list', 'member list');
      urls = list === undefined ? undefined : memberClientUrls(list);
      if (urls !== undefined) {
        upstreams.markAnswered(member);
        break;
      }
    }
    if (urls === undefined) {
      metrics.refreshes.labels('failure').inc();
      log.warn({ asked: askOrder }, 'Failed to read the member list from any etcd member');
      await this.probe();
      return false;
    }
    metrics.refreshes.labels('success').inc();
    const usable = await this.dropLoops(urls);
    if (usable.length === 0) {
      log.error({ advertised: urls }, 'Kept the current members: the cluster advertised no usable client URL');
    } else {
      const { added, removed } = upstreams.replace(usable);
      for (const url of removed) this.o.members.close(url);
      if (added.length > 0 || removed.length > 0) log.info({ added, removed, members: usable }, 'Updated the etcd members');
    }
    await Promise.all([this.o.leaders.relearn(), this.probe()]);
    this.o.onRefreshed?.(upstreams.list().map((m) => m.url));
    return true;
  }

  /** POSTs {} to a JSON gateway path of the member: its parsed answer when it is a 200, else undefined. */
  private async ask(member: string, path: string, what: string): Promise<unknown> {
    try {
      const res = await this.o.http.request(member, {
        method: 'POST',
        path,
        headers: { 'content-type': 'application/json' },
        body: '{}',
        signal: AbortSignal.timeout(ASK_TIMEOUT_MS),
      });
      const body = await readJson(res.body);
      return res.statusCode === 200 ? body : undefined;
    } catch (err) {
      this.o.log.debug({ member, err: (err as Error).message }, `Failed to read the ${what}`);
      return undefined;
    }
  }

  /** Drops advertised URLs that point at one of the proxy's own listeners, logging and counting each. */
  private async dropLoops(urls: readonly string[]): Promise<string[]> {
    const listeners = this.o.listeners();
    const local = localAddresses();
    const out: string[] = [];
    for (const u of urls) {
      const url = new URL(u);
      const host = url.hostname.replace(/^\[|\]$/g, '');
      const addresses = net.isIP(host) ? [host] : await dns.lookup(host, { all: true }).then((r) => r.map((a) => a.address), () => [host]);
      if (pointsAtListener(addresses, urlPort(url), listeners, local)) {
        this.o.metrics.loopDrops.labels(u).inc();
        this.o.log.error({ url: u }, 'Dropped an advertised client URL that points at this proxy: a member advertises the proxy as its own client URL; fix its --advertise-client-urls');
        continue;
      }
      out.push(u);
    }
    return out;
  }

  /** Asks every member's /health: any answer counts as answering; no answer holds the member off. */
  private async probe(): Promise<void> {
    const { upstreams, http } = this.o;
    await Promise.all(
      upstreams.list().map(async (m) => {
        try {
          const res = await http.request(m.url, { method: 'GET', path: '/health', signal: AbortSignal.timeout(ASK_TIMEOUT_MS) });
          res.body.resume();
          upstreams.markAnswered(m.url);
        } catch {
          upstreams.markFailed(m.url);
        }
      }),
    );
  }
}

function localAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) out.add(a.address.toLowerCase());
  return out;
}
