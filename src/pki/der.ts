// A small DER (ITU-T X.690) encoder and decoder: just what issuing and reading X.509 certificates
// needs (src/pki/issuer.ts), no schema machinery. Encoders return the complete encoding of one
// element (tag, length, contents); the decoder splits an encoding back into elements.
//
// Only the low-tag-number form (tags 0-30, one identifier octet) and definite lengths occur in
// certificates, so the decoder refuses anything else rather than guessing.

/** Universal and context-specific tags (the identifier octet) used in certificates. */
export const Tag = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** The constructed bit of an identifier octet. */
const CONSTRUCTED = 0x20;
/** The class bits of a context-specific tag ([n]). */
const CONTEXT = 0x80;

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/** The length octets: short form below 128, else 0x80 | count followed by the length big-endian. */
function encodeLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One element: the identifier octet, the length, the contents. */
export function tlv(tag: number, contents: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(contents.length), contents]);
}

/** SEQUENCE of already encoded elements, in the order given. */
export function sequence(...elements: Uint8Array[]): Buffer {
  return tlv(Tag.SEQUENCE, Buffer.concat(elements));
}

/**
 * SET OF already encoded elements. DER orders the elements of a SET OF by their encodings, which is
 * done here, so that callers may pass them in any order.
 */
export function set(...elements: Uint8Array[]): Buffer {
  const sorted = [...elements].sort((a, b) => Buffer.compare(a, b));
  return tlv(Tag.SET, Buffer.concat(sorted));
}

/** BOOLEAN: DER writes TRUE as 0xff. */
export function boolean(value: boolean): Buffer {
  return tlv(Tag.BOOLEAN, Buffer.from([value ? 0xff : 0x00]));
}

/**
 * A non-negative INTEGER, from a small number or from big-endian unsigned bytes (a serial number).
 * DER wants the fewest octets in two's complement: leading zero octets are dropped, and one zero
 * octet is put back when the first remaining octet has its top bit set (else it would read negative).
 */
export function integer(value: number | Uint8Array): Buffer {
  let bytes: Buffer;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`integer: ${value} is not a non-negative safe integer`);
    const digits: number[] = [];
    for (let n = value; n > 0; n = Math.floor(n / 256)) digits.unshift(n % 256);
    bytes = Buffer.from(digits);
  } else {
    bytes = Buffer.from(value);
  }
  let start = 0;
  while (start < bytes.length && bytes[start] === 0) start++;
  bytes = bytes.subarray(start);
  if (bytes.length === 0 || bytes[0]! >= 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return tlv(Tag.INTEGER, bytes);
}

/**
 * OBJECT IDENTIFIER from dotted form ('1.2.840.10045.4.3.2'). The first two arcs share one value
 * (40 * first + second); every value is written base 128, high bit set on all but its last octet.
 */
export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map((a) => {
    if (!/^\d+$/.test(a)) throw new RangeError(`oid: ${dotted} is not a dotted object identifier`);
    return Number(a);
  });
  const [first, second, ...rest] = arcs;
  if (first === undefined || second === undefined || first > 2 || (first < 2 && second >= 40)) throw new RangeError(`oid: ${dotted} is not a valid object identifier`);
  const out: number[] = [];
  for (const value of [40 * first + second, ...rest]) {
    if (!Number.isSafeInteger(value)) throw new RangeError(`oid: arc ${value} of ${dotted} is too large`);
    const septets: number[] = [];
    for (let n = value; ; n = Math.floor(n / 128)) {
      septets.unshift(n % 128);
      if (n < 128) break;
    }
    septets.forEach((s, i) => out.push(i < septets.length - 1 ? s | 0x80 : s));
  }
  return tlv(Tag.OID, Buffer.from(out));
}

/** BIT STRING holding whole octets (a public key, a signature): the unused-bits octet is 0. */
export function bitString(bytes: Uint8Array): Buffer {
  return tlv(Tag.BIT_STRING, Buffer.concat([Buffer.from([0]), bytes]));
}

