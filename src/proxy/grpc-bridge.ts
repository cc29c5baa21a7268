import type { Logger } from '../telemetry/logger.ts';
import type { ActiveCall } from './active-calls.ts';
import { CallAttempts } from './attempts.ts';
import { classifyEtcdError, responseRaftTerm, type EtcdErrorVerdict } from './etcd-errors.ts';
import type { ForwardDeps } from './forward-deps.ts';
import { LeaderBoundStream } from './leader.ts';
import { decodeGrpcMessage, endWithStatus, forwardedHeaders, Status, statusName } from './grpc-status.ts';
import { ErrorCode } from './h2/frames.ts';
import type { H2Stream, ResetCause, StreamHandler } from './h2/stream.ts';
import type { MemberConnection } from './member-connections.ts';
import type { MethodMetrics } from './metrics.ts';
import { grpcMethod, type MethodInfo } from './methods.ts';
import { classifyGrpc, needsBody } from './readonly.ts';

// A unary request waits until it is complete, so that it goes out in one write and can be replayed;
// past this size it starts streaming to the member (it must stay below the client's stream window,
// or a client waiting for window would never complete the request).
const DEFER_LIMIT = 512 * 1024;
// Request bytes kept until the member answers, so that a call can go to another member when the
// first failed before answering. Past this, the call can no longer be replayed.
const REPLAY_LIMIT = 1024 * 1024;
// A Txn or Alarm inspected in readonly mode is buffered whole; etcd's own limit is 1.5 MiB by default.
const CLASSIFY_LIMIT = 16 * 1024 * 1024;

// Services etcd serves; other gRPC services are answered UNIMPLEMENTED by the proxy itself.
const etcdServices = /^\/(etcdserverpb|v3lockpb|v3electionpb|grpc\.health\.v1)\.[A-Za-z]+\/[A-Za-z]+$/;

const responsePseudo = [':status'] as const;

/**
 * Forwards one gRPC call from a client's HTTP/2 stream (down) to a stream on a member's connection
 * (up), frame by frame: headers re-encoded for the member's connection, DATA payloads passed on as
 * received, flow control end to end (each side's window is credited only as the other side accepts
 * the bytes), resets and lost connections mapped both ways.
 */
export function forwardGrpc(deps: ForwardDeps, down: H2Stream, headers: string[], downEnded: boolean, log: Logger): void {
  const path = header(headers, ':path') ?? '';
  const call = new GrpcCall(deps, down, headers, path, grpcMethod(path), log);
  down.handler = call;
  call.start(downEnded);
}

class GrpcCall implements ActiveCall, StreamHandler {
  readonly streaming: boolean;
  private readonly deps: ForwardDeps;
  private readonly down: H2Stream;
  private readonly headers: string[];
  private readonly path: string;
  private readonly info: MethodInfo | undefined;
  private readonly m: MethodMetrics;
  private readonly log: Logger;
  private readonly attempts: CallAttempts;
  private up: H2Stream | undefined;
  private upConn: MemberConnection | undefined;
  // Request bytes received so far, for a replay on another member (undefined once past REPLAY_LIMIT)
  // and, until the call is sent, for sending.
  private pending: Buffer[] | undefined = [];
  private pendingBytes = 0;
  // Request bytes received from the client and not yet credited back to it.
  private uncredited = 0;
  private classifying = false;
  private deferred = false;
  private downEnded = false;
  private answered = false;
  private finished = false;
  private sentAt = 0;
  // The leader and raft term as known when the current attempt was sent to the leader: a call etcd
  // did not apply waits until what is known has moved on from them.
  private sentToLeader: string | undefined;
  private sentTerm: number | undefined;
  private termRead = false;
  // A stream that belongs on the leader (LeaseKeepAlive): ended once the leader is another member.
  private leaderBound: LeaderBoundStream | undefined;

  constructor(deps: ForwardDeps, down: H2Stream, headers: string[], path: string, info: MethodInfo | undefined, log: Logger) {
    this.deps = deps;
    this.down = down;
    this.headers = headers;
    this.path = path;
    this.info = info;
    this.log = log;
    this.streaming = info?.streaming ?? true;
    if (info) this.m = deps.metrics.method('grpc', info.service, info.method);
    else {
      const slash = path.lastIndexOf('/');
      this.m = deps.metrics.method('grpc', path.slice(1, Math.max(slash, 1)) || 'unknown', 'other');
    }
    this.attempts = new CallAttempts(deps.upstreams, this.m.attempts, info?.retry === true, info?.leader === true && deps.leaderRouting);
  }

