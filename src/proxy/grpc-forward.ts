import http2 from 'node:http2';
import type { Logger } from '../telemetry/logger.ts';
import type { ActiveCall } from './active-calls.ts';
import type { ForwardDeps } from './forward-deps.ts';
import { cleanTrailers, forwardedHeaders, Status, statusName, trailersOnly } from './grpc-status.ts';
import type { MethodMetrics } from './metrics.ts';
import { grpcMethod, type MethodInfo } from './methods.ts';
import { classifyGrpc, needsBody } from './readonly.ts';
import type { UpstreamSession } from './sessions.ts';

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM } = http2.constants;

// Request bytes kept until the member answers, so that a call can go to another member when the
// first failed before answering. Past this, the call can no longer be replayed.
const REPLAY_LIMIT = 1024 * 1024;
// A Txn or Alarm inspected in readonly mode is buffered whole; etcd's own limit is 1.5 MiB by default.
const CLASSIFY_LIMIT = 16 * 1024 * 1024;

// Services etcd serves; other gRPC services are answered UNIMPLEMENTED by the proxy itself.
const etcdServices = /^\/(etcdserverpb|v3lockpb|v3electionpb|grpc\.health\.v1)\.[A-Za-z]+\/[A-Za-z]+$/;

// The pseudo-headers a request keeps on its way to the member (Node sets :scheme and :authority
// for the member's connection) and the one a response keeps on its way back.
const requestPseudo = [':method', ':path'] as const;
const responsePseudo = [':status'] as const;

// Each stream carries its call, so that the listeners below are shared functions rather than
// closures allocated for every call.
const CALL = Symbol('grpc call');
type Down = http2.ServerHttp2Stream & { [CALL]?: GrpcCall };
type Up = http2.ClientHttp2Stream & { [CALL]?: GrpcCall };

/**
 * Forwards one gRPC call arriving on an HTTP/2 stream to a member, frame by frame. rawHeaders is
 * the flat [name, value, ...] list of the request headers as received (passed on as is, minus
 * pseudo and connection headers); without it the headers object is used.
 */
export function forwardGrpc(deps: ForwardDeps, down: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, log: Logger, rawHeaders?: readonly string[]): void {
  const path = headers[':path'] ?? '';
  const info = grpcMethod(path);
  const call = new GrpcCall(deps, down, headers, rawHeaders, path, info, log);
  call.start();
}

class GrpcCall implements ActiveCall {
  readonly streaming: boolean;
  private readonly deps: ForwardDeps;
  private readonly down: Down;
  private readonly headers: http2.IncomingHttpHeaders;
  private readonly rawHeaders: readonly string[] | undefined;
  private readonly path: string;
  private readonly info: MethodInfo | undefined;
  private readonly m: MethodMetrics;
  private readonly log: Logger;
  private tried: Set<string> | undefined;
  private outHeaders: string[] | http2.OutgoingHttpHeaders | undefined;
  private up: Up | undefined;
  private upSession: UpstreamSession | undefined;
  private member = '';
  // Request bytes received so far, for a replay on another member (undefined once past REPLAY_LIMIT)
  // and, until the call is sent, for sending.
  private pending: Buffer[] | undefined = [];
  private pendingBytes = 0;
  private classifying = false;
  // A unary call is sent once its request is complete, in one write that ends the stream.
  private deferred = false;
  private downEnded = false;
  private answered = false;
  private finished = false;
  private trailers: http2.OutgoingHttpHeaders | undefined;
  private override: http2.OutgoingHttpHeaders | undefined;
  private sentAt = 0;

  constructor(
    deps: ForwardDeps,
    down: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    rawHeaders: readonly string[] | undefined,
    path: string,
    info: MethodInfo | undefined,
    log: Logger,
  ) {
    this.deps = deps;
    this.down = down;
    this.headers = headers;
    this.rawHeaders = rawHeaders;
    this.path = path;
    this.info = info;
    this.log = log;
    this.streaming = info?.streaming ?? true;
    if (info) this.m = deps.metrics.method('grpc', info.service, info.method);
    else {
      const slash = path.lastIndexOf('/');
      this.m = deps.metrics.method('grpc', path.slice(1, Math.max(slash, 1)) || 'unknown', 'other');
    }
  }

  start(): void {
    const { down, deps, info } = this;
    deps.calls.add(this);
    this.m.inFlight.inc();
    down[CALL] = this;
    down.on('data', onDownData);
    down.on('end', onDownEnd);
    down.on('error', ignore); // the 'close' that follows decides
    down.on('close', onDownClose);
    down.on('wantTrailers', onWantTrailers);

    const known = info !== undefined || etcdServices.test(this.path);
    if (!known || (deps.readonly && info === undefined)) {
      if (deps.readonly && known) this.m.refused();
      this.fail(Status.UNIMPLEMENTED, deps.readonly ? classifyGrpcReason(this.path) : `unknown service or method ${this.path}`);
      return;
    }
    if (deps.readonly) {
      if (needsBody(info!)) {
        this.classifying = true;
        return; // decided on 'end', once the whole request is here
      }
      const verdict = classifyGrpc(this.path);
      if (!verdict.allow) {
        this.m.refused();
        this.fail(Status.UNIMPLEMENTED, verdict.reason);
        return;
      }
    }
    if (!this.streaming) {
      this.deferred = true;
      return; // sent on 'end', or once the request grows past what a replay may keep
    }
    this.connect();
  }

