import type { Logger } from '../telemetry/logger.ts';
import type { ActiveCalls } from './active-calls.ts';
import type { HttpUpstreams } from './http1-upstreams.ts';
import type { LeaderTracker } from './leader.ts';
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
  /** Knows the leader; calls tell it when an answer says leadership moved. */
  leaders: LeaderTracker;
  /** Writes go to the leader (--leader-routing); off, they spread like reads. */
  leaderRouting: boolean;
  calls: ActiveCalls;
  log: Logger;
}
