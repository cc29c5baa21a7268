import http2 from 'node:http2';
import type { Logger } from '../telemetry/logger.ts';
import type { ActiveCall } from './active-calls.ts';
import type { ForwardDeps } from './forward-deps.ts';
import { copyHeaders, Status, statusName, trailersOnly } from './grpc-status.ts';
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

/** Forwards one gRPC call arriving on an HTTP/2 stream to a member, frame by frame. */
export function forwardGrpc(deps: ForwardDeps, down: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, log: Logger): void {
  const path = headers[':path'] ?? '';
  const info = grpcMethod(path);
  const call = new GrpcCall(deps, down, headers, path, info, log);
  call.start();
}

class GrpcCall implements ActiveCall {
  readonly streaming: boolean;
  private readonly deps: ForwardDeps;
  private readonly down: http2.ServerHttp2Stream;
  private readonly headers: http2.IncomingHttpHeaders;
  private readonly path: string;
  private readonly info: MethodInfo | undefined;
  private readonly m: MethodMetrics;
  private readonly log: Logger;
  private readonly tried = new Set<string>();
  private up: http2.ClientHttp2Stream | undefined;
  private upSession: UpstreamSession | undefined;
  private member = '';
  private pending: Buffer[] | undefined = [];
  private pendingBytes = 0;
  private classifying = false;
  private downEnded = false;
  private answered = false;
  private finished = false;
  private trailers: http2.OutgoingHttpHeaders | undefined;
  private override: http2.OutgoingHttpHeaders | undefined;
  private sentAt = 0;

  constructor(deps: ForwardDeps, down: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, path: string, info: MethodInfo | undefined, log: Logger) {
    this.deps = deps;
    this.down = down;
    this.headers = headers;
    this.path = path;
    this.info = info;
    this.log = log;
    this.streaming = info?.streaming ?? true;
    const slash = path.lastIndexOf('/');
    this.m = info ? deps.metrics.method('grpc', info.service, info.method) : deps.metrics.method('grpc', path.slice(1, Math.max(slash, 1)) || 'unknown', 'other');
  }

  start(): void {
    const { down, deps } = this;
    deps.calls.add(this);
    this.m.inFlight.inc();
    down.on('data', (chunk: Buffer) => this.onDownData(chunk));
    down.on('end', () => this.onDownEnd());
    down.on('error', () => undefined); // the 'close' that follows decides
    down.on('close', () => this.onDownClose());
    down.on('wantTrailers', () => {
      down.sendTrailers(this.override ?? this.trailers ?? trailersFor(Status.INTERNAL, 'etcd member sent no status'));
    });

    if (!etcdServices.test(this.path) || (deps.readonly && this.info === undefined)) {
      if (deps.readonly && etcdServices.test(this.path)) this.m.refused();
      this.fail(Status.UNIMPLEMENTED, deps.readonly ? classifyGrpcReason(this.path) : `unknown service or method ${this.path}`);
      return;
    }
    if (deps.readonly && this.info) {
      if (needsBody(this.info)) {
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
    this.connect();
  }

  abort(reason: string): void {
    this.fail(Status.UNAVAILABLE, reason);
  }

  private onDownData(chunk: Buffer): void {
    if (this.finished) return;
    if (this.pending) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.classifying && this.pendingBytes > CLASSIFY_LIMIT) {
        this.fail(Status.RESOURCE_EXHAUSTED, 'request too large for the read-only check');
        return;
      }
      if (!this.classifying && this.pendingBytes > REPLAY_LIMIT) this.pending = undefined;
    }
    const up = this.up;
    if (this.classifying || up === undefined) return;
    if (!up.write(chunk)) {
      this.down.pause();
      up.once('drain', () => this.down.resume());
    }
  }

  private onDownEnd(): void {
    this.downEnded = true;
    if (this.finished) return;
    if (this.classifying) {
      this.classifying = false;
      const verdict = classifyGrpc(this.path, Buffer.concat(this.pending ?? []), header(this.headers['grpc-encoding']));
      if (!verdict.allow) {
        this.m.refused();
        this.fail(Status.UNIMPLEMENTED, verdict.reason);
        return;
      }
      this.connect();
      return;
    }
    this.up?.end();
  }

  private onDownClose(): void {
    if (this.finished) return;
    // The client reset the stream or went away: cancel upstream the way gRPC expects.
    if (this.up && !this.up.closed) this.up.close(NGHTTP2_CANCEL);
    this.complete('CANCELLED');
  }

  private connect(): void {
    const { deps } = this;
    const member = deps.upstreams.pick(this.tried);
    if (member === undefined) {
      this.fail(Status.UNAVAILABLE, this.tried.size === 0 ? 'no etcd member is available' : `etcd member ${this.member} failed and no other member is available`);
      return;
    }
    this.tried.add(member);
    this.member = member;
    const entry = deps.sessions.get(member);
    let up: http2.ClientHttp2Stream;
    try {
      const out = copyHeaders(this.headers, [':method', ':path']);
      up = entry.session.request(out, { endStream: false });
    } catch (err) {
      deps.upstreams.markFailed(member);
      this.log.warn({ member, err: (err as Error).message }, 'Failed to open a stream to etcd member');
      this.retryOrFail(`etcd member ${member} is unreachable`);
      return;
    }
    this.up = up;
    this.upSession = entry;
    this.sentAt = performance.now();
    deps.metrics.upstreamRequests.labels(member).inc();
    up.on('response', (h, flags) => this.onResponse(up, h, flags));
    up.on('trailers', (t: http2.IncomingHttpHeaders) => {
      if (up === this.up) this.trailers = copyHeaders(t);
    });
    up.on('data', (chunk: Buffer) => this.onUpData(up, chunk));
    up.on('end', () => this.onUpEnd(up));
    up.on('error', () => undefined); // the 'close' that follows decides
    up.on('close', () => this.onUpClose(up));
    for (const chunk of this.pending ?? []) up.write(chunk);
    if (this.downEnded) up.end();
    this.down.resume();
  }

  private onResponse(up: http2.ClientHttp2Stream, h: http2.IncomingHttpHeaders, flags: number): void {
    if (up !== this.up || this.finished) return;
    this.answered = true;
    this.pending = undefined;
    this.m.latency.observe((performance.now() - this.sentAt) / 1000);
    this.deps.upstreams.markAnswered(this.member);
    if (this.down.destroyed) return;
    if ((flags & NGHTTP2_FLAG_END_STREAM) !== 0) {
      // Trailers-only: the status rides on the one HEADERS frame, which must end the stream here too.
      this.down.respond(copyHeaders(h, [':status']), { endStream: true });
      this.complete(statusName(header(h['grpc-status'])));
      return;
    }
    this.down.respond(copyHeaders(h, [':status']), { waitForTrailers: true });
  }

  private onUpData(up: http2.ClientHttp2Stream, chunk: Buffer): void {
    if (up !== this.up || this.finished || this.down.writableEnded) return;
    if (!this.down.write(chunk)) {
      up.pause();
      this.down.once('drain', () => up.resume());
    }
  }

  private onUpEnd(up: http2.ClientHttp2Stream): void {
    if (up !== this.up || this.finished || this.trailers === undefined || !this.down.headersSent) return;
    const code = statusName(this.trailers['grpc-status'] as string | undefined);
    if (!this.down.writableEnded) this.down.end(); // 'wantTrailers' sends the member's trailers
    this.complete(code);
  }

  private onUpClose(up: http2.ClientHttp2Stream): void {
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
    const replayable = this.pending !== undefined && (neverSent || (this.info?.retry === true && this.tried.size < 2));
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
