// Issues the built-in CA and its leaf certificates with node:crypto and the DER encoder in der.ts:
// ECDSA P-256 keys, ecdsa-with-SHA256 signatures, X.509 v3 (RFC 5280).
import { createHash, createPrivateKey, generateKeyPair, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { promisify } from 'node:util';
import { certificateFields, EXTENSION } from './certificate-fields.ts';
import * as der from './der.ts';
import { certificateOf } from './secret-check.ts';

/** A certificate and its private key, PEM (the key PKCS#8), as tls.crt and tls.key hold them. */
export interface CertificatePem {
  cert: string;
  key: string;
}

/** What a leaf certificate says about its holder. */
export interface LeafRequest {
  commonName: string;
  dnsNames: readonly string[];
  ipAddresses: readonly string[];
  /** serverAuth, clientAuth, or both (etcd peers and its gRPC gateway present the same certificate both ways). */
  usages: readonly ('server' | 'client')[];
}

/** The validity window of a new certificate. */
export interface Validity {
  notBefore: Date;
  notAfter: Date;
}

const OID = {
  ...EXTENSION,
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

/** KeyUsage bit numbers (RFC 5280 4.2.1.3). */
const KeyUsage = { digitalSignature: 0, keyEncipherment: 2, keyCertSign: 5, cRLSign: 6 } as const;

/** GeneralName choices (RFC 5280 4.2.1.6), IMPLICIT tags. */
const GeneralName = { dNSName: 2, iPAddress: 7 } as const;

/** The one signature algorithm: ecdsa-with-SHA256, whose AlgorithmIdentifier has no parameters (RFC 5758 3.2). */
const SIGNATURE_ALGORITHM = der.sequence(der.oid(OID.ecdsaWithSha256));

const newKeyPair = promisify(generateKeyPair);

/** Creates a self-signed CA (ECDSA P-256) that may sign leaves but no further CAs. */
export async function createCa(commonName: string, validity: Validity): Promise<CertificatePem> {
  const { publicKey, privateKey } = await newKeyPair('ec', { namedCurve: 'P-256' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const name = nameOf(commonName);
  const cert = signCertificate({
    issuer: name,
    subject: name,
    validity,
    spki,
    signingKey: privateKey,
    extensions: [
      extension(OID.basicConstraints, true, der.sequence(der.boolean(true), der.integer(0))),
      extension(OID.keyUsage, true, der.namedBits([KeyUsage.keyCertSign, KeyUsage.cRLSign, KeyUsage.digitalSignature])),
      extension(OID.subjectKeyIdentifier, false, der.octetString(keyIdentifier(spki))),
    ],
  });
  return { cert: pem('CERTIFICATE', cert), key: pem('PRIVATE KEY', privateKey.export({ type: 'pkcs8', format: 'der' })) };
}

/** Issues a leaf certificate (ECDSA P-256, new key) signed by the CA. */
export async function issueLeaf(ca: CertificatePem, request: LeafRequest, validity: Validity): Promise<CertificatePem> {
  const caCert = certificateOf(ca.cert);
  const caFields = certificateFields(caCert.raw);
  // The CA's own identifier as its certificate states it, so that the leaf's authorityKeyIdentifier
  // matches whatever method made it (RFC 5280 4.2.1.1); computed only for a CA without one.
  const authorityKeyId = caFields.subjectKeyId ?? keyIdentifier(caCert.publicKey.export({ type: 'spki', format: 'der' }));
  const { publicKey, privateKey } = await newKeyPair('ec', { namedCurve: 'P-256' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const usages = [...(request.usages.includes('server') ? [OID.serverAuth] : []), ...(request.usages.includes('client') ? [OID.clientAuth] : [])];
  const names = [
    ...request.dnsNames.map((name) => der.implicit(GeneralName.dNSName, der.ia5String(name))),
    ...request.ipAddresses.map((ip) => der.implicit(GeneralName.iPAddress, der.octetString(ipBytes(ip)))),
  ];
  const cert = signCertificate({
    // The CA's subject exactly as encoded in its certificate: chain building compares these bytes.
    issuer: caFields.subject,
    subject: nameOf(request.commonName),
    validity,
    spki,
    signingKey: createPrivateKey(ca.key),
    extensions: [
      // cA DEFAULT FALSE is left out in DER: an empty SEQUENCE.
      extension(OID.basicConstraints, true, der.sequence()),
      extension(OID.keyUsage, true, der.namedBits([KeyUsage.digitalSignature, KeyUsage.keyEncipherment])),
      // An ExtendedKeyUsage must name at least one purpose (RFC 5280 4.2.1.12): left out for no usages.
      ...(usages.length > 0 ? [extension(OID.extKeyUsage, false, der.sequence(...usages.map((u) => der.oid(u))))] : []),
      ...(names.length > 0 ? [extension(OID.subjectAltName, false, der.sequence(...names))] : []),
      extension(OID.subjectKeyIdentifier, false, der.octetString(keyIdentifier(spki))),
      // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING }
      extension(OID.authorityKeyIdentifier, false, der.sequence(der.implicit(0, der.octetString(authorityKeyId)))),
    ],
  });
  return { cert: pem('CERTIFICATE', cert), key: pem('PRIVATE KEY', privateKey.export({ type: 'pkcs8', format: 'der' })) };
}

/** What a new certificate holds besides its serial number (random) and signature algorithm (always ECDSA with SHA-256). */
interface CertificateContent {
  /** The encoded issuer Name. */
  issuer: Buffer;
  /** The encoded subject Name. */
  subject: Buffer;
  validity: Validity;
  /** The subject's SubjectPublicKeyInfo, DER. */
  spki: Buffer;
  /** The issuer's private key (the subject's own for a self-signed certificate). */
  signingKey: KeyObject;
  /** Encoded Extension elements. */
  extensions: Buffer[];
}

/** Builds the TBSCertificate (RFC 5280 4.1), signs it and returns the Certificate, DER. */
function signCertificate(c: CertificateContent): Buffer {
  const tbs = der.sequence(
    der.explicit(0, der.integer(2)), // version v3
    der.integer(serial()),
    SIGNATURE_ALGORITHM,
    c.issuer,
    der.sequence(der.time(c.validity.notBefore), der.time(c.validity.notAfter)),
    c.subject,
    c.spki,
    der.explicit(3, der.sequence(...c.extensions)),
  );
  // ECDSA-Sig-Value, DER, as the signature BIT STRING of a certificate holds it (RFC 5758 3.2).
  const signature = sign('sha256', tbs, { key: c.signingKey, dsaEncoding: 'der' });
  return der.sequence(tbs, SIGNATURE_ALGORITHM, der.bitString(signature));
}

/** Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING } */
function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return der.sequence(der.oid(id), ...(critical ? [der.boolean(true)] : []), der.octetString(value));
}

/**
 * A Name with one RDN, CN=commonName. The value is a PrintableString when the name allows one and a
 * UTF8String otherwise, as @peculiar/x509 (which issued the CAs before) chose, so that a name
 * encodes to the same bytes as before.
 */
function nameOf(commonName: string): Buffer {
  const value = der.isPrintable(commonName) ? der.printableString(commonName) : der.utf8String(commonName);
  return der.sequence(der.set(der.sequence(der.oid(OID.commonName), value)));
}

/**
 * The key identifier of a SubjectPublicKeyInfo: SHA-1 of the subjectPublicKey BIT STRING's value,
 * without its unused-bits octet (RFC 5280 4.2.1.2, method 1; also what OpenSSL computes).
 */
function keyIdentifier(spki: Buffer): Buffer {
  const [, subjectPublicKey] = der.children(der.decode(spki));
  return createHash('sha1').update(der.decodeBitString(der.expectTag(subjectPublicKey, der.Tag.BIT_STRING, 'subjectPublicKey'))).digest();
}

/** The octets of an IP address for a SAN iPAddress: 4 for IPv4, 16 for IPv6. */
function ipBytes(ip: string): Buffer {
  const version = isIP(ip);
  if (version === 4) return Buffer.from(ip.split('.').map(Number));
  if (version !== 6 || ip.includes('%')) throw new RangeError(`issueLeaf: ${JSON.stringify(ip)} is not an IP address for a certificate`);
  let text = ip;
  // A trailing dotted IPv4 address (::ffff:192.0.2.1) is the last two 16-bit groups.
  if (text.includes('.')) {
    const cut = text.lastIndexOf(':') + 1;
    const [a, b, c, d] = ipBytes(text.slice(cut));
    text = `${text.slice(0, cut)}${((a! << 8) | b!).toString(16)}:${((c! << 8) | d!).toString(16)}`;
  }
  // '::' stands for as many zero groups as the address lacks (at most one '::', which isIP checked).
  const [head, tail] = text.split('::') as [string, string | undefined];
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const before = groups(head);
  const after = tail === undefined ? [] : groups(tail);
  const all = tail === undefined ? before : [...before, ...Array<string>(8 - before.length - after.length).fill('0'), ...after];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), 2 * i));
  return out;
}

/** A positive 128-bit serial number (the top bit cleared, so that DER needs no sign octet). */
function serial(): Buffer {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes;
}

/** PEM with 64-character lines and no newline after the end line, as the certificates and keys were written before. */
function pem(label: string, body: Buffer): string {
  const lines = body.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----`;
}
