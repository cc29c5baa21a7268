import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { freePort, waitFor } from '../harness/ports.ts';

const cli = path.join(import.meta.dirname, '..', '..', 'src', 'cli.ts');

/** The proxy run as the real command, `node src/cli.ts proxy ...`, on free ports. */
export interface ProxyProcess {
  child: ChildProcess;
  /** http://127.0.0.1:PORT (https:// with options.tls) of the client listener. */
  url: string;
  /** https://127.0.0.1:PORT of a second, TLS listener (with options.tlsListener). */
  tlsUrl: string | undefined;
  /** host:port for gRPC clients and etcdctl. */
  target: string;
  /** The client listener's port. */
  port: number;
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
  options: {
    port?: number;
    /** The metrics port (default: a free one). */
    metricsPort?: number;
    waitReady?: boolean;
    /** Serve TLS with this certificate and key. */
    tls?: { cert: string; key: string };
    /** Serve a second, TLS listener with this certificate and key, beside the cleartext one. */
    tlsListener?: { cert: string; key: string };
  } = {},
): Promise<ProxyProcess> {
  const port = options.port ?? (await freePort());
  const metricsPort = options.metricsPort ?? (await freePort());
  const url = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const tlsUrl = options.tlsListener ? `https://127.0.0.1:${await freePort()}` : undefined;
  const certs = options.tls ?? options.tlsListener;
  if (certs) extra = [...extra, `--listen-cert=${certs.cert}`, `--listen-key=${certs.key}`];
  const listen = tlsUrl === undefined ? url : `${url},${tlsUrl}`;
  const child = spawn(
    process.execPath,
    [cli, 'proxy', `--endpoints=${endpoints}`, `--listen-client-urls=${listen}`, `--metrics-addr=127.0.0.1:${metricsPort}`, ...extra],
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
    tlsUrl,
    target: `127.0.0.1:${port}`,
    port,
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
