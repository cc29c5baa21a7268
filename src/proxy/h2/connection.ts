import type { Duplex } from 'node:stream';
import type { Logger } from '../../telemetry/logger.ts';
import { FrameReader, type FrameHandler } from './frame-reader.ts';
import {
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_WINDOW,
  dataFrameHeader,
  encodeGoaway,
  encodeHeaderBlock,
  encodePing,
  encodeRstStream,
  encodeSettings,
  encodeWindowUpdate,
  ErrorCode,
  H2Error,
  MAX_WINDOW,
  Setting,
} from './frames.ts';
import { HpackDecoder, HpackEncoder } from './hpack.ts';
import { H2Stream, type ResetCause, type StreamOwner } from './stream.ts';

/** Windows and limits this side advertises. */
export interface LocalSettings {
  /** SETTINGS_INITIAL_WINDOW_SIZE: how much each stream may send before this side credits it. */
  streamWindow: number;
  /** The connection-level window, raised from 65,535 by a WINDOW_UPDATE at the start. */
  connectionWindow: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS, for a server; undefined advertises nothing. */
  maxConcurrentStreams?: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE; a larger received header list fails its stream. */
  maxHeaderListSize: number;
}

// A header block larger than this across HEADERS and CONTINUATION is a connection error.
const MAX_HEADER_BLOCK = 256 * 1024;
// Writes below this size are joined into one buffer; above it they go out as a vector, uncopied.
const COALESCE_LIMIT = 64 * 1024;
// A PING ACK waits at most this long for other frames to leave with (see onPing).
const LAZY_FLUSH_MS = 5;
// After a connection error, the GOAWAY gets this long to leave before the socket is destroyed.
const CLOSE_GRACE_MS = 1000;
// How many recently closed streams a server remembers the ending of (see closedStreams): late frames
// arrive within a round trip, and a busy connection keeps at most this many small entries.
const CLOSED_MEMORY = 256;

/** How a stream closed, for the frames that may still arrive on it. */
export const Closed = {
  /** Both sides ended it, the peer with END_STREAM: anything more from the peer is a connection error STREAM_CLOSED. */
  ENDED: 1,
  /** The peer reset it: DATA or HEADERS after that are a stream error STREAM_CLOSED. */
  PEER_RESET: 2,
  /** This side reset it: the peer may have sent frames before it saw the reset, so they are ignored. */
  LOCAL_RESET: 3,
} as const;

/**
 * What servers and clients share: frames in and out, SETTINGS, PING, GOAWAY, the stream table and
 * connection-level flow control. The connection-level window is credited as bytes arrive, since they
 * are bounded by the stream windows, which are credited only as each stream's data is passed on.
 */
export abstract class H2Connection implements FrameHandler, StreamOwner {
  readonly socket: Duplex;
  readonly streams = new Map<number, H2Stream>();
  peerMaxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  peerMaxConcurrentStreams = Infinity;
  sendWindow = DEFAULT_WINDOW;
  readonly localInitialWindow: number;
  /** The peer's SETTINGS_INITIAL_WINDOW_SIZE, every new stream's send window. */
  protected peerInitialWindow = DEFAULT_WINDOW;
  /** Set once this side sent GOAWAY: no new streams. */
  goawaySent = false;
  /** Set once the peer sent GOAWAY: its last-stream-id. */
  goawayReceived: number | undefined;
  /** The socket closed. */
  closed = false;
  /** A connection error was sent: nothing more is read or written. */
  private closing = false;
  protected readonly log: Logger;
  protected readonly local: LocalSettings;
  private readonly reader: FrameReader;
  private readonly decoder = new HpackDecoder();
  private readonly encoder = new HpackEncoder();
  private recvWindow: number;
  private recvUnacked = 0;
  private readonly waiting = new Set<H2Stream>();
  private out: Buffer[] = [];
  private outBytes = 0;
  private flushScheduled = false;
  // The socket's buffer is over its high-water mark: a peer that opens its windows but does not read
  // must not make the proxy buffer without bound.
  private socketFull = false;
  private lazyFlush: NodeJS.Timeout | undefined;
  private readonly closeListeners: (() => void)[] = [];
  /**
   * Server side: how the last CLOSED_MEMORY streams closed (RFC 9113, section 5.1: frames on a
   * stream after the peer ended or reset it are errors, frames after this side reset it are not).
   * Older closed streams are treated as reset by this side. Undefined on the member side.
   */
  protected closedStreams: Map<number, number> | undefined;
  /** The highest stream ID forgotten from closedStreams: a frame at or below it may be a late one. */
  protected forgottenUpTo = 0;

