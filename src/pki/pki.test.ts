import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { describe, expect, it } from 'vitest';
import { etcdTopologySchema } from '../api/etcd-topology.ts';
import { createCa, issueLeaf, type CertificatePem } from './issuer.ts';
import { leafRequests, serverNames } from './sans.ts';
import { certificateOf, checkTlsSecret, isProblem, type TlsProblem } from './secret-check.ts';

const topology = etcdTopologySchema.parse({ apiVersion: 'etcdtopology.io/v1alpha1', kind: 'EtcdTopology', metadata: { name: 'demo', namespace: 'prod', uid: 'u' } });
const now = new Date();
const validity = { notBefore: new Date(now.getTime() - 60_000), notAfter: new Date(now.getTime() + 3_600_000) };
const b64 = (s: string): string => Buffer.from(s).toString('base64');
const secretData = (leaf: CertificatePem, ca: string): Record<string, string> => ({ 'tls.crt': b64(leaf.cert), 'tls.key': b64(leaf.key), 'ca.crt': b64(ca) });
const server = leafRequests(topology).find((l) => l.secret === 'server')!.request;
const client = leafRequests(topology).find((l) => l.secret === 'client')!.request;
const hosts = ['demo-member-0.demo-peer.prod.svc', 'demo-member-4.demo-peer.prod.svc.cluster.local'];

describe('server names', () => {
  it('cover every member under the peer Service, the client Service and loopback, and no pod IP', () => {
    expect(serverNames(topology)).toEqual({
      dnsNames: ['*.demo-peer.prod.svc', '*.demo-peer.prod.svc.cluster.local', 'demo-client', 'demo-client.prod', 'demo-client.prod.svc', 'demo-client.prod.svc.cluster.local', 'localhost'],
      ipAddresses: ['127.0.0.1', '::1'],
    });
  });
});

describe('issuer and Secret checks', async () => {
  const ca = await createCa('demo-ca', validity);
  const otherCa = await createCa('other-ca', validity);
  const leaf = await issueLeaf(ca, server, validity);

  it('issues a leaf that the check accepts, for every member name', () => {
    const r = checkTlsSecret('demo-server-tls', secretData(leaf, ca.cert), { hosts }, now);
    expect(isProblem(r)).toBe(false);
  });

  const problem = (r: ReturnType<typeof checkTlsSecret>): Pick<TlsProblem, 'reason' | 'message'> | 'ok' => (isProblem(r) ? { reason: r.reason, message: r.message } : 'ok');

  it.each([
    ['a missing Secret', undefined, {}, 'SecretMissing', 'Secret s does not exist'],
    ['a missing ca.crt', { 'tls.crt': 'x', 'tls.key': 'y' }, {}, 'SecretKeyMissing', 'Secret s has no ca.crt'],
    ['garbage in tls.crt', { 'tls.crt': b64('nope'), 'tls.key': b64('nope'), 'ca.crt': b64('nope') }, {}, 'CertificateInvalid', 'Secret s: tls.crt is not a PEM X.509 certificate'],
  ] as const)('reports %s', (_, data, expect_, reason, message) => {
    const r = problem(checkTlsSecret('s', data, expect_, now));
    expect(r).toMatchObject({ reason });
    expect((r as TlsProblem).message).toContain(message);
  });

  it('reports a key that is not the certificate\'s', async () => {
    const other = await issueLeaf(ca, server, validity);
    const r = problem(checkTlsSecret('s', { ...secretData(leaf, ca.cert), 'tls.key': b64(other.key) }, {}, now));
    expect(r).toEqual({ reason: 'KeyMismatch', message: 'Secret s: tls.key is not the private key of the certificate in tls.crt' });
  });

  it('reports a leaf that the CA did not sign, also when the bundle names another CA', () => {
    expect(problem(checkTlsSecret('s', secretData(leaf, otherCa.cert), {}, now))).toMatchObject({ reason: 'NotSignedByCA' });
    expect(problem(checkTlsSecret('s', secretData(leaf, ca.cert), { trustedCa: otherCa.cert }, now))).toMatchObject({ reason: 'NotSignedByCA' });
    // A bundle with the right CA among others is fine (overlapping trust).
    expect(problem(checkTlsSecret('s', secretData(leaf, `${otherCa.cert}${ca.cert}`), {}, now))).toBe('ok');
  });

  it('reports names the certificate does not cover', async () => {
    const narrow = await issueLeaf(ca, { ...server, dnsNames: ['demo-member-0.demo-peer.prod.svc'] }, validity);
    const r = problem(checkTlsSecret('s', secretData(narrow, ca.cert), { hosts }, now));
    expect(r).toEqual({ reason: 'NamesNotCovered', message: "Secret s: the certificate's names do not cover demo-member-4.demo-peer.prod.svc.cluster.local" });
  });

  it('reports expired and not-yet-valid certificates', async () => {
    const past = await issueLeaf(ca, server, { notBefore: new Date(now.getTime() - 7_200_000), notAfter: new Date(now.getTime() - 3_600_000) });
    const future = await issueLeaf(ca, server, { notBefore: new Date(now.getTime() + 3_600_000), notAfter: new Date(now.getTime() + 7_200_000) });
    expect(problem(checkTlsSecret('s', secretData(past, ca.cert), {}, now))).toMatchObject({ reason: 'CertificateExpired' });
    expect(problem(checkTlsSecret('s', secretData(future, ca.cert), {}, now))).toMatchObject({ reason: 'CertificateNotYetValid' });
  });

  it('makes certificates that node:tls accepts for mutual TLS, verifying the member name sent as SNI', async () => {
    const clientLeaf = await issueLeaf(ca, client, validity);
    const strangerCa = await createCa('stranger', validity);
    const stranger = await issueLeaf(strangerCa, client, validity);
    const srv = tls.createServer({ cert: leaf.cert, key: leaf.key, ca: ca.cert, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' }, (s) => s.end('ok'));
    srv.on('tlsClientError', () => undefined);
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const port = (srv.address() as AddressInfo).port;
    const dial = (opts: tls.ConnectionOptions): Promise<string> =>
      new Promise((resolve) => {
        const s = tls.connect({ host: '127.0.0.1', port, ca: ca.cert, servername: hosts[0], ...opts });
        let data = '';
        s.on('data', (d: Buffer) => (data += d.toString()));
        s.on('end', () => resolve(data));
        s.on('error', (err: NodeJS.ErrnoException) => resolve(`error: ${err.code ?? err.message}`));
      });
    try {
      expect(await dial({ cert: clientLeaf.cert, key: clientLeaf.key })).toBe('ok');
      // With TLS 1.3 the server refuses a client certificate after the client's handshake ends: no data, or a reset.
      expect(await dial({})).not.toBe('ok');
      expect(await dial({ cert: stranger.cert, key: stranger.key })).not.toBe('ok');
      expect(await dial({ cert: clientLeaf.cert, key: clientLeaf.key, servername: 'elsewhere.example' })).toBe('error: ERR_TLS_CERT_ALTNAME_INVALID');
    } finally {
      srv.close();
    }
  });
});

describe('certificateOf', () => {
  it('parses a PEM once and hands out the same certificate for it; bad input throws as X509Certificate does', async () => {
    const ca = await createCa('memo-ca', { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3_600_000) });
    const cert = certificateOf(ca.cert);
    expect(cert.subject).toContain('memo-ca');
    expect(certificateOf(ca.cert)).toBe(cert);
    expect(() => certificateOf('not a certificate')).toThrow();
  });
});
