import zlib from 'node:zlib';
import { MalformedMessage } from './protobuf.ts';

// Messages the readonly classifier inspects are small requests (a Txn, an Alarm); anything that
// inflates beyond this is refused rather than buffered.
const MAX_INFLATED = 8 * 1024 * 1024;

/**
 * Splits a complete gRPC request body into its messages (1-byte compressed flag, 4-byte big-endian
 * length, payload), inflating compressed ones per the grpc-encoding header. Throws MalformedMessage
 * on truncated frames or an encoding it cannot read.
 */
export function splitMessages(body: Uint8Array, encoding: string | undefined): Uint8Array[] {
  const out: Uint8Array[] = [];
  let pos = 0;
  while (pos < body.length) {
    if (pos + 5 > body.length) throw new MalformedMessage('truncated gRPC message header');
    const compressed = body[pos]!;
    const len = ((body[pos + 1]! << 24) >>> 0) + (body[pos + 2]! << 16) + (body[pos + 3]! << 8) + body[pos + 4]!;
    pos += 5;
    if (pos + len > body.length) throw new MalformedMessage('truncated gRPC message');
    const payload = body.subarray(pos, pos + len);
    pos += len;
    if (compressed === 0) out.push(payload);
    else if (compressed === 1) out.push(inflate(payload, encoding));
    else throw new MalformedMessage(`invalid gRPC compressed flag ${compressed}`);
  }
  return out;
}

/**
 * Reassembles the gRPC messages of one direction of a stream from DATA payloads that may split or
 * join them. Throws MalformedMessage for a frame that cannot be read or a message above maxLength.
 */
export class MessageReader {
  private readonly maxLength: number;
  private readonly encoding: string | undefined;
  private buffered: Buffer = Buffer.alloc(0);

  constructor(maxLength: number, encoding?: string) {
    this.maxLength = maxLength;
    this.encoding = encoding;
  }

  /** The messages that chunk completes, in order; bytes of an incomplete one are kept. */
  push(chunk: Uint8Array): Uint8Array[] {
    const buf = this.buffered.length === 0 ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength) : Buffer.concat([this.buffered, chunk]);
    const out: Uint8Array[] = [];
    let pos = 0;
    while (buf.length - pos >= 5) {
      const compressed = buf[pos]!;
      const len = buf.readUInt32BE(pos + 1);
      if (len > this.maxLength) throw new MalformedMessage(`gRPC message of ${len} bytes is above the limit of ${this.maxLength}`);
      if (buf.length - pos - 5 < len) break;
      const payload = buf.subarray(pos + 5, pos + 5 + len);
      pos += 5 + len;
      if (compressed === 0) out.push(payload);
      else if (compressed === 1) out.push(inflate(payload, this.encoding));
      else throw new MalformedMessage(`invalid gRPC compressed flag ${compressed}`);
    }
    // What is kept is copied: the chunk may be a view into a buffer that is reused.
    this.buffered = pos === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(pos));
    return out;
  }
}

function inflate(payload: Uint8Array, encoding: string | undefined): Uint8Array {
  try {
    if (encoding === 'gzip') return zlib.gunzipSync(payload, { maxOutputLength: MAX_INFLATED });
    if (encoding === 'deflate') return zlib.inflateSync(payload, { maxOutputLength: MAX_INFLATED });
  } catch (err) {
    throw new MalformedMessage(`compressed gRPC message did not inflate: ${(err as Error).message}`);
  }
  throw new MalformedMessage(`compressed gRPC message with unsupported grpc-encoding ${encoding ?? '(none)'}`);
}

/** Encodes one uncompressed gRPC message frame. */
export function frameMessage(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + payload.length);
  out[0] = 0;
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, 5);
  return out;
}
