import type { Duplex } from 'node:stream';
import type { Logger } from '../../telemetry/logger.ts';
import { H2Connection, type LocalSettings } from './connection.ts';
import { CLIENT_PREFACE, ErrorCode, H2Error } from './frames.ts';
import type { H2Stream } from './stream.ts';

/** Called for every new request stream; the callee sets stream.handler before returning. */
export type OnStream = (stream: H2Stream, headers: string[], endStream: boolean) => void;

/** Bounds on what a client may make the proxy do for nothing. */
export interface ServerLimits {
  /** Streams a client may reset before the proxy answered them, at once... */
  resetBurst: number;
  /** ...and per second after that (a token bucket); beyond it: GOAWAY ENHANCE_YOUR_CALM. */
  resetsPerSecond: number;
  /** How long the client has to acknowledge the proxy's SETTINGS; beyond it: GOAWAY SETTINGS_TIMEOUT. */
  settingsTimeoutMs: number;
}

// Rapid reset (CVE-2023-44487): a stream opened and reset at once costs the client two small frames
// and the proxy a stream to a member, which it must open and cancel again. nghttp2 allows a burst of
// 1000 resets; the proxy does too, then 100 a second, so a client that cancels a batch of calls (a
// deadline that fires for many at once) is never hit, while a flood is cut off after a second.
// Only streams reset before the proxy sent their response headers count: cancelling a watch that
// has been answered is ordinary. RFC 9113, section 6.5.3, suggests SETTINGS_TIMEOUT; 10 s is generous
// for a client that must only echo a frame.
export const defaultServerLimits: ServerLimits = { resetBurst: 1000, resetsPerSecond: 100, settingsTimeoutMs: 10_000 };

/**
 * The client-facing side of an HTTP/2 connection: checks the client preface, accepts odd-numbered
 * streams in increasing order up to SETTINGS_MAX_CONCURRENT_STREAMS, and hands each to onStream.
 */
export class ServerConnection extends H2Connection {
  private readonly onStream: OnStream;
  private readonly limits: ServerLimits;
  private prefaceSeen = 0;
  private lastStreamId = 0;
  private resetTokens: number;
  private resetsCountedAt = 0;
  private settingsTimer: NodeJS.Timeout | undefined;

  constructor(socket: Duplex, local: LocalSettings, log: Logger, onStream: OnStream, limits: ServerLimits = defaultServerLimits) {
    super(socket, local, log);
    this.onStream = onStream;
    this.limits = limits;
    this.resetTokens = limits.resetBurst;
    this.sendInitialSettings([]);
    this.settingsTimer = setTimeout(() => {
      this.log.debug({ timeoutMs: limits.settingsTimeoutMs }, 'Closed an HTTP/2 client connection that did not acknowledge SETTINGS');
      this.fail(ErrorCode.SETTINGS_TIMEOUT, 'SETTINGS not acknowledged');
    }, limits.settingsTimeoutMs);
    this.settingsTimer.unref();
    this.onClose(() => clearTimeout(this.settingsTimer));
  }

  override onSettingsAck(): void {
    clearTimeout(this.settingsTimer);
    this.settingsTimer = undefined;
  }

  override onRstStream(streamId: number, code: number): void {
    const stream = this.streams.get(streamId);
    // Reset before the proxy answered: the work it caused (a stream to a member) was for nothing.
    if (stream !== undefined && !stream.headersSent) this.countReset();
    super.onRstStream(streamId, code);
  }

  private countReset(): void {
    const { resetBurst, resetsPerSecond } = this.limits;
    const now = performance.now();
    this.resetTokens = Math.min(resetBurst, this.resetTokens + ((now - this.resetsCountedAt) * resetsPerSecond) / 1000);
    this.resetsCountedAt = now;
    if (this.resetTokens < 1) {
      this.log.warn({ burst: resetBurst, perSecond: resetsPerSecond }, 'Closed an HTTP/2 client connection that reset too many streams (rapid reset)');
      // The connection error fails every stream, and with them the streams forwarded to members.
      throw new H2Error(ErrorCode.ENHANCE_YOUR_CALM, 'too many streams reset');
    }
    this.resetTokens -= 1;
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
