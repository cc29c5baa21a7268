import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { CLIENT_PREFACE, encodeHeaderBlock, encodeRstStream, encodeSettings, ErrorCode } from '../../src/proxy/h2/frames.ts';
import { HpackEncoder } from '../../src/proxy/h2/hpack.ts';
import { readFrames, type SeenFrame } from '../../src/proxy/h2/testing.ts';
import { binaries } from '../harness/binaries.ts';
import { waitFor } from '../harness/ports.ts';
import { run } from '../harness/run.ts';
import { useProxyFixture } from './fixture.ts';

const watchRequest = [':method', 'POST', ':scheme', 'http', ':path', '/etcdserverpb.Watch/Watch', ':authority', 'proxy', 'content-type', 'application/grpc', 'te', 'trailers'];

/** A member's Watch streams started and not yet finished, from its gRPC server metrics. */
async function memberOpenWatches(memberUrl: string): Promise<{ started: number; open: number }> {
  const text = await (await fetch(`${memberUrl}/metrics`)).text();
  const sum = (name: string): number =>
    text
      .split('\n')
      .filter((l) => l.startsWith(`${name}{`) && l.includes('grpc_method="Watch"'))
      .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  const started = sum('grpc_server_started_total');
  return { started, open: started - sum('grpc_server_handled_total') };
}

/**
 * A raw HTTP/2 client that opens `open` Watch streams and leaves them open, then floods `pairs`
 * HEADERS + RST_STREAM pairs; resolves the frames the proxy sent before it closed the connection.
 */
function flood(port: number, open: number, pairs: number): Promise<SeenFrame[]> {
  return new Promise((resolve, reject) => {
    const enc = new HpackEncoder();
    const s = net.connect(port, '127.0.0.1');
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    s.on('error', () => undefined); // EPIPE/ECONNRESET once the proxy gives up on us
    s.on('close', () => resolve(readFrames(Buffer.concat(got))));
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('the proxy did not close the flooding connection within 20 s'));
    }, 20_000);
    timer.unref();
    s.on('close', () => clearTimeout(timer));
    s.on('connect', () => {
      s.write(Buffer.concat([CLIENT_PREFACE, encodeSettings([]), encodeSettings([], true)]));
      let id = 1;
      const frames: Buffer[] = [];
      for (let i = 0; i < open; i++, id += 2) frames.push(encodeHeaderBlock(id, enc.encode(watchRequest), false, 16_384));
      s.write(Buffer.concat(frames));
      // Then the flood, in chunks of 500 pairs, as fast as the socket takes them.
      const sendMore = (): void => {
        while (pairs > 0 && !s.destroyed) {
          const chunk: Buffer[] = [];
          for (let i = 0; i < 500 && pairs > 0; i++, pairs--, id += 2) {
            chunk.push(encodeHeaderBlock(id, enc.encode(watchRequest), false, 16_384), encodeRstStream(id, ErrorCode.CANCEL));
          }
          if (!s.write(Buffer.concat(chunk))) {
            s.once('drain', sendMore);
            return;
          }
        }
      };
      setTimeout(sendMore, 200); // the open watches reach the member first
    });
  });
}

describe('rapid reset (CVE-2023-44487) and SETTINGS timeout on client connections', () => {
  // The flood's Watch streams carry no create request: forwarded, each still starts a Watch stream on
  // the member (which the test counts); with coalescing a stream without a watch reaches no member.
  const f = useProxyFixture({ size: 1, proxyArgs: ['--watch-coalescing=false'] });

  it('closes a flooding client with GOAWAY ENHANCE_YOUR_CALM, cancels its member streams, and keeps serving other clients', async () => {
    const member = f.cluster.members[0]!.clientUrl;
    await f.c.unary(f.c.kv, 'Put', { key: Buffer.from('/rr'), value: Buffer.from('before') });
    const before = await memberOpenWatches(member);
    const forwardedBefore = await f.proxy.metric('etcd_topology_proxy_upstream_requests_total');

    // A well-behaved client keeps reading on its own connection throughout.
    let stop = false;
    let reads = 0;
    const reader = (async () => {
      while (!stop) {
        await f.c.unary(f.c.kv, 'Range', { key: Buffer.from('/rr') });
        reads++;
      }
    })();
    const frames = await flood(f.proxy.port, 50, 20_000);
    stop = true;
    await reader;
    expect(reads).toBeGreaterThan(0);

    const goaway = frames.find((f) => f.type === 'GOAWAY');
    expect(goaway).toMatchObject({ code: ErrorCode.ENHANCE_YOUR_CALM });
    await waitFor('the cut-off in the proxy log', () => /reset too many streams \(rapid reset\)/.test(f.proxy.output()), { timeoutMs: 5000 });
    expect(await f.proxy.metric('etcd_topology_proxy_client_connections_cut_off_total', { reason: 'rapid_reset' })).toBe(1);
    expect(await f.proxy.metric('etcd_topology_proxy_client_connections_cut_off_total', { reason: 'settings_timeout' })).toBe(0);
    // The streams did reach the member (so their cancellation is what this checks), but the flood was
    // cut short: far fewer than 20,000 went out.
    const forwarded = (await f.proxy.metric('etcd_topology_proxy_upstream_requests_total')) - forwardedBefore;
    expect(forwarded).toBeGreaterThan(1000);
    expect(forwarded).toBeLessThan(10_000);
    // Every Watch stream the flood made the member start has ended there, the 50 left open included,
    // and the proxy holds none.
    await waitFor('the member to have no Watch stream open', async () => (await memberOpenWatches(member)).open === before.open, { timeoutMs: 10_000 });
    expect((await memberOpenWatches(member)).started).toBeGreaterThan(before.started);
    await waitFor('no Watch in flight at the proxy', async () => (await f.proxy.metric('etcd_topology_proxy_streams_in_flight', { method: 'Watch' })) === 0, { timeoutMs: 5000 });

    // etcdctl on a new connection, and the old gRPC client, still work.
    const out = await run(binaries().etcdctl, [`--endpoints=${f.proxy.target}`, 'get', '/rr', '--print-value-only']);
    expect(out.trim()).toBe('before');
    await f.c.unary(f.c.kv, 'Put', { key: Buffer.from('/rr'), value: Buffer.from('after') });
    expect((await fetch(`${f.proxy.url}/health`)).status).toBe(200);
  });

  it('closes a client that never acknowledges the SETTINGS with GOAWAY SETTINGS_TIMEOUT after 10 s', async () => {
    const started = Date.now();
    const frames = await new Promise<SeenFrame[]>((resolve, reject) => {
      const s = net.connect(f.proxy.port, '127.0.0.1', () => s.write(Buffer.concat([CLIENT_PREFACE, encodeSettings([])])));
      const got: Buffer[] = [];
      s.on('data', (d: Buffer) => got.push(d));
      s.on('error', () => undefined);
      s.on('close', () => resolve(readFrames(Buffer.concat(got))));
      setTimeout(() => {
        s.destroy();
        reject(new Error('still open after 20 s'));
      }, 20_000).unref();
    });
    const elapsed = Date.now() - started;
    expect(frames.at(-1)).toMatchObject({ type: 'GOAWAY', code: ErrorCode.SETTINGS_TIMEOUT });
    expect(elapsed).toBeGreaterThanOrEqual(9_500);
    expect(elapsed).toBeLessThan(15_000);
    expect(await f.proxy.metric('etcd_topology_proxy_client_connections_cut_off_total', { reason: 'settings_timeout' })).toBe(1);
  });
});
