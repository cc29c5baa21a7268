import { ErrorCode, H2Error } from './frames.ts';
import { huffmanDecode, huffmanEncode, huffmanLength } from './huffman.ts';

// HPACK (RFC 7541). Header lists are flat [name, value, name, value, ...] arrays of latin1 strings,
// the shape Node uses for raw headers, so that nothing builds an object per header block.

/** The static table (RFC 7541, Appendix A); index 1 is the first entry. */
const STATIC: readonly (readonly [string, string])[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''], ['etag', ''],
  ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''],
  ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''],
  ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''],
  ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''], ['set-cookie', ''],
  ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''],
  ['www-authenticate', ''],
];
const STATIC_COUNT = STATIC.length;
// Every entry costs its name and value plus 32 bytes of overhead (RFC 7541, section 4.1).
const ENTRY_OVERHEAD = 32;

// name -> value -> index, and name -> first index, for the encoder (two-level, so that a lookup
// builds no string).
const staticByPair = new Map<string, Map<string, number>>();
const staticByName = new Map<string, number>();
STATIC.forEach(([name, value], i) => {
  let values = staticByPair.get(name);
  if (values === undefined) staticByPair.set(name, (values = new Map<string, number>()));
  if (!values.has(value)) values.set(value, i + 1);
  if (!staticByName.has(name)) staticByName.set(name, i + 1);
});

/** The dynamic table: newest entry first in HPACK numbering, kept oldest-first in the array. */
class DynamicTable {
  entries: [string, string][] = [];
  size = 0;
  maxSize: number;
  constructor(maxSize: number) {
    this.maxSize = maxSize;
  }
  /** The entry at HPACK index (62 = newest), or undefined. */
  get(index: number): readonly [string, string] | undefined {
    return this.entries[this.entries.length - 1 - (index - STATIC_COUNT - 1)];
  }
  /** Adds an entry (evicting the oldest as needed) and returns it. */
  add(name: string, value: string): readonly [string, string] {
    const cost = name.length + value.length + ENTRY_OVERHEAD;
    const entry: [string, string] = [name, value];
    this.entries.push(entry);
    this.size += cost;
    this.evict();
    return entry;
  }
  resize(maxSize: number): void {
    this.maxSize = maxSize;
    this.evict();
  }
  private evict(): void {
    let drop = 0;
    while (this.size > this.maxSize && drop < this.entries.length) {
      const [n, v] = this.entries[drop++]!;
      this.size -= n.length + v.length + ENTRY_OVERHEAD;
    }
    if (drop > 0) this.entries.splice(0, drop);
  }
}

/**
 * Decodes header blocks of one connection direction; the table persists across blocks. Each block
 * is also checked for fields that make a message malformed (RFC 9113, section 8.2.1): a name that
 * is empty or holds an uppercase letter, a control character, a space, DEL, a non-ASCII byte or a
 * colon past its first character, and a value with NUL, CR or LF. Only literals are checked: the
 * static table is valid, and dynamic entries were checked when they were added, so a block of
 * indexed fields (the usual steady state of a connection) costs nothing more.
 */
export class HpackDecoder {
  /** Whether the last block decoded holds a malformed field; the block still decodes whole, so the table stays in step. */
  malformed = false;
  private readonly table: DynamicTable;
  // The SETTINGS_HEADER_TABLE_SIZE this side advertised: the peer may not resize the table above it.
  private readonly limit: number;
  // Dynamic entries that are malformed fields; looked up only once there has been one.
  private readonly badEntries = new WeakSet<readonly [string, string]>();
  private badCount = 0;

  constructor(maxTableSize = 4096) {
    this.table = new DynamicTable(maxTableSize);
    this.limit = maxTableSize;
  }

