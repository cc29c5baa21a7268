import type { Duplex } from 'node:stream';
import type { Logger } from '../../telemetry/logger.ts';
import { H2Connection, type LocalSettings } from './connection.ts';
import { CLIENT_PREFACE, ErrorCode, H2Error } from './frames.ts';
import type { H2Stream } from './stream.ts';

/** Called for every new request stream; the callee sets stream.handler before returning. */
export type OnStream = (stream: H2Stream, headers: string[], endStream: boolean) => void;

/**
 * The client-facing side of an HTTP/2 connection: checks the client preface, accepts odd-numbered
 * streams in increasing order up to SETTINGS_MAX_CONCURRENT_STREAMS, and hands each to onStream.
 */
export class ServerConnection extends H2Connection {
  private readonly onStream: OnStream;
  private prefaceSeen = 0;
  private lastStreamId = 0;

  constructor(socket: Duplex, local: LocalSettings, log: Logger, onStream: OnStream) {
    super(socket, local, log);
    this.onStream = onStream;
    this.sendInitialSettings([]);
  }

  protected override receive(chunk: Buffer): void {
    if (this.prefaceSeen < CLIENT_PREFACE.length) {
      const n = Math.min(chunk.length, CLIENT_PREFACE.length - this.prefaceSeen);
      if (!chunk.subarray(0, n).equals(CLIENT_PREFACE.subarray(this.prefaceSeen, this.prefaceSeen + n))) {
        this.fail(ErrorCode.PROTOCOL_ERROR, 'invalid connection preface');
        return;
      }
      this.prefaceSeen += n;
      if (n === chunk.length) return;
      chunk = chunk.subarray(n);
    }
    super.receive(chunk);
  }

  protected onNewHeaders(streamId: number, headers: string[], endStream: boolean, tooLarge: boolean): void {
    if (streamId % 2 === 0) throw new H2Error(ErrorCode.PROTOCOL_ERROR, 'client opened an even-numbered stream');
    if (streamId <= this.lastStreamId) return; // a stream already closed (reset by this side): late frames are dropped
    if (this.goawaySent) return; // above the last-stream-id of the GOAWAY: never processed
    this.lastStreamId = streamId;
    const stream = this.newStream(streamId, true);
    if (tooLarge) {
      stream.reset(ErrorCode.ENHANCE_YOUR_CALM);
      return;
    }
    if (this.streams.size > (this.local.maxConcurrentStreams ?? Infinity)) {
      stream.reset(ErrorCode.REFUSED_STREAM);
      return;
    }
    if (!hasRequestPseudoHeaders(headers)) {
      stream.reset(ErrorCode.PROTOCOL_ERROR);
      return;
    }
    if (endStream) stream.remoteEnded = true;
    this.onStream(stream, headers, endStream);
  }

  protected isIdle(streamId: number): boolean {
    return streamId > this.lastStreamId;
  }

  protected isLocallyInitiated(streamId: number): boolean {
    return streamId % 2 === 0;
  }

  protected lastPeerStreamId(): number {
    return this.lastStreamId;
  }
}

/** A request needs :method and :path (RFC 9113, section 8.3.1). */
function hasRequestPseudoHeaders(headers: readonly string[]): boolean {
  let method = false;
  let path = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name.charCodeAt(0) !== 58) break;
    if (name === ':method') method = true;
    else if (name === ':path') path = headers[i + 1] !== '';
  }
  return method && path;
}
