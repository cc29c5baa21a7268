import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { Readable, type Duplex } from 'node:stream';
import type tls from 'node:tls';
import { TopologyError } from '../errors.ts';
import type { TlsFiles } from './config.ts';
import type { TlsSource } from './tls-reload.ts';

// The proxy speaks HTTP/1.1 to the members with node:http's own client: node:http is loaded anyway
// for the listener's HTTP/1.1 side and the metrics server (its parser is Node's native llhttp), so
// the client costs little more. undici's pools and request API cost the idle proxy 12 MiB of RSS
// (10.6 of it private), 9.4 of that V8's optimizing compile of undici's WebAssembly HTTP parser,
// whose memory stays in a compiler thread's malloc arena (docs/bench/proxy-memory.md).

/** A member that does not finish the TCP (and TLS) handshake in this long is given up, so the call goes to another. */
export const CONNECT_TIMEOUT_MS = 3_000;
// Idle keep-alive connections are closed after this long.
const IDLE_TIMEOUT_MS = 30_000;
// At most this many connections to one member at a time; further requests wait for a free one.
const CONNECTIONS_PER_MEMBER = 64;

/** One request to a member. A Readable body is streamed (chunked unless headers give its length). */
export interface UpstreamRequest {
  method: string;
  path: string;
  headers?: Record<string, string | string[]>;
  body?: Buffer | string | Readable | null;
  signal?: AbortSignal;
  /** The hot path's cheaper signal: a Cancel costs no EventTarget and no listeners on the request. */
  cancel?: Cancel;
  /**
   * When the request needs a new connection, that connection gets this long (instead of
   * CONNECT_TIMEOUT_MS) to finish its handshake; then it is closed and the request fails with
   * ETOP_CONNECT_TIMEOUT, before anything of it was written. A request on an open connection is
   * not affected.
   */
  connectWithinMs?: number;
}

/**
 * Ends a request in flight, and its response, from outside, as an AbortSignal does, for the proxy's
 * per-call path: node:http ties a signal to each request with an abort listener and a stream
 * finished() watcher of several listeners more, where this is one function reference.
 */
export class Cancel {
  private reason: Error | undefined;
  private target: ((reason: Error) => void) | undefined;

  cancel(reason: Error): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    this.target?.(reason);
  }

  /** Called by request() with what ends the request it just sent; a cancel made before ends it at once. */
  attach(end: (reason: Error) => void): void {
    if (this.reason !== undefined) end(this.reason);
    else this.target = end;
  }
}

/** The member's answer: status and headers; the body streams and must be read, resumed or destroyed. */
export interface UpstreamResponse {
  statusCode: number;
  headers: http.IncomingHttpHeaders;
  body: Readable;
}

// keepAlive: connections stay open between requests (closed after IDLE_TIMEOUT_MS idle: the agent's
// timeout ends only free sockets; on a busy one, a quiet watch included, it does nothing).
const agentOptions = { keepAlive: true, maxSockets: CONNECTIONS_PER_MEMBER, timeout: IDLE_TIMEOUT_MS, scheduling: 'lifo' as const };

type Connected = (err: Error | null, stream: Duplex) => void;
/** What the agents' createConnection receives: the request's options, node:http passing them through. */
type ConnectOptions = http.ClientRequestArgs & Pick<UpstreamRequest, 'connectWithinMs'>;

/**
 * Hands a new connection to the agent only once it is connected (for TLS: its handshake done), as
 * undici did: no request is written into a connection that may still fail, so a failed handshake
 * fails the request with node:tls's own code (an alert, a rejected certificate: tls-errors.ts) and a
 * member that never answers with ETOP_CONNECT_TIMEOUT, both provably before anything was sent.
 */
function whenConnected(origin: (socket: net.Socket) => string, socket: net.Socket, event: 'connect' | 'secureConnect', callback: Connected, options: ConnectOptions): void {
  // The request that made the connection may ask for a shorter deadline (UpstreamRequest.connectWithinMs).
  const deadlineMs = Math.min(options.connectWithinMs ?? CONNECT_TIMEOUT_MS, CONNECT_TIMEOUT_MS);
  const fail = (err: Error): void => {
    clearTimeout(timer);
    socket.off(event, ready);
    socket.destroy();
    callback(err, socket);
  };
  const ready = (): void => {
    clearTimeout(timer);
    socket.off('error', fail);
    callback(null, socket);
  };
  const timer = setTimeout(() => fail(new TopologyError('ETOP_CONNECT_TIMEOUT', `no connection to the etcd member ${origin(socket)} within ${deadlineMs} ms`)), deadlineMs);
  socket.once(event, ready);
  socket.once('error', fail);
}

const describe = (scheme: string, options: { host?: string | null; port?: number | string | null }) => (): string => `${scheme}://${options.host ?? ''}:${options.port ?? ''}`;

class PlainAgent extends http.Agent {
  override createConnection(options: ConnectOptions, callback?: Connected): Duplex | null | undefined {
    const socket = net.connect(options as net.NetConnectOpts);
    whenConnected(describe('http', options), socket, 'connect', callback!, options);
    return undefined;
  }
}

class TlsAgent extends https.Agent {
  override createConnection(options: ConnectOptions, callback?: Connected): Duplex | null | undefined {
    // https.Agent's own connection keeps TLS sessions for resumption; it is handed on once secure.
    const socket = super.createConnection(options) as tls.TLSSocket;
    whenConnected(describe('https', options), socket, 'secureConnect', callback!, options);
    return undefined;
  }
}

interface Target { secure: boolean; protocol: string; hostname: string; port: number }

