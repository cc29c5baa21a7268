import type { Duplex } from 'node:stream';
import type { Logger } from '../../telemetry/logger.ts';
import { H2Connection, type LocalSettings } from './connection.ts';
import { CLIENT_PREFACE, encodePing, ErrorCode, H2Error, MAX_WINDOW, Setting } from './frames.ts';
import type { H2Stream, StreamHandler } from './stream.ts';

/** When to check that the peer is still there (see ClientConnection). */
export interface Keepalive {
  /** A PING goes out once nothing was received for this long. */
  intervalMs: number;
  /** With no ACK (and nothing else received) this long after the PING, the connection is dead. */
  timeoutMs: number;
  /** Hears of every connection ended because the peer did not answer in time, for metrics. */
  onTimeout?: () => void;
}

/**
 * The member-facing side of an HTTP/2 connection: sends the preface, opens odd-numbered streams, and
 * stays within the member's SETTINGS_MAX_CONCURRENT_STREAMS (hasRoom() says when another connection
 * is needed).
 *
 * With keepalive, a peer that vanished without closing the connection (power loss, partition, a
 * frozen process: the socket never errors) is found out: once nothing was received for intervalMs a
 * PING goes out, and when neither its ACK nor anything else arrives within timeoutMs the socket is
 * destroyed with an error, failing every stream on it; a new connection must hear from the peer
 * within timeoutMs too. grpc-go servers (etcd) count a PING as a strike
 * when it comes less than their keepalive min-time (etcd: 5 s) after the previous one while streams
 * are open, or at all while none are open (PermitWithoutStream false), unless they sent HEADERS or
 * DATA since; three strikes get GOAWAY ENHANCE_YOUR_CALM. So PINGs are at least intervalMs apart, and
 * with no stream open one goes out only if the peer sent HEADERS or DATA since the last one.
 */
export class ClientConnection extends H2Connection {
  private nextStreamId = 1;
  private readonly keepalive: Keepalive | undefined;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private lastReadAt = 0;
  /** When the outstanding PING went out. */
  private pingSentAt: number | undefined;
  private pingPayload = Buffer.alloc(8);
  private pingCount = 0;
  /** The peer sent HEADERS or DATA since the last PING (or none was sent yet): grpc-go then forgives the next PING. */
  private peerSpoke = true;

  constructor(socket: Duplex, local: LocalSettings, log: Logger, keepalive?: Keepalive) {
    super(socket, local, log);
    this.write(CLIENT_PREFACE);
    this.sendInitialSettings([[Setting.ENABLE_PUSH, 0]]);
    this.keepalive = keepalive;
    if (keepalive !== undefined) {
      // Opening counts as a PING: the member's SETTINGS (or anything) must arrive within timeoutMs,
      // so a connection whose TCP handshake hangs, or that reached a frozen process, fails fast.
      this.pingSentAt = Date.now();
      this.armKeepalive(keepalive.timeoutMs);
      this.onClose(() => clearTimeout(this.keepaliveTimer));
    }
  }

  protected override receive(chunk: Buffer): void {
    this.lastReadAt = Date.now();
    super.receive(chunk);
  }

  override onHeaders(streamId: number, block: Buffer, endStream: boolean): void {
    this.peerSpoke = true;
    super.onHeaders(streamId, block, endStream);
  }

  override onData(streamId: number, data: Buffer, endStream: boolean, flowLength: number): void {
    this.peerSpoke = true;
    super.onData(streamId, data, endStream, flowLength);
  }

  protected override onPingAck(payload: Buffer): void {
    if (this.pingSentAt === undefined || !payload.equals(this.pingPayload)) return;
    this.pingSentAt = undefined;
    this.armKeepalive(this.keepalive!.intervalMs);
  }

  private armKeepalive(ms: number): void {
    clearTimeout(this.keepaliveTimer);
    this.keepaliveTimer = setTimeout(() => this.keepaliveTick(), ms);
    this.keepaliveTimer.unref();
  }

  private keepaliveTick(): void {
    const ka = this.keepalive!;
    this.keepaliveTimer = undefined;
    if (this.closed) return;
    const now = Date.now();
    if (this.pingSentAt !== undefined) {
      if (this.lastReadAt >= this.pingSentAt) {
        // No ACK yet, but the peer is evidently there (the ACK may be behind a lot of DATA).
        this.pingSentAt = undefined;
      } else {
        this.log.warn({ timeoutMs: ka.timeoutMs, streams: this.streams.size }, 'etcd member did not answer a keepalive PING; closing the connection');
        ka.onTimeout?.();
        this.destroy(new Error(`no answer to a keepalive PING within ${ka.timeoutMs}ms`));
        return;
      }
    }
    const idle = now - this.lastReadAt;
    if (idle < ka.intervalMs) {
      this.armKeepalive(ka.intervalMs - idle);
      return;
    }
    if (this.streams.size === 0 && !this.peerSpoke) {
      // Idle, no stream, and already checked since the peer last sent anything: nothing is waiting on
      // this connection, and another PING would be a strike. A new stream's next check will ping.
      this.armKeepalive(ka.intervalMs);
      return;
    }
    this.ping(now);
  }

  private ping(now: number): void {
    this.pingPayload = Buffer.alloc(8);
    this.pingPayload.writeUInt32BE(++this.pingCount, 4);
    this.pingSentAt = now;
    this.peerSpoke = false;
    this.write(encodePing(this.pingPayload, false));
    this.log.debug({ streams: this.streams.size }, 'Sent a keepalive PING to etcd member');
    this.armKeepalive(this.keepalive!.timeoutMs);
  }

  /** Whether a new stream may open on this connection now. */
  hasRoom(): boolean {
    return !this.closed && !this.goawaySent && this.goawayReceived === undefined && this.nextStreamId < MAX_WINDOW && this.streams.size < this.peerMaxConcurrentStreams;
  }

  /** Opens a stream with its request headers (pseudo-headers first). */
  request(headers: readonly string[], endStream: boolean, handler: StreamHandler): H2Stream {
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const stream = this.newStream(id, false);
    stream.handler = handler;
    stream.sendHeaders(headers, endStream);
    if (this.keepalive !== undefined && this.pingSentAt === undefined) {
      // The first stream after a long silence: check the peer now rather than at the next tick, so
      // that a call on a dead connection fails (and a read is retried elsewhere) within timeoutMs.
      const now = Date.now();
      if (now - this.lastReadAt >= this.keepalive.intervalMs) this.ping(now);
    }
    return stream;
  }

  protected onNewHeaders(streamId: number): void {
    // Servers do not open streams (push is disabled); late frames on a stream this side closed are dropped.
    if (this.isIdle(streamId) || streamId % 2 === 0) throw new H2Error(ErrorCode.PROTOCOL_ERROR, 'HEADERS on a stream this side never opened');
  }

  protected isIdle(streamId: number): boolean {
    return streamId % 2 === 1 ? streamId >= this.nextStreamId : true;
  }

  protected isLocallyInitiated(streamId: number): boolean {
    return streamId % 2 === 1;
  }

  protected lastPeerStreamId(): number {
    return 0;
  }
}
