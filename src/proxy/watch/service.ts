import type { Logger } from '../../telemetry/logger.ts';
import type { ActiveCall } from '../active-calls.ts';
import { CallAttempts } from '../attempts.ts';
import type { ForwardDeps } from '../forward-deps.ts';
import { frameMessage, MessageReader } from '../grpc-frame.ts';
import { endWithStatus, Status, statusName } from '../grpc-status.ts';
import { ErrorCode } from '../h2/frames.ts';
import type { H2Stream, ResetCause, StreamHandler } from '../h2/stream.ts';
import type { MemberConnection } from '../member-connections.ts';
import type { MethodMetrics } from '../metrics.ts';
import { MalformedMessage } from '../protobuf.ts';
import { Coalescer, type ClientStream, type CoalescerPorts, type Scope } from './coalescer.ts';
import { mergeable, mergeEvents, PROGRESS_REQUEST, withWatchId, type WatchResponse } from './wire.ts';

export const WATCH_PATH = '/etcdserverpb.Watch/Watch';

// A WatchRequest is a key, a range end and a few numbers; etcd's own request limit is 1.5 MiB.
const MAX_REQUEST = 4 * 1024 * 1024;
// A WatchResponse holds the events of one revision (a large Txn) unless the client asked for
// fragments; gRPC's default limit on what etcd sends is far above this, so this is the proxy's.
const MAX_RESPONSE = 64 * 1024 * 1024;
// After a slow client's stream is ended, its status waits behind the responses it has not read;
// a client that reads nothing more in this time has its stream reset.
const SLOW_RESET_MS = 10_000;
// How often progress answers a member left unanswered are looked for (Coalescer.expireProgress):
// a joiner or progress request waits at most the coalescer's progress wait plus this.
const PROGRESS_CHECK_MS = 1000;
// A merged response (WatchSession.hold) holds at most this many upstream responses, as etcd batches at
// most 1,000 revisions for a watcher that fell behind (watchBatchMaxRevs), and at most this many bytes
// of events, below gRPC's default 4 MiB limit on what a client receives.
const MERGE_MAX_RESPONSES = 1000;
const MERGE_MAX_BYTES = 1024 * 1024;

// Metadata that reaches the member with a shared watch and decides what it may see or how it ends:
// the auth token (etcd reads "token" and "authorization") and clientv3's require-leader flag.
const scopeHeaders = new Set(['authorization', 'token', 'hasleader']);

export interface WatchServiceOptions {
  /** Bytes of watch responses a client stream may leave unread before it is ended. */
  clientBufferBytes: number;
}

/**
 * Serves gRPC Watch streams with coalescing: the proxy ends each client's Watch stream itself,
 * reads its requests, and lets the Coalescer decide which upstream watch (one Watch stream to a
 * member per upstream watch) serves each client watch. This file is the shell: HTTP/2 streams,
 * gRPC framing, member choice and failures; the decisions are in coalescer.ts.
 */
export class WatchService implements CoalescerPorts<WatchSession> {
  readonly core: Coalescer<WatchSession>;
  readonly deps: ForwardDeps;
  readonly options: WatchServiceOptions;
  readonly m: MethodMetrics;
  slowClients = 0;
  private readonly upstream = new Map<number, UpstreamWatch>();
  // The coalescer hands the same message to every client of a fan-out: it is framed once.
  private lastMessage: Uint8Array | undefined;
  private lastFrame: Buffer | undefined;
  // Event responses of one fan-out reach many sessions, which merge the same runs of them: each run
  // (its first and last response) is framed once per watch ID (most clients' first watch has ID 0).
  // Kept for the current turn of the event loop only.
  private readonly runFrames = new Map<WatchResponse, { last: WatchResponse; frames: Map<number, Buffer> }>();
  private readonly mergeableOf = new WeakMap<WatchResponse, boolean>();

  constructor(deps: ForwardDeps, options: WatchServiceOptions) {
    this.deps = deps;
    this.options = options;
    this.m = deps.metrics.method('grpc', 'etcdserverpb.Watch', 'Watch');
    this.core = new Coalescer(this);
    setInterval(() => this.core.expireProgress(), PROGRESS_CHECK_MS).unref();
  }

  /** Takes a client's Watch stream. */
  serve(down: H2Stream, headers: string[], downEnded: boolean, log: Logger): void {
    const session = new WatchSession(this, down, headers, log);
    down.handler = session;
    session.start(downEnded);
  }

