import type http from 'node:http';
import { createRootLogger, type Logger } from '../telemetry/logger.ts';
import { startTelemetryServer } from '../telemetry/http-server.ts';
import { createLeanRegistry } from '../telemetry/lean-metrics.ts';
import { ActiveCalls } from './active-calls.ts';
import { loadConfig, proxyUsage, type ProxyConfig } from './config.ts';
import { ReloadingTls, TLS_REPORT_PATH, tlsReport } from './tls-reload.ts';
import { Discovery } from './discovery.ts';
import type { ForwardDeps } from './forward-deps.ts';
import { forwardGrpc } from './grpc-bridge.ts';
import { h2Exchange } from './h2-http-exchange.ts';
import { forwardHttp } from './http1-forward.ts';
import { HttpUpstreams } from './http1-upstreams.ts';
import { LeaderTracker } from './leader.ts';
import { startClientListeners, type ClientListeners } from './listener.ts';
import { MemberConnections } from './member-connections.ts';
import { MemberHealth } from './member-health.ts';
import { Readiness, REVISION_PATH, revisionServedAt } from './readiness.ts';
import { ProxyMetrics } from './metrics.ts';
import { UpstreamSet } from './upstreams.ts';
import { WATCH_PATH, WatchService } from './watch/service.ts';

/** A running proxy, for main and for tests that run it in-process. */
export interface RunningProxy {
  listeners: ClientListeners;
  metricsServer: http.Server;
  /** Drains (stop accepting, finish unary calls within the drain timeout, end streams with UNAVAILABLE) and closes everything. */
  shutdown(): Promise<void>;
}

