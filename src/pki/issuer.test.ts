import { execFileSync } from 'node:child_process';
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { certificateFields, EXTENSION } from './certificate-fields.ts';
import * as der from './der.ts';
import { createCa, issueLeaf, type CertificatePem, type LeafRequest } from './issuer.ts';

const now = Date.now();
const validity = { notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000) };
const serverRequest: LeafRequest = {
  commonName: 'issuer-test-server',
  dnsNames: ['member-0.peer.ns.svc', '*.peer.ns.svc.cluster.local', 'localhost'],
  ipAddresses: ['127.0.0.1', '::1', 'fd00::1'],
  usages: ['server', 'client'],
};
const clientRequest: LeafRequest = { commonName: 'issuer-test-client', dnsNames: [], ipAddresses: [], usages: ['client'] };

/** Test fixtures made with the @peculiar/x509 issuer that this one replaced (see testdata/README.md). */
const testdata = (file: string): string => readFileSync(new URL(`./testdata/${file}`, import.meta.url), 'utf8');
const peculiarCa: CertificatePem = { cert: testdata('peculiar-ca.pem'), key: testdata('peculiar-ca.key') };
/** The request peculiar-leaf.pem was issued for, under peculiar-ca.pem. */
const peculiarLeafRequest: LeafRequest = { commonName: 'peculiar-test-leaf', dnsNames: ['a.example', '*.b.example'], ipAddresses: ['127.0.0.1', '::1', 'fd00::1'], usages: ['server', 'client'] };

