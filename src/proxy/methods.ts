/**
 * What the proxy must know about each etcd v3 RPC, by gRPC path and by JSON gateway path:
 * - access: 'read' passes in readonly mode, 'write' is refused, 'txn' and 'alarm' are decided by
 *   looking inside the request message;
 * - streaming: the call is a stream (never retried, ended with UNAVAILABLE on drain);
 * - retry: a unary read that may be sent again to another member when the first one failed before
 *   answering anything.
 */
export type Access = 'read' | 'write' | 'txn' | 'alarm';

export interface MethodInfo {
  service: string;
  method: string;
  access: Access;
  streaming: boolean;
  retry: boolean;
  /**
   * Sent to the leader when the proxy knows it: the writes a follower would otherwise forward to
   * it (KV writes and Txns, Compact, lease grant, revoke and keep-alive, MoveLeader).
   */
  leader: boolean;
}

type Row = [method: string, access: Access, streaming?: 'stream', gateway?: string[]];

const read = 'read' as const;
const write = 'write' as const;

// Source: api/etcdserverpb/rpc.proto, server/etcdserver/api/v3lock/v3lockpb/v3lock.proto and
// v3election/v3electionpb/v3election.proto of etcd v3.6 (the google.api.http annotations give the
// gateway paths).
const services: Record<string, Row[]> = {
  'etcdserverpb.KV': [
    ['Range', read, undefined, ['/v3/kv/range']],
    ['Put', write, undefined, ['/v3/kv/put']],
    ['DeleteRange', write, undefined, ['/v3/kv/deleterange']],
    ['Txn', 'txn', undefined, ['/v3/kv/txn']],
    ['Compact', write, undefined, ['/v3/kv/compaction']],
  ],
  'etcdserverpb.Watch': [['Watch', read, 'stream', ['/v3/watch']]],
  'etcdserverpb.Lease': [
    ['LeaseGrant', write, undefined, ['/v3/lease/grant']],
    ['LeaseRevoke', write, undefined, ['/v3/lease/revoke', '/v3/kv/lease/revoke']],
    ['LeaseKeepAlive', write, 'stream', ['/v3/lease/keepalive']],
    ['LeaseTimeToLive', read, undefined, ['/v3/lease/timetolive', '/v3/kv/lease/timetolive']],
    ['LeaseLeases', read, undefined, ['/v3/lease/leases', '/v3/kv/lease/leases']],
  ],
  'etcdserverpb.Cluster': [
    ['MemberAdd', write, undefined, ['/v3/cluster/member/add']],
    ['MemberRemove', write, undefined, ['/v3/cluster/member/remove']],
    ['MemberUpdate', write, undefined, ['/v3/cluster/member/update']],
    ['MemberList', read, undefined, ['/v3/cluster/member/list']],
    ['MemberPromote', write, undefined, ['/v3/cluster/member/promote']],
  ],
  'etcdserverpb.Maintenance': [
    ['Alarm', 'alarm', undefined, ['/v3/maintenance/alarm']],
    ['Status', read, undefined, ['/v3/maintenance/status']],
    ['Defragment', write, undefined, ['/v3/maintenance/defragment']],
    ['Hash', read, undefined, ['/v3/maintenance/hash']],
    ['HashKV', read, undefined, ['/v3/maintenance/hashkv']],
    ['Snapshot', read, 'stream', ['/v3/maintenance/snapshot']],
    ['MoveLeader', write, undefined, ['/v3/maintenance/transfer-leadership']],
    ['Downgrade', write, undefined, ['/v3/maintenance/downgrade']],
  ],
  'etcdserverpb.Auth': [
    ['AuthEnable', write, undefined, ['/v3/auth/enable']],
    ['AuthDisable', write, undefined, ['/v3/auth/disable']],
    ['AuthStatus', read, undefined, ['/v3/auth/status']],
    // Authenticate passes in readonly mode: a read-only client of an auth-enabled cluster needs a
    // token to read at all, and issuing one changes no key, member, user or role (docs/proxy.md).
    ['Authenticate', read, undefined, ['/v3/auth/authenticate']],
    ['UserAdd', write, undefined, ['/v3/auth/user/add']],
    ['UserGet', read, undefined, ['/v3/auth/user/get']],
    ['UserList', read, undefined, ['/v3/auth/user/list']],
    ['UserDelete', write, undefined, ['/v3/auth/user/delete']],
    ['UserChangePassword', write, undefined, ['/v3/auth/user/changepw']],
    ['UserGrantRole', write, undefined, ['/v3/auth/user/grant']],
    ['UserRevokeRole', write, undefined, ['/v3/auth/user/revoke']],
    ['RoleAdd', write, undefined, ['/v3/auth/role/add']],
    ['RoleGet', read, undefined, ['/v3/auth/role/get']],
    ['RoleList', read, undefined, ['/v3/auth/role/list']],
    ['RoleDelete', write, undefined, ['/v3/auth/role/delete']],
    ['RoleGrantPermission', write, undefined, ['/v3/auth/role/grant']],
    ['RoleRevokePermission', write, undefined, ['/v3/auth/role/revoke']],
  ],
  'v3lockpb.Lock': [
    ['Lock', write, undefined, ['/v3/lock/lock']],
    ['Unlock', write, undefined, ['/v3/lock/unlock']],
  ],
  'v3electionpb.Election': [
    ['Campaign', write, undefined, ['/v3/election/campaign']],
    ['Proclaim', write, undefined, ['/v3/election/proclaim']],
    ['Leader', read, undefined, ['/v3/election/leader']],
    ['Observe', read, 'stream', ['/v3/election/observe']],
    ['Resign', write, undefined, ['/v3/election/resign']],
  ],
  // etcd serves the standard gRPC health service; clients such as grpc-go's health checker use it.
  'grpc.health.v1.Health': [
    ['Check', read],
    ['Watch', read, 'stream'],
  ],
};

