import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as der from './der.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const bytes = (h: string): Buffer => Buffer.from(h, 'hex');

describe('DER encoding', () => {
  it.each([
    [0, '020100'],
    [1, '020101'],
    [127, '02017f'],
    // 128 needs a zero octet in front, else it would read as -128.
    [128, '02020080'],
    [256, '02020100'],
    [65535, '020300ffff'],
  ])('INTEGER %d', (n, want) => {
    expect(hex(der.integer(n))).toBe(want);
  });

  it('INTEGER from bytes: leading zero octets dropped, a sign octet added only where the top bit is set', () => {
    expect(hex(der.integer(bytes('00007f01')))).toBe('02027f01');
    expect(hex(der.integer(bytes('0080')))).toBe('02020080');
    expect(hex(der.integer(bytes('ff')))).toBe('020200ff');
    expect(hex(der.integer(bytes('0000')))).toBe('020100');
    expect(() => der.integer(-1)).toThrow(RangeError);
  });

  it.each([
    ['1.2.840.10045.4.3.2', '06082a8648ce3d040302'], // ecdsa-with-SHA256
    ['1.2.840.10045.2.1', '06072a8648ce3d0201'], // id-ecPublicKey
    ['2.5.29.14', '0603551d0e'],
    ['1.3.6.1.5.5.7.3.1', '06082b06010505070301'],
    ['2.999.3', '0603883703'], // X.690 8.19.5's example: the first arcs share one value beyond 127
  ])('OBJECT IDENTIFIER %s', (dotted, want) => {
    expect(hex(der.oid(dotted))).toBe(want);
    expect(der.decodeOid(der.decode(bytes(want)))).toBe(dotted);
  });

  it('refuses malformed object identifiers', () => {
    for (const bad of ['1', '3.1', '1.40', '1.2.x', '']) expect(() => der.oid(bad), bad).toThrow(RangeError);
  });

  it('writes lengths in the short form below 128 and in the long form beyond', () => {
    expect(hex(der.octetString(Buffer.alloc(127))).slice(0, 4)).toBe('047f');
    expect(hex(der.octetString(Buffer.alloc(128))).slice(0, 6)).toBe('048180');
    expect(hex(der.octetString(Buffer.alloc(300))).slice(0, 8)).toBe('0482012c');
    expect(hex(der.octetString(Buffer.alloc(70000))).slice(0, 10)).toBe('0483011170');
  });

  it('BOOLEAN, BIT STRING, strings', () => {
    expect(hex(der.boolean(true))).toBe('0101ff');
    expect(hex(der.boolean(false))).toBe('010100');
    expect(hex(der.bitString(bytes('0102')))).toBe('0303000102');
    expect(hex(der.printableString('ca-1'))).toBe('130463612d31');
    expect(hex(der.utf8String('é'))).toBe('0c02c3a9');
    expect(hex(der.ia5String('*.a'))).toBe('16032a2e61');
    expect(() => der.printableString('a_b')).toThrow(RangeError);
    expect(() => der.ia5String('é')).toThrow(RangeError);
  });

  it('tells PrintableString text from other text', () => {
    expect(der.isPrintable("Az09 '()+,-./:=?")).toBe(true);
    for (const s of ['a_b', 'a*b', 'a@b', 'é', 'a\nb']) expect(der.isPrintable(s), s).toBe(false);
  });

  it.each([
    [[0, 5, 6], '03020186'], // keyCertSign | cRLSign | digitalSignature: 1 unused bit
    [[0, 2], '030205a0'], // digitalSignature | keyEncipherment: 5 unused bits
    [[8], '0303070080'], // decipherOnly: the second octet, 7 unused bits
    [[7], '03020001'], // encipherOnly: the last bit of the first octet, none unused
    [[], '030100'],
  ])('named bits %j', (bits, want) => {
    expect(hex(der.namedBits(bits))).toBe(want);
  });

  it.each([
    ['2026-03-04T05:06:07.890Z', '170d3236303330343035303630375a'], // UTCTime 260304050607Z, milliseconds dropped
    ['1950-01-01T00:00:00Z', '170d3530303130313030303030305a'], // UTCTime 500101000000Z
    ['2049-12-31T23:59:59.999Z', '170d3439313233313233353935395a'], // UTCTime 491231235959Z
    ['2050-01-01T00:00:00Z', '180f32303530303130313030303030305a'], // GeneralizedTime 20500101000000Z
    ['1949-12-31T23:59:59Z', '180f31393439313233313233353935395a'], // GeneralizedTime 19491231235959Z
  ])('Time %s', (iso, want) => {
    expect(hex(der.time(new Date(iso)))).toBe(want);
  });

  it('refuses a time that cannot be written', () => {
    expect(() => der.time(new Date(NaN))).toThrow(RangeError);
    expect(() => der.time(new Date('+010000-01-01T00:00:00Z'))).toThrow(RangeError);
  });

  it('SEQUENCE keeps its order, SET OF sorts by encoding, context tags', () => {
    expect(hex(der.sequence(der.integer(2), der.integer(1)))).toBe('3006020102020101');
    expect(hex(der.set(der.integer(2), der.integer(1)))).toBe('3106020101020102');
    expect(hex(der.sequence())).toBe('3000');
    expect(hex(der.explicit(0, der.integer(2)))).toBe('a003020102');
    expect(hex(der.implicit(2, der.ia5String('a')))).toBe('820161');
    expect(der.contextTag(0)).toBe(0x80);
    expect(der.contextTag(3, true)).toBe(0xa3);
  });
});