  start(downEnded: boolean): void {
    const { deps, info } = this;
    this.downEnded = downEnded;
    deps.calls.add(this);
    this.m.inFlight.inc();
    const known = info !== undefined || etcdServices.test(this.path);
    if (!known || (deps.readonly && info === undefined)) {
      if (deps.readonly && known) this.m.refused();
      this.fail(Status.UNIMPLEMENTED, deps.readonly ? classifyGrpcReason(this.path) : `unknown service or method ${this.path}`);
      return;
    }
    if (deps.readonly) {
      if (needsBody(info!)) {
        this.classifying = true;
        if (downEnded) this.requestComplete();
        return; // decided once the whole request is here
      }
      const verdict = classifyGrpc(this.path);
      if (!verdict.allow) {
        this.m.refused();
        this.fail(Status.UNIMPLEMENTED, verdict.reason);
        return;
      }
    }
    if (!this.streaming && !downEnded) {
      this.deferred = true;
      return; // sent once complete, or once the request grows past DEFER_LIMIT
    }
    this.connect();
  }

  abort(reason: string): void {
    this.fail(Status.UNAVAILABLE, reason);
  }

  // --- StreamHandler, for both streams ---------------------------------------------------------

  onHeaders(stream: H2Stream, headers: string[], endStream: boolean): void {
    if (stream === this.down) {
      // Request trailers are not part of gRPC; only their END_STREAM matters.
      if (endStream) this.onDownData(Buffer.alloc(0), true);
      return;
    }
    if (stream !== this.up || this.finished) return;
    if (!stream.headersReceived) {
      stream.headersReceived = true;
      this.onResponse(headers, endStream);
      return;
    }
    // Trailers: the status, ending the response (too late to send the call again, not to learn from it).
    this.learnFrom(headers);
    const code = statusName(header(headers, 'grpc-status'));
    this.down.sendTrailers(forwardedHeaders(headers, []));
    this.complete(code);
    this.releaseUp();
  }

  onData(stream: H2Stream, data: Buffer, endStream: boolean): void {
    if (stream === this.down) this.onDownData(data, endStream);
    else if (stream === this.up) this.onUpData(data, endStream);
  }

  onReset(stream: H2Stream, code: number, cause: ResetCause): void {
    if (stream === this.down) this.onDownReset();
    else if (stream === this.up) this.onUpReset(code, cause);
  }

  onSent(stream: H2Stream, bytes: number): void {
    if (stream === this.up) this.creditDown(bytes);
    else if (stream === this.down) this.up?.credit(bytes);
  }

  // --- client to member ------------------------------------------------------------------------

  private onDownData(chunk: Buffer, endStream: boolean): void {
    if (this.finished) return;
    if (chunk.length > 0) {
      this.uncredited += chunk.length;
      if (this.pending !== undefined) {
        this.pending.push(chunk);
        this.pendingBytes += chunk.length;
        if (this.classifying) {
          // Held whole for the check (bounded by CLASSIFY_LIMIT), so credited at once.
          this.creditDown(chunk.length);
          if (this.pendingBytes > CLASSIFY_LIMIT) {
            this.fail(Status.RESOURCE_EXHAUSTED, 'request too large for the read-only check');
            return;
          }
        } else if (this.up === undefined) {
          if (this.deferred && this.pendingBytes >= DEFER_LIMIT) {
            this.deferred = false;
            this.connect(); // writes what came so far, then streams the rest with backpressure
          }
        } else {
          this.creditDown(this.up.sendData(chunk));
        }
        if (this.pending !== undefined && this.pendingBytes > REPLAY_LIMIT && this.up !== undefined) this.pending = undefined;
      } else if (this.up !== undefined) {
        this.creditDown(this.up.sendData(chunk));
      }
    }
    if (endStream) {
      this.downEnded = true;
      this.requestComplete();
    }
  }

  private requestComplete(): void {
    if (this.finished) return;
    if (this.classifying) {
      this.classifying = false;
      const pending = this.pending ?? [];
      const body = pending.length === 1 ? pending[0]! : Buffer.concat(pending);
      const verdict = classifyGrpc(this.path, body, header(this.headers, 'grpc-encoding'));
      if (!verdict.allow) {
        this.m.refused();
        this.fail(Status.UNIMPLEMENTED, verdict.reason);
        return;
      }
      this.connect();
      return;
    }
    if (this.deferred) {
      this.deferred = false;
      this.connect();
      return;
    }
    this.up?.end();
  }

