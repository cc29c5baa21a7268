import type { Logger } from '../telemetry/logger.ts';
import type { ActiveCalls } from './active-calls.ts';
import type { HttpUpstreams } from './http1-upstreams.ts';
import type { MemberConnections } from './member-connections.ts';
import type { ProxyMetrics } from './metrics.ts';
import type { UpstreamSet } from './upstreams.ts';

/** What the gRPC and HTTP/1.1 forwarders share: members, connections, metrics, mode and the calls in flight. */
export interface ForwardDeps {
  upstreams: UpstreamSet;
  members: MemberConnections;
  http: HttpUpstreams;
  metrics: ProxyMetrics;
  readonly: boolean;
  calls: ActiveCalls;
  log: Logger;
}
