import type { Duplex } from 'node:stream';
import type { Logger } from '../../telemetry/logger.ts';
import { Closed, H2Connection, type LocalSettings } from './connection.ts';
import { CLIENT_PREFACE, ErrorCode, H2Error } from './frames.ts';
import type { H2Stream } from './stream.ts';

/** Called for every new request stream; the callee sets stream.handler before returning. */
export type OnStream = (stream: H2Stream, headers: string[], endStream: boolean) => void;

/** Why the proxy cut a client connection off with a connection error. */
export type CutOffReason = 'rapid_reset' | 'settings_timeout' | 'protocol_error' | 'internal_error';

/** Bounds on what a client may make the proxy do for nothing. */
export interface ServerLimits {
  /** Streams a client may reset before the proxy answered them, at once... */
  resetBurst: number;
  /** ...and per second after that (a token bucket); beyond it: GOAWAY ENHANCE_YOUR_CALM. */
  resetsPerSecond: number;
  /** How long the client has to acknowledge the proxy's SETTINGS; beyond it: GOAWAY SETTINGS_TIMEOUT. */
  settingsTimeoutMs: number;
  /** Hears of every connection this side ends with a connection error, for metrics. */
  onCutOff?: (reason: CutOffReason) => void;
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
  // The last stream accepted (GOAWAY's last-stream-id), and the highest the client opened at all
  // (streams it opened after this side's GOAWAY are ignored, but are no longer idle).
  private lastStreamId = 0;
  private highestStreamId = 0;
  private resetTokens: number;
  private resetsCountedAt = 0;
  private settingsTimer: NodeJS.Timeout | undefined;
  private cutOffReason: CutOffReason | undefined;

  constructor(socket: Duplex, local: LocalSettings, log: Logger, onStream: OnStream, limits: ServerLimits = defaultServerLimits) {
    super(socket, local, log);
    this.onStream = onStream;
    this.limits = limits;
    this.resetTokens = limits.resetBurst;
    this.closedStreams = new Map();
    this.sendInitialSettings([]);
    this.settingsTimer = setTimeout(() => {
      this.log.debug({ timeoutMs: limits.settingsTimeoutMs }, 'Closed an HTTP/2 client connection that did not acknowledge SETTINGS');
      this.cutOffReason = 'settings_timeout';
      this.fail(ErrorCode.SETTINGS_TIMEOUT, 'SETTINGS not acknowledged');
    }, limits.settingsTimeoutMs);
    this.settingsTimer.unref();
    this.onClose(() => clearTimeout(this.settingsTimer));
  }

  override fail(code: number, message: string): void {
    if (!this.closed && !this.goawaySent) this.limits.onCutOff?.(this.cutOffReason ?? (code === ErrorCode.INTERNAL_ERROR ? 'internal_error' : 'protocol_error'));
    super.fail(code, message);
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
      this.cutOffReason = 'rapid_reset';
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

  protected onNewHeaders(streamId: number, headers: string[], endStream: boolean, reject: number): void {
    if (streamId % 2 === 0) throw new H2Error(ErrorCode.PROTOCOL_ERROR, 'client opened an even-numbered stream');
    if (streamId <= this.highestStreamId) {
      // Not open: a stream that closed, or an ID below one the client already used (RFC 9113, section
      // 5.1.1). One that closed too long ago to be remembered is let go, as if this side had reset it.
      if (!this.closedStreams!.has(streamId)) {
        if (streamId <= this.forgottenUpTo) return;
        throw new H2Error(ErrorCode.PROTOCOL_ERROR, 'HEADERS on a stream ID lower than one already used');
      }
      this.onClosedStreamFrame(streamId);
      return;
    }
    this.highestStreamId = streamId;
    if (this.goawaySent) {
      // Above the last-stream-id of the GOAWAY: never processed, and the client retries it elsewhere.
      this.rememberClosed(streamId, Closed.LOCAL_RESET);
      return;
    }
    this.lastStreamId = streamId;
    const stream = this.newStream(streamId, true);
    if (reject !== 0) {
      stream.reset(reject);
      return;
    }
    if (this.streams.size > (this.local.maxConcurrentStreams ?? Infinity)) {
      stream.reset(ErrorCode.REFUSED_STREAM);
      return;
    }
    const length = requestContentLength(headers);
    if (length === MALFORMED || (endStream && length > 0)) {
      stream.reset(ErrorCode.PROTOCOL_ERROR);
      return;
    }
    if (endStream) stream.remoteEnded = true;
    else stream.expectedLength = length;
    this.onStream(stream, headers, endStream);
  }

  /** Request trailers must end the stream, carry no pseudo-header, and complete the content-length. */
  protected override trailersError(stream: H2Stream, headers: readonly string[], endStream: boolean): number {
    if (!endStream || stream.expectedLength > 0) return ErrorCode.PROTOCOL_ERROR;
    for (let i = 0; i < headers.length; i += 2) if (headers[i]!.charCodeAt(0) === 58) return ErrorCode.PROTOCOL_ERROR;
    return 0;
  }

  protected isIdle(streamId: number): boolean {
    return streamId > this.highestStreamId;
  }

  protected isLocallyInitiated(streamId: number): boolean {
    return streamId % 2 === 0;
  }

  protected lastPeerStreamId(): number {
    return this.lastStreamId;
  }
}

const MALFORMED = -2;

/**
 * Checks a request's header list (RFC 9113, sections 8.2.2 and 8.3.1): exactly one :method,
 * :scheme and non-empty :path, at most one :authority, no other pseudo-header and none after a
 * regular field, no connection-specific field, te only as "trailers", one content-length value.
 * Returns the content-length (-1 when absent) or MALFORMED. One pass; regular names are told
 * apart by length first, so an ordinary gRPC request costs a few comparisons.
 */
export function requestContentLength(headers: readonly string[]): number {
  let method = false;
  let scheme = false;
  let path = false;
  let authority = false;
  let regular = false;
  let length = -1;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    if (name.charCodeAt(0) === 58) {
      if (regular) return MALFORMED;
      switch (name) {
        case ':method':
          if (method) return MALFORMED;
          method = true;
          break;
        case ':scheme':
          if (scheme) return MALFORMED;
          scheme = true;
          break;
        case ':path':
          if (path || value === '') return MALFORMED;
          path = true;
          break;
        case ':authority':
          if (authority) return MALFORMED;
          authority = true;
          break;
        default:
          return MALFORMED; // unknown, or a response pseudo-header such as :status
      }
      continue;
    }
    regular = true;
    switch (name.length) {
      case 2:
        if (name === 'te' && value !== 'trailers') return MALFORMED;
        break;
      case 7:
        if (name === 'upgrade') return MALFORMED;
        break;
      case 10:
        if (name === 'connection' || name === 'keep-alive') return MALFORMED;
        break;
      case 14:
        if (name === 'content-length') {
          const n = /^[0-9]{1,15}$/.test(value) ? Number(value) : MALFORMED;
          if (n === MALFORMED || (length >= 0 && n !== length)) return MALFORMED;
          length = n;
        }
        break;
      case 16:
        if (name === 'proxy-connection') return MALFORMED;
        break;
      case 17:
        if (name === 'transfer-encoding') return MALFORMED;
        break;
      default:
        break;
    }
  }
  return method && scheme && path ? length : MALFORMED;
}
