import { describe, expect, it } from 'vitest';
import zlib from 'node:zlib';
import { frameMessage } from './grpc-frame.ts';
import { varint } from './protobuf-encode.testing.ts';
import { allGatewayPaths, allGrpcPaths, gatewayMethod, grpcMethod } from './methods.ts';
import { classifyGateway, classifyGrpc, isAlarmGet, isJsonTxnReadOnly, isTxnReadOnly } from './readonly.ts';

// A minimal protobuf encoder for building requests by hand.
const len = (field: number, payload: Uint8Array): Uint8Array => new Uint8Array([...varint((field << 3) | 2), ...varint(payload.length), ...payload]);
const vint = (field: number, value: number): Uint8Array => new Uint8Array([...varint(field << 3), ...varint(value)]);
const cat = (...parts: Uint8Array[]): Uint8Array => new Uint8Array(parts.flatMap((p) => [...p]));
const key = new TextEncoder().encode('k');
const range = len(1, len(1, key)); // RequestOp{request_range: RangeRequest{key}}
const put = len(2, cat(len(1, key), len(2, key))); // RequestOp{request_put}
const del = len(3, len(1, key)); // RequestOp{request_delete_range}
const compare = len(1, cat(vint(1, 0), len(3, key)));
const txn = (...fields: Uint8Array[]): Uint8Array => cat(...fields);
const nested = (inner: Uint8Array): Uint8Array => len(4, inner); // RequestOp{request_txn}

describe('readonly classifier: Txn', () => {
  it.each([
    ['empty txn', txn(), true],
    ['compare only', txn(compare), true],
    ['ranges in success and failure', txn(compare, len(2, range), len(3, range), len(2, range)), true],
    ['a put in success', txn(len(2, range), len(2, put)), false],
    ['a delete in failure', txn(compare, len(3, del)), false],
    ['a nested read-only txn', txn(len(2, nested(txn(len(2, range))))), false],
    ['a nested txn with a put', txn(len(3, nested(txn(len(2, put))))), false],
    ['an empty RequestOp', txn(len(2, new Uint8Array())), false],
    ['an unknown oneof field', txn(len(2, len(5, key))), false],
    ['an unknown top-level field', txn(len(2, range), vint(9, 1)), false],
    ['success sent as a varint', txn(vint(2, 1)), false],
    ['range and put in one RequestOp', txn(len(2, cat(range, put))), false],
    ['a truncated op', txn(len(2, range)).subarray(0, 4), false],
  ])('%s → read-only %s', (_name, message, readOnly) => {
    expect(isTxnReadOnly(message)).toBe(readOnly);
    const verdict = classifyGrpc('/etcdserverpb.KV/Txn', frameMessage(message));
    expect(verdict.allow).toBe(readOnly);
  });

  it('refuses a Txn body that is not exactly one gRPC message', () => {
    expect(classifyGrpc('/etcdserverpb.KV/Txn', Buffer.concat([frameMessage(txn()), frameMessage(txn())])).allow).toBe(false);
    expect(classifyGrpc('/etcdserverpb.KV/Txn', Buffer.alloc(0)).allow).toBe(false);
    expect(classifyGrpc('/etcdserverpb.KV/Txn', frameMessage(txn(len(2, range))).subarray(0, 6)).allow).toBe(false);
    expect(classifyGrpc('/etcdserverpb.KV/Txn').allow).toBe(false);
  });

  it('inflates gzip-compressed messages and refuses unknown encodings', () => {
    const z = zlib.gzipSync(txn(len(2, put)));
    const frame = Buffer.concat([Buffer.from([1, 0, 0, 0, z.length]), z]);
    expect(classifyGrpc('/etcdserverpb.KV/Txn', frame, 'gzip').allow).toBe(false);
    const zr = zlib.gzipSync(txn(len(2, range)));
    expect(classifyGrpc('/etcdserverpb.KV/Txn', Buffer.concat([Buffer.from([1, 0, 0, 0, zr.length]), zr]), 'gzip').allow).toBe(true);
    expect(classifyGrpc('/etcdserverpb.KV/Txn', Buffer.concat([Buffer.from([1, 0, 0, 0, zr.length]), zr]), 'snappy').allow).toBe(false);
  });
});