  // --- CoalescerPorts ------------------------------------------------------------------------

  openUpstream(group: number, create: Uint8Array, scope: Scope): void {
    const u = new UpstreamWatch(this, group, frameMessage(create), scope);
    this.upstream.set(group, u);
    u.connect();
  }

  requestProgress(group: number): void {
    this.upstream.get(group)?.send(frameMessage(PROGRESS_REQUEST));
  }

  closeUpstream(group: number): void {
    const u = this.upstream.get(group);
    this.upstream.delete(group);
    u?.close();
  }

  send(session: WatchSession, message: Uint8Array): void {
    if (message !== this.lastMessage) {
      this.lastMessage = message;
      this.lastFrame = frameMessage(message);
    }
    session.send(this.lastFrame!);
  }

  sendEvents(session: WatchSession, watchId: number, r: WatchResponse): void {
    let merge = this.mergeableOf.get(r);
    if (merge === undefined) this.mergeableOf.set(r, (merge = mergeable(r)));
    if (merge) session.hold(watchId, r);
    else session.send(this.frameOf(r, r, [r], watchId));
  }

  /** The framed response, for watch watchId, of the run responses (first to last, merged when several). */
  frameOf(first: WatchResponse, last: WatchResponse, run: readonly WatchResponse[], watchId: number): Buffer {
    let entry = this.runFrames.get(first);
    if (entry === undefined || entry.last !== last) {
      if (this.runFrames.size === 0) setImmediate(() => this.runFrames.clear());
      this.runFrames.set(first, (entry = { last, frames: new Map() }));
    }
    let frame = entry.frames.get(watchId);
    if (frame === undefined) entry.frames.set(watchId, (frame = frameMessage(run.length === 1 ? withWatchId(first, watchId) : mergeEvents(run, watchId))));
    return frame;
  }

  end(session: WatchSession, code: number, message: string): void {
    session.finish(code, message);
  }

  /** The upstream stream of group failed for good. */
  upstreamFailed(group: number, code: number, message: string): void {
    this.upstream.delete(group);
    this.core.upstreamFailed(group, code, message);
  }
}

/** One client's Watch stream. */
class WatchSession implements ActiveCall, StreamHandler {
  readonly streaming = true;
  private readonly service: WatchService;
  private readonly down: H2Stream;
  private readonly log: Logger;
  private readonly ref: ClientStream<WatchSession>;
  private readonly reader: MessageReader;
  private finished = false;
  private counted = false;
  private cutOff = false;
  /**
   * Event responses held back, per watch ID in the order of their first response; they leave merged,
   * one response per watch (mergeEvents), at the end of the current task (all the responses of one
   * read from the member), or, while earlier responses wait for the client's flow-control window,
   * once the stream's queue is empty. A proxy or client that falls behind then sends and reads
   * fewer, larger responses, as etcd sends a watcher that fell behind, instead of one message per
   * event per watch: with 100 watches on a stream, that per-message cost on the proxy and on the
   * client was what held delivery back (etcd's benchmark `watch` at 100 clients took 3-4x as long
   * as without coalescing).
   */
  private held: Map<number, WatchResponse[]> | undefined;
  private heldBytes = 0;
  private releaseQueued = false;

  constructor(service: WatchService, down: H2Stream, headers: string[], log: Logger) {
    this.service = service;
    this.down = down;
    this.log = log;
    this.reader = new MessageReader(MAX_REQUEST, header(headers, 'grpc-encoding'));
    this.ref = service.core.openStream(this, scopeOf(headers));
  }

  start(downEnded: boolean): void {
    this.counted = true;
    this.service.deps.calls.add(this);
    this.service.m.inFlight.inc();
    // A client that half-closes keeps receiving, as from etcd; nothing else happens until it writes.
    void downEnded;
  }

  abort(reason: string): void {
    this.service.core.closeStream(this.ref);
    this.finish(Status.UNAVAILABLE, reason);
  }

  /** Sends one framed WatchResponse (after any held back); a client that leaves too much unread is cut off. */
  send(frame: Buffer): void {
    if (this.finished || this.cutOff) return;
    if (this.held !== undefined) this.release();
    this.sendHeaders();
    this.down.sendData(frame);
    this.checkBuffer();
  }

