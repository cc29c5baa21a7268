import { ErrorCode, Flag, FRAME_HEADER_LENGTH, FrameType, H2Error, MAX_WINDOW, Setting } from './frames.ts';

/** What the reader hands each well-formed frame to. Payload buffers are views into the received bytes. */
export interface FrameHandler {
  /** DATA: data without padding; flowLength is the whole payload, padding included, as flow control counts it. */
  onData(streamId: number, data: Buffer, endStream: boolean, flowLength: number): void;
  /**
   * HEADERS with its CONTINUATION frames joined into one header block. selfDependent: its priority
   * fields make the stream depend on itself, a stream error (RFC 9113, section 5.3.1) that the
   * receiver raises once the block has been decoded (HPACK state must follow every block).
   */
  onHeaders(streamId: number, block: Buffer, endStream: boolean, selfDependent: boolean): void;
  onRstStream(streamId: number, code: number): void;
  onSettings(settings: [id: number, value: number][]): void;
  onSettingsAck(): void;
  onPing(payload: Buffer, ack: boolean): void;
  onGoaway(lastStreamId: number, code: number, debug: Buffer): void;
  onWindowUpdate(streamId: number, increment: number): void;
  /** A frame that is malformed in a way that only concerns its stream (which may be idle or closed). */
  onStreamError(streamId: number, code: number, message: string): void;
}

export interface FrameReaderOptions {
  /** The SETTINGS_MAX_FRAME_SIZE this side advertised. */
  maxFrameSize: number;
  /** The largest header block accepted across HEADERS and CONTINUATION frames. */
  maxHeaderBlock: number;
}

/**
 * Splits received bytes into frames and checks each one's structure (RFC 9113, section 6):
 * lengths, stream IDs, padding, CONTINUATION sequencing, setting values. Unknown frame types and
 * PRIORITY are skipped. A violation that concerns the connection throws an H2Error; the caller
 * sends GOAWAY and closes. The reader never throws anything else.
 */
export class FrameReader {
  private readonly handler: FrameHandler;
  private readonly options: FrameReaderOptions;
  private buffer: Buffer | undefined;
  // A header block waiting for its CONTINUATION frames.
  private continuing: { streamId: number; endStream: boolean; selfDependent: boolean; parts: Buffer[]; length: number } | undefined;

  constructor(handler: FrameHandler, options: FrameReaderOptions) {
    this.handler = handler;
    this.options = options;
  }

  /** Parses every complete frame in buffered + chunk; keeps the rest for the next call. */
  push(chunk: Buffer): void {
    let buf = this.buffer === undefined ? chunk : Buffer.concat([this.buffer, chunk]);
    this.buffer = undefined;
    let pos = 0;
    while (buf.length - pos >= FRAME_HEADER_LENGTH) {
      const length = (buf[pos]! << 16) | (buf[pos + 1]! << 8) | buf[pos + 2]!;
      if (length > this.options.maxFrameSize) throw new H2Error(ErrorCode.FRAME_SIZE_ERROR, `frame of ${length} bytes exceeds the maximum frame size`);
      const end = pos + FRAME_HEADER_LENGTH + length;
      if (end > buf.length) break;
      const type = buf[pos + 3]!;
      const flags = buf[pos + 4]!;
      const streamId = buf.readUInt32BE(pos + 5) & MAX_WINDOW;
      const payload = buf.subarray(pos + FRAME_HEADER_LENGTH, end);
      pos = end;
      this.frame(type, flags, streamId, payload);
    }
    if (pos < buf.length) {
      // Copied, so that a small remainder does not pin a large chunk.
      buf = buf.subarray(pos);
      this.buffer = pos === 0 ? buf : Buffer.from(buf);
    }
  }