describe('readonly classifier: Alarm and methods', () => {
  it.each([
    ['no action (GET)', new Uint8Array(), true],
    ['GET', vint(1, 0), true],
    ['GET with member and alarm', cat(vint(1, 0), vint(2, 7), vint(3, 1)), true],
    ['ACTIVATE', vint(1, 1), false],
    ['DEACTIVATE', cat(vint(2, 7), vint(1, 2)), false],
    ['GET then DEACTIVATE', cat(vint(1, 0), vint(1, 2)), false],
  ])('Alarm %s → read %s', (_name, message, ok) => {
    expect(isAlarmGet(message)).toBe(ok);
    expect(classifyGrpc('/etcdserverpb.Maintenance/Alarm', frameMessage(message)).allow).toBe(ok);
  });

  const writes = [
    '/etcdserverpb.KV/Put', '/etcdserverpb.KV/DeleteRange', '/etcdserverpb.KV/Compact',
    '/etcdserverpb.Lease/LeaseGrant', '/etcdserverpb.Lease/LeaseRevoke', '/etcdserverpb.Lease/LeaseKeepAlive',
    '/etcdserverpb.Cluster/MemberAdd', '/etcdserverpb.Cluster/MemberRemove', '/etcdserverpb.Cluster/MemberUpdate', '/etcdserverpb.Cluster/MemberPromote',
    '/etcdserverpb.Maintenance/Defragment', '/etcdserverpb.Maintenance/MoveLeader', '/etcdserverpb.Maintenance/Downgrade',
    '/etcdserverpb.Auth/AuthEnable', '/etcdserverpb.Auth/AuthDisable', '/etcdserverpb.Auth/UserAdd', '/etcdserverpb.Auth/UserDelete',
    '/etcdserverpb.Auth/UserChangePassword', '/etcdserverpb.Auth/UserGrantRole', '/etcdserverpb.Auth/UserRevokeRole',
    '/etcdserverpb.Auth/RoleAdd', '/etcdserverpb.Auth/RoleDelete', '/etcdserverpb.Auth/RoleGrantPermission', '/etcdserverpb.Auth/RoleRevokePermission',
    '/v3lockpb.Lock/Lock', '/v3lockpb.Lock/Unlock',
    '/v3electionpb.Election/Campaign', '/v3electionpb.Election/Proclaim', '/v3electionpb.Election/Resign',
    '/etcdserverpb.KV/Unknown', '/etcdserverpb.Future/Thing',
  ];
  it.each(writes)('refuses %s with a message saying the proxy is read-only', (path) => {
    const verdict = classifyGrpc(path, frameMessage(new Uint8Array()));
    expect(verdict).toEqual({ allow: false, reason: expect.stringContaining('read-only') as string });
  });

  const reads = [
    '/etcdserverpb.KV/Range', '/etcdserverpb.Watch/Watch', '/etcdserverpb.Lease/LeaseTimeToLive', '/etcdserverpb.Lease/LeaseLeases',
    '/etcdserverpb.Cluster/MemberList', '/etcdserverpb.Maintenance/Status', '/etcdserverpb.Maintenance/Hash', '/etcdserverpb.Maintenance/HashKV',
    '/etcdserverpb.Maintenance/Snapshot', '/etcdserverpb.Auth/AuthStatus', '/etcdserverpb.Auth/Authenticate', '/etcdserverpb.Auth/UserGet',
    '/etcdserverpb.Auth/UserList', '/etcdserverpb.Auth/RoleGet', '/etcdserverpb.Auth/RoleList', '/v3electionpb.Election/Leader',
    '/v3electionpb.Election/Observe', '/grpc.health.v1.Health/Check',
  ];
  it.each(reads)('passes %s', (path) => {
    expect(classifyGrpc(path)).toEqual({ allow: true });
  });

  it('covers every etcd method in the table, and only unary reads are retried', () => {
    expect(allGrpcPaths()).toHaveLength(writes.length - 2 + reads.length + 2 + 1); // + Txn, Alarm, Health/Watch
    expect(grpcMethod('/etcdserverpb.KV/Range')?.retry).toBe(true);
    expect(grpcMethod('/etcdserverpb.Watch/Watch')?.retry).toBe(false);
    expect(grpcMethod('/etcdserverpb.KV/Put')?.retry).toBe(false);
    expect(grpcMethod('/etcdserverpb.Auth/Authenticate')?.retry).toBe(false);
    expect(gatewayMethod('/v3beta/kv/range?x=1')?.method).toBe('Range');
    expect(allGatewayPaths()).toContain('/v3/maintenance/transfer-leadership');
  });
});

describe('readonly classifier: JSON gateway', () => {
  it.each([
    ['/v3/kv/range', '{"key":"YQ=="}', true],
    ['/v3beta/kv/range', '{"key":"YQ=="}', true],
    ['/v3/kv/put', '{"key":"YQ==","value":"Yg=="}', false],
    ['/v3/kv/deleterange', '{"key":"YQ=="}', false],
    ['/v3/kv/txn', '{"compare":[],"success":[{"request_range":{"key":"YQ=="}}],"failure":[{"requestRange":{}}]}', true],
    ['/v3/kv/txn', '{"success":[{"request_put":{"key":"YQ=="}}]}', false],
    ['/v3/kv/txn', '{"failure":[{"requestDeleteRange":{"key":"YQ=="}}]}', false],
    ['/v3/kv/txn', '{"success":[{"request_txn":{}}]}', false],
    ['/v3/kv/txn', '{"success":[{"request_range":{},"request_put":{}}]}', false],
    ['/v3/kv/txn', '{"success":[{}]}', false],
    ['/v3/kv/txn', '{"succes":[]}', false],
    ['/v3/kv/txn', 'not json', false],
    ['/v3/kv/txn', '', true],
    ['/v3/maintenance/alarm', '{"action":"GET"}', true],
    ['/v3/maintenance/alarm', '{}', true],
    ['/v3/maintenance/alarm', '{"action":"ACTIVATE","alarm":"NOSPACE"}', false],
    ['/v3/maintenance/alarm', '{"action":2}', false],
    ['/v3/watch', '{"create_request":{"key":"YQ=="}}', true],
    ['/v3/lease/grant', '{"TTL":5}', false],
    ['/v3/lease/keepalive', '{"ID":1}', false],
    ['/v3/auth/authenticate', '{"name":"a","password":"b"}', true],
    ['/v3/lock/lock', '{"name":"bA=="}', false],
    ['/v3/election/campaign', '{}', false],
    ['/v3/no/such/thing', '{}', false],
  ])('%s %s → allowed %s', (path, body, ok) => {
    expect(classifyGateway(path, body).allow).toBe(ok);
  });

  it('refuses Txn JSON shapes that are not objects of arrays of objects', () => {
    expect(isJsonTxnReadOnly([])).toBe(false);
    expect(isJsonTxnReadOnly({ success: {} })).toBe(false);
    expect(isJsonTxnReadOnly({ success: [null] })).toBe(false);
    expect(isJsonTxnReadOnly({ success: [{ request_range: null }] })).toBe(false);
    expect(isJsonTxnReadOnly({ success: null, failure: [] })).toBe(true);
  });
});