  /** Holds back an event response of watch watchId, to leave merged with the next ones (see held). */
  hold(watchId: number, r: WatchResponse): void {
    if (this.finished || this.cutOff) return;
    if (this.held === undefined) {
      this.held = new Map();
      if (!this.releaseQueued) {
        this.releaseQueued = true;
        queueMicrotask(this.releaseNow);
      }
    }
    const list = this.held.get(watchId);
    if (list === undefined) this.held.set(watchId, [r]);
    else list.push(r);
    this.heldBytes += r.bytes.length;
    this.checkBuffer();
  }

  /** Ends the stream with a status (after any responses still queued). */
  finish(code: number, message: string): void {
    if (this.finished) return;
    if (this.held !== undefined) this.release();
    this.finished = true;
    endWithStatus(this.down, code, message);
    this.complete(statusName(code));
  }

  onHeaders(_stream: H2Stream, _headers: string[], _endStream: boolean): void {
    // Request trailers carry nothing for gRPC; a half-close changes nothing (see start).
  }

  onData(_stream: H2Stream, data: Buffer, _endStream: boolean): void {
    if (this.finished) return;
    let messages: Uint8Array[];
    try {
      messages = this.reader.push(data);
      this.down.credit(data.length);
      for (const m of messages) this.service.core.request(this.ref, m);
    } catch (err) {
      if (!(err instanceof MalformedMessage)) throw err;
      this.service.core.closeStream(this.ref);
      this.finish(Status.INVALID_ARGUMENT, `etcd-topology proxy: the WatchRequest does not decode: ${err.message}`);
    }
  }

  onReset(_stream: H2Stream, _code: number, _cause: ResetCause): void {
    this.service.core.closeStream(this.ref);
    this.complete('CANCELLED');
  }

  onSent(): void {
    this.releaseIfDrained();
  }

  private readonly releaseNow = (): void => {
    this.releaseQueued = false;
    this.releaseIfDrained();
  };

  /** Releases the held responses unless they wait behind the queue of a client that does not read (onSent releases them then). */
  private releaseIfDrained(): void {
    if (this.held !== undefined && this.down.queued === 0 && !this.finished) this.release();
  }

  /** Queues the held responses, merged per watch (at most MERGE_MAX_RESPONSES and MERGE_MAX_BYTES each). */
  private release(): void {
    const held = this.held!;
    this.held = undefined;
    this.heldBytes = 0;
    this.sendHeaders();
    const run = (list: WatchResponse[], from: number, to: number, watchId: number): void => {
      this.down.sendData(this.service.frameOf(list[from]!, list[to - 1]!, from === 0 && to === list.length ? list : list.slice(from, to), watchId));
    };
    for (const [watchId, responses] of held) {
      let from = 0;
      let bytes = 0;
      for (let i = 0; i < responses.length; i++) {
        const size = responses[i]!.bytes.length;
        if (i > from && (i - from === MERGE_MAX_RESPONSES || bytes + size > MERGE_MAX_BYTES)) {
          run(responses, from, i, watchId);
          from = i;
          bytes = 0;
        }
        bytes += size;
      }
      run(responses, from, responses.length, watchId);
    }
  }

  private checkBuffer(): void {
    if (this.cutOff || this.down.queued + this.heldBytes <= this.service.options.clientBufferBytes) return;
    this.cutOff = true;
    // Not from inside the coalescer's fan-out loop.
    queueMicrotask(() => this.slow());
  }

  private slow(): void {
    if (this.finished) return;
    const limit = this.service.options.clientBufferBytes;
    this.log.warn({ queued: this.down.queued + this.heldBytes, limit }, 'Ended a watch stream whose client read too slowly');
    this.service.slowClients++;
    this.service.core.closeStream(this.ref);
    this.finish(
      Status.RESOURCE_EXHAUSTED,
      `etcd-topology proxy: this client read its watch responses too slowly (more than ${limit} bytes waited unread), so its watches were cancelled; watch again from the revision after the last event received`,
    );
    const down = this.down;
    setTimeout(() => {
      if (!down.isClosed) down.reset(ErrorCode.CANCEL);
    }, SLOW_RESET_MS).unref();
  }

  private sendHeaders(): void {
    if (!this.down.headersSent) this.down.sendHeaders([':status', '200', 'content-type', 'application/grpc'], false);
  }

  private complete(code: string): void {
    this.finished = true;
    if (!this.counted) return;
    this.counted = false;
    this.service.m.done(code);
    this.service.m.inFlight.dec();
    this.service.deps.calls.delete(this);
  }
}