  constructor(socket: Duplex, local: LocalSettings, log: Logger) {
    this.socket = socket;
    this.local = local;
    this.log = log;
    this.localInitialWindow = local.streamWindow;
    this.recvWindow = local.connectionWindow;
    this.reader = new FrameReader(this, { maxFrameSize: DEFAULT_MAX_FRAME_SIZE, maxHeaderBlock: MAX_HEADER_BLOCK });
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('close', () => this.onSocketClose());
    socket.on('error', (err: Error) => this.log.debug({ err: err.message }, 'HTTP/2 connection failed'));
  }

  /** Runs fn once the connection has closed. */
  onClose(fn: () => void): void {
    if (this.closed) fn();
    else this.closeListeners.push(fn);
  }

  /** Frames this side sends first, after its preface (if any). */
  protected sendInitialSettings(extra: [number, number][]): void {
    const settings: [number, number][] = [...extra, [Setting.INITIAL_WINDOW_SIZE, this.local.streamWindow], [Setting.MAX_HEADER_LIST_SIZE, this.local.maxHeaderListSize]];
    if (this.local.maxConcurrentStreams !== undefined) settings.push([Setting.MAX_CONCURRENT_STREAMS, this.local.maxConcurrentStreams]);
    this.write(encodeSettings(settings));
    if (this.local.connectionWindow > DEFAULT_WINDOW) this.write(encodeWindowUpdate(0, this.local.connectionWindow - DEFAULT_WINDOW));
  }

  /** Feeds received bytes to the frame reader; a protocol error ends this connection only. */
  protected receive(chunk: Buffer): void {
    if (this.closing || this.closed) return;
    try {
      this.reader.push(chunk);
    } catch (err) {
      if (err instanceof H2Error) this.fail(err.code, err.message);
      else {
        this.log.error({ err: (err as Error).stack }, 'HTTP/2 connection failed on an internal error');
        this.fail(ErrorCode.INTERNAL_ERROR, 'internal error');
      }
    }
  }

  /** Connection error: GOAWAY with code, every stream fails, and the socket closes. */
  fail(code: number, message: string): void {
    if (this.closing || this.closed) return;
    this.log.debug({ code, message }, 'Closed an HTTP/2 connection on a protocol error');
    this.write(encodeGoaway(this.lastPeerStreamId(), code, message));
    this.goawaySent = true;
    this.flush();
    this.closing = true;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
    this.failStreams(() => true, ErrorCode.CANCEL, 'connection');
  }

  /** Graceful close: GOAWAY NO_ERROR, open streams finish, then the socket closes. */
  goAway(): void {
    if (this.closed || this.goawaySent) return;
    this.goawaySent = true;
    this.write(encodeGoaway(this.lastPeerStreamId(), ErrorCode.NO_ERROR));
    this.endIfIdle();
  }

  /** Closes the socket now; open streams fail. With err, the socket emits it as its error first. */
  destroy(err?: Error): void {
    this.socket.destroy(err);
  }

  // --- frames in -------------------------------------------------------------------------------

  onData(streamId: number, data: Buffer, endStream: boolean, flowLength: number): void {
    if (flowLength > this.recvWindow) throw new H2Error(ErrorCode.FLOW_CONTROL_ERROR, 'DATA beyond the connection window');
    this.recvWindow -= flowLength;
    this.creditConnection(flowLength);
    const stream = this.streams.get(streamId);
    if (stream === undefined) {
      if (this.isIdle(streamId)) throw new H2Error(ErrorCode.PROTOCOL_ERROR, 'DATA on an idle stream');
      this.onClosedStreamFrame(streamId);
      return;
    }
    if (stream.remoteEnded) {
      this.streamError(stream, ErrorCode.STREAM_CLOSED);
      return;
    }
    if (flowLength > stream.recvWindow) {
      this.streamError(stream, ErrorCode.FLOW_CONTROL_ERROR);
      return;
    }
    stream.recvWindow -= flowLength;
    if (stream.expectedLength >= 0) {
      stream.expectedLength -= data.length;
      if (stream.expectedLength < 0 || (endStream && stream.expectedLength !== 0)) {
        this.streamError(stream, ErrorCode.PROTOCOL_ERROR); // the body does not match its content-length
        return;
      }
    }
    if (endStream) stream.remoteEnded = true;
    else if (flowLength > data.length) stream.credit(flowLength - data.length); // padding is never passed on
    stream.handler?.onData(stream, data, endStream);
    if (endStream) stream.endedRemotely();
  }

