import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { freePort, waitFor } from '../harness/ports.ts';

const cli = path.join(import.meta.dirname, '..', '..', 'src', 'cli.ts');

/** The proxy run as the real command, `node src/cli.ts proxy ...`, on free ports. */
export interface ProxyProcess {
  child: ChildProcess;
  /** http://127.0.0.1:PORT (https:// with options.tls) of the client listener. */
  url: string;
  /** host:port for gRPC clients and etcdctl. */
  target: string;
  metricsUrl: string;
  /** Everything the proxy wrote to stdout and stderr so far (pino JSON lines). */
  output(): string;
  /** Sends signal and resolves the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** The value of one metric sample from /metrics, matching every label given (0 when absent). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

/** Starts the proxy against endpoints and waits until /readyz says it is ready. */
export async function startProxyProcess(
  endpoints: string,
  extra: string[] = [],
  options: { port?: number; waitReady?: boolean; /** Serve TLS with this certificate and key. */ tls?: { cert: string; key: string } } = {},
): Promise<ProxyProcess> {
  const port = options.port ?? (await freePort());
  const metricsPort = await freePort();
  const url = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  if (options.tls) extra = [...extra, `--listen-cert=${options.tls.cert}`, `--listen-key=${options.tls.key}`];
  const child = spawn(
    process.execPath,
    [cli, 'proxy', `--endpoints=${endpoints}`, `--listen-client-urls=${url}`, `--metrics-addr=127.0.0.1:${metricsPort}`, ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'debug' } },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const metricsUrl = `http://127.0.0.1:${metricsPort}`;
  const proxy: ProxyProcess = {
    child,
    url,
    target: `127.0.0.1:${port}`,
    metricsUrl,
    output: () => out,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
    async metric(name, labels = {}) {
      const text = await (await fetch(`${metricsUrl}/metrics`)).text();
      let sum = 0;
      for (const line of text.split('\n')) {
        const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
        if (!m || m[1] !== name) continue;
        if (Object.entries(labels).every(([k, v]) => (m[2] ?? '').includes(`${k}="${v}"`))) sum += Number(m[3]);
      }
      return sum;
    },
  };
  if (options.waitReady !== false) {
    await waitFor(`proxy ready at ${metricsUrl}/readyz`, async () => {
      if (child.exitCode !== null) throw new Error(`proxy exited ${child.exitCode}: ${out}`);
      const res = await fetch(`${metricsUrl}/readyz`).catch(() => undefined);
      return res?.status === 200;
    }, { timeoutMs: 20_000 });
  }
  return proxy;
}