/** The Watch stream to a member that carries one upstream watch. */
class UpstreamWatch implements StreamHandler {
  private readonly service: WatchService;
  private readonly group: number;
  private readonly create: Buffer;
  private readonly scope: Scope;
  private readonly attempts: CallAttempts;
  private readonly reader = new MessageReader(MAX_RESPONSE);
  private up: H2Stream | undefined;
  private conn: MemberConnection | undefined;
  private answered = false;
  private closed = false;

  constructor(service: WatchService, group: number, create: Buffer, scope: Scope) {
    this.service = service;
    this.group = group;
    this.create = create;
    this.scope = scope;
    this.attempts = new CallAttempts(service.deps.upstreams, service.m.attempts, false);
  }

  connect(): void {
    const member = this.attempts.next();
    if (member === undefined) {
      this.fail(Status.UNAVAILABLE, this.attempts.unavailable());
      return;
    }
    const entry = this.service.deps.members.get(member);
    const headers = [':method', 'POST', ':scheme', entry.scheme, ':path', WATCH_PATH, ':authority', entry.authority, 'content-type', 'application/grpc', 'te', 'trailers', ...this.scope.headers];
    this.conn = entry;
    this.up = entry.conn.request(headers, false, this);
    this.up.sendData(this.create);
  }

  send(frame: Buffer): void {
    if (!this.closed) this.up?.sendData(frame);
  }

  close(): void {
    this.closed = true;
    this.up?.reset(ErrorCode.CANCEL);
    this.up = undefined;
    // The member has one open call less (least-outstanding picks count open upstream watches too).
    this.attempts.finish();
  }

  onHeaders(stream: H2Stream, headers: string[], endStream: boolean): void {
    if (stream !== this.up || this.closed) return;
    if (!stream.headersReceived) {
      stream.headersReceived = true;
      this.answered = true;
      this.attempts.answered();
      if (!endStream) return;
    }
    // Trailers (or a trailers-only answer): the member ended the stream; clients hear its status.
    const code = Number(header(headers, 'grpc-status') ?? Status.UNAVAILABLE);
    const message = decodeURIComponentSafe(header(headers, 'grpc-message') ?? `etcd member ${this.attempts.member} ended the watch stream`);
    this.fail(Number.isInteger(code) ? code : Status.UNKNOWN, message);
  }

  onData(stream: H2Stream, data: Buffer, _endStream: boolean): void {
    if (stream !== this.up || this.closed || !stream.headersReceived) return;
    try {
      const messages = this.reader.push(data);
      stream.credit(data.length);
      for (const m of messages) {
        this.service.core.upstreamResponse(this.group, m);
        if (this.closed) return;
      }
    } catch (err) {
      if (!(err instanceof MalformedMessage)) throw err;
      this.fail(Status.INTERNAL, `etcd member ${this.attempts.member} sent a WatchResponse that does not decode: ${err.message}`);
    }
  }

  onReset(stream: H2Stream, code: number, cause: ResetCause): void {
    if (stream !== this.up || this.closed) return;
    this.up = undefined;
    const conn = this.conn!;
    const neverSent = !conn.connected || cause === 'goaway' || code === ErrorCode.REFUSED_STREAM;
    const loss = { neverSent, memberFailed: cause === 'connection' };
    // A watch the member never saw may go to another member, as a forwarded Watch stream would.
    if (!this.answered && this.attempts.lost(loss, true)) {
      this.connect();
      return;
    }
    if (this.answered) this.attempts.lost(loss, false);
    const member = this.attempts.member;
    this.fail(Status.UNAVAILABLE, cause === 'peer' ? `etcd member ${member} reset the stream (HTTP/2 error ${code})` : `connection to etcd member ${member} was lost`);
  }

  onSent(): void {}

  private fail(code: number, message: string): void {
    if (this.closed) return;
    this.closed = true;
    this.up?.reset(ErrorCode.CANCEL);
    this.up = undefined;
    this.attempts.finish();
    this.service.upstreamFailed(this.group, code, message);
  }
}

/** The scope of a client's watches: the metadata from its request headers that reaches the member. */
function scopeOf(headers: readonly string[]): Scope {
  const pairs: string[] = [];
  for (let i = 0; i + 1 < headers.length; i += 2) if (scopeHeaders.has(headers[i]!)) pairs.push(headers[i]!, headers[i + 1]!);
  return { key: JSON.stringify(pairs), headers: pairs };
}

function header(headers: readonly string[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) return headers[i + 1];
  return undefined;
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