  onHeaders(streamId: number, block: Buffer, endStream: boolean, selfDependent = false): void {
    // Decoded even for a stream that is gone: the HPACK table must follow every block.
    const headers = this.decoder.decode(block);
    let size = 0;
    for (let i = 0; i < headers.length; i++) size += headers[i]!.length + (i % 2 === 0 ? 32 : 0);
    const reject = size > this.local.maxHeaderListSize ? ErrorCode.ENHANCE_YOUR_CALM : selfDependent || this.decoder.malformed ? ErrorCode.PROTOCOL_ERROR : 0;
    const stream = this.streams.get(streamId);
    if (stream === undefined) {
      this.onNewHeaders(streamId, headers, endStream, reject);
      return;
    }
    if (stream.remoteEnded) {
      this.streamError(stream, ErrorCode.STREAM_CLOSED);
      return;
    }
    const code = reject !== 0 ? reject : this.trailersError(stream, headers, endStream);
    if (code !== 0) {
      this.streamError(stream, code);
      return;
    }
    if (endStream) stream.remoteEnded = true;
    stream.handler?.onHeaders(stream, headers, endStream);
    if (endStream) stream.endedRemotely();
  }

  onRstStream(streamId: number, code: number): void {
    const stream = this.streams.get(streamId);
    if (stream === undefined) {
      if (this.isIdle(streamId)) throw new H2Error(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on an idle stream');
      return;
    }
    stream.resetReceived = true;
    stream.close();
    stream.handler?.onReset(stream, code, 'peer');
  }

  onSettings(settings: [number, number][]): void {
    for (const [id, value] of settings) {
      switch (id) {
        case Setting.HEADER_TABLE_SIZE:
          this.encoder.setMaxTableSize(value);
          break;
        case Setting.INITIAL_WINDOW_SIZE: {
          const delta = value - this.peerInitialWindow;
          this.peerInitialWindow = value;
          for (const s of this.streams.values()) {
            s.sendWindow += delta;
            if (s.sendWindow > MAX_WINDOW) throw new H2Error(ErrorCode.FLOW_CONTROL_ERROR, 'stream window above 2^31-1');
          }
          break;
        }
        case Setting.MAX_FRAME_SIZE:
          this.peerMaxFrameSize = value;
          break;
        case Setting.MAX_CONCURRENT_STREAMS:
          this.peerMaxConcurrentStreams = value;
          break;
        default:
          break; // ENABLE_PUSH (never used), MAX_HEADER_LIST_SIZE (advisory), unknown settings
      }
    }
    this.write(encodeSettings([], true));
    this.resumeWaiting();
  }

  onSettingsAck(): void {}

  onPing(payload: Buffer, ack: boolean): void {
    if (ack) {
      this.onPingAck(payload);
      return;
    }
    // gRPC peers send a PING with nearly every DATA frame they receive (grpc-go's bandwidth estimator),
    // so an ACK written at once costs a write and a wake-up on both sides per request. It leaves with
    // the next frames instead, or after LAZY_FLUSH_MS; keepalive timeouts are seconds.
    if (this.closing || this.closed) return;
    const frame = encodePing(payload, true);
    this.out.push(frame);
    this.outBytes += frame.length;
    if (!this.flushScheduled && this.lazyFlush === undefined) this.lazyFlush = setTimeout(() => this.flush(), LAZY_FLUSH_MS);
  }

  onGoaway(lastStreamId: number, code: number, debug: Buffer): void {
    this.goawayReceived = Math.min(lastStreamId, this.goawayReceived ?? lastStreamId);
    this.log.debug({ lastStreamId, code, debug: debug.toString('utf8') }, 'Received GOAWAY');
    this.failStreams((id) => this.isLocallyInitiated(id) && id > lastStreamId, ErrorCode.REFUSED_STREAM, 'goaway');
    this.endIfIdle();
  }

  onWindowUpdate(streamId: number, increment: number): void {
    if (streamId === 0) {
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW) throw new H2Error(ErrorCode.FLOW_CONTROL_ERROR, 'connection window above 2^31-1');
      this.resumeWaiting();
      return;
    }
    const stream = this.streams.get(streamId);
    if (stream === undefined) {
      if (this.isIdle(streamId)) throw new H2Error(ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE on an idle stream');
      return;
    }
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) {
      this.streamError(stream, ErrorCode.FLOW_CONTROL_ERROR);
      return;
    }
    this.flushStream(stream);
  }

