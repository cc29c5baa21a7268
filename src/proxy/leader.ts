import type { Logger } from '../telemetry/logger.ts';
import { responseRaftTerm } from './etcd-errors.ts';
import { frameMessage, MessageReader } from './grpc-frame.ts';
import { readJson, type HttpUpstreams } from './http1-upstreams.ts';
import { objectOf, uint64Field } from './json-fields.ts';
import type { ProxyMetrics } from './metrics.ts';
import type { UpstreamSet } from './upstreams.ts';

/** One member's answer to Status: who it is, whom it follows, and at which raft term. */
export interface StatusAnswer {
  url: string;
  memberId: string;
  /** The leader's member ID as this member sees it ('0': none). */
  leaderId: string;
  term: number;
}

/** A JSON gateway Status answer from the member at url (proto or JSON field names), or undefined. */
export function parseStatus(url: string, body: unknown): StatusAnswer | undefined {
  const d = objectOf(body);
  if (d === undefined) return undefined;
  const header = objectOf(d['header']);
  const memberId = uint64Field(header, 'member_id') ?? uint64Field(header, 'memberId');
  const term = Number(uint64Field(d, 'raft_term') ?? uint64Field(d, 'raftTerm') ?? uint64Field(header, 'raft_term') ?? uint64Field(header, 'raftTerm'));
  if (memberId === undefined || !Number.isSafeInteger(term) || term <= 0) return undefined;
  return { url, memberId, leaderId: uint64Field(d, 'leader') ?? '0', term };
}

/**
 * The leader's client URL from members' Status answers, and the term it leads in. Authoritative is
 * only a member that names itself the leader at the highest term any member reports: a follower's
 * view may lag (it names the old leader until it hears from the new one), and a leader cut off from
 * the others still names itself, but at an older term. ResponseHeader.member_id in ordinary answers
 * names the member that answered, never the leader, so it is not used. undefined: no leader known.
 */
export function leaderFromStatuses(answers: readonly StatusAnswer[]): { leader: string | undefined; term: number | undefined } {
  if (answers.length === 0) return { leader: undefined, term: undefined };
  const term = Math.max(...answers.map((a) => a.term));
  const self = answers.find((a) => a.term === term && a.leaderId !== '0' && a.leaderId === a.memberId);
  return { leader: self?.url, term };
}

export interface LeaderTrackerOptions {
  upstreams: UpstreamSet;
  http: HttpUpstreams;
  metrics: ProxyMetrics;
  log: Logger;
  /** How long one member may take to answer Status. */
  askTimeoutMs?: number;
}

// How long a call that etcd did not apply waits for the leader to be learned again before it is
// sent once more (a leader transfer ends within an election timeout, 1 s by default).
const NOT_APPLIED_WAIT_MS = 2000;

// Probes are coalesced: while one runs, more requests for one make a single probe after it, at
// most one per this interval, so a burst of errors from many calls costs one round of Status calls.
const MIN_PROBE_INTERVAL_MS = 50;

/**
 * Knows the leader: asks every member's Status (in parallel, over the JSON gateway) at each member
 * list refresh and whenever a call reports that leadership moved (a higher raft term in a response
 * header, or an etcd error that says so), and tells the upstream set. Counts elections by the raft
 * term.
 */
export class LeaderTracker {
  private readonly o: LeaderTrackerOptions;
  private term: number | undefined;
  private probing: Promise<void> | undefined;
  private pending: Promise<void> | undefined;
  private lastProbe = 0;
  private stopped = false;
  private readonly listeners = new Set<(leader: string) => void>();

  constructor(options: LeaderTrackerOptions) {
    this.o = options;
  }

  /** The highest raft term seen. */
  get knownTerm(): number | undefined {
    return this.term;
  }

  /**
   * A raft term from a response header. A higher one than known means an election happened since
   * the leader was learned: it is learned again now, not at the next refresh.
   */
  observeTerm(term: number): void {
    if (this.term !== undefined && term <= this.term) return;
    this.raiseTerm(term, 'a response header');
    void this.relearn();
  }

