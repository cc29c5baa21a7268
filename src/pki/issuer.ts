// @peculiar/x509 resolves its ASN.1 services through tsyringe, which needs the Reflect metadata API loaded first.
import 'reflect-metadata';
import { createPrivateKey, webcrypto } from 'node:crypto';
import type { webcrypto as WebCrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKey = WebCrypto.CryptoKey;
type CryptoKeyPair = WebCrypto.CryptoKeyPair;

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;

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

async function newKeyPair(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']));
}

async function keyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

/** Creates a self-signed CA (ECDSA P-256) that may sign leaves but no further CAs. */
export async function createCa(commonName: string, validity: Validity): Promise<CertificatePem> {
  const keys = await newKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: [{ CN: [commonName] }],
    notBefore: validity.notBefore,
    notAfter: validity.notAfter,
    keys,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem'), key: await keyPem(keys.privateKey) };
}

/** Issues a leaf certificate (ECDSA P-256, new key) signed by the CA. */
export async function issueLeaf(ca: CertificatePem, request: LeafRequest, validity: Validity): Promise<CertificatePem> {
  const caCert = new x509.X509Certificate(ca.cert);
  const caKeyDer = createPrivateKey(ca.key).export({ type: 'pkcs8', format: 'der' });
  const signingKey = await webcrypto.subtle.importKey('pkcs8', caKeyDer, EC, false, ['sign']);
  const keys = await newKeyPair();
  const usages = [...(request.usages.includes('server') ? [x509.ExtendedKeyUsage.serverAuth] : []), ...(request.usages.includes('client') ? [x509.ExtendedKeyUsage.clientAuth] : [])];
  const names = [...request.dnsNames.map((value) => ({ type: 'dns' as const, value })), ...request.ipAddresses.map((value) => ({ type: 'ip' as const, value }))];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: [{ CN: [request.commonName] }],
    issuer: caCert.subjectName,
    notBefore: validity.notBefore,
    notAfter: validity.notAfter,
    publicKey: keys.publicKey,
    signingKey,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension(usages, false),
      ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names, false)] : []),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
    ],
  });
  return { cert: cert.toString('pem'), key: await keyPem(keys.privateKey) };
}

/** A positive 128-bit serial number (the top bit cleared so that DER needs no sign byte). */
function serial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = bytes[0]! & 0x7f;
  return Buffer.from(bytes).toString('hex');
}
