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
