import http2 from 'node:http2';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../harness/ports.ts';
import { grpc, rawUnary } from './grpc-client.ts';
import { useProxyFixture } from './fixture.ts';

/** Writes bytes on a fresh connection and resolves whatever comes back before the proxy closes it. */
function rawExchange(port: number, bytes: Buffer, { end = false, timeoutMs = 5000 } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => (end ? s.end(bytes) : s.write(bytes)));
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s.on('close', () => resolve(got));
    s.on('error', () => undefined);
    setTimeout(() => {
      s.destroy();
      reject(new Error(`connection still open after ${timeoutMs}ms; got ${JSON.stringify(got.slice(0, 200))}`));
    }, timeoutMs).unref();
  });
}

describe('proxy under malformed input', () => {
  const f = useProxyFixture({ size: 1 });
  const stillServes = async (): Promise<void> => {
    await f.c.unary(f.c.kv, 'Put', { key: Buffer.from('/m'), value: Buffer.from('ok') });
    expect((await fetch(`${f.proxy.url}/health`)).status).toBe(200);
  };

  it('closes a connection of garbage bytes without an answer, and that connection only', async () => {
    // Neither an HTTP/2 preface nor an HTTP/1.x request line: no protocol to answer in (RFC 9113, section 3.4).
    const garbage = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 37 + 11) % 256));
    expect(await rawExchange(f.proxy.port, garbage)).toBe('');
    expect(await rawExchange(f.proxy.port, Buffer.from('INVALID CONNECTION PREFACE\r\n\r\n'))).toBe('');
    await stillServes();
  });

  it('answers a malformed HTTP/1.1 request with 400 and closes that connection only', async () => {
    expect(await rawExchange(f.proxy.port, Buffer.from('GET /health HTTP/1.1\r\nno colon here\r\n\r\n'))).toMatch(/^HTTP\/1\.1 400/);
    await stillServes();
  });

  it('rejects huge headers: 431 on HTTP/1.1, an error status on gRPC', async () => {
    const big = 'x'.repeat(100_000);
    expect(await rawExchange(f.proxy.port, Buffer.from(`GET /health HTTP/1.1\r\nhost: a\r\nx-big: ${big}\r\n\r\n`))).toMatch(/^HTTP\/1\.1 431/);
    const md = new grpc.Metadata();
    md.set('x-big', big);
    const err = (await f.c.unary(f.c.kv, 'Range', { key: Buffer.from('/m') }, md).catch((e: grpc.ServiceError) => e)) as grpc.ServiceError;
    expect(err.code).toBeDefined();
    expect(err.code).not.toBe(grpc.status.OK);
    await stillServes();
  });

  it('answers unknown paths: 404 on HTTP, UNIMPLEMENTED on gRPC', async () => {
    const res = await fetch(`${f.proxy.url}/no/such/path`);
    expect(res.status).toBe(404);
    expect(await res.text()).toContain('not an etcd endpoint');
    const foreign = await rawUnary(f.proxy.target, '/some.Other/Service', Buffer.alloc(0));
    expect(foreign.status).toBe(grpc.status.UNIMPLEMENTED);
    const unknownEtcd = await rawUnary(f.proxy.target, '/etcdserverpb.KV/NoSuchMethod', Buffer.alloc(0));
    expect(unknownEtcd.status).toBe(grpc.status.UNIMPLEMENTED);
    await stillServes();
  });

  it('passes a truncated gRPC message to etcd, which rejects it, and survives a truncated HTTP/2 frame', async () => {
    const session = http2.connect(f.proxy.url);
    const status = await new Promise<string | undefined>((resolve, reject) => {
      const req = session.request({ ':method': 'POST', ':path': '/etcdserverpb.KV/Range', 'content-type': 'application/grpc', te: 'trailers' });
      let s: string | undefined;
      req.on('response', (h) => (s ??= h['grpc-status'] as string | undefined));
      req.on('trailers', (t: http2.IncomingHttpHeaders) => (s = t['grpc-status'] as string | undefined));
      req.on('close', () => resolve(s));
      req.on('error', reject);
      req.resume();
      // Claims 100 bytes, sends 3.
      req.end(Buffer.from([0, 0, 0, 0, 100, 1, 2, 3]));
    });
    session.close();
    expect(status).toBeDefined();
    expect(status).not.toBe('0');
    // The preface, then half a frame header, then the client disappears.
    await rawExchange(f.proxy.port, Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 10, 1])]), { end: true });
    await stillServes();
  });

  it('keeps serving others while a client never reads its responses', async () => {
    const hog = net.connect(f.proxy.port, '127.0.0.1');
    await new Promise((r) => hog.once('connect', r));
    hog.pause();
    // Pipelined requests for etcd's /metrics (tens of KiB each) that are never read.
    hog.write(Buffer.from('GET /metrics HTTP/1.1\r\nhost: a\r\n\r\n'.repeat(200)));
    const session = http2.connect(f.proxy.url);
    const stuck = session.request({ ':method': 'POST', ':path': '/etcdserverpb.Maintenance/Snapshot', 'content-type': 'application/grpc', te: 'trailers' });
    stuck.on('error', () => undefined);
    stuck.end(Buffer.from([0, 0, 0, 0, 0]));
    stuck.pause();
    const started = Date.now();
    for (let i = 0; i < 20; i++) await stillServes();
    expect(Date.now() - started).toBeLessThan(10_000);
    hog.destroy();
    stuck.close(http2.constants.NGHTTP2_CANCEL);
    session.close();
    await waitFor('the proxy to release the abandoned calls', async () => (await f.proxy.metric('etcd_topology_proxy_streams_in_flight')) === 0, { timeoutMs: 10_000 });
  });
});