describe('DER decoding', () => {
  it('splits an encoding into elements and back, as views of the input', () => {
    const name = der.sequence(der.set(der.sequence(der.oid('2.5.4.3'), der.printableString('x'))));
    const encoded = der.sequence(der.integer(5), name, der.octetString(Buffer.alloc(200, 1)));
    const top = der.decode(encoded);
    expect(top.tag).toBe(der.Tag.SEQUENCE);
    expect(top.der.equals(encoded)).toBe(true);
    const [n, nm, os] = der.children(top);
    expect(n).toMatchObject({ tag: der.Tag.INTEGER });
    expect(hex(n!.contents)).toBe('05');
    expect(nm!.der.equals(name)).toBe(true);
    expect(os!.contents.length).toBe(200);
    expect(os!.contents.buffer).toBe(encoded.buffer);
  });

  it('reads a BIT STRING of whole octets and refuses one with unused bits', () => {
    expect(hex(der.decodeBitString(der.decode(der.bitString(bytes('abcd')))))).toBe('abcd');
    expect(() => der.decodeBitString(der.decode(der.namedBits([0, 2])))).toThrow(RangeError);
  });

  it.each([
    ['', 'no element'],
    ['30', 'truncated length'],
    ['3080', 'indefinite length'],
    ['3004020101', 'past the end'],
    ['04820001' + '00', 'shortest form'], // long form for a length below 128
    ['0481' + '05' + '0000000000', 'shortest form'],
    ['0485' + '0000000001' + '00', 'too large'],
    ['1f2100', 'high tag'],
  ])('refuses %s (%s)', (h, why) => {
    expect(() => der.decode(bytes(h))).toThrow(why);
  });

  it('refuses bytes after the element and children of a primitive', () => {
    expect(() => der.decode(bytes('02010100'))).toThrow('bytes after');
    expect(() => der.children(der.decode(bytes('020101')))).toThrow('not constructed');
    expect(() => der.expectTag(der.decode(bytes('020101')), der.Tag.SEQUENCE, 'x')).toThrow('x has tag 0x2');
    expect(() => der.expectTag(undefined, der.Tag.SEQUENCE, 'x')).toThrow('x is missing');
  });

  it('walks a certificate made elsewhere: Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }', () => {
    const cert = new X509Certificate(readFileSync(new URL('./testdata/peculiar-ca.pem', import.meta.url)));
    const top = der.decode(cert.raw);
    const [tbs, alg, sig] = der.children(top);
    expect(tbs!.tag).toBe(der.Tag.SEQUENCE);
    expect(der.decodeOid(der.children(alg!)[0]!)).toBe('1.2.840.10045.4.3.2');
    expect(sig!.tag).toBe(der.Tag.BIT_STRING);
    // Re-encoding the decoded parts gives the same bytes: the encoder writes what DER demands.
    expect(der.sequence(tbs!.der, alg!.der, sig!.der).equals(cert.raw)).toBe(true);
    const fields = der.children(tbs!);
    expect(der.children(fields[0]!)[0]!.der.equals(der.integer(2))).toBe(true);
    expect(fields[1]!.der.equals(der.integer(der.decode(fields[1]!.der).contents))).toBe(true);
  });
});
