// HTTP/2 frame layout and codes (RFC 9113, sections 4, 6, 7 and 11).

export const FRAME_HEADER_LENGTH = 9;
export const DEFAULT_MAX_FRAME_SIZE = 16_384;
export const MAX_WINDOW = 0x7fff_ffff;
export const DEFAULT_WINDOW = 65_535;

/** The connection preface a client sends first (RFC 9113, section 3.4). */
export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;

export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

export const Setting = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

/**
 * A protocol violation. With streamId 0 it is a connection error (GOAWAY, then close); otherwise
 * it ends only that stream (RST_STREAM).
 */
export class H2Error extends Error {
  readonly code: number;
  readonly streamId: number;
  constructor(code: number, message: string, streamId = 0) {
    super(message);
    this.name = 'H2Error';
    this.code = code;
    this.streamId = streamId;
  }
}

function writeHeader(out: Buffer, length: number, type: number, flags: number, streamId: number): void {
  out[0] = (length >>> 16) & 0xff;
  out[1] = (length >>> 8) & 0xff;
  out[2] = length & 0xff;
  out[3] = type;
  out[4] = flags;
  out.writeUInt32BE(streamId & MAX_WINDOW, 5);
}

/** A frame whose payload is given whole (copied in). */
export function encodeFrame(type: number, flags: number, streamId: number, payload?: Uint8Array): Buffer {
  const length = payload?.length ?? 0;
  const out = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + length);
  writeHeader(out, length, type, flags, streamId);
  if (payload) out.set(payload, FRAME_HEADER_LENGTH);
  return out;
}

/** The 9-byte header of a DATA frame; the payload is written after it as its own buffer, uncopied. */
export function dataFrameHeader(streamId: number, length: number, endStream: boolean): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_LENGTH);
  writeHeader(out, length, FrameType.DATA, endStream ? Flag.END_STREAM : 0, streamId);
  return out;
}

/** A header block as one HEADERS frame, followed by CONTINUATION frames when it exceeds maxFrameSize. */
export function encodeHeaderBlock(streamId: number, block: Buffer, endStream: boolean, maxFrameSize: number): Buffer {
  const endFlag = endStream ? Flag.END_STREAM : 0;
  if (block.length <= maxFrameSize) {
    const out = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + block.length);
    writeHeader(out, block.length, FrameType.HEADERS, endFlag | Flag.END_HEADERS, streamId);
    block.copy(out, FRAME_HEADER_LENGTH);
    return out;
  }
  const frames: Buffer[] = [];
  for (let pos = 0; pos < block.length; pos += maxFrameSize) {
    const part = block.subarray(pos, pos + maxFrameSize);
    const last = pos + maxFrameSize >= block.length;
    const type = pos === 0 ? FrameType.HEADERS : FrameType.CONTINUATION;
    const flags = (pos === 0 ? endFlag : 0) | (last ? Flag.END_HEADERS : 0);
    frames.push(encodeFrame(type, flags, streamId, part));
  }
  return Buffer.concat(frames);
}

/** A SETTINGS frame with the given [id, value] pairs, or an empty ACK. */
export function encodeSettings(settings: readonly (readonly [number, number])[], ack = false): Buffer {
  const payload = Buffer.allocUnsafe(6 * settings.length);
  settings.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return encodeFrame(FrameType.SETTINGS, ack ? Flag.ACK : 0, 0, payload);
}

export function encodeWindowUpdate(streamId: number, increment: number): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + 4);
  writeHeader(out, 4, FrameType.WINDOW_UPDATE, 0, streamId);
  out.writeUInt32BE(increment, FRAME_HEADER_LENGTH);
  return out;
}

export function encodeRstStream(streamId: number, code: number): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + 4);
  writeHeader(out, 4, FrameType.RST_STREAM, 0, streamId);
  out.writeUInt32BE(code, FRAME_HEADER_LENGTH);
  return out;
}

export function encodeGoaway(lastStreamId: number, code: number, debug = ''): Buffer {
  const text = Buffer.from(debug, 'utf8');
  const payload = Buffer.allocUnsafe(8 + text.length);
  payload.writeUInt32BE(lastStreamId & MAX_WINDOW, 0);
  payload.writeUInt32BE(code, 4);
  text.copy(payload, 8);
  return encodeFrame(FrameType.GOAWAY, 0, 0, payload);
}

export function encodePing(payload: Uint8Array, ack: boolean): Buffer {
  return encodeFrame(FrameType.PING, ack ? Flag.ACK : 0, 0, payload);
}
