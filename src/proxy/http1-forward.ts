import type { IncomingHttpHeaders } from 'node:http';
import type { Readable, Writable } from 'node:stream';
import type { Logger } from '../telemetry/logger.ts';
import type { ActiveCall } from './active-calls.ts';
import { CallAttempts, CONNECT_FALLBACK_MS } from './attempts.ts';
import { refusedInTlsHandshake } from './tls-errors.ts';
import { classifyEtcdError, gatewayError, gatewayRaftTerm } from './etcd-errors.ts';
import type { ForwardDeps } from './forward-deps.ts';
import { Cancel, readAll } from './http1-upstreams.ts';
import type { MethodMetrics } from './metrics.ts';
import { gatewayMethod } from './methods.ts';
import { classifyGateway, needsBody } from './readonly.ts';

/** A plain HTTP request as either listener protocol delivers it. */
export interface HttpRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Readable;
}

/** Where the answer goes: an HTTP/1.1 response or an HTTP/2 stream. */
export interface HttpReply {
  head(status: number, headers: Record<string, string | string[]>): void;
  body: Writable;
  headersSent(): boolean;
  /** Ends the exchange abruptly (the client sees a reset or a closed connection). */
  destroy(): void;
}

// etcd's own HTTP endpoints besides the gateway: health, readiness, version and its Prometheus metrics.
const plainPaths = /^\/(health|version|metrics|livez|readyz)(\/[A-Za-z0-9_-]*)?(\?.*)?$/;
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'ETOP_CONNECT_TIMEOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

const hopByHop = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'te', 'trailer', 'http2-settings']);
const BODY_LIMIT = 16 * 1024 * 1024;
/** A unary call that took longer than this is logged with what each attempt met (warn level). */
export const SLOW_CALL_MS = 1000;

/** What kind of HTTP request this is, decided from the method and path alone. */
export type HttpRoute =
  | { kind: 'gateway'; service: string; method: string; streaming: boolean; retry: boolean; leader: boolean; inspect: boolean; verdict: { allow: true } | { allow: false; reason: string } }
  | { kind: 'plain'; name: string }
  | { kind: 'unknown' };

/** Routes a request: the JSON gateway, one of etcd's plain endpoints, or a path the proxy does not forward. */
export function routeHttp(method: string, path: string, readonly: boolean): HttpRoute {
  if (path.startsWith('/v3/') || path.startsWith('/v3beta/')) {
    const info = gatewayMethod(path);
    const inspect = readonly && info !== undefined && needsBody(info);
    return {
      kind: 'gateway',
      service: info?.service ?? 'gateway',
      method: info?.method ?? 'other',
      streaming: info?.streaming ?? false,
      retry: info?.retry ?? false,
      leader: info?.leader ?? false,
      inspect,
      verdict: readonly && !inspect ? classifyGateway(path) : { allow: true },
    };
  }
  if ((method === 'GET' || method === 'HEAD') && plainPaths.test(path)) return { kind: 'plain', name: path.split(/[/?]/)[1]! };
  return { kind: 'unknown' };
}

/** Forwards one HTTP request (gateway, health, version, metrics) to a member (http1-upstreams.ts). */
export function forwardHttp(deps: ForwardDeps, req: HttpRequest, reply: HttpReply, log: Logger): void {
  const route = routeHttp(req.method, req.path, deps.readonly);
  if (route.kind === 'unknown') {
    deps.metrics.method('http', 'http', 'other').done('404');
    answerAfterBody(req, reply, 404, `etcd-topology proxy: ${req.method} ${req.path.split('?')[0]} is not an etcd endpoint\n`);
    return;
  }
  const m = route.kind === 'gateway' ? deps.metrics.method('http', route.service, route.method) : deps.metrics.method('http', 'http', route.name);
  if (route.kind === 'gateway' && !route.verdict.allow) {
    m.refused();
    m.done('501');
    answerAfterBody(req, reply, 501, JSON.stringify({ error: route.verdict.reason, code: 12, message: route.verdict.reason }) + '\n', 'application/json');
    return;
  }
  const call = new HttpCall(deps, req, reply, m, route, log);
  void call.run();
}

class HttpCall implements ActiveCall {
  readonly streaming: boolean;
  private readonly deps: ForwardDeps;
  private readonly req: HttpRequest;
  private readonly reply: HttpReply;
  private readonly m: MethodMetrics;
  private readonly route: Exclude<HttpRoute, { kind: 'unknown' }>;
  private readonly log: Logger;
  private readonly cancel = new Cancel();
  private finished = false;

  constructor(deps: ForwardDeps, req: HttpRequest, reply: HttpReply, m: MethodMetrics, route: Exclude<HttpRoute, { kind: 'unknown' }>, log: Logger) {
    this.deps = deps;
    this.req = req;
    this.reply = reply;
    this.m = m;
    this.route = route;
    this.log = log;
    this.streaming = route.kind === 'gateway' && route.streaming;
  }