/**
 * BIT STRING of a named-bit list such as KeyUsage, from the numbers of the bits that are set
 * (bit 0 is the most significant bit of the first octet). DER drops trailing zero bits, so the
 * string ends at the highest set bit and the first octet says how many bits of the last are unused.
 */
export function namedBits(bits: readonly number[]): Buffer {
  if (bits.length === 0) return tlv(Tag.BIT_STRING, Buffer.from([0]));
  const highest = Math.max(...bits);
  const octets = Buffer.alloc(Math.floor(highest / 8) + 1);
  for (const bit of bits) octets[Math.floor(bit / 8)]! |= 0x80 >> bit % 8;
  const unused = 7 - (highest % 8);
  return tlv(Tag.BIT_STRING, Buffer.concat([Buffer.from([unused]), octets]));
}

/** OCTET STRING. */
export function octetString(bytes: Uint8Array): Buffer {
  return tlv(Tag.OCTET_STRING, bytes);
}

/** The characters a PrintableString may hold (X.680 41.4). */
const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

/** Whether text can be a PrintableString. */
export function isPrintable(text: string): boolean {
  return PRINTABLE.test(text);
}

/** PrintableString; throws for characters outside its repertoire. */
export function printableString(text: string): Buffer {
  if (!isPrintable(text)) throw new RangeError(`printableString: ${JSON.stringify(text)} has characters a PrintableString cannot hold`);
  return tlv(Tag.PRINTABLE_STRING, Buffer.from(text, 'latin1'));
}

/** UTF8String. */
export function utf8String(text: string): Buffer {
  return tlv(Tag.UTF8_STRING, Buffer.from(text, 'utf8'));
}

/** IA5String (ASCII); throws for characters beyond 0x7f. */
export function ia5String(text: string): Buffer {
  if ([...text].some((ch) => ch.charCodeAt(0) > 0x7f)) throw new RangeError(`ia5String: ${JSON.stringify(text)} is not ASCII`);
  return tlv(Tag.IA5_STRING, Buffer.from(text, 'ascii'));
}

/**
 * An X.509 Time (RFC 5280 4.1.2.5) to whole seconds, in UTC: UTCTime YYMMDDHHMMSSZ for the years
 * 1950 through 2049, GeneralizedTime YYYYMMDDHHMMSSZ for any other year. Milliseconds are dropped.
 */
export function time(date: Date): Buffer {
  const year = date.getUTCFullYear();
  if (Number.isNaN(year) || year < 0 || year > 9999) throw new RangeError(`time: ${String(date)} cannot be written as an X.509 time`);
  const two = (n: number): string => String(n).padStart(2, '0');
  const rest = `${two(date.getUTCMonth() + 1)}${two(date.getUTCDate())}${two(date.getUTCHours())}${two(date.getUTCMinutes())}${two(date.getUTCSeconds())}Z`;
  if (year >= 1950 && year <= 2049) return tlv(Tag.UTC_TIME, Buffer.from(`${two(year % 100)}${rest}`, 'ascii'));
  return tlv(Tag.GENERALIZED_TIME, Buffer.from(`${String(year).padStart(4, '0')}${rest}`, 'ascii'));
}

/** [n] EXPLICIT: a constructed context-specific element that wraps complete encodings. */
export function explicit(n: number, ...elements: Uint8Array[]): Buffer {
  return tlv(CONTEXT | CONSTRUCTED | n, Buffer.concat(elements));
}

/**
 * [n] IMPLICIT of a primitive type: an encoded element (from octetString, ia5String, ...) with its
 * tag replaced by the context-specific [n]; the contents stay as they are.
 */
export function implicit(n: number, element: Uint8Array): Buffer {
  return tlv(CONTEXT | n, decode(element).contents);
}

