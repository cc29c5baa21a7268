import { describe, expect, it } from 'vitest';
import { H2Error } from './frames.ts';
import { HpackDecoder, HpackEncoder } from './hpack.ts';
import { huffmanDecode, huffmanEncode, huffmanLength } from './huffman.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const flat = (pairs: [string, string][]): string[] => pairs.flat();

type Step = { block: string; headers: [string, string][]; table: [string, string][]; size: number };

// RFC 7541, Appendix C.3 (requests, no Huffman) and C.4 (the same with Huffman).
const requests: [string, string][][] = [
  [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']],
  [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache']],
  [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']],
];
const requestTables: [string, string][][] = [
  [[':authority', 'www.example.com']],
  [['cache-control', 'no-cache'], [':authority', 'www.example.com']],
  [['custom-key', 'custom-value'], ['cache-control', 'no-cache'], [':authority', 'www.example.com']],
];
const requestSizes = [57, 110, 164];
const c3 = ['8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d', '8286 84be 5808 6e6f 2d63 6163 6865', '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65'];
const c4 = ['8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff', '8286 84be 5886 a8eb 1064 9cbf', '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf'];

// C.5 (responses, table size 256, no Huffman) and C.6 (the same with Huffman).
const date1 = 'Mon, 21 Oct 2013 20:13:21 GMT';
const date2 = 'Mon, 21 Oct 2013 20:13:22 GMT';
const cookie = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1';
const loc = 'https://www.example.com';
const responses: [string, string][][] = [
  [[':status', '302'], ['cache-control', 'private'], ['date', date1], ['location', loc]],
  [[':status', '307'], ['cache-control', 'private'], ['date', date1], ['location', loc]],
  [[':status', '200'], ['cache-control', 'private'], ['date', date2], ['location', loc], ['content-encoding', 'gzip'], ['set-cookie', cookie]],
];
const responseTables: [string, string][][] = [
  [['location', loc], ['date', date1], ['cache-control', 'private'], [':status', '302']],
  [[':status', '307'], ['location', loc], ['date', date1], ['cache-control', 'private']],
  [['set-cookie', cookie], ['content-encoding', 'gzip'], ['date', date2]],
];
const responseSizes = [222, 222, 215];
const c5 = [
  `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768
   7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d`,
  '4803 3330 37c1 c0bf',
  `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153
   444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31`,
];
const c6 = [
  `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8
   e9ae 82ae 43d3`,
  '4883 640e ffc1 c0bf',
  `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b
   3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
];

const series = (blocks: string[], headers: [string, string][][], tables: [string, string][][], sizes: number[]): Step[] =>
  blocks.map((block, i) => ({ block, headers: headers[i]!, table: tables[i]!, size: sizes[i]! }));

describe('HPACK decoder (RFC 7541, Appendix C)', () => {
  it.each([
    ['C.2.1 literal with indexing', '400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572', ['custom-key', 'custom-header'], 55],
    ['C.2.2 literal without indexing', '040c 2f73 616d 706c 652f 7061 7468', [':path', '/sample/path'], 0],
    ['C.2.3 literal never indexed', '1008 7061 7373 776f 7264 0673 6563 7265 74', ['password', 'secret'], 0],
    ['C.2.4 indexed', '82', [':method', 'GET'], 0],
  ])('%s', (_name, block, headers, size) => {
    const d = new HpackDecoder();
    expect(d.decode(hex(block))).toEqual(headers);
    expect(d.inspect().size).toBe(size);
  });

  it.each([
    ['C.3 requests without Huffman', 4096, series(c3, requests, requestTables, requestSizes)],
    ['C.4 requests with Huffman', 4096, series(c4, requests, requestTables, requestSizes)],
    ['C.5 responses without Huffman', 256, series(c5, responses, responseTables, responseSizes)],
    ['C.6 responses with Huffman', 256, series(c6, responses, responseTables, responseSizes)],
  ] as const)('%s: headers, table and size after each block', (_name, tableSize, steps) => {
    const d = new HpackDecoder(tableSize);
    for (const step of steps) {
      expect(d.decode(hex(step.block))).toEqual(flat(step.headers));
      expect(d.inspect()).toEqual({ size: step.size, entries: step.table });
    }
  });

  it.each([
    ['index 0', '80'],
    ['an index beyond both tables', 'ff00'],
    ['a truncated integer', '7fff'],
    ['a truncated string', '400a 6375'],
    ['an integer over 2^31', '7f ffffffff0f'],
    ['a table size update above the advertised limit', '3fe21f'],
    ['a table size update after a field', '82 20'],
    ['Huffman padding longer than 7 bits', '4081 ff 00'],
    ['Huffman padding that is not all ones', '4081 fe 00'],
    ['Huffman EOS in the string', '4084 ffffffff 00'],
  ])('rejects %s with COMPRESSION_ERROR', (_name, block) => {
    const err = (() => {
      try {
        new HpackDecoder().decode(hex(block));
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(H2Error);
    expect((err as H2Error).code).toBe(0x9);
  });
});

describe('HPACK encoder', () => {
  it('produces the RFC 7541 C.3 blocks without Huffman and the C.4 blocks with it', () => {
    const plain = new HpackEncoder();
    const huff = new HpackEncoder(4096, { huffman: true });
    requests.forEach((headers, i) => {
      expect(plain.encode(flat(headers)).toString('hex')).toBe(hex(c3[i]!).toString('hex'));
      expect(huff.encode(flat(headers)).toString('hex')).toBe(hex(c4[i]!).toString('hex'));
    });
  });

  it('round-trips through the decoder across many blocks, with evictions and a table size change', () => {
    const enc = new HpackEncoder(4096);
    const dec = new HpackDecoder(4096);
    for (let i = 0; i < 500; i++) {
      if (i === 250) enc.setMaxTableSize(256);
      const headers = [':method', 'POST', ':path', `/etcdserverpb.KV/Range`, 'x-n', String(i % 37), 'x-long', 'v'.repeat(i % 300), 'token', `t${i % 5}`, 'grpc-timeout', `${i}m`];
      expect(dec.decode(enc.encode(headers))).toEqual(headers);
    }
    // Repeated headers become one-byte references to the table.
    const again = enc.encode([':method', 'POST', 'token', 't4']);
    expect(again.length).toBeLessThanOrEqual(3);
  });
});

describe('Huffman code', () => {
  it('round-trips every byte value', () => {
    const s = Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('latin1');
    const out = Buffer.alloc(huffmanLength(s));
    expect(huffmanEncode(s, out, 0)).toBe(out.length);
    expect(huffmanDecode(out)).toBe(s);
  });
});
