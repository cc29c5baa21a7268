import type { Logger } from '../telemetry/logger.ts';
import type { ActiveCalls } from './active-calls.ts';
import type { HttpUpstreams } from './http1-upstreams.ts';
import type { ProxyMetrics } from './metrics.ts';
import type { UpstreamSessions } from './sessions.ts';
import type { UpstreamSet } from './upstreams.ts';

/** What the gRPC and HTTP/1.1 forwarders share: members, connections, metrics, mode and the calls in flight. */
export interface ForwardDeps {
  upstreams: UpstreamSet;
  sessions: UpstreamSessions;
  http: HttpUpstreams;
  metrics: ProxyMetrics;
  readonly: boolean;
  calls: ActiveCalls;
  log: Logger;
}
