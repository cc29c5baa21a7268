import http from 'node:http';
import type { Registry } from './lean-metrics.ts';
import { TopologyError } from '../errors.ts';
import type { Logger } from './logger.ts';

/** A named check: undefined when fine, else the reason it fails (served as the 503 body). It sees the request's query. */
export type Check = (query: URLSearchParams) => string | undefined;

/** A read-only JSON document served at a path (public facts only: it is served without authentication). */
export type JsonRoute = () => unknown;

/** Serves /metrics from the registry, /healthz, /readyz from checks, and any JSON routes, on a HOST:PORT address. */
export async function startTelemetryServer(
  addr: string,
  registry: Registry,
  checks: { healthz: Check; readyz: Check },
  log: Logger,
  json: Record<string, JsonRoute> = {},
  /** SO_REUSEPORT: a second process may bind the same address, as a host-network proxy does while it is replaced. */
  options: { reusePort?: boolean } = {},
): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const [path = '/', query = ''] = (req.url ?? '/').split('?', 2);
    const route = Object.hasOwn(json, path) ? json[path] : undefined;
    if (route !== undefined) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(route()));
      return;
    }
    if (path === '/healthz' || path === '/readyz') {
      const failure = checks[path === '/healthz' ? 'healthz' : 'readyz'](new URLSearchParams(query));
      res.writeHead(failure === undefined ? 200 : 503, { 'content-type': 'text/plain' }).end(failure === undefined ? 'ok\n' : `${failure}\n`);
      return;
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: unknown) => {
          log.error({ err }, 'Failed to collect metrics');
          res.writeHead(500).end();
        },
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /healthz or /readyz\n');
  });
  const i = addr.lastIndexOf(':');
  const host = addr.slice(0, i).replace(/^\[|\]$/g, '') || '0.0.0.0';
  const port = Number(addr.slice(i + 1));
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new TopologyError('ETOP_LISTEN', err.code === 'EADDRINUSE' ? `address ${addr} is already in use` : `cannot listen on ${addr}: ${err.message}`, { cause: err })),
    );
    server.listen({ port, host, reusePort: options.reusePort === true }, () => resolve());
  });
  log.info({ addr }, 'Started telemetry server');
  return server;
}
