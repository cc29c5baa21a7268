import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binaries } from '../harness/binaries.ts';
import { createPki, type Pki } from '../harness/cluster/pki.ts';
import { spawnLogged, terminate } from '../harness/cluster/processes.ts';
import { freePort, StopWaiting, waitFor } from '../harness/ports.ts';
import { run } from '../harness/run.ts';
import net from 'node:net';
import { etcdClients, grpc, h2Get } from './grpc-client.ts';
import { startProxyProcess, type ProxyProcess } from './proxy-process.ts';

/**
 * One etcd member that serves clients only over TLS and requires a client certificate
 * (--cert-file, --key-file, --trusted-ca-file, --client-cert-auth), on 127.0.0.1.
 */
async function startTlsMember(dir: string, pki: Pki, advertiseAlso: string[] = []): Promise<{ url: string; child: ChildProcess }> {
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const url = `https://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const child = spawnLogged(
    binaries().etcd,
    [
      '--name=t0',
      `--data-dir=${path.join(dir, 'data')}`,
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${[url, ...advertiseAlso].join(',')}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=t0=${peer}`,
      `--cert-file=${pki.apiserver.cert}`,
      `--key-file=${pki.apiserver.key}`,
      `--trusted-ca-file=${pki.ca.cert}`,
      '--client-cert-auth',
      '--unsafe-no-fsync',
    ],
    path.join(dir, 'etcd.log'),
  );
  const ctl = ['--endpoints', url, '--cacert', pki.ca.cert, '--cert', pki.admin.cert, '--key', pki.admin.key];
  await waitFor('the TLS etcd member to answer', () => run(binaries().etcdctl, [...ctl, 'endpoint', 'health']).then(() => true, () => false), { timeoutMs: 20_000, intervalMs: 200 });
  return { url, child };
}

/** What useTlsMemberAndProxy starts; the fields are set once its beforeAll has run. */
interface TlsMemberAndProxy {
  pki: Pki;
  member: { url: string; child: ChildProcess };
  proxy: ProxyProcess;
}

/**
 * Registers hooks in the calling describe block that make a PKI in a temp dir, start one TLS member
 * and the proxy in front of it presenting the admin client certificate, and stop and remove them
 * all afterwards, each even when starting a later one failed. The member also advertises the client
 * URLs advertiseAlso returns, called once the block's earlier beforeAll hooks have run.
 */
function useTlsMemberAndProxy(options: { advertiseAlso?: () => string[]; proxyArgs?: string[]; proxyOptions?: (pki: Pki) => Parameters<typeof startProxyProcess>[2] } = {}): TlsMemberAndProxy {
  const f = {} as TlsMemberAndProxy;
  let dir: string | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'proxy-tls-'));
    f.pki = await createPki(dir);
    f.member = await startTlsMember(dir, f.pki, options.advertiseAlso?.() ?? []);
    const pki = f.pki;
    f.proxy = await startProxyProcess(f.member.url, [`--cacert=${pki.ca.cert}`, `--cert=${pki.admin.cert}`, `--key=${pki.admin.key}`, ...(options.proxyArgs ?? [])], options.proxyOptions?.(pki));
  });
  afterAll(async () => {
    await f.proxy?.stop();
    await terminate(f.member?.child);
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  return f;
}

describe('proxy over TLS: a TLS listener (ALPN h2 and http/1.1) and TLS with client certificates to the member', () => {
  // The proxy serves the certificate with IP:127.0.0.1, and presents the admin client certificate to the member.
  const f = useTlsMemberAndProxy({ proxyOptions: (pki) => ({ tls: { cert: pki.apiserver.cert, key: pki.apiserver.key } }) });
  const ctl = (args: string[]): Promise<string> => run(binaries().etcdctl, [`--endpoints=${f.proxy.url}`, `--cacert=${f.pki.ca.cert}`, ...args]);

  it('serves etcdctl --cacert over TLS: put, get, member list, endpoint status', async () => {
    expect(await ctl(['put', '/tls/a', 'A'])).toBe('OK\n');
    expect(await ctl(['get', '/tls/a', '--print-value-only'])).toBe('A\n');
    const members = (await ctl(['member', 'list'])).trim().split('\n');
    expect(members).toHaveLength(1);
    expect(members[0]).toContain(f.member.url);
    expect(await ctl(['endpoint', 'status', '-w', 'json'])).toContain('"version":"3.6.16"');
    expect(await f.proxy.metric('etcd_topology_proxy_upstream_requests_total', { member: f.member.url })).toBeGreaterThanOrEqual(4);
  });

  it('streams a watch to a Node gRPC client with TLS credentials', async () => {
    const creds = grpc.credentials.createSsl(readFileSync(f.pki.ca.cert));
    const client = new grpc.Client(f.proxy.target, creds);
    const watch = client.makeBidiStreamRequest('/etcdserverpb.Watch/Watch', (b: Buffer) => b, (b: Buffer) => b);
    const chunks: Buffer[] = [];
    watch.on('data', (b: Buffer) => chunks.push(b));
    watch.on('error', () => undefined);
    // WatchRequest{create_request: WatchCreateRequest{key: "/tls/w"}}
    const key = Buffer.from('/tls/w');
    watch.write(Buffer.concat([Buffer.from([0x0a, key.length + 2, 0x0a, key.length]), key]));
    await waitFor('the watch to be created', () => chunks.length > 0, { timeoutMs: 5000 });
    await ctl(['put', '/tls/w', 'over-tls']);
    await waitFor('the watch event', () => Buffer.concat(chunks).includes('over-tls'), { timeoutMs: 5000 });
    watch.cancel();
    client.close();
  });

  it('answers plain HTTP over TLS: /health over HTTP/1.1 and /version over h2', async () => {
    const ca = readFileSync(f.pki.ca.cert);
    const agent = new Agent({ connect: { ca } });
    try {
      const res = await request(`${f.proxy.url}/health`, { dispatcher: agent });
      expect(await res.body.json()).toEqual({ health: 'true', reason: '' });
    } finally {
      await agent.close();
    }
    const session = http2.connect(f.proxy.url, { ca });
    const body = await h2Get(session, '/version');
    expect((session.socket as unknown as { alpnProtocol: string }).alpnProtocol).toBe('h2');
    session.close();
    expect(JSON.parse(body)).toMatchObject({ etcdserver: '3.6.16' });
  });

  it('refuses a client that does not trust the proxy’s certificate authority', async () => {
    const err = await run(binaries().etcdctl, [`--endpoints=${f.proxy.url}`, '--dial-timeout=2s', '--command-timeout=3s', 'get', '/tls/a']).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/certificate|authority|deadline/i);
  });
});

