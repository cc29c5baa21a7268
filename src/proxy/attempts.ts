import type { UpstreamSet } from './upstreams.ts';

/**
 * A new connection to a member that has not finished its TCP and TLS handshakes this long after it
 * was opened is closed when another member could take its calls (HTTP: the connection a call's
 * request opened; gRPC: the connection, every stream on it), and those calls go to another member:
 * nothing was written to the member yet (a TLS client sends no request before its handshake is
 * done), so this is a never-sent replay, never a second write. It is what a member whose listener is
 * bound but that does not serve yet looks like: etcd binds its client port at start and serves only
 * once it has joined the cluster (or after --wait-cluster-ready-timeout, 5 s), and the kernel
 * completes the TCP handshake meanwhile. A handshake on loopback or a pod network takes
 * milliseconds, even on a loaded node; the last member left still gets the full connect timeout.
 */
export const CONNECT_FALLBACK_MS = 1_000;

/** How an attempt on a member ended without an answer. */
export interface AttemptLoss {
  /**
   * The member provably did not process the request: its connection never opened, or it refused
   * the stream (above its GOAWAY's last-stream-id, or REFUSED_STREAM; RFC 9113, section 8.7).
   */
  neverSent: boolean;
  /** The member itself failed (its connection broke or would not open), so it is held off. */
  memberFailed: boolean;
}

/**
 * Why a call was sent again: the first member never processed it, it is a read that got no answer,
 * or etcd answered with an error that proves it did not apply it (etcd-errors.ts).
 */
export type ReplayReason = 'never_sent' | 'unanswered_read' | 'not_applied';

/** What the attempts report to metrics. */
export interface AttemptCounters {
  /** A request or stream forwarded to member. */
  sent(member: string): void;
  /** The call is sent again to another member. */
  replayed(reason: ReplayReason): void;
}

/**
 * One call's attempts on members, the one place (for gRPC and HTTP alike) that picks the member,
 * tells the member health owner (the UpstreamSet) what happened and how many calls each member has
 * open, and decides whether the call may go to another member: only when that member could not
 * have applied it (never sent, or etcd answered that it did not), or when the call is a read that
 * can be asked twice (a unary read, or a plain HTTP endpoint) and this was its first attempt.
 * Anything else that may have reached a member is never sent twice. The caller says whether it
 * still holds the whole request to send again (replayable).
 */
export class CallAttempts {
  private readonly upstreams: UpstreamSet;
  private readonly counters: AttemptCounters;
  private readonly idempotent: boolean;
  /** A write that goes to the leader when it is known (a read-only Txn is found out only once its body is in). */
  toLeader: boolean;
  private readonly tried = new Set<string>();
  private current: string | undefined;
  // Whether the current attempt still counts as outstanding on its member.
  private open = false;
  private notAppliedReplays = 0;

  /** idempotent: a read that may be asked twice; toLeader: a write that goes to the leader when it is known. */
  constructor(upstreams: UpstreamSet, counters: AttemptCounters, idempotent: boolean, toLeader = false) {
    this.upstreams = upstreams;
    this.counters = counters;
    this.idempotent = idempotent;
    this.toLeader = toLeader;
  }

  /** The member of the current attempt ('' before the first). */
  get member(): string {
    return this.current ?? '';
  }

  /** How many members were tried so far. */
  get count(): number {
    return this.tried.size;
  }

  /**
   * Picks a member not tried yet for the next attempt and counts it: the leader first for a write
   * (a follower would forward it, one hop and one failure point more), else the rotation; undefined
   * when none is available.
   */
  next(): string | undefined {
    return this.send((this.toLeader ? this.upstreams.pickLeader(this.tried) : undefined) ?? this.upstreams.pick(this.tried));
  }

  /**
   * Picks the member for the replay of a call etcd did not apply (after notApplied): the leader as
   * learned again, even one tried before (leadership may have come back to it), else another member.
   */
  nextAfterNotApplied(): string | undefined {
    return this.send((this.toLeader ? this.upstreams.pickLeader() : undefined) ?? this.upstreams.pick(this.tried) ?? this.upstreams.pick());
  }

  private send(member: string | undefined): string | undefined {
    this.finish();
    if (member === undefined) return undefined;
    this.tried.add(member);
    this.current = member;
    this.open = true;
    this.upstreams.begin(member);
    this.counters.sent(member);
    return member;
  }

  /** Whether another member, not tried yet and not held off, could take the call if the current attempt fails. */
  hasAlternative(): boolean {
    return this.upstreams.hasAvailable(this.tried);
  }

  /** The current attempt is over (the answer ended, or the call was cancelled): its member has one call less open. */
  finish(): void {
    if (!this.open) return;
    this.open = false;
    this.upstreams.done(this.current!);
  }

  /** The member answered (response headers arrived): it is healthy, and the call is past any replay. */
  answered(): void {
    if (this.current !== undefined) this.upstreams.markAnswered(this.current);
  }

  /**
   * The current attempt was lost before an answer. Holds a failed member off, and returns whether
   * the call may be sent to another member now (the caller then calls next()).
   */
  lost(loss: AttemptLoss, replayable: boolean): boolean {
    this.finish();
    if (loss.memberFailed && this.current !== undefined) this.upstreams.markFailed(this.current);
    const reason: ReplayReason | undefined = loss.neverSent ? 'never_sent' : this.idempotent && this.tried.size < 2 ? 'unanswered_read' : undefined;
    // A call no member has seen may also go to a member that is held off (next() then picks the one
    // whose hold ends first): failing it at once is certain, and a hold is only a guess. During a CA
    // rotation's rolling restart one member restarts while another was held off a moment before.
    const left = reason === 'never_sent' ? this.upstreams.list().some((m) => !this.tried.has(m.url)) : this.upstreams.hasAvailable(this.tried);
    if (!replayable || reason === undefined || !left) return false;
    this.counters.replayed(reason);
    return true;
  }

  /**
   * The member answered with an error that proves etcd did not apply the call (etcd-errors.ts).
   * Returns whether the call may be sent once more (then the caller waits for the leader to be
   * learned again and calls nextAfterNotApplied): once per call, and only while the whole request
   * is still held.
   */
  notApplied(replayable: boolean): boolean {
    this.finish();
    if (!replayable || this.notAppliedReplays > 0) return false;
    this.notAppliedReplays++;
    this.counters.replayed('not_applied');
    return true;
  }

  /** Words for the client when no member took the call. */
  unavailable(): string {
    return this.current === undefined ? 'no etcd member is available' : `etcd member ${this.current} failed and no other member is available`;
  }
}
