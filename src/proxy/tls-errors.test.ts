import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { createCa, issueLeaf } from '../pki/issuer.ts';
import { HttpUpstreams } from './http1-upstreams.ts';
import { refusedInTlsHandshake } from './tls-errors.ts';

const now = Date.now();
const validity = { notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000) };

/** The error code a call through the proxy's own pools gets (as http1-forward.ts reads it), or 'answered'. */
async function callCode(port: number, files: { ca: string; cert?: string; key?: string }): Promise<string> {
  const tlsFiles = { ca: Buffer.from(files.ca), cert: files.cert === undefined ? undefined : Buffer.from(files.cert), key: files.key === undefined ? undefined : Buffer.from(files.key) };
  const upstreams = new HttpUpstreams({ current: () => tlsFiles, generation: 0 });
  try {
    const res = await upstreams.request(`https://localhost:${port}`, { method: 'POST', path: '/v3/kv/put', body: '{}', signal: AbortSignal.timeout(5000) });
    res.body.resume();
    return 'answered';
  } catch (err) {
    return (err as { code?: string }).code ?? (err as { cause?: { code?: string } }).cause?.code ?? '';
  } finally {
    await upstreams.close();
  }
}

describe('TLS handshake failures on a call to a member', async () => {
  const ca = await createCa('ca', validity);
  const other = await createCa('other', validity);
  const server = await issueLeaf(ca, { commonName: 'member', dnsNames: ['localhost'], ipAddresses: [], usages: ['server'] }, validity);
  const client = await issueLeaf(ca, { commonName: 'proxy', dnsNames: [], ipAddresses: [], usages: ['client'] }, validity);
  const requests: string[] = [];
  const listen = (options: tls.TlsOptions): Promise<tls.Server> =>
    new Promise((resolve) => {
      const s = tls.createServer(options, (socket) => {
        socket.on('data', (d: Buffer) => {
          requests.push(d.toString('utf8').split('\r\n')[0]!);
          socket.end('HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
        });
        socket.on('error', () => undefined);
      });
      s.on('tlsClientError', () => undefined);
      s.listen(0, '127.0.0.1', () => resolve(s));
    });
  // A server that ends the handshake with an alert of its own (no_application_protocol here; etcd's
  // Go server sends internal_error when it cannot load its certificate files).
  const broken = await listen({ cert: server.cert, key: server.key, ALPNCallback: () => undefined });
  // A server that verifies clients against a CA that did not sign the proxy's certificate.
  const strict = await listen({ cert: server.cert, key: server.key, ca: other.cert, requestCert: true, rejectUnauthorized: true });
  const good = await listen({ cert: server.cert, key: server.key, ca: ca.cert, requestCert: true, rejectUnauthorized: true });
  const port = (s: tls.Server): number => (s.address() as AddressInfo).port;
  afterAll(() => {
    for (const s of [broken, strict, good]) s.close();
  });

  it('counts an alert in the member\'s handshake and a member certificate this side rejects as refused before the request', async () => {
    const refusedByMember = await callCode(port(broken), { ca: ca.cert, cert: client.cert, key: client.key });
    expect(refusedByMember).toMatch(/^ERR_SSL_/);
    expect(refusedInTlsHandshake(refusedByMember)).toBe(true);
    // In TLS 1.3 the member checks the client certificate after this side's handshake is done and the
    // request written: the call sees a closed socket, which is not counted (it looks like any other).
    const clientRejected = await callCode(port(strict), { ca: ca.cert, cert: client.cert, key: client.key });
    expect(clientRejected).toBe('ECONNRESET');
    expect(refusedInTlsHandshake(clientRejected)).toBe(false);
    const memberUntrusted = await callCode(port(good), { ca: other.cert, cert: client.cert, key: client.key });
    expect(refusedInTlsHandshake(memberUntrusted), memberUntrusted).toBe(true);
    expect(await callCode(port(good), { ca: ca.cert, cert: client.cert, key: client.key })).toBe('answered');
    // Only the call that completed its handshake reached the server's request handling.
    expect(requests).toEqual(['POST /v3/kv/put HTTP/1.1']);
  });

  it('does not count failures that may come after the request reached etcd', () => {
    for (const code of ['ECONNRESET', 'UND_ERR_SOCKET', 'UND_ERR_HEADERS_TIMEOUT', 'EPIPE', 'ERR_SSL_DECRYPTION_FAILED_OR_BAD_RECORD_MAC', '']) {
      expect(refusedInTlsHandshake(code), code).toBe(false);
    }
  });
});