  private frame(type: number, flags: number, streamId: number, payload: Buffer): void {
    const h = this.handler;
    if (this.continuing !== undefined && type !== FrameType.CONTINUATION) {
      throw new H2Error(ErrorCode.PROTOCOL_ERROR, 'expected a CONTINUATION frame');
    }
    switch (type) {
      case FrameType.DATA: {
        if (streamId === 0) throw new H2Error(ErrorCode.PROTOCOL_ERROR, 'DATA on stream 0');
        const data = unpad(payload, flags);
        h.onData(streamId, data, (flags & Flag.END_STREAM) !== 0, payload.length);
        return;
      }
      case FrameType.HEADERS: {
        if (streamId === 0) throw new H2Error(ErrorCode.PROTOCOL_ERROR, 'HEADERS on stream 0');
        let block = unpad(payload, flags);
        let selfDependent = false;
        if ((flags & Flag.PRIORITY) !== 0) {
          if (block.length < 5) throw new H2Error(ErrorCode.FRAME_SIZE_ERROR, 'HEADERS too short for its priority fields');
          selfDependent = (block.readUInt32BE(0) & MAX_WINDOW) === streamId;
          block = block.subarray(5);
        }
        const endStream = (flags & Flag.END_STREAM) !== 0;
        if ((flags & Flag.END_HEADERS) !== 0) {
          h.onHeaders(streamId, block, endStream, selfDependent);
          return;
        }
        this.continuing = { streamId, endStream, selfDependent, parts: [Buffer.from(block)], length: block.length };
        this.checkBlockLength();
        return;
      }
      case FrameType.CONTINUATION: {
        const c = this.continuing;
        if (c === undefined || c.streamId !== streamId) throw new H2Error(ErrorCode.PROTOCOL_ERROR, 'unexpected CONTINUATION frame');
        c.parts.push(Buffer.from(payload));
        c.length += payload.length;
        this.checkBlockLength();
        if ((flags & Flag.END_HEADERS) !== 0) {
          this.continuing = undefined;
          h.onHeaders(streamId, Buffer.concat(c.parts, c.length), c.endStream, c.selfDependent);
        }
        return;
      }
      case FrameType.PRIORITY:
        if (streamId === 0) throw new H2Error(ErrorCode.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        if (payload.length !== 5) h.onStreamError(streamId, ErrorCode.FRAME_SIZE_ERROR, 'PRIORITY frame of the wrong size');
        else if ((payload.readUInt32BE(0) & MAX_WINDOW) === streamId) h.onStreamError(streamId, ErrorCode.PROTOCOL_ERROR, 'stream depends on itself');
        return; // otherwise priorities are advisory and ignored
      case FrameType.RST_STREAM:
        if (streamId === 0) throw new H2Error(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
        if (payload.length !== 4) throw new H2Error(ErrorCode.FRAME_SIZE_ERROR, 'RST_STREAM frame of the wrong size');
        h.onRstStream(streamId, payload.readUInt32BE(0));
        return;
      case FrameType.SETTINGS:
        this.settings(flags, streamId, payload);
        return;
      case FrameType.PUSH_PROMISE:
        // This implementation never enables push (clients) and never receives it (servers).
        throw new H2Error(ErrorCode.PROTOCOL_ERROR, 'PUSH_PROMISE is not enabled');
      case FrameType.PING:
        if (streamId !== 0) throw new H2Error(ErrorCode.PROTOCOL_ERROR, 'PING on a stream');
        if (payload.length !== 8) throw new H2Error(ErrorCode.FRAME_SIZE_ERROR, 'PING frame of the wrong size');
        h.onPing(payload, (flags & Flag.ACK) !== 0);
        return;
      case FrameType.GOAWAY:
        if (streamId !== 0) throw new H2Error(ErrorCode.PROTOCOL_ERROR, 'GOAWAY on a stream');
        if (payload.length < 8) throw new H2Error(ErrorCode.FRAME_SIZE_ERROR, 'GOAWAY frame too short');
        h.onGoaway(payload.readUInt32BE(0) & MAX_WINDOW, payload.readUInt32BE(4), payload.subarray(8));
        return;
      case FrameType.WINDOW_UPDATE: {
        if (payload.length !== 4) throw new H2Error(ErrorCode.FRAME_SIZE_ERROR, 'WINDOW_UPDATE frame of the wrong size');
        const increment = payload.readUInt32BE(0) & MAX_WINDOW;
        if (increment === 0) {
          if (streamId === 0) throw new H2Error(ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
          h.onStreamError(streamId, ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
          return;
        }
        h.onWindowUpdate(streamId, increment);
        return;
      }
      default:
        return; // unknown frame types are ignored (RFC 9113, section 4.1)
    }
  }

  private settings(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new H2Error(ErrorCode.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if ((flags & Flag.ACK) !== 0) {
      if (payload.length !== 0) throw new H2Error(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      this.handler.onSettingsAck();
      return;
    }
    if (payload.length % 6 !== 0) throw new H2Error(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS frame of the wrong size');
    const settings: [number, number][] = [];
    for (let i = 0; i < payload.length; i += 6) {
      const id = payload.readUInt16BE(i);
      const value = payload.readUInt32BE(i + 2);
      if (id === Setting.ENABLE_PUSH && value > 1) throw new H2Error(ErrorCode.PROTOCOL_ERROR, 'SETTINGS_ENABLE_PUSH above 1');
      if (id === Setting.INITIAL_WINDOW_SIZE && value > MAX_WINDOW) throw new H2Error(ErrorCode.FLOW_CONTROL_ERROR, 'SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1');
      if (id === Setting.MAX_FRAME_SIZE && (value < 16_384 || value > 0xff_ffff)) throw new H2Error(ErrorCode.PROTOCOL_ERROR, 'SETTINGS_MAX_FRAME_SIZE out of range');
      settings.push([id, value]);
    }
    this.handler.onSettings(settings);
  }

  private checkBlockLength(): void {
    if (this.continuing!.length > this.options.maxHeaderBlock) throw new H2Error(ErrorCode.ENHANCE_YOUR_CALM, 'header block too large');
  }
}

/** The payload of a DATA or HEADERS frame without its padding. */
function unpad(payload: Buffer, flags: number): Buffer {
  if ((flags & Flag.PADDED) === 0) return payload;
  if (payload.length < 1) throw new H2Error(ErrorCode.FRAME_SIZE_ERROR, 'padded frame without a pad length');
  const padLength = payload[0]!;
  if (padLength >= payload.length) throw new H2Error(ErrorCode.PROTOCOL_ERROR, 'padding longer than the frame');
  return payload.subarray(1, payload.length - padLength);
}