  private creditDown(bytes: number): void {
    const n = Math.min(bytes, this.uncredited);
    if (n <= 0) return;
    this.uncredited -= n;
    this.down.credit(n);
  }

  private onDownReset(): void {
    if (this.finished) return;
    // The client reset the stream or went away: cancel upstream the way gRPC expects.
    this.up?.reset(ErrorCode.CANCEL);
    this.up = undefined;
    this.complete('CANCELLED');
  }

  /** Sends the call to a member: the next one, or (afterNotApplied) the leader as learned again. */
  private connect(afterNotApplied = false): void {
    const { deps } = this;
    if (this.attempts.toLeader && this.attempts.count === 0 && this.isReadOnlyTxn()) this.attempts.toLeader = false;
    const member = afterNotApplied ? this.attempts.nextAfterNotApplied() : this.attempts.next();
    this.sentToLeader = member === deps.upstreams.knownLeader ? member : undefined;
    this.sentTerm = deps.leaders.knownTerm;
    if (member === undefined) {
      this.fail(Status.UNAVAILABLE, this.attempts.unavailable());
      return;
    }
    if (this.streaming && this.attempts.toLeader) {
      this.leaderBound?.close();
      this.leaderBound = new LeaderBoundStream(deps.leaders, member, (leader) => this.leaderMoved(member, leader));
    }
    const entry = deps.members.get(member);
    const pending = this.pending;
    // A complete request with no body goes as one HEADERS frame that ends the stream.
    const endStream = this.downEnded && (pending === undefined || pending.length === 0);
    const out = [':method', 'POST', ':scheme', entry.scheme, ':path', this.path, ':authority', entry.authority];
    const rest = forwardedHeaders(this.headers, []);
    for (let i = 0; i < rest.length; i++) out.push(rest[i]!);
    this.upConn = entry;
    this.sentAt = performance.now();
    const up = entry.conn.request(out, endStream, this);
    this.up = up;
    if (pending !== undefined && !endStream) {
      for (let i = 0; i < pending.length; i++) {
        const last = this.downEnded && i === pending.length - 1;
        this.creditDown(up.sendData(pending[i]!, last));
      }
      if (this.pendingBytes > REPLAY_LIMIT) this.pending = undefined;
    }
  }

  /** A Txn whose request is here whole and has no put, delete or nested txn: a read, spread like one. */
  private isReadOnlyTxn(): boolean {
    if (this.info?.access !== 'txn' || !this.downEnded || this.pending === undefined) return false;
    const body = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    return classifyGrpc(this.path, body, header(this.headers, 'grpc-encoding')).allow;
  }

  // --- member to client ------------------------------------------------------------------------

  private onResponse(headers: string[], endStream: boolean): void {
    if (endStream && this.notApplied(headers)) return;
    this.answered = true;
    this.pending = undefined;
    this.m.latency.observe((performance.now() - this.sentAt) / 1000);
    this.attempts.answered();
    const out = forwardedHeaders(headers, responsePseudo);
    if (endStream) {
      // Trailers-only: the status rides on the one HEADERS frame, which ends the stream here too.
      this.down.sendHeaders(out, true);
      this.complete(statusName(header(headers, 'grpc-status')));
      this.releaseUp();
      return;
    }
    this.down.sendHeaders(out, false);
  }

  private onUpData(data: Buffer, endStream: boolean): void {
    if (this.finished || !this.up!.headersReceived) return;
    if (!this.termRead && !this.streaming) {
      // The first bytes of a unary answer hold its ResponseHeader: a higher raft term than known
      // means an election happened, and the leader is learned again now.
      this.termRead = true;
      const term = responseRaftTerm(data);
      if (term !== undefined) this.deps.leaders.observeTerm(term);
    }
    this.leaderBound?.observe(data);
    if (data.length > 0) this.up!.credit(this.down.sendData(data));
    if (endStream) this.fail(Status.INTERNAL, 'etcd member sent no status');
  }

  /** The leader moved off the member of a stream that belongs on the leader: the client opens it again, and it goes there. */
  private leaderMoved(member: string, leader: string): void {
    this.log.debug({ path: this.path, member, leader }, 'Ending a stream on a former leader so that it is opened again on the new one');
    this.deps.metrics.streamsMovedToLeader.inc();
    this.fail(Status.UNAVAILABLE, `etcd-topology proxy: the etcd leader is now ${leader}, not ${member}; open this stream again and it goes to the new leader`);
  }

