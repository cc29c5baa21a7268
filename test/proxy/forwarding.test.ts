import { describe, expect, it } from 'vitest';
import { binaries } from '../harness/binaries.ts';
import { waitFor } from '../harness/ports.ts';
import { run } from '../harness/run.ts';
import { grpc, h2Get } from './grpc-client.ts';
import { useProxyFixture } from './fixture.ts';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const text = (b: unknown): string => Buffer.from(b as Buffer).toString();

describe('proxy forwarding (3 real etcd members, the proxy as a child process)', () => {
  const f = useProxyFixture({ size: 3, endpoints: (cluster) => cluster.members[0]!.clientUrl });

  it('puts, gets, ranges a prefix and runs a txn through a Node gRPC client, metadata included', async () => {
    const md = new grpc.Metadata();
    md.set('hasleader', 'true');
    await f.c.unary(f.c.kv, 'Put', { key: Buffer.from('/fwd/a'), value: Buffer.from('1') }, md);
    await f.c.unary(f.c.kv, 'Put', { key: Buffer.from('/fwd/b'), value: Buffer.from('2') });
    await f.c.unary(f.c.kv, 'Put', { key: Buffer.from('/other'), value: Buffer.from('x') });
    const one = await f.c.unary<{ kvs: { value: Buffer }[] }>(f.c.kv, 'Range', { key: Buffer.from('/fwd/a') });
    expect(one.kvs.map((kv) => text(kv.value))).toEqual(['1']);
    const prefix = await f.c.unary<{ kvs: { key: Buffer }[]; count: string }>(f.c.kv, 'Range', { key: Buffer.from('/fwd/'), range_end: Buffer.from('/fwd0') });
    expect(prefix.kvs.map((kv) => text(kv.key))).toEqual(['/fwd/a', '/fwd/b']);
    const txn = await f.c.unary<{ succeeded: boolean; responses: { response_range?: { kvs: { value: Buffer }[] } }[] }>(f.c.kv, 'Txn', {
      compare: [{ key: Buffer.from('/fwd/a'), target: 'VALUE', result: 'EQUAL', value: Buffer.from('1') }],
      success: [{ request_put: { key: Buffer.from('/fwd/a'), value: Buffer.from('2') } }, { request_range: { key: Buffer.from('/fwd/a') } }],
      failure: [],
    });
    expect(txn.succeeded).toBe(true);
    expect(text(txn.responses[1]!.response_range!.kvs[0]!.value)).toBe('2');
  });

  it('passes a trailers-only error status and message through unchanged', async () => {
    const err = await f.c.unary(f.c.kv, 'Range', { key: Buffer.from('x'), revision: '999999999' }).catch((e: grpc.ServiceError) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.OUT_OF_RANGE);
    expect((err as grpc.ServiceError).details).toContain('future revision');
  });

  it('streams watch events, and a cancelled watch is cancelled upstream too', async () => {
    const stream = (f.c.watch as unknown as { Watch(): grpc.ClientDuplexStream<object, { created: boolean; events: { kv: { value: Buffer } }[] }> }).Watch();
    const received: string[] = [];
    let created = false;
    stream.on('data', (r: { created: boolean; events: { kv: { value: Buffer } }[] }) => {
      if (r.created) created = true;
      for (const e of r.events) received.push(text(e.kv.value));
    });
    const ended = new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
    stream.write({ create_request: { key: Buffer.from('/watched') } });
    await waitFor('watch created', () => created, { timeoutMs: 5000 });
    await f.c.unary(f.c.kv, 'Put', { key: Buffer.from('/watched'), value: Buffer.from('v1') });
    await f.c.unary(f.c.kv, 'Put', { key: Buffer.from('/watched'), value: Buffer.from('v2') });
    await waitFor('two watch events', () => received.length === 2, { timeoutMs: 5000 });
    expect(received).toEqual(['v1', 'v2']);
    expect(await f.proxy.metric('etcd_topology_proxy_streams_in_flight', { method: 'Watch' })).toBe(1);
    stream.cancel();
    expect((await ended).code).toBe(grpc.status.CANCELLED);
    await waitFor('the proxy to close the upstream watch', async () => (await f.proxy.metric('etcd_topology_proxy_streams_in_flight', { method: 'Watch' })) === 0, { timeoutMs: 5000 });
    expect(await f.proxy.metric('etcd_topology_proxy_requests_total', { method: 'Watch', code: 'CANCELLED' })).toBe(1);
  });

  it('keeps a 5s lease alive for 30s over one LeaseKeepAlive stream', async () => {
    const grant = await f.c.unary<{ ID: string }>(f.c.lease, 'LeaseGrant', { TTL: 5 });
    const stream = (f.c.lease as unknown as { LeaseKeepAlive(): grpc.ClientDuplexStream<object, { TTL: string }> }).LeaseKeepAlive();
    let answers = 0;
    stream.on('data', () => answers++);
    stream.on('error', () => undefined);
    const started = Date.now();
    // Keep-alives every 1.5s for 30s, as clientv3 does at a third of the TTL.
    await waitFor('30 seconds of keep-alives', () => {
      stream.write({ ID: grant.ID });
      return Date.now() - started >= 30_000;
    }, { timeoutMs: 40_000, intervalMs: 1500 });
    const ttl = await f.c.unary<{ TTL: string }>(f.c.lease, 'LeaseTimeToLive', { ID: grant.ID });
    expect(Number(ttl.TTL)).toBeGreaterThan(0);
    expect(answers).toBeGreaterThanOrEqual(19);
    stream.cancel();
  }, 60_000);

  it('answers MemberList and Status from the cluster', async () => {
    const list = await f.c.unary<{ members: { name: string }[] }>(f.c.cluster, 'MemberList', {});
    expect(list.members.map((m) => m.name).sort()).toEqual(['m0', 'm1', 'm2']);
    const status = await f.c.unary<{ version: string }>(f.c.maintenance, 'Status', {});
    expect(status.version).toBe('3.6.16');
  });

  it('serves etcdctl: put, get --prefix, txn, member list, endpoint status', async () => {
    const ctl = (args: string[], input?: string): Promise<string> => run(binaries().etcdctl, [`--endpoints=${f.proxy.target}`, ...args], input === undefined ? {} : { input });
    expect(await ctl(['put', '/ctl/a', 'A'])).toBe('OK\n');
    await ctl(['put', '/ctl/b', 'B']);
    expect(await ctl(['get', '--prefix', '/ctl/', '--print-value-only'])).toBe('A\nB\n');
    expect(await ctl(['txn'], 'value("/ctl/a") = "A"\n\nput /ctl/a A2\n\nput /ctl/a nope\n\n')).toBe('SUCCESS\n\nOK\n');
    expect(await ctl(['get', '/ctl/a', '--print-value-only'])).toBe('A2\n');
    expect((await ctl(['member', 'list'])).trim().split('\n')).toHaveLength(3);
    expect(await ctl(['endpoint', 'status', '-w', 'json'])).toContain('"version":"3.6.16"');
  });

  it('serves etcd’s benchmark tool (put and range) without errors', async () => {
    for (const args of [['put', '--key-size=8', '--val-size=64', '--total=400'], ['range', '/bench', '--consistency=s', '--total=400']]) {
      const out = await run(binaries().benchmark, [`--endpoints=${f.proxy.target}`, '--conns=2', '--clients=10', ...args]);
      expect(out).toMatch(/Requests\/sec:\s+\d/);
      expect(out).not.toMatch(/Error distribution/);
    }
  });

  it('forwards the JSON gateway over HTTP/1.1: put, range, /v3beta, and a streaming watch', async () => {
    const post = (path: string, body: object): Promise<Response> => fetch(`${f.proxy.url}${path}`, { method: 'POST', body: JSON.stringify(body) });
    expect((await post('/v3/kv/put', { key: b64('/gw/k'), value: b64('gw') })).status).toBe(200);
    const range = (await (await post('/v3/kv/range', { key: b64('/gw/k') })).json()) as { kvs: { value: string }[] };
    expect(Buffer.from(range.kvs[0]!.value, 'base64').toString()).toBe('gw');
    expect(((await (await post('/v3beta/kv/range', { key: b64('/gw/k') })).json()) as { count: string }).count).toBe('1');

    const watch = await post('/v3/watch', { create_request: { key: b64('/gw/w') } });
    const reader = (watch.body as ReadableStream<Uint8Array>).getReader();
    let seen = '';
    const readUntil = async (what: string): Promise<void> => {
      while (!seen.includes(what)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`watch stream ended before ${what}: ${seen}`);
        seen += Buffer.from(value).toString();
      }
    };
    await readUntil('"created":true');
    await post('/v3/kv/put', { key: b64('/gw/w'), value: b64('streamed') });
    await readUntil(b64('streamed'));
    await reader.cancel();
  });

  it('forwards /health, /version and etcd’s /metrics, over HTTP/1.1 and over h2c', async () => {
    expect(await (await fetch(`${f.proxy.url}/health`)).json()).toEqual({ health: 'true', reason: '' });
    expect(((await (await fetch(`${f.proxy.url}/version`)).json()) as { etcdserver: string }).etcdserver).toBe('3.6.16');
    expect(await (await fetch(`${f.proxy.url}/metrics`)).text()).toContain('etcd_server_has_leader 1');
    const { default: http2 } = await import('node:http2');
    const session = http2.connect(f.proxy.url);
    const body = await h2Get(session, '/version');
    session.close();
    expect(JSON.parse(body)).toMatchObject({ etcdserver: '3.6.16' });
  });

  it('reports its own metrics and health on --metrics-addr', async () => {
    expect((await fetch(`${f.proxy.metricsUrl}/healthz`)).status).toBe(200);
    expect(await f.proxy.metric('etcd_topology_proxy_requests_total', { protocol: 'grpc', service: 'etcdserverpb.KV', method: 'Put', code: 'OK' })).toBeGreaterThanOrEqual(3);
    expect(await f.proxy.metric('etcd_topology_proxy_refreshes_total', { result: 'success' })).toBeGreaterThanOrEqual(1);
    expect(await f.proxy.metric('etcd_topology_proxy_member_healthy')).toBe(3);
    expect(await f.proxy.metric('etcd_topology_proxy_upstream_latency_seconds_count', { method: 'Range' })).toBeGreaterThan(0);
  });
});
