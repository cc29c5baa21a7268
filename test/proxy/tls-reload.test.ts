import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import tls from 'node:tls';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCa, issueLeaf, type CertificatePem } from '../../src/pki/issuer.ts';
import { binaries } from '../harness/binaries.ts';
import { spawnLogged, terminate } from '../harness/cluster/processes.ts';
import { writeAtomically } from '../harness/cluster/volumes.ts';
import { freePort, waitFor } from '../harness/ports.ts';
import { run } from '../harness/run.ts';
import type { TlsReport } from '../../src/proxy/tls-reload.ts';
import { startProxyProcess, type ProxyProcess } from './proxy-process.ts';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const inMs = (ms: number): Date => new Date(Date.now() + ms);

/**
 * The proxy picks up a renewed client certificate from its files (a Secret volume's atomic
 * `..data` swap) without a restart: once the first certificate has expired, which etcd enforces on
 * every new handshake, the proxy's new connections work only if it read the new files.
 */
describe('proxy: renewed client certificate files are used without a restart', () => {
  let dir: string;
  let ca: CertificatePem;
  let member: ChildProcess | undefined;
  let proxy: ProxyProcess;
  let url: string;
  let startMember: () => Promise<void>;
  let shortLived: CertificatePem;
  const tlsDir = (): string => path.join(dir, 'volume');
  const put = async (key: string): Promise<number> =>
    fetch(`${proxy.url}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: b64(key), value: b64('v') }), signal: AbortSignal.timeout(5000) }).then(
      (r) => r.status,
      () => 0,
    );

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'proxy-tls-reload-'));
    const long = { notBefore: inMs(-60_000), notAfter: inMs(3_600_000) };
    ca = await createCa('reload-ca', long);
    const server = await issueLeaf(ca, { commonName: 'member', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usages: ['server', 'client'] }, long);
    shortLived = await issueLeaf(ca, { commonName: 'proxy', dnsNames: [], ipAddresses: [], usages: ['client'] }, { notBefore: inMs(-60_000), notAfter: inMs(12_000) });
    await writeAtomically(path.join(dir, 'server'), { 'tls.crt': { data: server.cert }, 'tls.key': { data: server.key }, 'ca.crt': { data: ca.cert } });
    await writeAtomically(tlsDir(), { 'tls.crt': { data: shortLived.cert }, 'tls.key': { data: shortLived.key }, 'ca.crt': { data: ca.cert } });
    const [clientPort, peerPort] = [await freePort(), await freePort()];
    url = `https://localhost:${clientPort}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    startMember = async () => {
      member = spawnLogged(
        binaries().etcd,
        [
          '--name=r0',
          `--data-dir=${path.join(dir, 'data')}`,
          `--listen-client-urls=https://127.0.0.1:${clientPort}`,
          `--advertise-client-urls=${url}`,
          `--listen-peer-urls=${peer}`,
          `--initial-advertise-peer-urls=${peer}`,
          `--initial-cluster=r0=${peer}`,
          `--cert-file=${path.join(dir, 'server', 'tls.crt')}`,
          `--key-file=${path.join(dir, 'server', 'tls.key')}`,
          `--trusted-ca-file=${path.join(dir, 'server', 'ca.crt')}`,
          '--client-cert-auth',
          '--unsafe-no-fsync',
        ],
        path.join(dir, 'etcd.log'),
      );
      await waitFor('the member to listen', () => fetch(`http://127.0.0.1:${clientPort}`).then(() => true, (e: Error & { cause?: { code?: string } }) => e.cause?.code !== 'ECONNREFUSED'), { timeoutMs: 20_000 });
    };
    await startMember();
    const volume = tlsDir();
    proxy = await startProxyProcess(url, [`--cacert=${volume}/ca.crt`, `--cert=${volume}/tls.crt`, `--key=${volume}/tls.key`]);
  });
  afterAll(async () => {
    await proxy?.stop();
    await terminate(member);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('keeps writing after the old certificate expired and its connections were cut', async () => {
    await waitFor('a write with the first certificate', async () => (await put('/reload/before')) === 200, { timeoutMs: 20_000 });
    const renewed = await issueLeaf(ca, { commonName: 'proxy', dnsNames: [], ipAddresses: [], usages: ['client'] }, { notBefore: inMs(-60_000), notAfter: inMs(3_600_000) });
    await writeAtomically(tlsDir(), { 'tls.crt': { data: renewed.cert }, 'tls.key': { data: renewed.key }, 'ca.crt': { data: ca.cert } });
    // The control: the first certificate is refused now on a new handshake.
    const ctl = (cert: CertificatePem) => {
      const f = path.join(dir, `ctl-${cert === shortLived ? 'old' : 'new'}`);
      return writeAtomically(f, { 'c.crt': { data: cert.cert }, 'c.key': { data: cert.key }, 'ca.crt': { data: ca.cert } }).then(() =>
        run(binaries().etcdctl, [`--endpoints=${url}`, `--cacert=${f}/ca.crt`, `--cert=${f}/c.crt`, `--key=${f}/c.key`, '--command-timeout=3s', 'get', '/reload/before']).then(() => 'ok', (e: Error) => e.message),
      );
    };
    await waitFor('the first certificate to expire', async () => (await ctl(shortLived)) !== 'ok', { timeoutMs: 30_000, intervalMs: 500 });
    expect(await ctl(renewed)).toBe('ok');
    // Cut the proxy's connections: every connection from here on is a new handshake.
    await terminate(member);
    await startMember();
    await waitFor('a write through the proxy after the restart of the member', async () => (await put('/reload/after')) === 200, { timeoutMs: 30_000, intervalMs: 500 });
    expect(proxy.output()).toContain('Reloaded the TLS files towards the members');
    expect(proxy.child.exitCode).toBeNull();
  });

  it('trusts a CA added to its --cacert file without a restart (the first phase of a CA rotation), and reports it at /tls', async () => {
    const long = { notBefore: inMs(-60_000), notAfter: inMs(3_600_000) };
    const next = await createCa('reload-ca-next', long);
    const client = await issueLeaf(ca, { commonName: 'proxy', dnsNames: [], ipAddresses: [], usages: ['client'] }, long);
    // The proxy's bundle gains the new CA; then the member, restarted onto the same bundle (etcd's
    // own gRPC gateway verifies the member's certificate with it), serves a certificate of the new CA.
    const bundle = `${ca.cert.trim()}\n${next.cert.trim()}\n`;
    await writeAtomically(tlsDir(), { 'tls.crt': { data: client.cert }, 'tls.key': { data: client.key }, 'ca.crt': { data: bundle } });
    await waitFor(
      'the proxy to report both CAs',
      async () => ((await (await fetch(`${proxy.metricsUrl}/tls`)).json()) as TlsReport).trusted.length === 2,
      { timeoutMs: 10_000, intervalMs: 300 },
    );
    const server = await issueLeaf(next, { commonName: 'member', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usages: ['server', 'client'] }, long);
    await writeAtomically(path.join(dir, 'server'), { 'tls.crt': { data: server.cert }, 'tls.key': { data: server.key }, 'ca.crt': { data: bundle } });
    await terminate(member);
    await startMember();
    // The control: a client that trusts only the old CA refuses the member now.
    const ctl = await new Promise<string>((resolve) => {
      const u = new URL(url);
      const s = tls.connect({ host: '127.0.0.1', port: Number(u.port), servername: 'localhost', ca: ca.cert, cert: client.cert, key: client.key });
      s.once('secureConnect', () => {
        s.destroy();
        resolve('verified');
      });
      s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
    expect(ctl).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    await waitFor('a write through the proxy to the member with the new CA\'s certificate', async () => (await put('/reload/new-ca')) === 200, { timeoutMs: 30_000, intervalMs: 500 });
    const report = (await (await fetch(`${proxy.metricsUrl}/tls`)).json()) as TlsReport;
    expect(report.certificate).toBe(client.cert.trim());
    expect(proxy.child.exitCode).toBeNull();
  });
});
