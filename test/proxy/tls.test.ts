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
import { freePort, waitFor } from '../harness/ports.ts';
import { run } from '../harness/run.ts';
import { grpc, h2Get } from './grpc-client.ts';
import { startProxyProcess, type ProxyProcess } from './proxy-process.ts';

/**
 * One etcd member that serves clients only over TLS and requires a client certificate
 * (--cert-file, --key-file, --trusted-ca-file, --client-cert-auth), on 127.0.0.1.
 */
async function startTlsMember(dir: string, pki: Pki): Promise<{ url: string; child: ChildProcess }> {
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const url = `https://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const child = spawnLogged(
    binaries().etcd,
    [
      '--name=t0',
      `--data-dir=${path.join(dir, 'data')}`,
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
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

describe('proxy over TLS: a TLS listener (ALPN h2 and http/1.1) and TLS with client certificates to the member', () => {
  let dir: string;
  let pki: Pki;
  let member: { url: string; child: ChildProcess } | undefined;
  let proxy: ProxyProcess;
  let ctl: (args: string[]) => Promise<string>;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'proxy-tls-'));
    pki = await createPki(dir);
    member = await startTlsMember(dir, pki);
    // The proxy serves the certificate with IP:127.0.0.1, and presents the admin client certificate to the member.
    proxy = await startProxyProcess(member.url, [`--cacert=${pki.ca.cert}`, `--cert=${pki.admin.cert}`, `--key=${pki.admin.key}`], {
      tls: { cert: pki.apiserver.cert, key: pki.apiserver.key },
    });
    ctl = (args) => run(binaries().etcdctl, [`--endpoints=${proxy.url}`, `--cacert=${pki.ca.cert}`, ...args]);
  });
  afterAll(async () => {
    await proxy?.stop();
    await terminate(member?.child);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('serves etcdctl --cacert over TLS: put, get, member list, endpoint status', async () => {
    expect(await ctl(['put', '/tls/a', 'A'])).toBe('OK\n');
    expect(await ctl(['get', '/tls/a', '--print-value-only'])).toBe('A\n');
    const members = (await ctl(['member', 'list'])).trim().split('\n');
    expect(members).toHaveLength(1);
    expect(members[0]).toContain(member!.url);
    expect(await ctl(['endpoint', 'status', '-w', 'json'])).toContain('"version":"3.6.16"');
    expect(await proxy.metric('etcd_topology_proxy_upstream_requests_total', { member: member!.url })).toBeGreaterThanOrEqual(4);
  });

  it('streams a watch to a Node gRPC client with TLS credentials', async () => {
    const creds = grpc.credentials.createSsl(readFileSync(pki.ca.cert));
    const client = new grpc.Client(proxy.target, creds);
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
    const ca = readFileSync(pki.ca.cert);
    const agent = new Agent({ connect: { ca } });
    try {
      const res = await request(`${proxy.url}/health`, { dispatcher: agent });
      expect(await res.body.json()).toEqual({ health: 'true', reason: '' });
    } finally {
      await agent.close();
    }
    const session = http2.connect(proxy.url, { ca });
    const body = await h2Get(session, '/version');
    expect((session.socket as unknown as { alpnProtocol: string }).alpnProtocol).toBe('h2');
    session.close();
    expect(JSON.parse(body)).toMatchObject({ etcdserver: '3.6.16' });
  });

  it('refuses a client that does not trust the proxy’s certificate authority', async () => {
    const err = await run(binaries().etcdctl, [`--endpoints=${proxy.url}`, '--dial-timeout=2s', '--command-timeout=3s', 'get', '/tls/a']).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/certificate|authority|deadline/i);
  });
});