  abort(reason: string): void {
    this.fail(Status.UNAVAILABLE, reason);
  }

  onDownData(chunk: Buffer): void {
    if (this.finished) return;
    const up = this.up;
    if (this.pending) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.classifying) {
        if (this.pendingBytes > CLASSIFY_LIMIT) this.fail(Status.RESOURCE_EXHAUSTED, 'request too large for the read-only check');
        return;
      }
      if (up === undefined) {
        // Not sent yet: a unary call sends its request once complete, unless it is too large to keep.
        if (this.deferred && this.pendingBytes > REPLAY_LIMIT) {
          this.deferred = false;
          this.connect(); // writes what came so far, then streams the rest with backpressure
          if (this.up !== undefined) this.pending = undefined; // too large to replay
        }
        return;
      }
      if (this.pendingBytes > REPLAY_LIMIT) this.pending = undefined;
    }
    if (up === undefined) return;
    if (!up.write(chunk)) {
      this.down.pause();
      up.once('drain', resumeDown);
    }
  }

  onDownEnd(): void {
    this.downEnded = true;
    if (this.finished) return;
    if (this.classifying) {
      this.classifying = false;
      const pending = this.pending ?? [];
      const body = pending.length === 1 ? pending[0]! : Buffer.concat(pending);
      const verdict = classifyGrpc(this.path, body, header(this.headers['grpc-encoding']));
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

  onDownClose(): void {
    if (this.finished) return;
    // The client reset the stream or went away: cancel upstream the way gRPC expects.
    if (this.up && !this.up.closed) this.up.close(NGHTTP2_CANCEL);
    this.complete('CANCELLED');
  }

  onWantTrailers(): void {
    this.down.sendTrailers(this.override ?? this.trailers ?? trailersFor(Status.INTERNAL, 'etcd member sent no status'));
  }

  private connect(): void {
    const { deps } = this;
    const member = deps.upstreams.pick(this.tried);
    if (member === undefined) {
      this.fail(Status.UNAVAILABLE, this.tried === undefined ? 'no etcd member is available' : `etcd member ${this.member} failed and no other member is available`);
      return;
    }
    (this.tried ??= new Set()).add(member);
    this.member = member;
    const entry = deps.sessions.get(member);
    const pending = this.pending;
    // A complete request with no body goes as one HEADERS frame that ends the stream.
    const endStream = this.downEnded && (pending === undefined || pending.length === 0);
    let up: Up;
    try {
      this.outHeaders ??= this.rawHeaders ? forwardedHeaders(this.rawHeaders, requestPseudo) : forwardedHeaders(this.headers, requestPseudo);
      up = entry.session.request(this.outHeaders, { endStream });
    } catch (err) {
      deps.upstreams.markFailed(member);
      this.log.warn({ member, err: (err as Error).message }, 'Failed to open a stream to etcd member');
      this.retryOrFail(`etcd member ${member} is unreachable`);
      return;
    }
    this.up = up;
    this.upSession = entry;
    this.sentAt = performance.now();
    deps.metrics.memberRequests(member).inc();
    up[CALL] = this;
    up.on('response', onUpResponse);
    up.on('trailers', onUpTrailers);
    up.on('data', onUpData);
    up.on('end', onUpEnd);
    up.on('error', ignore); // the 'close' that follows decides
    up.on('close', onUpClose);
    if (pending !== undefined && !endStream) {
      // Written in the same tick as end(), the last chunk carries END_STREAM.
      for (const chunk of pending) up.write(chunk);
    }
    if (this.downEnded && !endStream) up.end();
    this.down.resume();
  }

  onResponse(up: Up, h: http2.IncomingHttpHeaders, flags: number, raw: readonly string[] | undefined): void {
    if (up !== this.up || this.finished) return;
    this.answered = true;
    this.pending = undefined;
    this.m.latency.observe((performance.now() - this.sentAt) / 1000);
    this.deps.upstreams.markAnswered(this.member);
    const down = this.down;
    if (down.destroyed) return;
    const out = (raw ? forwardedHeaders(raw, responsePseudo) : forwardedHeaders(h, responsePseudo)) as http2.OutgoingHttpHeaders;
    if ((flags & NGHTTP2_FLAG_END_STREAM) !== 0) {
      // Trailers-only: the status rides on the one HEADERS frame, which must end the stream here too.
      down.respond(out, { endStream: true });
      this.complete(statusName(header(h['grpc-status'])));
      return;
    }
    down.respond(out, { waitForTrailers: true });
  }

  onTrailers(up: Up, t: http2.IncomingHttpHeaders): void {
    if (up === this.up) this.trailers = cleanTrailers(t);
  }

  onUpData(up: Up, chunk: Buffer): void {
    const down = this.down;
    if (up !== this.up || this.finished || down.writableEnded) return;
    if (!down.write(chunk)) {
      up.pause();
      down.once('drain', resumeUp);
    }
  }

  resumeUp(): void {
    this.up?.resume();
  }

  resumeDown(): void {
    this.down.resume();
  }

  onUpEnd(up: Up): void {
    if (up !== this.up || this.finished || this.trailers === undefined || !this.down.headersSent) return;
    const code = statusName(header(this.trailers['grpc-status'] as string | string[] | undefined));
    if (!this.down.writableEnded) this.down.end(); // 'wantTrailers' sends the member's trailers
    this.complete(code);
  }

  onUpClose(up: Up): void {
    if (up !== this.up || this.finished) return;
    const session = this.upSession!;
    const sessionLost = session.session.destroyed || session.session.closed;
    if (sessionLost) this.deps.upstreams.markFailed(this.member);
    const memberCancelled = up.rstCode === NGHTTP2_CANCEL && !sessionLost;
    if (memberCancelled) {
      if (!this.down.destroyed) this.down.close(NGHTTP2_CANCEL);
      this.complete('CANCELLED');
      return;
    }
    if (!this.answered) {
      this.retryOrFail(`etcd member ${this.member} failed before answering (${sessionLost ? 'connection lost' : `stream reset ${up.rstCode}`})`, !session.connected);
      return;
    }
    this.fail(Status.UNAVAILABLE, `connection to etcd member ${this.member} was lost`);
  }

  /**
   * Sends the call to another member when that is safe: nothing reached the member (its connection
   * never opened), or it is a unary read that got no answer. A write that may have arrived is never
   * sent twice.
   */
  private retryOrFail(message: string, neverSent = false): void {
    const replayable = this.pending !== undefined && (neverSent || (this.info?.retry === true && (this.tried?.size ?? 0) < 2));
    if (replayable && !this.down.destroyed && this.deps.upstreams.pick(this.tried) !== undefined) {
      this.m.retried();
      this.log.debug({ path: this.path, member: this.member }, 'Retried a call on another etcd member');
      this.up = undefined;
      this.connect();
      return;
    }
    this.fail(Status.UNAVAILABLE, message);
  }

  /** Ends the call with a status of the proxy's own, as trailers or a trailers-only response. */
  private fail(code: number, message: string): void {
    if (this.finished) return;
    const up = this.up;
    this.up = undefined;
    if (up && !up.closed) up.close(NGHTTP2_CANCEL);
    const down = this.down;
    if (!down.destroyed && !down.closed) {
      if (!down.headersSent) {
        down.respond(trailersOnly(code, message), { endStream: true });
      } else if (!down.writableEnded) {
        this.override = trailersFor(code, message);
        down.end();
      }
      // Whatever the client still sends is read and dropped, so the stream can close.
      down.resume();
    }
    this.complete(statusName(code));
  }

  private complete(code: string): void {
    if (this.finished) return;
    this.finished = true;
    this.pending = undefined;
    this.m.done(code);
    this.m.inFlight.dec();
    this.deps.calls.delete(this);
  }
}

function ignore(): void {}

function onDownData(this: Down, chunk: Buffer): void {
  this[CALL]!.onDownData(chunk);
}

function onDownEnd(this: Down): void {
  this[CALL]!.onDownEnd();
}

function onDownClose(this: Down): void {
  this[CALL]!.onDownClose();
}

function onWantTrailers(this: Down): void {
  this[CALL]!.onWantTrailers();
}

function resumeDown(this: Up): void {
  this[CALL]!.resumeDown();
}

function resumeUp(this: Down): void {
  this[CALL]!.resumeUp();
}

function onUpResponse(this: Up, h: http2.IncomingHttpHeaders, flags: number, raw?: string[]): void {
  this[CALL]!.onResponse(this, h, flags, raw);
}

function onUpTrailers(this: Up, t: http2.IncomingHttpHeaders): void {
  this[CALL]!.onTrailers(this, t);
}

function onUpData(this: Up, chunk: Buffer): void {
  this[CALL]!.onUpData(this, chunk);
}

function onUpEnd(this: Up): void {
  this[CALL]!.onUpEnd(this);
}

function onUpClose(this: Up): void {
  this[CALL]!.onUpClose(this);
}

function trailersFor(code: number, message: string): http2.OutgoingHttpHeaders {
  const { 'grpc-status': status, 'grpc-message': msg } = trailersOnly(code, message);
  return { 'grpc-status': status, 'grpc-message': msg };
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function classifyGrpcReason(path: string): string {
  const verdict = classifyGrpc(path);
  return verdict.allow ? `unknown service or method ${path}` : verdict.reason;
}
