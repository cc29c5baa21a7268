import type { Duplex } from 'node:stream';
import type { Logger } from '../../telemetry/logger.ts';
import { H2Connection, type LocalSettings } from './connection.ts';
import { CLIENT_PREFACE, ErrorCode, H2Error, MAX_WINDOW, Setting } from './frames.ts';
import type { H2Stream, StreamHandler } from './stream.ts';

/**
 * The member-facing side of an HTTP/2 connection: sends the preface, opens odd-numbered streams, and
 * stays within the member's SETTINGS_MAX_CONCURRENT_STREAMS (hasRoom() says when another connection
 * is needed).
 */
export class ClientConnection extends H2Connection {
  private nextStreamId = 1;

  constructor(socket: Duplex, local: LocalSettings, log: Logger) {
    super(socket, local, log);
    this.write(CLIENT_PREFACE);
    this.sendInitialSettings([[Setting.ENABLE_PUSH, 0]]);
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