  onStreamError(streamId: number, code: number): void {
    const stream = this.streams.get(streamId);
    if (stream !== undefined) this.streamError(stream, code);
    else this.writeRst(streamId, code); // an idle or closed stream (a PRIORITY frame may name either)
  }

  // --- frames out (StreamOwner) ----------------------------------------------------------------

  writeData(streamId: number, data: Buffer, endStream: boolean): void {
    this.write(dataFrameHeader(streamId, data.length, endStream));
    if (data.length > 0) this.write(data);
  }

  writeHeaders(streamId: number, headers: readonly string[], endStream: boolean): void {
    this.write(encodeHeaderBlock(streamId, this.encoder.encode(headers), endStream, this.peerMaxFrameSize));
  }

  writeWindowUpdate(streamId: number, increment: number): void {
    this.write(encodeWindowUpdate(streamId, increment));
  }

  writeRst(streamId: number, code: number): void {
    this.write(encodeRstStream(streamId, code));
  }

  canWrite(): boolean {
    return !this.socketFull;
  }

  blocked(stream: H2Stream): void {
    this.waiting.add(stream);
  }

  forget(stream: H2Stream): void {
    this.waiting.delete(stream);
    if (this.streams.get(stream.id) === stream) this.streams.delete(stream.id);
    if (this.closedStreams !== undefined) {
      this.rememberClosed(stream.id, stream.resetSent ? Closed.LOCAL_RESET : stream.resetReceived ? Closed.PEER_RESET : stream.remoteEnded ? Closed.ENDED : Closed.LOCAL_RESET);
    }
    this.streamClosed(stream);
    if (this.goawaySent || this.goawayReceived !== undefined) this.endIfIdle();
  }

  // --- for subclasses --------------------------------------------------------------------------

  /**
   * HEADERS for a stream this side does not have open: a new request (server), a late frame, or a
   * protocol error. reject is the stream error the block already earned (0 when none).
   */
  protected abstract onNewHeaders(streamId: number, headers: string[], endStream: boolean, reject: number): void;
  /** The stream error a second header block (trailers) on an open stream earns, or 0. */
  protected trailersError(_stream: H2Stream, _headers: readonly string[], _endStream: boolean): number {
    return 0;
  }
  /** Whether streamId was never opened (frames on it are a protocol error). */
  protected abstract isIdle(streamId: number): boolean;
  /** Whether this side opened streamId. */
  protected abstract isLocallyInitiated(streamId: number): boolean;
  /** The last peer-initiated stream ID, for GOAWAY. */
  protected abstract lastPeerStreamId(): number;
  /** A stream left the table. */
  protected streamClosed(_stream: H2Stream): void {}
  /** The peer acknowledged a PING this side sent. */
  protected onPingAck(_payload: Buffer): void {}

  protected newStream(id: number, resetAfterEnd: boolean): H2Stream {
    const stream = new H2Stream(id, this, this.peerInitialWindow, resetAfterEnd);
    this.streams.set(id, stream);
    return stream;
  }

  /** Records how a stream closed (server side), forgetting the oldest past CLOSED_MEMORY. */
  protected rememberClosed(streamId: number, how: number): void {
    const memory = this.closedStreams!;
    memory.set(streamId, how);
    if (memory.size > CLOSED_MEMORY) {
      const oldest = memory.keys().next().value!;
      memory.delete(oldest);
      if (oldest > this.forgottenUpTo) this.forgottenUpTo = oldest;
    }
  }