describe('proxy over TLS to a member whose port is bound but that does not serve yet', () => {
  // Accepts TCP connections and never answers: what an etcd member that has bound its client port
  // but not yet joined its cluster looks like (etcd serves only once ready, or after 5 s), and
  // what the node-pool upgrade meets when a member restarts. A TLS handshake with it never ends.
  const silent = net.createServer(() => undefined);
  let silentUrl: string;
  beforeAll(async () => {
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    silentUrl = `https://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
  });
  afterAll(() => {
    silent.close();
  });
  // The member advertises the silent port as a second client URL, so the proxy sends calls to both.
  // Writes spread like reads (no leader routing), and a failed member is held off for 1 s only, so
  // that calls keep going to the silent one.
  const f = useTlsMemberAndProxy({ advertiseAlso: () => [silentUrl], proxyArgs: ['--leader-routing=false', '--failure-wait=1s'] });

  it('sends a gRPC call and an HTTP call that met the silent member to the other one after 1 s, not after the 3-5 s connect timeouts', async () => {
    const c = etcdClients(f.proxy.target);
    try {
      /** A put by gRPC or by the JSON gateway; it must succeed, well before the connect timeout it would otherwise wait out. */
      const put = async (protocol: 'grpc' | 'http', key: string): Promise<void> => {
        const started = Date.now();
        if (protocol === 'grpc') {
          await c.unary(c.kv, 'Put', { key: Buffer.from(key), value: Buffer.from('grpc') });
        } else {
          const body = JSON.stringify({ key: Buffer.from(key).toString('base64'), value: Buffer.from('http').toString('base64') });
          const res = await fetch(`${f.proxy.url}/v3/kv/put`, { method: 'POST', body });
          expect(`${res.status} ${await res.text()}`).toMatch(/^200 /);
        }
        expect(Date.now() - started, `${protocol} put`).toBeLessThan(2_900);
      };
      // Puts one after another until one of them met the silent member and was sent again unsent;
      // without the fallback such a put waits out the connect timeout (HTTP 3 s, gRPC 5 s).
      for (const protocol of ['grpc', 'http'] as const) {
        let n = 0;
        await waitFor(`a ${protocol} put sent again after meeting the silent member`, async () => {
          await put(protocol, `/slow/${protocol}/${n++}`).catch((err: unknown) => {
            throw new StopWaiting(err);
          });
          return (await f.proxy.metric('etcd_topology_proxy_retries_total', { protocol, method: 'Put', reason: 'never_sent' })) >= 1;
        }, { timeoutMs: 60_000, intervalMs: 100 });
      }
      expect(await f.proxy.metric('etcd_topology_proxy_member_slow_connects_total', { member: silentUrl })).toBeGreaterThanOrEqual(2);
      expect(f.proxy.output()).toContain('did not finish the connection handshake');
    } finally {
      c.close();
    }
  });
});