  abort(reason: string): void {
    if (this.finished) return;
    this.log.debug({ path: this.req.path, reason }, 'Ended an HTTP stream');
    this.cancel.cancel(new Error(reason));
    if (this.reply.headersSent()) this.reply.body.end();
    else answer(this.reply, 503, `etcd-topology proxy: ${reason}\n`);
    this.complete('503');
  }

  async run(): Promise<void> {
    const { deps, req } = this;
    deps.calls.add(this);
    this.m.inFlight.inc();
    this.reply.body.on('close', () => {
      // 'close' also follows a response written in full; only an unfinished one means the client left.
      if (!this.finished && !this.reply.body.writableFinished) {
        this.cancel.cancel(new Error('client went away'));
        this.complete('499');
      }
    });
    try {
      // Unary requests are small and read whole, so they can be inspected and sent again; streams flow through.
      const body = this.streaming ? undefined : await readBody(req.body, BODY_LIMIT);
      if (this.finished) return;
      if (body === 'too-large') {
        answer(this.reply, 413, 'etcd-topology proxy: request body too large\n');
        this.complete('413');
        return;
      }
      if (this.route.kind === 'gateway' && this.route.inspect) {
        const verdict = classifyGateway(req.path, body?.toString('utf8'));
        if (!verdict.allow) {
          this.m.refused();
          answer(this.reply, 501, JSON.stringify({ error: verdict.reason, code: 12, message: verdict.reason }) + '\n', 'application/json');
          this.complete('501');
          return;
        }
      }
      await this.send(body);
    } catch (err) {
      if (!this.finished) {
        this.log.warn({ path: req.path, err: (err as Error).message }, 'Failed to forward an HTTP request');
        answer(this.reply, 502, `etcd-topology proxy: ${(err as Error).message}\n`);
        this.complete('502');
      }
    }
  }

