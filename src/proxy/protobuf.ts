/** One field of a protobuf message as read from the wire, undecoded beyond its tag. */
export interface WireField {
  num: number;
  wireType: number;
  /** The varint value (as a bigint, to stay exact) for wire type 0. */
  varint?: bigint;
  /** The payload for wire type 2 (length-delimited). */
  bytes?: Uint8Array;
}

/** Thrown when bytes are not a well-formed protobuf message. */
export class MalformedMessage extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedMessage';
  }
}

/**
 * Reads the top-level fields of one protobuf message. It knows the wire format only (no schema),
 * which is all the readonly classifier needs; groups (wire types 3 and 4) are rejected, as no etcd
 * message uses them.
 */
export function readFields(buf: Uint8Array): WireField[] {
  const out: WireField[] = [];
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (let i = 0; i < 10; i++) {
      if (pos >= buf.length) throw new MalformedMessage('truncated varint');
      const b = buf[pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
    throw new MalformedMessage('varint longer than 10 bytes');
  };
  while (pos < buf.length) {
    const tag = varint();
    const num = Number(tag >> 3n);
    const wireType = Number(tag & 7n);
    if (num === 0 || num > 536_870_911) throw new MalformedMessage(`invalid field number ${num}`);
    switch (wireType) {
      case 0:
        out.push({ num, wireType, varint: varint() });
        break;
      case 1:
        if (pos + 8 > buf.length) throw new MalformedMessage('truncated fixed64');
        pos += 8;
        out.push({ num, wireType });
        break;
      case 2: {
        const len = varint();
        if (len > BigInt(buf.length - pos)) throw new MalformedMessage('length-delimited field runs past the end');
        const n = Number(len);
        out.push({ num, wireType, bytes: buf.subarray(pos, pos + n) });
        pos += n;
        break;
      }
      case 5:
        if (pos + 4 > buf.length) throw new MalformedMessage('truncated fixed32');
        pos += 4;
        out.push({ num, wireType });
        break;
      default:
        throw new MalformedMessage(`unsupported wire type ${wireType}`);
    }
  }
  return out;
}