  /** Decodes one complete header block into a flat list. Throws H2Error COMPRESSION_ERROR on bad input. */
  decode(block: Uint8Array): string[] {
    const out: string[] = [];
    const reader = { buf: block, pos: 0 };
    let fieldSeen = false;
    let malformed = false;
    while (reader.pos < block.length) {
      const b = block[reader.pos]!;
      if ((b & 0x80) !== 0) {
        const entry = this.entry(readInt(reader, 7));
        if (this.badCount > 0 && this.badEntries.has(entry)) malformed = true;
        out.push(entry[0], entry[1]);
      } else if ((b & 0x40) !== 0) {
        const index = readInt(reader, 6);
        let bad: boolean;
        let name: string;
        if (index === 0) {
          name = readString(reader);
          bad = invalidName(name);
        } else {
          const entry = this.entry(index);
          name = entry[0];
          bad = this.badCount > 0 && this.badEntries.has(entry);
        }
        const value = readString(reader);
        bad ||= invalidValue(value);
        const added = this.table.add(name, value);
        if (bad) {
          malformed = true;
          this.badEntries.add(added);
          this.badCount++;
        }
        out.push(name, value);
      } else if ((b & 0x20) !== 0) {
        // A dynamic table size update, allowed only before the first field of a block.
        if (fieldSeen) throw compression('table size update after a header field');
        const size = readInt(reader, 5);
        if (size > this.limit) throw compression('table size update above the advertised limit');
        this.table.resize(size);
        continue;
      } else {
        // Literal without indexing (0000) or never indexed (0001): same layout, 4-bit prefix.
        const index = readInt(reader, 4);
        let name: string;
        if (index === 0) {
          name = readString(reader);
          if (invalidName(name)) malformed = true;
        } else {
          const entry = this.entry(index);
          name = entry[0];
          if (this.badCount > 0 && this.badEntries.has(entry)) malformed = true;
        }
        const value = readString(reader);
        if (invalidValue(value)) malformed = true;
        out.push(name, value);
      }
      fieldSeen = true;
    }
    this.malformed = malformed;
    return out;
  }

  /** The table's current size in bytes and entries, newest first, for tests. */
  inspect(): { size: number; entries: [string, string][] } {
    return { size: this.table.size, entries: [...this.table.entries].reverse() };
  }

  private entry(index: number): readonly [string, string] {
    if (index === 0) throw compression('index 0');
    const e = index <= STATIC_COUNT ? STATIC[index - 1] : this.table.get(index);
    if (e === undefined) throw compression(`index ${index} is not in the table`);
    return e;
  }
}

export interface HpackEncoderOptions {
  /** Huffman-code strings when that is shorter (costs CPU; off for the proxy, on for the RFC vectors). */
  huffman?: boolean;
}

// Values that change on almost every request are not worth a table entry.
const neverIndex = new Set(['grpc-timeout', 'content-length', 'date']);
// Secrets are sent as never-indexed literals (RFC 7541, section 7.1.3).
const sensitive = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie']);

/** Encodes header blocks for one connection direction, with static lookups and incremental indexing. */
export class HpackEncoder {
  private readonly table: DynamicTable;
  private readonly huffman: boolean;
  // Name -> insertion number of its newest dynamic entry, and of the newest entry of each of its values.
  private readonly dynamic = new Map<string, { newest: number; values: Map<string, number> }>();
  private inserted = 0;
  private pendingSizeUpdate: number | undefined;

  constructor(maxTableSize = 4096, options: HpackEncoderOptions = {}) {
    this.table = new DynamicTable(maxTableSize);
    this.huffman = options.huffman ?? false;
  }

  /** Follows the peer's SETTINGS_HEADER_TABLE_SIZE (capped at 4096); announced at the start of the next block. */
  setMaxTableSize(size: number): void {
    const next = Math.min(size, 4096);
    if (next === this.table.maxSize) return;
    this.table.resize(next);
    this.pendingSizeUpdate = Math.min(next, this.pendingSizeUpdate ?? next);
  }

  /** Encodes a flat header list into one header block. */
  encode(headers: readonly string[]): Buffer {
    let estimate = 8;
    for (let i = 0; i < headers.length; i++) estimate += headers[i]!.length + 5;
    const out = Buffer.allocUnsafe(estimate);
    let pos = 0;
    if (this.pendingSizeUpdate !== undefined) {
      pos = writeInt(out, pos, 0x20, 5, this.pendingSizeUpdate);
      if (this.pendingSizeUpdate !== this.table.maxSize) pos = writeInt(out, pos, 0x20, 5, this.table.maxSize);
      this.pendingSizeUpdate = undefined;
    }
    for (let i = 0; i + 1 < headers.length; i += 2) {
      const name = headers[i]!;
      const value = headers[i + 1]!;
      const dynamic = this.dynamic.get(name);
      const exact = staticByPair.get(name)?.get(value) ?? this.dynamicIndex(dynamic?.values.get(value));
      if (exact !== undefined) {
        pos = writeInt(out, pos, 0x80, 7, exact);
        continue;
      }
      const nameIndex = staticByName.get(name) ?? this.dynamicIndex(dynamic?.newest) ?? 0;
      const secret = sensitive.has(name);
      const index = !secret && !neverIndex.has(name) && name.length + value.length + ENTRY_OVERHEAD <= this.table.maxSize / 2;
      if (index) pos = writeInt(out, pos, 0x40, 6, nameIndex);
      else pos = writeInt(out, pos, secret ? 0x10 : 0x00, 4, nameIndex);
      if (nameIndex === 0) pos = this.writeString(out, pos, name);
      pos = this.writeString(out, pos, value);
      if (index) this.add(name, value);
    }
    return out.subarray(0, pos);
  }

