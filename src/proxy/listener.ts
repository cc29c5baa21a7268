import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from '../telemetry/logger.ts';
import type { TlsFiles } from './config.ts';
import type { TlsSource } from './tls-reload.ts';
import type { LocalSettings } from './h2/connection.ts';
import { defaultServerLimits, ServerConnection, type CutOffReason, type ServerLimits } from './h2/server-connection.ts';
import type { H2Stream } from './h2/stream.ts';
import type { BoundAddress } from './loop.ts';
import { sniffProtocol } from './sniff.ts';

/** What the listeners hand each request to. */
export interface ListenerHandlers {
  /** An HTTP/2 stream (gRPC, or plain HTTP over h2), with its request headers as a flat [name, value, ...] list. */
  stream(stream: H2Stream, headers: string[], endStream: boolean, log: Logger): void;
  /** An HTTP/1.1 request. */
  request(req: http.IncomingMessage, res: http.ServerResponse, log: Logger): void;
  /** An HTTP/2 client connection was ended with a connection error (rapid reset, SETTINGS timeout, a protocol error). */
  cutOff?(reason: CutOffReason): void;
}

/** The client listeners: one socket server per URL; HTTP/2 connections run on the proxy's own engine (h2/), HTTP/1.1 on one shared server. */
export interface ClientListeners {
  addresses(): BoundAddress[];
  /** Stops accepting connections; open ones stay. */
  stopAccepting(): Promise<void>;
  /** Sends GOAWAY on every HTTP/2 connection and closes idle HTTP/1.1 connections. */
  goAway(): void;
  /** Resolves once every client connection has closed by itself, or after timeoutMs. */
  connectionsClosed(timeoutMs: number): Promise<boolean>;
  /** Destroys every connection still open. */
  destroyAll(): void;
  /** The certificate, key and client CA the https:// listeners serve now; undefined without one. */
  servedTls(): TlsFiles | undefined;
}

// Sniffing waits at most this long for a client to send its first bytes; an HTTP/1.1 client that
// connects and waits for the server to speak first does not exist.
const SNIFF_TIMEOUT_MS = 10_000;

// What the proxy advertises to clients: streams pin at most one stream window each when the member
// is slower than the client (or the client never reads, in the other direction).
const h2Settings: LocalSettings = { streamWindow: 1024 * 1024, connectionWindow: 16 * 1024 * 1024, maxConcurrentStreams: 100_000, maxHeaderListSize: 64 * 1024 };

/**
 * Starts listening on every client URL; resolves once all are bound. With reusePort (SO_REUSEPORT)
 * another process may bind the same addresses: a host-network proxy's replacement starts beside it,
 * the kernel spreads new connections over both, and once this one stops accepting they all reach the
 * new one.
 */