  /** Learns the leader again soon (coalesced with a probe already running). */
  relearn(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.probing === undefined) return this.startProbe();
    // One probe more after the running one, shared by everyone who asks meanwhile.
    this.pending ??= this.probing.then(() => {
      this.pending = undefined;
      return this.startProbe();
    });
    return this.pending;
  }

  /**
   * Resolves true once the leader differs from leader or the term passed term, asking again every
   * MIN_PROBE_INTERVAL_MS; false after timeoutMs without a change (the caller then uses what is
   * known: the same leader may simply lead again).
   */
  async changedSince(leader: string | undefined, term: number | undefined, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    const changed = (): boolean => this.o.upstreams.knownLeader !== leader || (this.term ?? 0) > (term ?? 0);
    while (!this.stopped) {
      await this.relearn();
      if (changed() && this.o.upstreams.knownLeader !== undefined) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await new Promise((r) => setTimeout(r, Math.min(MIN_PROBE_INTERVAL_MS, left)));
    }
    return false;
  }

  /**
   * Waits, before a call etcd did not apply is sent once more, until the leader is learned again:
   * until it differs from sentTo (the leader the call went to, undefined when it went elsewhere) or
   * the term passed the one known when it was sent, at most NOT_APPLIED_WAIT_MS.
   */
  async beforeReplay(sentTo: string | undefined, term: number | undefined): Promise<void> {
    await this.changedSince(sentTo, term, NOT_APPLIED_WAIT_MS);
  }

  /** Calls fn with the leader's client URL each time a new leader is learned; returns what stops that. */
  onLeaderChange(fn: (leader: string) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Stops probing. */
  stop(): void {
    this.stopped = true;
  }

  private startProbe(): Promise<void> {
    const wait = Math.max(0, this.lastProbe + MIN_PROBE_INTERVAL_MS - performance.now());
    const run = async (): Promise<void> => {
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      this.lastProbe = performance.now();
      try {
        await this.probe();
      } finally {
        this.probing = undefined;
      }
    };
    this.probing = run();
    return this.probing;
  }

  /** Asks every member's Status; a member that names itself leader at a term not below the known one is used at once. */
  private async probe(): Promise<void> {
    const { upstreams } = this.o;
    const answers: StatusAnswer[] = [];
    await Promise.all(
      upstreams.list().map(async (m) => {
        const answer = await this.askStatus(m.url);
        if (answer === undefined) return;
        answers.push(answer);
        if (answer.leaderId === answer.memberId && answer.term >= (this.term ?? 0)) this.apply(answer.url, answer.term);
      }),
    );
    if (answers.length === 0) return; // nobody answered: keep what is known; calls and refreshes will tell
    const { leader, term } = leaderFromStatuses(answers);
    this.apply(leader, term);
  }

  private apply(leader: string | undefined, term: number | undefined): void {
    const { upstreams, log } = this.o;
    if (term !== undefined && this.term !== undefined && term < this.term) return; // an answer older than what is known
    if (term !== undefined) this.raiseTerm(term, 'a member status');
    if (leader === upstreams.knownLeader) return;
    upstreams.setLeader(leader);
    if (leader === undefined) {
      log.info({ term }, 'The etcd leader is not known; writes spread over the members');
      return;
    }
    log.info({ leader, term }, 'Learned the etcd leader; writes go to it');
    for (const fn of [...this.listeners]) fn(leader);
  }

  private raiseTerm(term: number, source: string): void {
    if (this.term !== undefined && term > this.term) {
      this.o.metrics.leaderChanges.inc(term - this.term);
      this.o.log.info({ term, previous: this.term, source }, 'Saw a leader election in the etcd cluster');
    }
    if (this.term === undefined || term > this.term) this.term = term;
  }

  private async askStatus(url: string): Promise<StatusAnswer | undefined> {
    try {
      const res = await this.o.http.request(url, {
        method: 'POST',
        path: '/v3/maintenance/status',
        headers: { 'content-type': 'application/json' },
        body: '{}',
        signal: AbortSignal.timeout(this.o.askTimeoutMs ?? 1000),
      });
      const body = await readJson(res.body);
      return res.statusCode === 200 ? parseStatus(url, body) : undefined;
    } catch (err) {
      this.o.log.debug({ member: url, err: (err as Error).message }, 'Failed to read the member status');
      return undefined;
    }
  }
}

// LeaseKeepAlive responses are a header, a lease ID and a TTL; anything far larger is not one.
const MAX_KEEPALIVE_RESPONSE = 64 * 1024;

/**
 * Keeps a stream that belongs on the leader (LeaseKeepAlive) there. A follower forwards each
 * keepalive to the leader, so a stream opened before a leader change would go on costing the old
 * leader, now a follower, a hop per keepalive; and when the leader is not known at open, the stream
 * goes to any member. This reads the raft term in each response the member sends on the stream
 * (a higher one means an election: the tracker learns the leader again at once, even when nothing
 * else flows through the proxy), and calls moved once the leader is learned to be another member
 * than the stream's. The caller then ends the client's stream with UNAVAILABLE: clientv3's
 * keepalive loop (and grpc-js clients') opens the stream again after an error and sends the
 * keepalives of every lease on it, and the new stream goes to the leader. A keepalive in flight is
 * lost, which costs nothing: the next one renews the lease, and each is sent a third of the TTL
 * before it would expire.
 */
export class LeaderBoundStream {
  private readonly leaders: LeaderTracker;
  private readonly member: string;
  private readonly unsubscribe: () => void;
  private reader: MessageReader | undefined = new MessageReader(MAX_KEEPALIVE_RESPONSE);

  /** member: the client URL of the member the stream went to. */
  constructor(leaders: LeaderTracker, member: string, moved: (leader: string) => void) {
    this.leaders = leaders;
    this.member = member;
    this.unsubscribe = leaders.onLeaderChange((leader) => {
      if (leader !== this.member) moved(leader);
    });
  }

  /** DATA the member sent on the stream. */
  observe(data: Uint8Array): void {
    if (this.reader === undefined) return;
    let messages: Uint8Array[];
    try {
      messages = this.reader.push(data);
    } catch {
      // Compressed or not a keepalive response: the client's gRPC library judges the bytes; the
      // stream is still moved when the leader is learned from elsewhere.
      this.reader = undefined;
      return;
    }
    for (const m of messages) {
      const term = responseRaftTerm(frameMessage(m.subarray(0, Math.min(m.length, 64))));
      if (term !== undefined) this.leaders.observeTerm(term);
    }
  }

  /** The stream ended. */
  close(): void {
    this.unsubscribe();
    this.reader = undefined;
  }
}