  private async send(body: Buffer | undefined): Promise<void> {
    const { deps, req } = this;
    const toLeader = deps.leaderRouting && this.route.kind === 'gateway' && this.route.leader;
    const attempts = new CallAttempts(deps.upstreams, this.m.attempts, this.route.kind === 'plain' || this.route.retry, toLeader);
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !hopByHop.has(k) && !k.startsWith(':')) headers[k] = v;
    this.began = performance.now();
    try {
      await this.attempt(attempts, headers, body);
    } finally {
      attempts.finish();
      const ms = Math.round(performance.now() - this.began);
      // What a slow call met, attempt by attempt: the first thing to read when a client saw a stall.
      if (!this.streaming && ms > SLOW_CALL_MS) this.log.warn({ path: req.path, ms, attempts: this.trail }, 'Slow call');
    }
  }

  /** Each attempt of a unary call that did not simply answer at once: member, what came of it, and when (ms since it was sent). */
  private readonly trail: string[] = [];
  private began = 0;
  private note(member: string, what: string): void {
    this.trail.push(`+${Math.round(performance.now() - this.began)}ms ${member}: ${what}`);
  }

  private async attempt(attempts: CallAttempts, headers: Record<string, string | string[]>, body: Buffer | undefined): Promise<void> {
    const { deps, req } = this;
    const unaryGateway = this.route.kind === 'gateway' && !this.streaming;
    let afterNotApplied = false;
    for (;;) {
      const sentTerm = deps.leaders.knownTerm;
      const member = afterNotApplied ? attempts.nextAfterNotApplied() : attempts.next();
      const sentToLeader = member !== undefined && member === deps.upstreams.knownLeader ? member : undefined;
      if (member === undefined) {
        const none = attempts.count === 0;
        answer(this.reply, none ? 503 : 502, `etcd-topology proxy: ${attempts.unavailable()}\n`);
        this.complete(none ? '503' : '502');
        return;
      }
      const started = performance.now();
      const connectWithinMs = body !== undefined && attempts.hasAlternative() ? CONNECT_FALLBACK_MS : undefined;
      let res;
      try {
        res = await deps.http.request(member, {
          method: req.method,
          path: req.path,
          headers,
          body: req.method === 'GET' || req.method === 'HEAD' ? null : (body ?? req.body),
          cancel: this.cancel,
          // A call held whole may go to another member when this one's connection is slow to open.
          connectWithinMs,
        });
      } catch (err) {
        if (this.finished) return;
        const code = (err as { code?: string }).code ?? (err as { cause?: { code?: string } }).cause?.code ?? '';
        // Failures before a connection exists (no address for the name, refused, unreachable) or in its
        // TLS handshake (tls-errors.ts): the member never read the request.
        const neverSent = NOT_CONNECTED.has(code) || refusedInTlsHandshake(code);
        if (code === 'ETOP_CONNECT_TIMEOUT' && connectWithinMs !== undefined) deps.metrics.slowConnects.labels(member).inc();
        this.note(member, `failed (${code || (err as Error).message}${neverSent ? ', never sent' : ''})`);
        // A streamed body (a gateway watch) was consumed by the first attempt: only a whole one can go again.
        if (attempts.lost({ neverSent, memberFailed: true }, body !== undefined)) continue;
        throw new Error(`etcd member ${member} failed: ${(err as Error).message}`, { cause: err });
      }
      this.m.latency.observe((performance.now() - started) / 1000);
      attempts.answered();
      // A call answered at once on its first attempt (nearly all of them) records nothing.
      if (res.statusCode < 400 && (this.trail.length > 0 || performance.now() - this.began > SLOW_CALL_MS)) this.note(member, `answered ${res.statusCode}`);
      if (this.finished) {
        res.body.destroy();
        return;
      }
      const out: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(res.headers)) if (v !== undefined && !hopByHop.has(k)) out[k] = v;
      if (unaryGateway && res.statusCode >= 400) {
        // An error answer (small: a gRPC status as JSON) is read whole, to decide whether etcd
        // provably did not apply the call, as for gRPC (etcd-errors.ts).
        const error = await readAll(res.body);
        if (this.finished) return;
        const status = gatewayError(error.toString('utf8'));
        const verdict = status === undefined ? undefined : classifyEtcdError(status.code, status.message);
        this.note(member, `answered ${res.statusCode}${status ? ` ${status.message}` : ''}`);
        if (verdict?.relearn) void deps.leaders.relearn();
        if (verdict?.notApplied && attempts.notApplied(body !== undefined && !this.reply.body.destroyed)) {
          this.log.debug({ path: req.path, member, reason: verdict.reason }, 'Sending a call etcd did not apply once more');
          if (attempts.toLeader) {
            await deps.leaders.beforeReplay(sentToLeader, sentTerm);
            this.note(deps.upstreams.knownLeader ?? 'no leader', 'leader learned again for the replay');
          }
          if (this.finished) return;
          afterNotApplied = true;
          continue;
        }
        this.reply.head(res.statusCode, out);
        this.reply.body.end(error);
        this.complete(String(res.statusCode));
        return;
      }
      this.reply.head(res.statusCode, out);
      await this.pipe(res.body, unaryGateway);
      this.complete(String(res.statusCode));
      return;
    }
  }

  /**
   * Copies the member's response body to the client, pausing whenever the client is slow. For a
   * unary gateway answer (readTerm), the raft term in its header tells the leader tracker about
   * elections, as the header of a gRPC answer does. Stream events, not an async iterator: this runs
   * for every gateway call, and an iterator costs promises and a finished() watcher per response.
   */
  private pipe(src: Readable, readTerm: boolean): Promise<void> {
    const dst = this.reply.body;
    let first = readTerm;
    return new Promise<void>((resolve) => {
      let settled = false;
      const settle = (): void => {
        if (settled) return;
        settled = true;
        src.off('data', data);
        dst.off('drain', resume);
        dst.off('close', settle);
        src.destroy();
        resolve();
      };
      const resume = (): void => {
        src.resume();
      };
      const data = (chunk: Buffer): void => {
        if (this.finished || dst.destroyed) return settle();
        if (first) {
          first = false;
          const term = gatewayRaftTerm(chunk);
          if (term !== undefined) this.deps.leaders.observeTerm(term);
        }
        if (!dst.write(chunk)) src.pause();
      };
      // A response that ends before its last byte (the member went away) must not pass for a whole one.
      const lost = (err?: Error): void => {
        if (settled) return;
        if (!this.finished) {
          this.log.warn({ path: this.req.path, err: err?.message ?? 'closed before its end' }, 'Lost an HTTP response from etcd member');
          this.reply.destroy();
        }
        settle();
      };
      src.on('data', data);
      dst.on('drain', resume);
      dst.once('close', settle);
      src.once('error', lost);
      src.once('close', () => lost());
      src.once('end', () => {
        if (!dst.destroyed && !dst.writableEnded && !this.finished) dst.end();
        settle();
      });
    });
  }

  private complete(code: string): void {
    if (this.finished) return;
    this.finished = true;
    this.m.done(code);
    this.m.inFlight.dec();
    this.deps.calls.delete(this);
  }
}

function answer(reply: HttpReply, status: number, text: string, type = 'text/plain'): void {
  if (reply.headersSent() || reply.body.destroyed) return;
  reply.head(status, { 'content-type': type, 'content-length': String(Buffer.byteLength(text)) });
  reply.body.end(text);
}

/**
 * Answers once the request body has been read to its end (and dropped): the request is then known
 * to be well-formed to its last frame, and an HTTP/2 stream is not reset under a client still sending.
 */
function answerAfterBody(req: HttpRequest, reply: HttpReply, status: number, text: string, type?: string): void {
  req.body.once('end', () => answer(reply, status, text, type));
  req.body.resume();
}

/** Reads a request body whole, or 'too-large' past limit (with stream events, as pipe() above). */
function readBody(body: Readable, limit: number): Promise<Buffer | 'too-large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const data = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        body.off('data', data);
        body.off('end', end);
        body.resume();
        resolve('too-large');
        return;
      }
      chunks.push(chunk);
    };
    const end = (): void => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    body.on('data', data);
    body.once('end', end);
    body.once('error', reject);
    // A client that goes away mid-body may only close the stream: the call fails as for an error
    // (after 'end' or 'too-large' the promise is settled and this does nothing).
    body.once('close', () => reject(new Error('the client closed the request before the end of its body')));
  });
}
