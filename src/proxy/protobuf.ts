/** One field of a protobuf message as read from the wire, undecoded beyond its tag. */
export interface WireField {
  num: number;
  wireType: number;
  /** The varint value (as a bigint, to stay exact) for wire type 0. */
  varint?: bigint;
  /** The payload for wire type 2 (length-delimited). */
  bytes?: Uint8Array;
  /** Where the whole field (tag included) starts and ends in the message, to copy it unchanged. */
  start: number;
  end: number;
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
    const start = pos;
    const tag = varint();
    const num = Number(tag >> 3n);
    const wireType = Number(tag & 7n);
    if (num === 0 || num > 536_870_911) throw new MalformedMessage(`invalid field number ${num}`);
    switch (wireType) {
      case 0:
        out.push({ num, wireType, varint: varint(), start, end: pos });
        break;
      case 1:
        if (pos + 8 > buf.length) throw new MalformedMessage('truncated fixed64');
        pos += 8;
        out.push({ num, wireType, start, end: pos });
        break;
      case 2: {
        const len = varint();
        if (len > BigInt(buf.length - pos)) throw new MalformedMessage('length-delimited field runs past the end');
        const n = Number(len);
        out.push({ num, wireType, bytes: buf.subarray(pos, pos + n), start, end: pos + n });
        pos += n;
        break;
      }
      case 5:
        if (pos + 4 > buf.length) throw new MalformedMessage('truncated fixed32');
        pos += 4;
        out.push({ num, wireType, start, end: pos });
        break;
      default:
        throw new MalformedMessage(`unsupported wire type ${wireType}`);
    }
  }
  return out;
}

/** A varint field's value as a signed 64-bit integer (int64 fields), as a number. */
export function int64(field: WireField | undefined): number {
  return field?.varint === undefined ? 0 : Number(BigInt.asIntN(64, field.varint));
}

/**
 * Builds a protobuf message field by field. Integers are int64/uint64/bool varints (negative numbers
 * take ten bytes, as protobuf encodes int64); zero values are written too, so callers skip defaults.
 */
export class MessageWriter {
  private readonly parts: Uint8Array[] = [];
  private bytes: number[] = [];

  varint(num: number, value: number | bigint | boolean): this {
    this.tag(num, 0);
    this.raw(typeof value === 'boolean' ? (value ? 1n : 0n) : BigInt(value));
    return this;
  }

  /** A length-delimited field (bytes, string or an encoded message). */
  bytesField(num: number, value: Uint8Array): this {
    this.tag(num, 2);
    this.raw(BigInt(value.length));
    this.flushBytes();
    this.parts.push(value);
    return this;
  }

  /** Fields copied as they are, from another message's bytes. */
  copy(encoded: Uint8Array): this {
    this.flushBytes();
    this.parts.push(encoded);
    return this;
  }

  finish(): Buffer {
    this.flushBytes();
    return Buffer.concat(this.parts);
  }

  private tag(num: number, wireType: number): void {
    this.raw(BigInt((num << 3) | wireType));
  }

  private raw(value: bigint): void {
    let v = BigInt.asUintN(64, value);
    while (v > 0x7fn) {
      this.bytes.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.bytes.push(Number(v));
  }

  private flushBytes(): void {
    if (this.bytes.length === 0) return;
    this.parts.push(Uint8Array.from(this.bytes));
    this.bytes = [];
  }
}
