import { describe, expect, it } from 'vitest';
import { waitFor } from '../harness/ports.ts';
import { grpc, rawUnary } from './grpc-client.ts';
import { useProxyFixture } from './fixture.ts';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
// An empty message (the gRPC client frames it): the proxy must refuse by method, before any member sees it.
const empty = Buffer.alloc(0);
// An AlarmRequest with action=ACTIVATE (field 1 = 1), alarm=NOSPACE (field 3 = 1).
const alarmActivate = Buffer.from([0x08, 0x01, 0x18, 0x01]);

describe('readonly proxy', () => {
  const f = useProxyFixture({ size: 1, beforeProxy: (cluster) => cluster.etcdctl(['put', '/ro/k', 'v']).then(() => undefined), proxyArgs: ['--mode=readonly'] });

  it.each([
    '/etcdserverpb.KV/Put', '/etcdserverpb.KV/DeleteRange', '/etcdserverpb.KV/Compact',
    '/etcdserverpb.Lease/LeaseGrant', '/etcdserverpb.Lease/LeaseRevoke',
    '/etcdserverpb.Cluster/MemberAdd', '/etcdserverpb.Cluster/MemberRemove', '/etcdserverpb.Cluster/MemberUpdate', '/etcdserverpb.Cluster/MemberPromote',
    '/etcdserverpb.Maintenance/Defragment', '/etcdserverpb.Maintenance/MoveLeader', '/etcdserverpb.Maintenance/Downgrade',
    '/etcdserverpb.Auth/AuthEnable', '/etcdserverpb.Auth/AuthDisable', '/etcdserverpb.Auth/UserAdd', '/etcdserverpb.Auth/UserDelete',
    '/etcdserverpb.Auth/UserChangePassword', '/etcdserverpb.Auth/UserGrantRole', '/etcdserverpb.Auth/UserRevokeRole', '/etcdserverpb.Auth/RoleAdd',
    '/etcdserverpb.Auth/RoleDelete', '/etcdserverpb.Auth/RoleGrantPermission', '/etcdserverpb.Auth/RoleRevokePermission',
    '/v3lockpb.Lock/Lock', '/v3lockpb.Lock/Unlock',
    '/v3electionpb.Election/Campaign', '/v3electionpb.Election/Proclaim', '/v3electionpb.Election/Resign',
  ])('refuses %s with UNIMPLEMENTED saying the proxy is read-only', async (path) => {
    const res = await rawUnary(f.proxy.target, path, empty);
    expect(res.status).toBe(grpc.status.UNIMPLEMENTED);
    expect(res.details).toContain('read-only');
  });

  it('refuses an Alarm ACTIVATE and passes an Alarm GET', async () => {
    expect((await rawUnary(f.proxy.target, '/etcdserverpb.Maintenance/Alarm', alarmActivate)).status).toBe(grpc.status.UNIMPLEMENTED);
    expect((await rawUnary(f.proxy.target, '/etcdserverpb.Maintenance/Alarm', empty)).status).toBe(grpc.status.OK);
  });

  it('refuses Txns with a put, a delete or a nested txn, and passes read-only Txns', async () => {
    const key = Buffer.from('/ro/k');
    const refused = [
      { success: [{ request_range: { key } }, { request_put: { key, value: Buffer.from('x') } }] },
      { failure: [{ request_delete_range: { key } }] },
      { success: [{ request_txn: { success: [{ request_range: { key } }] } }] },
    ];
    for (const txn of refused) {
      const err = (await f.c.unary(f.c.kv, 'Txn', txn).catch((e: grpc.ServiceError) => e)) as grpc.ServiceError;
      expect(err.code).toBe(grpc.status.UNIMPLEMENTED);
      expect(err.details).toContain('read-only');
    }
    const ok = await f.c.unary<{ succeeded: boolean; responses: { response_range: { kvs: { value: Buffer }[] } }[] }>(f.c.kv, 'Txn', {
      compare: [{ key, target: 'VERSION', result: 'GREATER', version: '0' }],
      success: [{ request_range: { key } }],
      failure: [{ request_range: { key: Buffer.from('/none') } }],
    });
    expect(ok.succeeded).toBe(true);
    expect(Buffer.from(ok.responses[0]!.response_range.kvs[0]!.value).toString()).toBe('v');
    // Nothing refused reached the cluster.
    expect(await f.cluster.etcdctl(['get', '/ro/k', '--print-value-only'])).toBe('v\n');
  });

  it('refuses LeaseKeepAlive streams and passes Watch streams', async () => {
    const ka = (f.c.lease as unknown as { LeaseKeepAlive(): grpc.ClientDuplexStream<object, object> }).LeaseKeepAlive();
    const kaErr = new Promise<grpc.ServiceError>((resolve) => ka.on('error', resolve));
    ka.write({ ID: '1' });
    expect((await kaErr).code).toBe(grpc.status.UNIMPLEMENTED);

    const w = (f.c.watch as unknown as { Watch(): grpc.ClientDuplexStream<object, { created: boolean }> }).Watch();
    let created = false;
    w.on('data', (r: { created: boolean }) => (created ||= r.created));
    w.on('error', () => undefined);
    w.write({ create_request: { key: Buffer.from('/ro/k') } });
    await waitFor('a watch created through the readonly proxy', () => created, { timeoutMs: 5000 });
    w.cancel();
  });

  it('passes reads: Range, MemberList, Status, Authenticate reaches etcd', async () => {
    const r = await f.c.unary<{ kvs: { value: Buffer }[] }>(f.c.kv, 'Range', { key: Buffer.from('/ro/k') });
    expect(Buffer.from(r.kvs[0]!.value).toString()).toBe('v');
    expect((await f.c.unary<{ members: unknown[] }>(f.c.cluster, 'MemberList', {})).members).toHaveLength(1);
    expect((await f.c.unary<{ version: string }>(f.c.maintenance, 'Status', {})).version).toBe('3.6.16');
    // Auth is not enabled: etcd itself answers FAILED_PRECONDITION, which shows the call was let through.
    const auth = await rawUnary(f.proxy.target, '/etcdserverpb.Auth/Authenticate', empty);
    expect(auth.status).toBe(grpc.status.FAILED_PRECONDITION);
  });

  it('answers HTTP 501 to gateway writes and passes gateway reads', async () => {
    const post = (path: string, body: object): Promise<Response> => fetch(`${f.proxy.url}${path}`, { method: 'POST', body: JSON.stringify(body) });
    for (const [path, body] of [
      ['/v3/kv/put', { key: b64('/ro/k'), value: b64('w') }],
      ['/v3beta/kv/deleterange', { key: b64('/ro/k') }],
      ['/v3/kv/txn', { success: [{ request_put: { key: b64('/ro/k'), value: b64('w') } }] }],
      ['/v3/kv/txn', { failure: [{ requestDeleteRange: { key: b64('/ro/k') } }] }],
      ['/v3/lease/grant', { TTL: 5 }],
      ['/v3/maintenance/alarm', { action: 'ACTIVATE', alarm: 'NOSPACE' }],
      ['/v3/auth/user/add', { name: 'u', password: 'p' }],
      ['/v3/lock/lock', { name: b64('l') }],
    ] as const) {
      const res = await post(path, body);
      expect(res.status, path).toBe(501);
      expect(await res.text()).toContain('read-only');
    }
    const range = (await (await post('/v3/kv/range', { key: b64('/ro/k') })).json()) as { kvs: { value: string }[] };
    expect(Buffer.from(range.kvs[0]!.value, 'base64').toString()).toBe('v');
    const txn = await post('/v3/kv/txn', { success: [{ request_range: { key: b64('/ro/k') } }] });
    expect(txn.status).toBe(200);
    expect((await post('/v3/maintenance/alarm', { action: 'GET' })).status).toBe(200);
    expect(await f.cluster.etcdctl(['get', '/ro/k', '--print-value-only'])).toBe('v\n');
    expect(await f.proxy.metric('etcd_topology_proxy_readonly_refusals_total', { protocol: 'http' })).toBe(8);
  });
});