export async function startClientListeners(
  urls: readonly string[],
  tlsSource: TlsSource,
  handlers: ListenerHandlers,
  log: Logger,
  options: { reusePort?: boolean } = {},
): Promise<ClientListeners> {
  const tlsFiles = tlsSource.current();
  let nextConn = 0;
  const limits: ServerLimits = { ...defaultServerLimits, onCutOff: (reason) => handlers.cutOff?.(reason) };
  const connections = new Set<ServerConnection>();
  const sockets = new Set<net.Socket>();
  const h1 = http.createServer({
    // A streaming watch over the JSON gateway keeps its request open for as long as it watches.
    requestTimeout: 0,
    headersTimeout: 60_000,
    keepAliveTimeout: 5_000,
  });
  h1.setTimeout(0);
  // Pipelined HTTP/1.1 requests are forwarded one at a time per connection: their responses go out in
  // order anyway, and a client that pipelines without reading must not hold one member connection per
  // request (the pool to each member is shared by every client).
  const h1Queues = new WeakMap<net.Socket, (() => void)[]>();
  h1.on('request', (req, res) => {
    const socket = req.socket as net.Socket & { connLog?: Logger };
    const start = (): void => {
      if (socket.destroyed) {
        h1Queues.delete(socket); // the client left: what it pipelined is never answered
        return;
      }
      res.once('close', () => {
        const queue = h1Queues.get(socket);
        queue?.shift();
        queue?.[0]?.();
      });
      handlers.request(req, res, socket.connLog ?? log);
    };
    const queue = h1Queues.get(socket);
    if (queue === undefined) h1Queues.set(socket, [start]);
    else queue.push(start);
    if (h1Queues.get(socket)!.length === 1) start();
  });
  h1.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
    (socket as net.Socket & { connLog?: Logger }).connLog?.debug({ err: err.message, code: err.code }, 'Rejected a malformed HTTP/1.1 request');
    if (socket.writable && err.code !== 'ECONNRESET') {
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    } else socket.destroy();
  });

  const dispatch = (socket: net.Socket & { connLog?: Logger }, protocol: 'h2' | 'http1'): void => {
    if (protocol === 'h2') {
      const connLog = socket.connLog ?? log;
      const conn = new ServerConnection(socket, h2Settings, connLog, (stream, headers, endStream) => handlers.stream(stream, headers, endStream, connLog), limits);
      connections.add(conn);
      conn.onClose(() => connections.delete(conn));
      // The sniffer paused the socket; the connection reads the put-back preface once it flows.
      socket.resume();
    } else {
      h1.emit('connection', socket);
      // The sniffer paused the socket; the HTTP/1.1 parser reads the put-back bytes once it flows.
      socket.resume();
    }
  };

  const track = (socket: net.Socket & { connLog?: Logger }): void => {
    socket.connLog = log.child({ conn: ++nextConn, remote: `${socket.remoteAddress}:${socket.remotePort}` });
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', (err) => socket.connLog?.debug({ err: err.message }, 'Closed a client connection on error'));
  };

  const servers: net.Server[] = [];
  const tlsServers: tls.Server[] = [];
  const bound: BoundAddress[] = [];
  for (const u of urls) {
    const url = new URL(u);
    let server: net.Server;
    if (url.protocol === 'https:') {
      server = tls.createServer({
        cert: tlsFiles.cert,
        key: tlsFiles.key,
        ca: tlsFiles.ca,
        requestCert: tlsFiles.ca !== undefined,
        rejectUnauthorized: tlsFiles.ca !== undefined,
        ALPNProtocols: ['h2', 'http/1.1'],
      });
      server.on('connection', (raw: net.Socket) => raw.setNoDelay(true));
      server.on('secureConnection', (socket: tls.TLSSocket) => {
        track(socket);
        dispatch(socket, socket.alpnProtocol === 'h2' ? 'h2' : 'http1');
      });
      server.on('tlsClientError', (err: Error) => log.debug({ err: err.message }, 'Rejected a TLS client'));
    } else {
      server = net.createServer({ noDelay: true }, (socket) => {
        track(socket);
        sniff(socket, (protocol) => dispatch(socket, protocol));
      });
    }
    server.on('error', (err) => log.error({ err: err.message, url: u }, 'Client listener failed'));
    const host = url.hostname.replace(/^\[|\]$/g, '');
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port: Number(url.port), backlog: 1024, reusePort: options.reusePort === true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    if (server instanceof tls.Server) tlsServers.push(server);
    const addr = server.address() as net.AddressInfo;
    bound.push({ host: addr.address, port: addr.port });
    servers.push(server);
    log.info({ url: u }, 'Started listening for etcd clients');
  }

  // A renewed serving certificate (a Secret volume swapped in place) is served from the next handshake on.
  let generation = tlsSource.generation;
  let served = tlsFiles;
  const reload = setInterval(() => {
    const files = tlsSource.current();
    if (tlsSource.generation === generation) return;
    generation = tlsSource.generation;
    for (const s of tlsServers) s.setSecureContext({ cert: files.cert, key: files.key, ca: files.ca });
    served = files;
    log.info('Serving the renewed listener certificate');
  }, 1000);
  reload.unref();
  if (tlsServers.length === 0) clearInterval(reload);

  return {
    addresses: () => bound,
    stopAccepting: () => {
      clearInterval(reload);
      return Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r())))).then(() => undefined);
    },
    goAway: () => {
      for (const c of connections) c.goAway();
      h1.closeIdleConnections();
    },
    connectionsClosed: async (timeoutMs) => {
      const deadline = Date.now() + timeoutMs;
      // A handful of connections closing over a few milliseconds: polling is simpler than counting events.
      while (sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      return sockets.size === 0;
    },
    destroyAll: () => {
      for (const c of connections) c.destroy();
      for (const s of sockets) s.destroy();
    },
    servedTls: () => (tlsServers.length > 0 ? served : undefined),
  };
}

/** Reads just enough of a cleartext connection to tell HTTP/2 prior knowledge from HTTP/1.1, then puts the bytes back. */
function sniff(socket: net.Socket, decided: (protocol: 'h2' | 'http1') => void): void {
  let head: Buffer = Buffer.alloc(0);
  const timer = setTimeout(() => socket.destroy(), SNIFF_TIMEOUT_MS);
  const onData = (chunk: Buffer): void => {
    head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
    const protocol = sniffProtocol(head);
    if (protocol === 'more') return;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onEnd);
    if (protocol === 'neither') {
      (socket as net.Socket & { connLog?: Logger }).connLog?.debug('Closed a client connection that spoke neither HTTP/2 nor HTTP/1.1');
      socket.destroy();
      return;
    }
    socket.pause();
    socket.unshift(head);
    decided(protocol);
  };
  const onEnd = (): void => {
    clearTimeout(timer);
    socket.destroy();
  };
  socket.on('data', onData);
  socket.on('end', onEnd);
}
