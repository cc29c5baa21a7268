import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from '../telemetry/logger.ts';
import type { TlsSource } from './tls-reload.ts';
import { ClientConnection, type Keepalive } from './h2/client-connection.ts';
import type { LocalSettings } from './h2/connection.ts';
import { CONNECT_FALLBACK_MS } from './attempts.ts';

/** An HTTP/2 connection to one member, and whether its socket ever connected. */
export interface MemberConnection {
  url: string;
  /** The :scheme and :authority requests to this member carry. */
  scheme: string;
  authority: string;
  conn: ClientConnection;
  connected: boolean;
}

// Flow-control windows: large enough that a big Range response is not throttled to 64 KiB per
// round trip, small enough that a client that never reads pins at most this much per stream.
const settings: LocalSettings = { streamWindow: 1024 * 1024, connectionWindow: 16 * 1024 * 1024, maxHeaderListSize: 1024 * 1024 };

// A member whose host died silently (power loss, partition) leaves a connection that never errors.
// After 10 s without a frame from it the proxy sends a PING, and 5 s without an answer ends the
// connection: its streams fail (unanswered reads go to another member) and the member is held off.
// etcd's gRPC server refuses PINGs closer than 5 s (--grpc-keepalive-min-time), so 10 s is well
// clear of that; 10 + 5 s bounds how long a call can hang on a dead member.
const keepalive: Omit<Keepalive, 'onTimeout'> = { intervalMs: 10_000, timeoutMs: 5_000 };

/** What the member connections report besides failures. */
export interface MemberConnectionEvents {
  /** A connection was lost without a GOAWAY (the member died or the network broke): hold the member off. */
  onFailure(url: string, err: Error | undefined): void;
  /** A connection was ended because the member did not answer a keepalive PING (or its SETTINGS) in time. */
  onKeepaliveTimeout(url: string): void;
  /** Whether a member other than url could take calls now (not held off): a slow new connection to url is then given up. */
  hasAlternative(url: string): boolean;
  /** A new connection was given up after CONNECT_FALLBACK_MS because its handshake had not finished. */
  onSlowConnect(url: string): void;
}

/**
 * The HTTP/2 connections to the members, created on first use. Streams multiplex onto one connection
 * per member; another opens only when the member's SETTINGS_MAX_CONCURRENT_STREAMS is reached or the
 * connection received a GOAWAY. A connection that fails on its own (the member went away) is
 * reported through onFailure, so the member is held off; connections the proxy closed are not.
 */
export class MemberConnections {
  private readonly pools = new Map<string, MemberConnection[]>();
  private readonly tls: TlsSource;
  private readonly log: Logger;
  private readonly events: MemberConnectionEvents;
  private readonly closedByProxy = new WeakSet<ClientConnection>();

  constructor(tlsFiles: TlsSource, log: Logger, events: MemberConnectionEvents) {
    this.tls = tlsFiles;
    this.log = log;
    this.events = events;
  }

  /** A live connection to url with room for one more stream, connecting when there is none. */
  get(url: string): MemberConnection {
    const pool = this.pools.get(url);
    if (pool !== undefined) {
      for (const entry of pool) if (entry.conn.hasRoom()) return entry;
    }
    return this.connect(url);
  }

  /** Closes the connections to url, letting their open streams finish. */
  close(url: string): void {
    const pool = this.pools.get(url);
    if (pool === undefined) return;
    this.pools.delete(url);
    for (const entry of pool) {
      this.closedByProxy.add(entry.conn);
      entry.conn.goAway();
    }
  }

  /** Closes every connection; destroy also drops open streams. */
  closeAll(destroy = false): void {
    for (const [url, pool] of this.pools) {
      this.pools.delete(url);
      for (const entry of pool) {
        this.closedByProxy.add(entry.conn);
        if (destroy) entry.conn.destroy();
        else entry.conn.goAway();
      }
    }
  }

  private connect(url: string): MemberConnection {
    const u = new URL(url);
    const secure = u.protocol === 'https:';
    const host = u.hostname.replace(/^\[|\]$/g, '');
    const port = Number(u.port || (secure ? 443 : 80));
    // The newest certificate files for every new connection: a renewed client certificate is used
    // without a restart, while connections made before keep theirs.
    const material = secure ? this.tls.current() : {};
    const socket = secure
      ? tls.connect({
          host,
          port,
          servername: net.isIP(host) === 0 ? host : undefined,
          ca: material.ca,
          cert: material.cert,
          key: material.key,
          ALPNProtocols: ['h2'],
        })
      : net.connect({ host, port });
    socket.setNoDelay(true);
    const log = this.log.child({ member: url });
    const conn = new ClientConnection(socket, settings, log, { ...keepalive, onTimeout: () => this.events.onKeepaliveTimeout(url) });
    const entry: MemberConnection = { url, scheme: secure ? 'https' : 'http', authority: u.host, conn, connected: false };
    const pool = this.pools.get(url) ?? [];
    pool.push(entry);
    this.pools.set(url, pool);
    let lastError: Error | undefined;
    // Until the handshake is done nothing written to the connection has left this host (a TLS
    // socket holds a request back until then), so its streams can go to another member unsent.
    const fallback = setTimeout(() => {
      if (entry.connected || !this.events.hasAlternative(url)) return;
      log.warn({ ms: CONNECT_FALLBACK_MS }, 'etcd member did not finish the connection handshake; its calls go to another member');
      this.events.onSlowConnect(url);
      conn.destroy(new Error(`no connection to the etcd member within ${CONNECT_FALLBACK_MS} ms`));
    }, CONNECT_FALLBACK_MS);
    fallback.unref();
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      clearTimeout(fallback);
      entry.connected = true;
      log.debug('Connected to etcd member');
    });
    socket.on('error', (err: Error) => {
      lastError = err;
    });
    conn.onClose(() => {
      clearTimeout(fallback);
      const current = this.pools.get(url);
      if (current !== undefined) {
        const rest = current.filter((e) => e !== entry);
        if (rest.length > 0) this.pools.set(url, rest);
        else if (this.pools.get(url) === current) this.pools.delete(url);
      }
      // A connection that ends without a GOAWAY means the member died or the network broke.
      if (this.closedByProxy.has(conn) || conn.goawayReceived !== undefined) return;
      log.warn({ err: lastError?.message }, 'Lost HTTP/2 connection to etcd member');
      this.events.onFailure(url, lastError);
    });
    return entry;
  }
}