  /** DATA or HEADERS on a stream that was opened and is closed now (RFC 9113, section 5.1). */
  protected onClosedStreamFrame(streamId: number): void {
    const how = this.closedStreams?.get(streamId);
    if (how === Closed.ENDED) throw new H2Error(ErrorCode.STREAM_CLOSED, 'frame on a stream the peer had ended');
    if (how === Closed.PEER_RESET) this.writeRst(streamId, ErrorCode.STREAM_CLOSED);
    // Otherwise this side reset it, and the frame may have left the peer before the reset arrived.
  }

  protected streamError(stream: H2Stream, code: number): void {
    stream.reset(code);
    stream.handler?.onReset(stream, code, 'peer');
  }

  /**
   * Queues bytes for the socket; everything queued until the event loop's check phase goes out in one
   * write. Not at the next tick: a TLS socket emits one 'data' event per TLS record, and Node drains
   * the tick queue after each, so a member that sends a response's HEADERS, DATA and trailers as
   * three records in one TCP segment (etcd serving gRPC over TLS through Go's net/http) would cost
   * three writes to the client, each a syscall and a wake-up. setImmediate runs once all the reads of
   * this loop iteration are handled.
   */
  protected write(buf: Buffer): void {
    if (this.closing || this.closed) return;
    this.out.push(buf);
    this.outBytes += buf.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushNow);
    }
  }

  private readonly flushNow = (): void => {
    // flush() may have run in between (a connection error, a lazy PING ACK, an idle end).
    if (this.flushScheduled) this.flush();
  };

  protected flush(): void {
    this.flushScheduled = false;
    if (this.lazyFlush !== undefined) {
      clearTimeout(this.lazyFlush);
      this.lazyFlush = undefined;
    }
    const out = this.out;
    if (out.length === 0) return;
    const bytes = this.outBytes;
    this.out = [];
    this.outBytes = 0;
    const socket = this.socket;
    if (socket.destroyed || !socket.writable) return;
    let ok: boolean;
    if (out.length === 1) ok = socket.write(out[0]!);
    else if (bytes <= COALESCE_LIMIT) ok = socket.write(Buffer.concat(out, bytes));
    else {
      socket.cork();
      ok = true;
      for (const b of out) ok = socket.write(b);
      socket.uncork();
    }
    if (!ok && !this.socketFull) {
      this.socketFull = true;
      socket.once('drain', () => {
        this.socketFull = false;
        this.resumeWaiting();
      });
    }
  }

  private creditConnection(bytes: number): void {
    this.recvUnacked += bytes;
    if (this.recvUnacked >= this.local.connectionWindow / 2) {
      this.recvWindow += this.recvUnacked;
      this.write(encodeWindowUpdate(0, this.recvUnacked));
      this.recvUnacked = 0;
    }
  }

  private flushStream(stream: H2Stream): void {
    const before = stream.queued;
    if (before === 0 && stream.localEnded) return;
    const sent = stream.flush();
    if (stream.queued === 0) this.waiting.delete(stream);
    if (sent > 0) stream.handler?.onSent(stream, sent);
  }

  private resumeWaiting(): void {
    for (const stream of [...this.waiting]) {
      if (this.sendWindow <= 0 || this.socketFull) return;
      this.waiting.delete(stream);
      this.flushStream(stream);
    }
  }

  private failStreams(which: (id: number) => boolean, code: number, cause: ResetCause): void {
    for (const stream of [...this.streams.values()]) {
      if (!which(stream.id)) continue;
      stream.close();
      stream.handler?.onReset(stream, code, cause);
    }
  }

  private endIfIdle(): void {
    if (this.streams.size > 0 || this.closing || this.closed) return;
    this.flush();
    this.socket.end();
  }

  private onSocketClose(): void {
    if (this.closed) return;
    this.failStreams(() => true, ErrorCode.CANCEL, 'connection');
    this.closed = true;
    this.out = [];
    clearTimeout(this.lazyFlush);
    for (const fn of this.closeListeners.splice(0)) fn();
  }
}