/** The identifier octet of [n] IMPLICIT (primitive), or of [n] EXPLICIT with constructed set, for matching decoded tags. */
export function contextTag(n: number, constructed = false): number {
  return CONTEXT | (constructed ? CONSTRUCTED : 0) | n;
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/** One decoded element. The buffers are views into the input: nothing is copied. */
export interface Element {
  /** The identifier octet. */
  tag: number;
  /** The contents octets. */
  contents: Buffer;
  /** The element's whole encoding (identifier, length, contents), e.g. to copy a Name verbatim. */
  der: Buffer;
}

/** Decodes the element that starts at offset; returns it and the offset just past it. */
export function decodeAt(input: Uint8Array, offset = 0): { element: Element; end: number } {
  const bytes = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const fail = (why: string): never => {
    throw new RangeError(`DER: ${why} at offset ${offset}`);
  };
  if (offset >= bytes.length) fail('no element');
  const tag = bytes[offset]!;
  if ((tag & 0x1f) === 0x1f) fail('high tag numbers are not supported');
  let pos = offset + 1;
  if (pos >= bytes.length) fail('truncated length');
  let length = bytes[pos++]!;
  if (length === 0x80) fail('indefinite length is not DER');
  if (length > 0x80) {
    const count = length & 0x7f;
    if (count > 4) fail('length too large');
    if (pos + count > bytes.length) fail('truncated length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + bytes[pos++]!;
    if (length < 0x80 || bytes[pos - count] === 0) fail('length not in its shortest form');
  }
  const end = pos + length;
  if (end > bytes.length) fail('contents run past the end of the input');
  return { element: { tag, contents: bytes.subarray(pos, end), der: bytes.subarray(offset, end) }, end };
}

/** Decodes an input that must be exactly one element. */
export function decode(input: Uint8Array): Element {
  const { element, end } = decodeAt(input);
  if (end !== input.length) throw new RangeError(`DER: ${input.length - end} bytes after the element`);
  return element;
}

/** The elements inside a constructed element (a SEQUENCE, a SET, an explicit [n]), in order. */
export function children(parent: Element): Element[] {
  if ((parent.tag & CONSTRUCTED) === 0) throw new RangeError(`DER: tag 0x${parent.tag.toString(16)} is not constructed`);
  const out: Element[] = [];
  for (let offset = 0; offset < parent.contents.length; ) {
    const { element, end } = decodeAt(parent.contents, offset);
    out.push(element);
    offset = end;
  }
  return out;
}

/** Throws unless the element has the expected tag; returns it for chaining. */
export function expectTag(element: Element | undefined, tag: number, what: string): Element {
  if (element === undefined) throw new RangeError(`DER: ${what} is missing`);
  if (element.tag !== tag) throw new RangeError(`DER: ${what} has tag 0x${element.tag.toString(16)}, expected 0x${tag.toString(16)}`);
  return element;
}

/** The dotted form of an OBJECT IDENTIFIER element. */
export function decodeOid(element: Element): string {
  expectTag(element, Tag.OID, 'object identifier');
  const values: number[] = [];
  let value = 0;
  for (const [i, byte] of element.contents.entries()) {
    value = value * 128 + (byte & 0x7f);
    if ((byte & 0x80) === 0) {
      values.push(value);
      value = 0;
    } else if (i === element.contents.length - 1) {
      throw new RangeError('DER: object identifier ends inside an arc');
    }
  }
  const [first, ...rest] = values;
  if (first === undefined) throw new RangeError('DER: empty object identifier');
  const head = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  return [...head, ...rest].join('.');
}

/** The bytes of a BIT STRING element that holds whole octets (a public key); throws if bits are unused. */
export function decodeBitString(element: Element): Buffer {
  expectTag(element, Tag.BIT_STRING, 'bit string');
  if (element.contents.length === 0 || element.contents[0] !== 0) throw new RangeError('DER: bit string does not hold whole octets');
  return element.contents.subarray(1);
}