  private onUpReset(code: number, cause: ResetCause): void {
    if (this.finished) return;
    const conn = this.upConn!;
    const member = this.attempts.member;
    this.up = undefined;
    if (cause === 'peer' && code === ErrorCode.CANCEL) {
      this.down.reset(ErrorCode.CANCEL);
      this.complete('CANCELLED');
      return;
    }
    // Refused streams (above a GOAWAY's last-stream-id, or REFUSED_STREAM) were never processed.
    const neverSent = !conn.connected || cause === 'goaway' || code === ErrorCode.REFUSED_STREAM;
    const loss = { neverSent, memberFailed: cause === 'connection' };
    if (!this.answered) {
      // The whole request is still held (pending) and the client still waits: it may go elsewhere.
      if (this.attempts.lost(loss, this.pending !== undefined && !this.down.isClosed)) {
        this.log.debug({ path: this.path, member }, 'Sent a call again to another etcd member');
        this.connect();
        return;
      }
      const why = cause === 'peer' ? `stream reset ${code}` : cause === 'goaway' ? 'connection going away' : 'connection lost';
      this.fail(Status.UNAVAILABLE, `etcd member ${member} failed before answering (${why})`);
      return;
    }
    this.attempts.lost(loss, false);
    this.fail(Status.UNAVAILABLE, cause === 'peer' ? `etcd member ${member} reset the stream (HTTP/2 error ${code})` : `connection to etcd member ${member} was lost`);
  }

  /**
   * A trailers-only answer (how etcd answers every unary error): learns the leader again when it
   * says leadership moved, and when it proves etcd did not apply a unary call that is still held
   * whole, sends that call once more instead of passing the error on: to the leader once it is
   * learned again (LeaderTracker.beforeReplay), or at once to another member for a call that
   * does not go to the leader. Returns whether the call was kept for that.
   */
  private notApplied(headers: readonly string[]): boolean {
    const verdict = this.learnFrom(headers);
    if (verdict === undefined || !verdict.notApplied || this.streaming) return false;
    if (!this.attempts.notApplied(this.pending !== undefined && !this.down.isClosed)) return false;
    const member = this.attempts.member;
    this.up = undefined;
    this.log.debug({ path: this.path, member, reason: verdict.reason }, 'Sending a call etcd did not apply once more');
    if (!this.attempts.toLeader) {
      this.connect(true);
      return true;
    }
    void this.deps.leaders.beforeReplay(this.sentToLeader, this.sentTerm).then(() => {
      if (!this.finished && !this.down.isClosed) this.connect(true);
    });
    return true;
  }

  /** Classifies an error status from the member, and asks for the leader to be learned again when it says leadership moved. */
  private learnFrom(headers: readonly string[]): EtcdErrorVerdict | undefined {
    const status = header(headers, 'grpc-status');
    if (status === undefined || status === '0') return undefined;
    const verdict = classifyEtcdError(Number(status), decodeGrpcMessage(header(headers, 'grpc-message')));
    if (verdict.relearn) void this.deps.leaders.relearn();
    return verdict;
  }

  /** Ends the call with a status of the proxy's own, as trailers or a trailers-only response. */
  private fail(code: number, message: string): void {
    if (this.finished) return;
    this.up?.reset(ErrorCode.CANCEL);
    this.up = undefined;
    endWithStatus(this.down, code, message);
    this.complete(statusName(code));
  }

  /**
   * The member ended its side with the status. A stream whose request side the proxy has not ended
   * (a stream call the member finished first) is cancelled so that it closes; one the proxy ended
   * closes by itself.
   */
  private releaseUp(): void {
    const up = this.up;
    if (up !== undefined && !up.isClosed && !up.localEnded) up.reset(ErrorCode.CANCEL);
  }

  private complete(code: string): void {
    if (this.finished) return;
    this.finished = true;
    this.attempts.finish();
    this.leaderBound?.close();
    this.pending = undefined;
    this.m.done(code);
    this.m.inFlight.dec();
    this.deps.calls.delete(this);
  }
}

/** The first value of a header in a flat list. */
function header(headers: readonly string[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) return headers[i + 1];
  return undefined;
}

function classifyGrpcReason(path: string): string {
  const verdict = classifyGrpc(path);
  return verdict.allow ? `unknown service or method ${path}` : verdict.reason;
}
