import http2 from 'node:http2';
import type { Logger } from '../telemetry/logger.ts';
import type { TlsFiles } from './config.ts';

/** An HTTP/2 connection to one member, and whether it ever completed its handshake. */
export interface UpstreamSession {
  url: string;
  session: http2.ClientHttp2Session;
  connected: boolean;
}

// Flow-control windows: large enough that a big Range response is not throttled to 64 KiB per
// round trip, small enough that a client that never reads pins at most this much per stream.
const STREAM_WINDOW = 1024 * 1024;
const SESSION_WINDOW = 16 * 1024 * 1024;

/**
 * One HTTP/2 session per member, created on first use and replaced once it closes or receives a
 * GOAWAY. A session that fails on its own (the member went away) is reported through onFailure so the
 * member is held off; sessions closed by the proxy itself are not.
 */
export class UpstreamSessions {
  private readonly sessions = new Map<string, UpstreamSession>();
  private readonly tls: TlsFiles;
  private readonly log: Logger;
  private readonly onFailure: (url: string, err: Error | undefined) => void;
  private readonly closedByProxy = new WeakSet<http2.ClientHttp2Session>();

  constructor(tls: TlsFiles, log: Logger, onFailure: (url: string, err: Error | undefined) => void) {
    this.tls = tls;
    this.log = log;
    this.onFailure = onFailure;
  }

  /** The live session to url, connecting when there is none. */
  get(url: string): UpstreamSession {
    const existing = this.sessions.get(url);
    if (existing && !existing.session.closed && !existing.session.destroyed) return existing;
    const session = http2.connect(url, {
      ca: this.tls.ca,
      cert: this.tls.cert,
      key: this.tls.key,
      settings: { initialWindowSize: STREAM_WINDOW, enablePush: false },
      maxSessionMemory: 64,
      // etcd allows more concurrent streams than nghttp2 assumes before its SETTINGS arrive.
      peerMaxConcurrentStreams: 1 << 20,
      maxHeaderListPairs: 512,
    });
    const entry: UpstreamSession = { url, session, connected: false };
    this.sessions.set(url, entry);
    let failed = false;
    const fail = (err: Error | undefined): void => {
      if (failed || this.closedByProxy.has(session)) return;
      failed = true;
      this.log.warn({ member: url, err: err?.message }, 'Lost HTTP/2 connection to etcd member');
      this.onFailure(url, err);
    };
    let goaway = false;
    session.on('connect', () => {
      entry.connected = true;
      session.setLocalWindowSize(SESSION_WINDOW);
      // Watch and LeaseKeepAlive streams multiplex onto this one session and may be quiet for
      // hours; nothing here may time them out.
      session.setTimeout(0);
      this.log.debug({ member: url }, 'Connected to etcd member');
    });
    session.on('goaway', () => {
      goaway = true;
      // The member is going away gracefully: open streams finish, new ones go to a new session.
      if (this.sessions.get(url) === entry) this.sessions.delete(url);
    });
    session.on('error', fail);
    session.on('close', () => {
      if (this.sessions.get(url) === entry) this.sessions.delete(url);
      // A connection that ends without a GOAWAY means the member died or the network broke.
      if (!goaway) fail(undefined);
    });
    return entry;
  }

  /** Closes the session to url, letting its open streams finish. */
  close(url: string): void {
    const entry = this.sessions.get(url);
    if (!entry) return;
    this.sessions.delete(url);
    this.closedByProxy.add(entry.session);
    entry.session.close();
  }

  /** Closes every session; destroy also drops open streams. */
  closeAll(destroy = false): void {
    for (const [url, entry] of this.sessions) {
      this.sessions.delete(url);
      this.closedByProxy.add(entry.session);
      if (destroy) entry.session.destroy();
      else entry.session.close();
    }
  }
}