const dir = mkdtempSync(join(tmpdir(), 'issuer-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
/** Writes text to a new file under the test's temporary directory; returns its path. */
const tmp = (text: string): string => {
  const path = join(dir, `${files++}.pem`);
  writeFileSync(path, text);
  return path;
};
const openssl = (...args: string[]): string => execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
/** openssl verify's output, or its error output when it refuses. */
const verify = (ca: string, leaf: string, ...flags: string[]): string => {
  try {
    return openssl('verify', ...flags, '-CAfile', tmp(ca), tmp(leaf)).trim();
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    return `refused: ${err.stdout ?? ''}${err.stderr ?? ''}`;
  }
};
const hexOf = (b: Buffer | undefined): string | undefined => b?.toString('hex');
/** SHA-1 of a P-256 public key's point (RFC 5280 4.2.1.2 method 1): the last 65 octets of its SPKI. */
const method1 = (cert: X509Certificate): string => createHash('sha1').update(cert.publicKey.export({ type: 'spki', format: 'der' }).subarray(-65)).digest('hex');
/** The SAN GeneralNames of a certificate as [tag, contents hex]. */
const sanEntries = (cert: CertificatePem): [number, string][] => {
  const value = certificateFields(new X509Certificate(cert.cert).raw).extensions.find((e) => e.id === EXTENSION.subjectAltName)?.value;
  return value === undefined ? [] : der.children(der.decode(value)).map((e) => [e.tag, e.contents.toString('hex')]);
};

describe('createCa and issueLeaf', async () => {
  const ca = await createCa('issuer-test-ca', validity);
  const server = await issueLeaf(ca, serverRequest, validity);
  const client = await issueLeaf(ca, clientRequest, validity);
  const caCert = new X509Certificate(ca.cert);
  const serverCert = new X509Certificate(server.cert);
  const clientCert = new X509Certificate(client.cert);

  it('makes leaves that openssl verify accepts under the CA, strictly and for their purposes', () => {
    expect(verify(ca.cert, server.cert, '-x509_strict', '-purpose', 'sslserver')).toMatch(/: OK$/);
    expect(verify(ca.cert, server.cert, '-x509_strict', '-purpose', 'sslclient')).toMatch(/: OK$/);
    expect(verify(ca.cert, client.cert, '-x509_strict', '-purpose', 'sslclient')).toMatch(/: OK$/);
    // A client-only leaf is no server certificate, and another CA did not sign it.
    expect(verify(ca.cert, client.cert, '-purpose', 'sslserver')).toContain('unsuitable certificate purpose');
    expect(verify(peculiarCa.cert, client.cert)).toContain('refused');
  });

  it('writes the CA extensions openssl expects', () => {
    const text = openssl('x509', '-noout', '-text', '-in', tmp(ca.cert));
    expect(text).toContain('Version: 3 (0x2)');
    expect(text).toContain('Signature Algorithm: ecdsa-with-SHA256');
    expect(text).toContain('NIST CURVE: P-256');
    expect(text).toContain('Issuer: CN = issuer-test-ca');
    expect(text).toContain('Subject: CN = issuer-test-ca');
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0\n/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign\n/);
    expect(text).toMatch(/X509v3 Subject Key Identifier: \s+([0-9A-F]{2}:){19}[0-9A-F]{2}\n/);
    expect(text).not.toContain('Authority Key Identifier');
    expect(text).not.toContain('Extended Key Usage');
  });

  it('writes the leaf extensions openssl expects, the authority key identifier being the CA\'s subject key identifier', () => {
    const text = openssl('x509', '-noout', '-text', '-in', tmp(server.cert));
    const caSki = /X509v3 Subject Key Identifier: \s+(\S+)/.exec(openssl('x509', '-noout', '-text', '-in', tmp(ca.cert)))![1]!;
    expect(text).toContain('Issuer: CN = issuer-test-ca');
    expect(text).toContain('Subject: CN = issuer-test-server');
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE\n/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment\n/);
    expect(text).toMatch(/X509v3 Extended Key Usage: \s+TLS Web Server Authentication, TLS Web Client Authentication\n/);
    expect(text).toMatch(
      /X509v3 Subject Alternative Name: \s+DNS:member-0\.peer\.ns\.svc, DNS:\*\.peer\.ns\.svc\.cluster\.local, DNS:localhost, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1, IP Address:FD00:0:0:0:0:0:0:1\s*\n/,
    );
    expect(text).toMatch(/X509v3 Subject Key Identifier: \s+([0-9A-F]{2}:){19}[0-9A-F]{2}\n/);
    expect(text).toMatch(new RegExp(`X509v3 Authority Key Identifier: \\s+(keyid:)?${caSki}\\n`));
    const clientText = openssl('x509', '-noout', '-text', '-in', tmp(client.cert));
    expect(clientText).toMatch(/X509v3 Extended Key Usage: \s+TLS Web Client Authentication\n/);
    expect(clientText).not.toContain('Subject Alternative Name');
  });

  it('makes certificates node:crypto reads as a CA and leaves it signed', () => {
    expect(caCert.ca).toBe(true);
    expect(caCert.subject).toBe('CN=issuer-test-ca');
    expect(caCert.checkIssued(caCert)).toBe(true);
    expect(caCert.verify(caCert.publicKey)).toBe(true);
    for (const leaf of [serverCert, clientCert]) {
      expect(leaf.ca).toBe(false);
      expect(leaf.checkIssued(caCert)).toBe(true);
      expect(leaf.verify(caCert.publicKey)).toBe(true);
      expect(leaf.issuer).toBe('CN=issuer-test-ca');
    }
    expect(serverCert.subjectAltName).toBe('DNS:member-0.peer.ns.svc, DNS:*.peer.ns.svc.cluster.local, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:FD00:0:0:0:0:0:0:1');
    expect(serverCert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(clientCert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
    expect(clientCert.subjectAltName).toBeUndefined();
    expect(serverCert.checkHost('member-0.peer.ns.svc')).toBe('member-0.peer.ns.svc');
    expect(serverCert.checkHost('member-7.peer.ns.svc.cluster.local')).toBe('*.peer.ns.svc.cluster.local');
    expect(serverCert.checkIP('::1')).toBe('::1');
    expect(serverCert.checkIP('fd00:0::1')).toBe('fd00:0::1');
  });

  it('hands out PKCS#8 P-256 keys that belong to the certificates, and PEM in 64-character lines', () => {
    for (const [pem, cert] of [[ca, caCert], [server, serverCert], [client, clientCert]] as const) {
      expect(pem.key).toMatch(/^-----BEGIN PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+\n-----END PRIVATE KEY-----$/);
      expect(pem.cert).toMatch(/^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+\n-----END CERTIFICATE-----$/);
      for (const text of [pem.key, pem.cert]) {
        const body = text.split('\n').slice(1, -1);
        expect(body.slice(0, -1).every((l) => l.length === 64)).toBe(true);
        expect(body.at(-1)!.length).toBeLessThanOrEqual(64);
      }
      const key = createPrivateKey(pem.key);
      expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
      expect(cert.checkPrivateKey(key)).toBe(true);
    }
    expect(server.key).not.toBe(client.key);
  });

  it('gives every certificate a positive 128-bit random serial number', async () => {
    const serials = [caCert, serverCert, clientCert, new X509Certificate((await createCa('issuer-test-ca', validity)).cert)].map((c) => c.serialNumber);
    expect(new Set(serials).size).toBe(serials.length);
    for (const s of serials) {
      expect(s).toMatch(/^[0-9A-F]{1,32}$/);
      expect(s.length < 32 || parseInt(s[0]!, 16) < 8).toBe(true);
    }
  });

  it('writes key identifiers by RFC 5280 method 1 and the leaf\'s authority key identifier from the CA\'s', () => {
    const caFields = certificateFields(caCert.raw);
    const serverFields = certificateFields(serverCert.raw);
    expect(hexOf(caFields.subjectKeyId)).toBe(method1(caCert));
    expect(caFields.authorityKeyId).toBeUndefined();
    expect(hexOf(serverFields.subjectKeyId)).toBe(method1(serverCert));
    expect(hexOf(serverFields.authorityKeyId)).toBe(hexOf(caFields.subjectKeyId));
    expect(serverFields.extensions.map((e) => [e.id, e.critical])).toEqual([
      [EXTENSION.basicConstraints, true],
      [EXTENSION.keyUsage, true],
      [EXTENSION.extKeyUsage, false],
      [EXTENSION.subjectAltName, false],
      [EXTENSION.subjectKeyIdentifier, false],
      [EXTENSION.authorityKeyIdentifier, false],
    ]);
  });

  it('carries IPv4 addresses as 4 octets and IPv6 addresses, in any of their forms, as 16', async () => {
    const leaf = await issueLeaf(ca, { ...clientRequest, ipAddresses: ['10.1.2.3', '::', '::1', 'fd00::1', '2001:db8::', '1:2:3:4:5:6:7:8', '2001:DB8:0:0:1::1', '::ffff:192.0.2.1'] }, validity);
    expect(sanEntries(leaf)).toEqual([
      [0x87, '0a010203'],
      [0x87, '00000000000000000000000000000000'],
      [0x87, '00000000000000000000000000000001'],
      [0x87, 'fd000000000000000000000000000001'],
      [0x87, '20010db8000000000000000000000000'],
      [0x87, '00010002000300040005000600070008'],
      [0x87, '20010db8000000000001000000000001'],
      [0x87, '00000000000000000000ffffc0000201'],
    ]);
    expect(verify(ca.cert, leaf.cert, '-x509_strict')).toMatch(/: OK$/);
    for (const bad of ['fe80::1%eth0', '1.2.3.04', 'localhost', '1.2.3.4.5', '']) {
      await expect(issueLeaf(ca, { ...clientRequest, ipAddresses: [bad] }, validity), bad).rejects.toThrow(RangeError);
    }
  });

  it('carries DNS names as IA5Strings and refuses names that cannot be one', async () => {
    expect(sanEntries(server).slice(0, 3)).toEqual(serverRequest.dnsNames.map((n) => [0x82, Buffer.from(n).toString('hex')]));
    await expect(issueLeaf(ca, { ...clientRequest, dnsNames: ['é.example'] }, validity)).rejects.toThrow(RangeError);
  });

  it('leaves out an extended key usage with no purposes', async () => {
    const leaf = await issueLeaf(ca, { ...clientRequest, usages: [] }, validity);
    expect(certificateFields(new X509Certificate(leaf.cert).raw).extensions.map((e) => e.id)).not.toContain(EXTENSION.extKeyUsage);
  });

  it('writes the validity to the second, UTCTime up to 2049 and GeneralizedTime from 2050', async () => {
    const window = { notBefore: new Date('2049-12-31T23:59:59.750Z'), notAfter: new Date('2050-01-01T00:00:00.500Z') };
    const leaf = new X509Certificate((await issueLeaf(ca, clientRequest, window)).cert);
    expect(leaf.validFromDate.toISOString()).toBe('2049-12-31T23:59:59.000Z');
    expect(leaf.validToDate.toISOString()).toBe('2050-01-01T00:00:00.000Z');
    const [tbs] = der.children(der.decode(leaf.raw));
    const [notBefore, notAfter] = der.children(der.children(tbs!)[4]!);
    expect([notBefore!.tag, notAfter!.tag]).toEqual([der.Tag.UTC_TIME, der.Tag.GENERALIZED_TIME]);
    expect(openssl('x509', '-noout', '-dates', '-in', tmp(leaf.toString()))).toBe('notBefore=Dec 31 23:59:59 2049 GMT\nnotAfter=Jan  1 00:00:00 2050 GMT\n');
  });

  it('encodes a common name as a PrintableString where it can, else as a UTF8String, as @peculiar/x509 did', async () => {
    // Name ::= SEQUENCE OF RelativeDistinguishedName (SET OF AttributeTypeAndValue ::= SEQUENCE { type, value })
    const subjectValue = (pem: string): der.Element => {
      const [rdn] = der.children(der.decode(certificateFields(new X509Certificate(pem).raw).subject));
      const [attribute] = der.children(rdn!);
      return der.children(attribute!)[1]!;
    };
    const printable = subjectValue(ca.cert);
    expect([printable.tag, printable.contents.toString()]).toEqual([der.Tag.PRINTABLE_STRING, 'issuer-test-ca']);
    const other = await createCa('ca_with_underscore é', validity);
    expect(subjectValue(other.cert).tag).toBe(der.Tag.UTF8_STRING);
    expect(new X509Certificate(other.cert).subject).toBe('CN=ca_with_underscore é');
    expect(new X509Certificate((await issueLeaf(other, clientRequest, validity)).cert).checkIssued(new X509Certificate(other.cert))).toBe(true);
  });

  describe('TLS on 127.0.0.1 with node:tls', () => {
    /** Starts a TLS server that answers with the verified client's common name (or 'anonymous'), connects once, and returns what happened. */
    async function handshake(serverOptions: tls.TlsOptions, clientOptions: tls.ConnectionOptions): Promise<{ authorized: boolean; error?: string; reply?: string }> {
      const srv = tls.createServer({ ...serverOptions, cert: server.cert, key: server.key }, (s) => {
        const peer = s.getPeerCertificate();
        s.end(s.authorized && peer.subject ? `hello ${String(peer.subject.CN)}` : 'hello anonymous');
      });
      srv.on('tlsClientError', () => undefined);
      srv.listen(0, '127.0.0.1');
      await once(srv, 'listening');
      try {
        return await new Promise((resolve) => {
          const s = tls.connect({ host: '127.0.0.1', port: (srv.address() as AddressInfo).port, ca: ca.cert, ...clientOptions });
          let reply = '';
          s.on('data', (d: Buffer) => (reply += d.toString()));
          s.on('end', () => resolve({ authorized: s.authorized, reply }));
          s.on('error', (err: NodeJS.ErrnoException) => resolve({ authorized: false, error: err.code ?? err.message }));
        });
      } finally {
        srv.close();
      }
    }

    it('verifies the server under the CA for each DNS name sent as SNI, and for its IP address', async () => {
      for (const servername of ['member-0.peer.ns.svc', 'member-3.peer.ns.svc.cluster.local', 'localhost']) {
        expect(await handshake({}, { servername }), servername).toEqual({ authorized: true, reply: 'hello anonymous' });
      }
      // No SNI: node:tls checks the address it dialled against the IP names.
      expect(await handshake({}, {})).toEqual({ authorized: true, reply: 'hello anonymous' });
      expect(await handshake({}, { servername: 'elsewhere.example' })).toMatchObject({ error: 'ERR_TLS_CERT_ALTNAME_INVALID' });
      expect(await handshake({}, { servername: 'localhost', ca: peculiarCa.cert })).toMatchObject({ error: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
    });

    it('does mutual TLS with a client leaf of the CA', async () => {
      const mutual = { ca: ca.cert, requestCert: true, rejectUnauthorized: true };
      expect(await handshake(mutual, { servername: 'member-0.peer.ns.svc', cert: client.cert, key: client.key })).toEqual({ authorized: true, reply: 'hello issuer-test-client' });
      // The server leaf carries clientAuth too (etcd's gateway dials its own listener with it).
      expect(await handshake(mutual, { servername: 'member-0.peer.ns.svc', cert: server.cert, key: server.key })).toEqual({ authorized: true, reply: 'hello issuer-test-server' });
      // A client certificate of another CA gets no reply (TLS 1.3 refuses it after the client's handshake).
      const stranger = await issueLeaf(peculiarCa, clientRequest, validity);
      expect((await handshake(mutual, { servername: 'member-0.peer.ns.svc', cert: stranger.cert, key: stranger.key })).reply ?? '').not.toContain('hello');
    });
  });
});

describe('a CA created by the @peculiar/x509 issuer (test fixture)', async () => {
  const caCert = new X509Certificate(peculiarCa.cert);
  const caFields = certificateFields(caCert.raw);
  const leaf = await issueLeaf(peculiarCa, peculiarLeafRequest, validity);
  const leafCert = new X509Certificate(leaf.cert);
  const leafFields = certificateFields(leafCert.raw);

  it('signs leaves by the new issuer that openssl and node:crypto chain under it', () => {
    expect(verify(peculiarCa.cert, leaf.cert, '-x509_strict', '-purpose', 'sslserver')).toMatch(/: OK$/);
    expect(leafCert.checkIssued(caCert)).toBe(true);
    expect(leafCert.verify(caCert.publicKey)).toBe(true);
  });

  it('is named in the leaf\'s issuer with its subject\'s bytes, and in its authority key identifier with its own key identifier', () => {
    const [tbs] = der.children(der.decode(leafCert.raw));
    const issuer = der.children(tbs!)[3]!;
    expect(issuer.der.equals(caFields.subject)).toBe(true);
    expect(hexOf(leafFields.authorityKeyId)).toBe(hexOf(caFields.subjectKeyId));
  });

  it('has the key identifier the new issuer computes: @peculiar/x509 also used RFC 5280 method 1', async () => {
    expect(hexOf(caFields.subjectKeyId)).toBe(method1(caCert));
    // And a CA by the new issuer with the same name has the same subject bytes.
    const fresh = await createCa('peculiar-test-ca', validity);
    expect(certificateFields(new X509Certificate(fresh.cert).raw).subject.equals(caFields.subject)).toBe(true);
  });

  it('gets a leaf with the extensions, in the order and encoding, that @peculiar/x509 wrote for the same request', () => {
    const old = certificateFields(new X509Certificate(testdata('peculiar-leaf.pem')).raw);
    const shape = (f: typeof old): [string, boolean][] => f.extensions.map((e) => [e.id, e.critical]);
    expect(shape(leafFields)).toEqual(shape(old));
    for (const id of [EXTENSION.basicConstraints, EXTENSION.keyUsage, EXTENSION.extKeyUsage, EXTENSION.subjectAltName, EXTENSION.authorityKeyIdentifier]) {
      const value = (f: typeof old): string | undefined => hexOf(f.extensions.find((e) => e.id === id)?.value);
      expect(value(leafFields), id).toBe(value(old));
    }
  });
});

describe('a CA without a subject key identifier (made by openssl)', () => {
  it('gets leaves whose authority key identifier is computed from its key, and which chain under it', async () => {
    const keyFile = join(dir, 'no-ski.key');
    const certFile = join(dir, 'no-ski.pem');
    openssl('req', '-x509', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=openssl-ca-without-ski',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign', '-addext', 'subjectKeyIdentifier=none', '-addext', 'authorityKeyIdentifier=none');
    const ca = { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
    const caCert = new X509Certificate(ca.cert);
    expect(certificateFields(caCert.raw).subjectKeyId).toBeUndefined();
    const leaf = await issueLeaf(ca, serverRequest, validity);
    const leafCert = new X509Certificate(leaf.cert);
    expect(hexOf(certificateFields(leafCert.raw).authorityKeyId)).toBe(method1(caCert));
    // openssl writes the name as a UTF8String; the leaf's issuer copies it.
    expect(leafCert.checkIssued(caCert)).toBe(true);
    expect(leafCert.verify(caCert.publicKey)).toBe(true);
    expect(verify(ca.cert, leaf.cert, '-purpose', 'sslserver')).toMatch(/: OK$/);
  });
});

describe('certificateFields', () => {
  it('refuses what is not a certificate', () => {
    expect(() => certificateFields(Buffer.from('3000', 'hex'))).toThrow('tbsCertificate is missing');
    expect(() => certificateFields(Buffer.from('not der'))).toThrow(RangeError);
  });
});
