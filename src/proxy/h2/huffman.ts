import { ErrorCode, H2Error } from './frames.ts';
import { HUFFMAN_CODES, HUFFMAN_LENGTHS } from './huffman-table.ts';

const EOS = 256;

// The decoding tree, in flat arrays: node n has children tree[2n] (bit 0) and tree[2n+1] (bit 1).
// A child value >= 0 is the next node; a negative value -1-s is the leaf for symbol s.
const tree = buildTree();

function buildTree(): Int32Array {
  const nodes: number[] = [0, 0];
  let count = 1;
  const add = (code: number, length: number, symbol: number): void => {
    let node = 0;
    for (let i = length - 1; i >= 0; i--) {
      const slot = 2 * node + ((code >>> i) & 1);
      if (i === 0) {
        nodes[slot] = -1 - symbol;
        return;
      }
      if (nodes[slot] === 0) {
        nodes[slot] = count++;
        nodes.push(0, 0);
      }
      node = nodes[slot]!;
    }
  };
  for (let s = 0; s < 256; s++) add(HUFFMAN_CODES[s]!, HUFFMAN_LENGTHS[s]!, s);
  add(0x3fff_ffff, 30, EOS);
  return Int32Array.from(nodes);
}

/**
 * Decodes a Huffman-coded HPACK string (RFC 7541, section 5.2) to latin1. Throws a COMPRESSION_ERROR
 * for EOS in the data, padding longer than 7 bits, or padding that is not the start of EOS.
 */
export function huffmanDecode(input: Uint8Array): string {
  const out = Buffer.allocUnsafe(Math.ceil((input.length * 8) / 5));
  let n = 0;
  let node = 0;
  let depth = 0; // bits read since the last symbol
  let allOnes = true;
  for (let i = 0; i < input.length; i++) {
    const byte = input[i]!;
    for (let b = 7; b >= 0; b--) {
      const bit = (byte >>> b) & 1;
      const next = tree[2 * node + bit]!;
      depth++;
      if (bit === 0) allOnes = false;
      if (next < 0) {
        const symbol = -1 - next;
        if (symbol === EOS) throw new H2Error(ErrorCode.COMPRESSION_ERROR, 'Huffman string contains EOS');
        out[n++] = symbol;
        node = 0;
        depth = 0;
        allOnes = true;
      } else if (next === 0) {
        throw new H2Error(ErrorCode.COMPRESSION_ERROR, 'invalid Huffman code');
      } else {
        node = next;
      }
    }
  }
  if (depth > 7 || !allOnes) throw new H2Error(ErrorCode.COMPRESSION_ERROR, 'invalid Huffman padding');
  return out.toString('latin1', 0, n);
}

/** The length in bytes of the Huffman coding of a latin1 string. */
export function huffmanLength(s: string): number {
  let bits = 0;
  for (let i = 0; i < s.length; i++) bits += HUFFMAN_LENGTHS[s.charCodeAt(i) & 0xff]!;
  return Math.ceil(bits / 8);
}

/** Huffman-codes a latin1 string into out at offset; returns the offset after it. */
export function huffmanEncode(s: string, out: Buffer, offset: number): number {
  let acc = 0; // pending bits, at most 7 + 30, kept below 2^53 as a number
  let bits = 0;
  let pos = offset;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i) & 0xff;
    const len = HUFFMAN_LENGTHS[c]!;
    acc = acc * 2 ** len + HUFFMAN_CODES[c]!;
    bits += len;
    while (bits >= 8) {
      bits -= 8;
      const byte = Math.floor(acc / 2 ** bits);
      out[pos++] = byte;
      acc -= byte * 2 ** bits;
    }
  }
  if (bits > 0) out[pos++] = ((acc << (8 - bits)) | (0xff >>> bits)) & 0xff;
  return pos;
}
