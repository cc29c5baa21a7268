import { Counter, Gauge, Histogram, type Registry } from '../telemetry/lean-metrics.ts';
import type { AttemptCounters } from './attempts.ts';

/** The label children of one (protocol, service, method), cached so the hot path does not hash labels. */
export interface MethodMetrics {
  inFlight: { inc(): void; dec(): void };
  latency: { observe(seconds: number): void };
  done(code: string): void;
  refused(): void;
  /** What the attempts of this method's calls count: requests per member, and replays. */
  attempts: AttemptCounters;
}

/** The proxy's metrics, all named etcd_topology_proxy_*. */
export class ProxyMetrics {
  readonly requests: Counter<'protocol' | 'service' | 'method' | 'code'>;
  readonly streamsInFlight: Gauge<'protocol' | 'service' | 'method'>;
  readonly upstreamLatency: Histogram<'protocol' | 'service' | 'method'>;
  readonly upstreamRequests: Counter<'member'>;
  readonly memberHealthy: Gauge<'member'>;
  readonly refreshes: Counter<'result'>;
  readonly loopDrops: Counter<'url'>;
  readonly readonlyRefusals: Counter<'protocol' | 'service' | 'method'>;
  readonly retries: Counter<'protocol' | 'service' | 'method' | 'reason'>;
  readonly clientCutOffs: Counter<'reason'>;
  readonly keepaliveFailures: Counter<'member'>;
  readonly slowConnects: Counter<'member'>;
  readonly leaderChanges: Counter;
  readonly streamsMovedToLeader: Counter;
  private readonly cache = new Map<string, MethodMetrics>();
  private readonly counts: MethodCounts[] = [];
  private readonly members = new Map<string, LocalCount>();