// Token issuance is not a pure read, so it is not replayed on another member.
const noRetry = new Set(['/etcdserverpb.Auth/Authenticate']);
const toLeader = new Set([
  '/etcdserverpb.KV/Put', '/etcdserverpb.KV/DeleteRange', '/etcdserverpb.KV/Txn', '/etcdserverpb.KV/Compact',
  '/etcdserverpb.Lease/LeaseGrant', '/etcdserverpb.Lease/LeaseRevoke', '/etcdserverpb.Lease/LeaseKeepAlive',
  '/etcdserverpb.Maintenance/MoveLeader',
]);

const byGrpcPath = new Map<string, MethodInfo>();
const byGatewayPath = new Map<string, MethodInfo>();
for (const [service, rows] of Object.entries(services)) {
  for (const [method, access, streaming, gateway] of rows) {
    const path = `/${service}/${method}`;
    const info: MethodInfo = {
      service,
      method,
      access,
      streaming: streaming === 'stream',
      retry: access === 'read' && streaming !== 'stream' && !noRetry.has(path),
      leader: toLeader.has(path),
    };
    byGrpcPath.set(path, info);
    for (const g of gateway ?? []) byGatewayPath.set(g, info);
  }
}

/** The etcd RPC a gRPC :path names, or undefined for a path etcd does not serve. */
export function grpcMethod(path: string): MethodInfo | undefined {
  return byGrpcPath.get(path);
}

/** The etcd RPC a JSON gateway path names (/v3/... or /v3beta/..., query ignored), or undefined. */
export function gatewayMethod(path: string): MethodInfo | undefined {
  const q = path.indexOf('?');
  const bare = q === -1 ? path : path.slice(0, q);
  return byGatewayPath.get(bare.startsWith('/v3beta/') ? `/v3/${bare.slice('/v3beta/'.length)}` : bare);
}

/** Every known gRPC path, for tests and documentation. */
export function allGrpcPaths(): string[] {
  return [...byGrpcPath.keys()];
}

/** Every known gateway path, for tests and documentation. */
export function allGatewayPaths(): string[] {
  return [...byGatewayPath.keys()];
}
