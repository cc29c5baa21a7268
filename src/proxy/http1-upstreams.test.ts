import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { createCa, issueLeaf } from '../pki/issuer.ts';
import { CONNECT_TIMEOUT_MS, HttpUpstreams, readAll, readJson, type UpstreamRequest } from './http1-upstreams.ts';
import type { TlsFiles } from './config.ts';

const now = Date.now();
const validity = { notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000) };
const port = (s: net.Server): number => (s.address() as AddressInfo).port;
const listen = <S extends net.Server>(s: S): Promise<S> => new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve(s)));

describe('HttpUpstreams: the HTTP/1.1 pools to the members', async () => {
  const ca = await createCa('ca', validity);
  const serverCert = await issueLeaf(ca, { commonName: 'member', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usages: ['server'] }, validity);
  const clientA = await issueLeaf(ca, { commonName: 'proxy-a', dnsNames: [], ipAddresses: [], usages: ['client'] }, validity);
  const clientB = await issueLeaf(ca, { commonName: 'proxy-b', dnsNames: [], ipAddresses: [], usages: ['client'] }, validity);
  // Answers each request with the client certificate's CN and the connection's number; /hold answers after the release.
  const connections: net.Socket[] = [];
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (release = resolve));
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const socket = req.socket;
    const cn = 'getPeerCertificate' in socket ? (socket as unknown as { getPeerCertificate(): { subject?: { CN?: string } } }).getPeerCertificate().subject?.CN : undefined;
    void readAll(req).then(async (body) => {
      if (req.url === '/hold') await held;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ cn, connection: connections.indexOf(socket), body: body.toString('utf8'), method: req.method }));
    });
  };
  const plain = await listen(http.createServer(handler));
  const secure = await listen(https.createServer({ cert: serverCert.cert, key: serverCert.key, ca: ca.cert, requestCert: true, rejectUnauthorized: true }, handler));
  for (const s of [plain, secure]) s.on(s === plain ? 'connection' : 'secureConnection', (c: net.Socket) => connections.push(c));
  // Takes TCP connections and never answers: a TLS handshake to it never finishes.
  const silent: net.Socket[] = [];
  const mute = await listen(net.createServer((c) => silent.push(c)));
  afterAll(() => {
    release();
    for (const c of silent) c.destroy();
    for (const s of [plain, secure, mute]) s.close();
  });

  const files = (client: { cert: string; key: string }): TlsFiles => ({ ca: Buffer.from(ca.cert), cert: Buffer.from(client.cert), key: Buffer.from(client.key) });
  /** A request over TLS to the mute member, which must fail: its error, and how long it took. */
  const failureAtMute = async (upstreams: HttpUpstreams, extra: Partial<UpstreamRequest> = {}): Promise<{ err: Error & { code?: string }; ms: number }> => {
    const started = Date.now();
    const err = await upstreams.request(`https://localhost:${port(mute)}`, { method: 'POST', path: '/v3/kv/put', body: '{}', ...extra }).then(
      () => new Error('the mute member answered'),
      (e: unknown) => e as Error & { code?: string },
    );
    return { err, ms: Date.now() - started };
  };

  it('keeps a connection open between requests and sends bodies given whole or as a stream', async () => {
    const upstreams = new HttpUpstreams({ current: () => ({}), generation: 0 });
    try {
      const first = (await readJson((await upstreams.request(`http://127.0.0.1:${port(plain)}`, { method: 'POST', path: '/a', body: '{"k":1}' })).body)) as { connection: number; body: string };
      const second = (await readJson((await upstreams.request(`http://127.0.0.1:${port(plain)}`, { method: 'POST', path: '/b', body: Readable.from([Buffer.from('x'), Buffer.from('y')]) })).body)) as { connection: number; body: string };
      expect(first.body).toBe('{"k":1}');
      expect(second).toMatchObject({ body: 'xy', connection: first.connection });
    } finally {
      await upstreams.close();
    }
  });

  it('presents the newest client certificate after a reload, while a request on the old one finishes', async () => {
    const source = { files: files(clientA), generation: 0, current(): TlsFiles { return this.files; } };
    const upstreams = new HttpUpstreams(source);
    try {
      const origin = `https://localhost:${port(secure)}`;
      const onOld = upstreams.request(origin, { method: 'POST', path: '/hold', body: '{}' });
      source.files = files(clientB);
      source.generation = 1;
      // Wait for the held request to reach the member before the reload takes effect.
      await new Promise((r) => setTimeout(r, 200));
      const fresh = (await readJson((await upstreams.request(origin, { method: 'GET', path: '/now' })).body)) as { cn: string };
      expect(fresh.cn).toBe('proxy-b');
      release();
      expect(((await readJson((await onOld).body)) as { cn: string }).cn).toBe('proxy-a');
    } finally {
      await upstreams.close();
    }
  });

  it('gives up a member that takes the connection but never finishes the TLS handshake, with ETOP_CONNECT_TIMEOUT', async () => {
    const upstreams = new HttpUpstreams({ current: () => files(clientA), generation: 0 });
    try {
      const { err, ms } = await failureAtMute(upstreams);
      expect(err.code).toBe('ETOP_CONNECT_TIMEOUT');
      expect(ms).toBeGreaterThanOrEqual(CONNECT_TIMEOUT_MS - 50);
      expect(ms).toBeLessThan(CONNECT_TIMEOUT_MS + 2000);
    } finally {
      await upstreams.close();
    }
  });

  it('gives a request up after connectWithinMs when its connection is still in the handshake, and serves the next one on a ready connection', async () => {
    const upstreams = new HttpUpstreams({ current: () => files(clientA), generation: 0 });
    try {
      const { err, ms } = await failureAtMute(upstreams, { connectWithinMs: 200 });
      expect(err.code).toBe('ETOP_CONNECT_TIMEOUT');
      expect(err.message).toContain('within 200 ms');
      expect(ms).toBeLessThan(CONNECT_TIMEOUT_MS);
      // A request that gets a connection in time is not cut off by the timer afterwards.
      const origin = `https://localhost:${port(secure)}`;
      for (let i = 0; i < 2; i++) {
        const res = await upstreams.request(origin, { method: 'GET', path: '/now', connectWithinMs: 200 });
        await new Promise((r) => setTimeout(r, 250));
        expect((await readJson(res.body)) as { cn: string }).toMatchObject({ cn: 'proxy-a' });
      }
    } finally {
      await upstreams.close();
    }
  });

  it('rejects at once when the signal fires while the connection is still in its TLS handshake, not at the connect timeout', async () => {
    const upstreams = new HttpUpstreams({ current: () => files(clientA), generation: 0 });
    try {
      const { err, ms } = await failureAtMute(upstreams, { path: '/v3/maintenance/status', signal: AbortSignal.timeout(200) });
      expect(err.name).toBe('AbortError');
      expect(ms).toBeLessThan(CONNECT_TIMEOUT_MS);
    } finally {
      await upstreams.close();
    }
  });

  it('rejects with the abort reason when the signal fires before the answer', async () => {
    const upstreams = new HttpUpstreams({ current: () => ({}), generation: 0 });
    try {
      const err = await upstreams.request(`http://127.0.0.1:${port(mute)}`, { method: 'GET', path: '/', signal: AbortSignal.timeout(100) }).then(() => undefined, (e: unknown) => e as Error);
      expect(err?.name).toBe('AbortError');
    } finally {
      await upstreams.close();
    }
  });
});
