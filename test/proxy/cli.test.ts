import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdCluster } from '../harness/etcd-cluster.ts';
import { waitFor } from '../harness/ports.ts';
import { etcdClients, grpc } from './grpc-client.ts';
import { startProxyProcess } from './proxy-process.ts';

const cli = path.join(import.meta.dirname, '..', '..', 'src', 'cli.ts');

function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('etcd-topology proxy command', () => {
  it.each([
    [['--endpoints=http://127.0.0.1:1', '--listen-client-urls=http://127.0.0.1:2', '--mode=bogus'], '--mode'],
    [['--endpoints=ftp://x', '--listen-client-urls=http://127.0.0.1:2'], '--endpoints'],
    [['--endpoints=http://127.0.0.1:1', '--listen-client-urls=http://127.0.0.1:2', '--failure-wait=often'], '--failure-wait'],
    [['--listen-client-urls=http://127.0.0.1:2'], '--endpoints'],
  ])('exits 2 with one line naming the flag for %j', async (args, flag) => {
    const { code, stderr } = await runCli(['proxy', ...args]);
    expect(code).toBe(2);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toContain(flag);
  });

  it('reads a bad flag value from the environment and names the flag', async () => {
    const { code, stderr } = await runCli(['proxy', '--endpoints=http://127.0.0.1:1', '--listen-client-urls=http://127.0.0.1:2'], { ETCD_TOPOLOGY_REFRESH_INTERVAL: 'x' });
    expect(code).toBe(2);
    expect(stderr).toContain('--refresh-interval');
  });
});

describe('SIGTERM drain', () => {
  let cluster: EtcdCluster;
  beforeAll(async () => {
    cluster = await EtcdCluster.start({ size: 1 });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('ends open watch streams with UNAVAILABLE, stops accepting, and exits 0', async () => {
    const proxy = await startProxyProcess(cluster.endpoints, ['--drain-timeout=5s']);
    const c = etcdClients(proxy.target);
    const w = (c.watch as unknown as { Watch(): grpc.ClientDuplexStream<object, { created: boolean }> }).Watch();
    let created = false;
    w.on('data', (r: { created: boolean }) => (created ||= r.created));
    const ended = new Promise<grpc.ServiceError>((resolve) => w.on('error', resolve));
    w.write({ create_request: { key: Buffer.from('/drain') } });
    await waitFor('watch created', () => created, { timeoutMs: 5000 });
    const started = Date.now();
    const exit = proxy.stop('SIGTERM');
    const err = await ended;
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(err.details).toContain('shutting down');
    expect(await exit).toBe(0);
    expect(Date.now() - started).toBeLessThan(5000);
    const port = Number(new URL(proxy.url).port);
    const refused = await new Promise<string>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('connect', () => resolve('connected'));
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    expect(refused).toBe('ECONNREFUSED');
    expect(proxy.output()).toContain('Stopped the etcd proxy');
    c.close();
  });
});