/** The https: connections of one set of certificate files. */
interface Pool {
  agent: https.Agent;
  /** Requests sent on this pool and not yet ended (response read or destroyed). */
  open: number;
  retired: boolean;
}

function poolFor(files: TlsFiles): Pool {
  // ALPN names HTTP/1.1, as undici did: a member's TLS server that cannot serve it ends the handshake with an alert.
  return { agent: new TlsAgent({ ...agentOptions, ca: files.ca, cert: files.cert, key: files.key, ALPNProtocols: ['http/1.1'] }), open: 0, retired: false };
}

/** The connection pools to the members for HTTP/1.1: the JSON gateway, health, version, metrics, discovery. */
export class HttpUpstreams {
  private readonly tls: TlsSource;
  private pool: Pool;
  private readonly plain: http.Agent;
  private generation: number;
  private readonly targets = new Map<string, Target>();
  /** Pools of older certificates, closing once their requests (watches included) are done. */
  private readonly retired = new Set<Pool>();

  constructor(tls: TlsSource) {
    this.tls = tls;
    this.pool = poolFor(tls.current());
    this.plain = new PlainAgent(agentOptions);
    this.generation = tls.generation;
  }

  /**
   * Sends one request to the member at origin (http: or https:, on a pool with the newest certificate
   * files). Resolves with the response head; rejects when no answer came: a failed connection (its code,
   * or ETOP_CONNECT_TIMEOUT after CONNECT_TIMEOUT_MS), a TLS handshake that failed (node:tls's code),
   * a connection closed before the answer (ECONNRESET), the signal (AbortError) or the cancel (its reason).
   */
  request(origin: string, options: UpstreamRequest): Promise<UpstreamResponse> {
    const files = this.tls.current();
    if (this.tls.generation !== this.generation) {
      this.retire(this.pool);
      this.pool = poolFor(files);
      this.generation = this.tls.generation;
    }
    const target = this.target(origin);
    const secure = target.secure;
    const pool = secure ? this.pool : undefined;
    const send = secure ? https.request : http.request;
    return new Promise<UpstreamResponse>((resolve, reject) => {
      const req = send({
        protocol: target.protocol,
        hostname: target.hostname,
        port: target.port,
        method: options.method,
        path: options.path,
        headers: options.headers,
        agent: pool?.agent ?? this.plain,
        // Read by the agent only when it opens a connection for this request (whenConnected).
        connectWithinMs: options.connectWithinMs,
      } as ConnectOptions);
      let response: http.IncomingMessage | undefined;
      // Ends the request and its response. node:http reports a request destroyed before it has a
      // socket (a connection still in its handshake) only once the socket comes, which can be the
      // connect timeout later, so the call is failed here at once as well.
      const fail = (reason: Error): void => {
        req.destroy(reason);
        response?.destroy(reason);
        reject(reason);
      };
      options.cancel?.attach(fail);
      const signal = options.signal;
      if (signal !== undefined) {
        const aborted = (): void => fail(Object.assign(new Error('The operation was aborted', { cause: signal.reason }), { name: 'AbortError', code: 'ABORT_ERR' }));
        if (signal.aborted) aborted();
        else {
          signal.addEventListener('abort', aborted, { once: true });
          req.once('close', () => signal.removeEventListener('abort', aborted));
        }
      }
      // Kept for the request's life: an error after the answer (an abort) must not go unhandled.
      req.on('error', reject);
      const closed = pool === undefined ? undefined : this.opened(pool);
      if (closed !== undefined) req.once('close', closed);
      req.once('response', (res) => {
        response = res;
        if (closed !== undefined) res.once('close', closed);
        resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: res });
      });
      const body = options.body;
      if (body instanceof Readable) {
        body.once('error', (err) => req.destroy(err));
        body.pipe(req);
      } else {
        req.end(body ?? undefined);
      }
    });
  }

  /** A member URL's scheme, host and port, parsed once per member. */
  private target(origin: string): Target {
    let t = this.targets.get(origin);
    if (t === undefined) {
      const url = new URL(origin);
      const secure = url.protocol === 'https:';
      t = { secure, protocol: url.protocol, hostname: url.hostname.replace(/^\[|\]$/g, ''), port: url.port === '' ? (secure ? 443 : 80) : Number(url.port) };
      if (this.targets.size >= 1024) this.targets.clear();
      this.targets.set(origin, t);
    }
    return t;
  }

  /** Closes every pool, aborting what is still open. */
  close(): Promise<void> {
    for (const pool of [this.pool, ...this.retired]) pool.agent.destroy();
    this.retired.clear();
    this.plain.destroy();
    return Promise.resolve();
  }

  /**
   * Counts a request sent on a TLS pool, so that a retired pool closes when its last request ends;
   * returns what ends it (idempotent: both the request's and the response's close call it).
   */
  private opened(pool: Pool): () => void {
    pool.open++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      pool.open--;
      if (pool.retired && pool.open === 0) this.closePool(pool);
    };
  }

  private retire(pool: Pool): void {
    pool.retired = true;
    if (pool.open === 0) {
      this.closePool(pool);
      return;
    }
    this.retired.add(pool);
    // Idle connections of the old certificate go now; busy ones when their request ends.
    for (const sockets of Object.values(pool.agent.freeSockets)) for (const s of sockets ?? []) s.destroy();
  }

  private closePool(pool: Pool): void {
    this.retired.delete(pool);
    pool.agent.destroy();
  }
}

/** Reads a response (or request) body whole. */
export async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Reads a body whole and parses it as JSON (a SyntaxError if it is not). */
export async function readJson(body: Readable): Promise<unknown> {
  return JSON.parse((await readAll(body)).toString('utf8')) as unknown;
}