/** Starts the proxy from a parsed configuration. */
export async function startProxy(config: ProxyConfig, log: Logger): Promise<RunningProxy> {
  const registry = createLeanRegistry('etcd_topology_');
  const seeds = config.endpoints.map((u) => u.replace(/\/+$/, ''));
  const upstreams = new UpstreamSet(seeds, { failureWaitMs: config.failureWait });
  const metrics = new ProxyMetrics(registry, () => upstreams.list().map((m) => [m.url, m.answered && m.serving && upstreams.isAvailable(m.url)]));
  const tlsLog = log.child({ component: 'tls' });
  const upstreamTls = new ReloadingTls({ ca: config.cacert, cert: config.cert, key: config.key }, config.upstreamTls, (err) => {
    if (err) tlsLog.warn({ err: err.message }, 'Kept the previous TLS files: the new ones could not be read');
    else tlsLog.info('Reloaded the TLS files towards the members');
  });
  const listenerTls = new ReloadingTls({ ca: config.listenCacert, cert: config.listenCert, key: config.listenKey }, config.listenerTls, (err) => {
    if (err) tlsLog.warn({ err: err.message }, 'Kept the previous listener certificate: the new files could not be used');
  });
  const http = new HttpUpstreams(upstreamTls);
  const leaders = new LeaderTracker({ upstreams, http, metrics, log: log.child({ component: 'leader' }) });
  const members = new MemberConnections(upstreamTls, log.child({ component: 'upstream' }), {
    onFailure: (url) => {
      upstreams.markFailed(url);
      // Writes wait for a new leader, not for the next refresh.
      if (url === upstreams.knownLeader) void leaders.relearn();
    },
    onKeepaliveTimeout: (url) => metrics.keepaliveFailures.labels(url).inc(),
    hasAlternative: (url) => upstreams.hasAvailable(new Set([url])),
    onSlowConnect: (url) => metrics.slowConnects.labels(url).inc(),
  });
  const health = new MemberHealth({ upstreams, members, retryMs: config.failureWait, log: log.child({ component: 'member-health' }) });
  const calls = new ActiveCalls();
  const deps: ForwardDeps = { upstreams, members, http, metrics, readonly: config.mode === 'readonly', leaders, leaderRouting: config.leaderRouting, calls, log };
  const watches = config.watchCoalescing ? new WatchService(deps, { clientBufferBytes: config.watchClientBuffer }) : undefined;
  if (watches !== undefined) {
    metrics.watchCoalescing(registry, () => ({
      clientWatches: watches.core.clientWatches,
      upstreamWatches: watches.core.upstreamWatches,
      coalescedEvents: watches.core.coalescedEvents,
      slowClients: watches.slowClients,
    }));
  }
  let draining = false;

  const listeners = await startClientListeners(
    config.listenClientUrls,
    listenerTls,
    {
      stream: (stream, headers, endStream, connLog) => {
        if (isGrpc(headers)) {
          if (watches !== undefined && pathOf(headers) === WATCH_PATH) watches.serve(stream, headers, endStream, connLog);
          else forwardGrpc(deps, stream, headers, endStream, connLog);
        } else {
          const { req, reply } = h2Exchange(stream, headers, endStream);
          forwardHttp(deps, req, reply, connLog);
        }
      },
      cutOff: (reason) => metrics.clientCutOffs.labels(reason).inc(),
      request: (req, res, connLog) => {
        if (draining) res.setHeader('connection', 'close');
        forwardHttp(
          deps,
          { method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, body: req },
          {
            head: (status, headers) => res.writeHead(status, headers),
            body: res,
            headersSent: () => res.headersSent,
            destroy: () => res.destroy(),
          },
          connLog,
        );
      },
    },
    log.child({ component: 'listener' }),
    { reusePort: config.reusePort },
  );

  const discovery = new Discovery({
    seeds,
    refreshMs: config.refreshInterval,
    listeners: () => listeners.addresses(),
    upstreams,
    members,
    http,
    leaders,
    metrics,
    log: log.child({ component: 'discovery' }),
    onRefreshed: (urls) => health.sync(urls),
  });
  const noMember = 'no etcd member answers';
  // On a shared port (host network), the proxy this one replaces, asked before binding beside it.
  const predecessor = config.reusePort && config.revision !== undefined ? await revisionServedAt(config.metricsAddr) : undefined;
  if (predecessor !== undefined) log.info({ predecessor, revision: config.revision }, 'Starting beside the proxy of another revision on the same ports; answering its readiness probes until it is replaced');
  const readiness = new Readiness(config.revision, predecessor);
  const metricsServer = await startTelemetryServer(
    config.metricsAddr,
    registry,
    {
      healthz: () => (upstreams.anyAnswering() ? undefined : noMember),
      readyz: (query) => readiness.answer(query.get('revision'), draining ? 'draining' : upstreams.anyAnswering() ? undefined : noMember),
    },
    log,
    // What the proxy trusts and presents towards the members, and serves on its client port: the
    // operator reads it during a CA rotation.
    { [TLS_REPORT_PATH]: () => tlsReport(upstreamTls.current(), listeners.servedTls()), [REVISION_PATH]: () => ({ revision: config.revision ?? null }) },
    { reusePort: config.reusePort },
  );
  await discovery.start();
  log.info({ mode: config.mode, watchCoalescing: config.watchCoalescing, members: upstreams.list().map((m) => m.url) }, 'Started the etcd proxy');

  return {
    listeners,
    metricsServer,
    async shutdown() {
      if (draining) return;
      draining = true;
      discovery.stop();
      leaders.stop();
      health.stop();
      const before = calls.counts();
      log.info(before, 'Draining: stopped accepting connections');
      const stopped = listeners.stopAccepting();
      // On a shared port the replacement answers the probes from now on: one reaching this process
      // would be refused (another revision) and could turn the new pod unready.
      if (config.reusePort) metricsServer.close();
      listeners.goAway();
      // Streams never finish by themselves: end them now so their clients reconnect elsewhere.
      calls.abortAll('etcd-topology proxy is shutting down', true);
      const finished = await calls.unaryFinished(config.drainTimeout);
      if (!finished) {
        log.warn(calls.counts(), 'Drain timeout passed with calls in flight; ending them');
        calls.abortAll('etcd-topology proxy is shutting down');
      }
      // Give the final trailers a moment to reach clients before connections are cut.
      await listeners.connectionsClosed(1000);
      listeners.destroyAll();
      await stopped;
      members.closeAll(true);
      await http.close();
      await new Promise<void>((r) => {
        metricsServer.close(() => r());
        metricsServer.closeAllConnections();
      });
      log.info('Stopped the etcd proxy');
    },
  };
}

/** `etcd-topology proxy`: runs until SIGTERM or SIGINT, then drains; resolves the exit code. */
export async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.error(proxyUsage);
    return 0;
  }
  const config = loadConfig(argv);
  const log = createRootLogger({ name: 'etcd-topology-proxy' });
  const proxy = await startProxy(config, log);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  log.info({ signal }, 'Received a stop signal');
  await proxy.shutdown();
  return 0;
}


/** Whether an HTTP/2 request is a gRPC call (content-type application/grpc, with or without a suffix). */
function isGrpc(headers: readonly string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === 'content-type') return headers[i + 1]!.startsWith('application/grpc');
  return false;
}

function pathOf(headers: readonly string[]): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === ':path') return headers[i + 1];
  return undefined;
}