  constructor(registry: Registry, memberHealth: () => Iterable<[member: string, healthy: boolean]> = () => []) {
    const registers = [registry];
    // The hot path counts in plain numbers (prom-client hashes the labels on every update); the
    // counts reach the metrics when they are collected, so a scrape sees exactly what it saw before.
    const flush = (): void => this.flush();
    this.requests = new Counter({
      name: 'etcd_topology_proxy_requests_total',
      help: 'Requests handled, by protocol (grpc or http), etcd service, method and result code (gRPC status or HTTP status).',
      labelNames: ['protocol', 'service', 'method', 'code'],
      registers,
      collect: flush,
    });
    this.streamsInFlight = new Gauge({
      name: 'etcd_topology_proxy_streams_in_flight',
      help: 'Requests and streams open through the proxy now.',
      labelNames: ['protocol', 'service', 'method'],
      registers,
      collect: flush,
    });
    this.upstreamLatency = new Histogram({
      name: 'etcd_topology_proxy_upstream_latency_seconds',
      help: 'Time from forwarding a request to the first response headers from the member.',
      labelNames: ['protocol', 'service', 'method'],
      buckets: [0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.upstreamRequests = new Counter({
      name: 'etcd_topology_proxy_upstream_requests_total',
      help: 'Requests and streams forwarded, by member client URL.',
      labelNames: ['member'],
      registers,
      collect: flush,
    });
    this.memberHealthy = new Gauge({
      name: 'etcd_topology_proxy_member_healthy',
      help: '1 when the member answered the last time it was asked, is not held off, and does not report NOT_SERVING (gRPC health), else 0.',
      labelNames: ['member'],
      registers,
      collect() {
        // Members come and go with discovery: report exactly the current set at each scrape.
        this.reset();
        for (const [member, healthy] of memberHealth()) this.set({ member }, healthy ? 1 : 0);
      },
    });
    this.refreshes = new Counter({
      name: 'etcd_topology_proxy_refreshes_total',
      help: 'Member list refreshes, by result (success or failure).',
      labelNames: ['result'],
      registers,
    });
    this.loopDrops = new Counter({
      name: 'etcd_topology_proxy_loop_drops_total',
      help: 'Advertised client URLs dropped because they point at one of the proxy’s own listeners.',
      labelNames: ['url'],
      registers,
    });
    this.readonlyRefusals = new Counter({
      name: 'etcd_topology_proxy_readonly_refusals_total',
      help: 'Writes refused in readonly mode.',
      labelNames: ['protocol', 'service', 'method'],
      registers,
    });
    this.retries = new Counter({
      name: 'etcd_topology_proxy_retries_total',
      help: 'Calls sent again to another member, by reason: never_sent (the first member provably did not process it: no connection, GOAWAY, REFUSED_STREAM), unanswered_read (a read that got no answer), or not_applied (etcd answered with an error proving it did not apply the call, such as "raft proposal dropped" during a leader transfer; sent once more to the leader as learned again).',
      labelNames: ['protocol', 'service', 'method', 'reason'],
      registers,
    });
    this.clientCutOffs = new Counter({
      name: 'etcd_topology_proxy_client_connections_cut_off_total',
      help: 'Client HTTP/2 connections the proxy ended with a connection error, by reason: rapid_reset (too many streams reset before an answer), settings_timeout (SETTINGS not acknowledged within 10 s), protocol_error (malformed frames), internal_error.',
      labelNames: ['reason'],
      registers,
    });
    this.keepaliveFailures = new Counter({
      name: 'etcd_topology_proxy_member_keepalive_failures_total',
      help: 'Connections to a member closed because it did not answer a keepalive PING (or, on a new connection, send its SETTINGS) within 5 s.',
      labelNames: ['member'],
      registers,
    });
    this.slowConnects = new Counter({
      name: 'etcd_topology_proxy_member_slow_connects_total',
      help: 'Times calls stopped waiting for a new connection to a member whose TCP/TLS handshake had not finished after 1 s while another member could take them (a gRPC connection with its streams, or an HTTP connection opened for one request); the calls went to another member, unsent.',
      labelNames: ['member'],
      registers,
    });
    this.leaderChanges = new Counter({
      name: 'etcd_topology_proxy_leader_changes_seen_total',
      help: 'Leader elections the proxy saw: increases of the raft term, read from members\' Status (at every refresh and when a call reports that leadership moved) and from the header of every gRPC unary answer and LeaseKeepAlive response.',
      registers,
    });
    this.streamsMovedToLeader = new Counter({
      name: 'etcd_topology_proxy_streams_moved_to_leader_total',
      help: 'LeaseKeepAlive streams the proxy ended with UNAVAILABLE because the leader moved off their member (or was learned after they opened), so that the client opens them again on the leader.',
      registers,
    });
  }

  /** Registers the watch coalescing metrics, read from source at each collection. */
  watchCoalescing(registry: Registry, source: () => WatchCounts): void {
    const registers = [registry];
    new Gauge({
      name: 'etcd_topology_proxy_watch_client_watches',
      help: 'Watches clients have open through the proxy (created or being created), with watch coalescing on.',
      registers,
      collect() {
        this.set(source().clientWatches);
      },
    });
    new Gauge({
      name: 'etcd_topology_proxy_watch_upstream_watches',
      help: 'Watches the proxy has open on members to serve its clients\' watches; identical client watches share one.',
      registers,
      collect() {
        this.set(source().upstreamWatches);
      },
    });
    const delta = (read: (c: WatchCounts) => number): (() => number) => {
      let seen = 0;
      return () => {
        const now = read(source());
        const d = now - seen;
        seen = now;
        return d;
      };
    };
    const coalesced = delta((c) => c.coalescedEvents);
    new Counter({
      name: 'etcd_topology_proxy_watch_coalesced_events_total',
      help: 'Watch events delivered to client watches that no member had to send for them: for each event a member sent, the client watches it reached, less one.',
      registers,
      collect() {
        this.inc(coalesced());
      },
    });
    const slow = delta((c) => c.slowClients);
    new Counter({
      name: 'etcd_topology_proxy_watch_slow_clients_cancelled_total',
      help: 'Client watch streams ended with RESOURCE_EXHAUSTED because their client left more watch responses unread than --watch-client-buffer allows.',
      registers,
      collect() {
        this.inc(slow());
      },
    });
  }

  /** The upstream_requests_total count for one member. */
  memberRequests(member: string): { inc(): void } {
    let c = this.members.get(member);
    if (c === undefined) this.members.set(member, (c = new LocalCount()));
    return c;
  }

  /** The cached label children and counts for one method. */
  method(protocol: 'grpc' | 'http', service: string, method: string): MethodMetrics {
    const key = `${protocol} ${service} ${method}`;
    let m = this.cache.get(key);
    if (m === undefined) {
      const labels = { protocol, service, method };
      const counts: MethodCounts = { labels, inFlight: 0, codes: new Map() };
      this.counts.push(counts);
      const refusals = this.readonlyRefusals.labels(labels);
      const replays = {
        never_sent: this.retries.labels({ ...labels, reason: 'never_sent' }),
        unanswered_read: this.retries.labels({ ...labels, reason: 'unanswered_read' }),
        not_applied: this.retries.labels({ ...labels, reason: 'not_applied' }),
      };
      m = {
        inFlight: {
          inc: () => void counts.inFlight++,
          dec: () => void counts.inFlight--,
        },
        latency: this.upstreamLatency.labels(labels),
        done: (code) => {
          let c = counts.codes.get(code);
          if (c === undefined) counts.codes.set(code, (c = new LocalCount()));
          c.n++;
        },
        refused: () => refusals.inc(),
        attempts: {
          sent: (member) => this.memberRequests(member).inc(),
          replayed: (reason) => replays[reason].inc(),
        },
      };
      this.cache.set(key, m);
    }
    return m;
  }

  /** Moves the plain counts into the prom-client metrics; runs on every collection. */
  private flush(): void {
    for (const c of this.counts) {
      this.streamsInFlight.set(c.labels, c.inFlight);
      for (const [code, count] of c.codes) {
        const delta = count.take();
        if (delta > 0) this.requests.inc({ ...c.labels, code }, delta);
      }
    }
    for (const [member, count] of this.members) {
      const delta = count.take();
      if (delta > 0) this.upstreamRequests.inc({ member }, delta);
    }
  }
}

/** What the watch coalescing metrics read. */
export interface WatchCounts {
  clientWatches: number;
  upstreamWatches: number;
  coalescedEvents: number;
  slowClients: number;
}

/** A count kept as a plain number; take() returns what was added since the last take. */
class LocalCount {
  n = 0;
  private taken = 0;
  inc(): void {
    this.n++;
  }
  take(): number {
    const delta = this.n - this.taken;
    this.taken = this.n;
    return delta;
  }
}

interface MethodCounts {
  labels: { protocol: string; service: string; method: string };
  inFlight: number;
  codes: Map<string, LocalCount>;
}