  private add(name: string, value: string): void {
    const before = this.table.entries.length;
    this.table.add(name, value);
    const n = this.inserted++;
    if (this.table.entries.length <= before) {
      // The insertion evicted older entries: forget the ones the map still points at.
      const oldest = n + 1 - this.table.entries.length;
      for (const [k, d] of this.dynamic) {
        if (d.newest < oldest) this.dynamic.delete(k);
        else for (const [v, at] of d.values) if (at < oldest) d.values.delete(v);
      }
    }
    let d = this.dynamic.get(name);
    if (d === undefined) this.dynamic.set(name, (d = { newest: n, values: new Map() }));
    d.newest = n;
    d.values.set(value, n);
  }

  private dynamicIndex(insertion: number | undefined): number | undefined {
    if (insertion === undefined) return undefined;
    const age = this.inserted - 1 - insertion; // 0 for the newest entry
    return age < this.table.entries.length ? STATIC_COUNT + 1 + age : undefined;
  }

  private writeString(out: Buffer, pos: number, s: string): number {
    if (this.huffman) {
      const h = huffmanLength(s);
      if (h < s.length) {
        pos = writeInt(out, pos, 0x80, 7, h);
        return huffmanEncode(s, out, pos);
      }
    }
    pos = writeInt(out, pos, 0x00, 7, s.length);
    return pos + out.write(s, pos, 'latin1');
  }
}

/** A field name HTTP/2 forbids: empty, or with a byte outside lowercase token characters (a colon only first). */
function invalidName(name: string): boolean {
  if (name.length === 0) return true;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c <= 0x20 || (c >= 0x41 && c <= 0x5a) || c >= 0x7f || (c === 0x3a && i > 0)) return true;
  }
  return false;
}

/** A field value HTTP/2 forbids: one with NUL, CR or LF (which would split a header when forwarded as HTTP/1.1). */
function invalidValue(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x00 || c === 0x0a || c === 0x0d) return true;
  }
  return false;
}

function compression(message: string): H2Error {
  return new H2Error(ErrorCode.COMPRESSION_ERROR, `HPACK: ${message}`);
}

/** Reads an HPACK integer with an n-bit prefix (RFC 7541, section 5.1). */
function readInt(r: { buf: Uint8Array; pos: number }, bits: number): number {
  const max = (1 << bits) - 1;
  let value = r.buf[r.pos++]! & max;
  if (value < max) return value;
  let shift = 0;
  for (;;) {
    if (r.pos >= r.buf.length) throw compression('truncated integer');
    const b = r.buf[r.pos++]!;
    value += (b & 0x7f) * 2 ** shift;
    if (value > 0x7fff_ffff) throw compression('integer too large');
    if ((b & 0x80) === 0) return value;
    shift += 7;
  }
}

function readString(r: { buf: Uint8Array; pos: number }): string {
  if (r.pos >= r.buf.length) throw compression('truncated string');
  const huffman = (r.buf[r.pos]! & 0x80) !== 0;
  const length = readInt(r, 7);
  if (r.pos + length > r.buf.length) throw compression('truncated string');
  const bytes = r.buf.subarray(r.pos, r.pos + length);
  r.pos += length;
  return huffman ? huffmanDecode(bytes) : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
}

function writeInt(out: Buffer, pos: number, pattern: number, bits: number, value: number): number {
  const max = (1 << bits) - 1;
  if (value < max) {
    out[pos++] = pattern | value;
    return pos;
  }
  out[pos++] = pattern | max;
  let rest = value - max;
  while (rest >= 128) {
    out[pos++] = (rest % 128) | 0x80;
    rest = Math.floor(rest / 128);
  }
  out[pos++] = rest;
  return pos;
}
