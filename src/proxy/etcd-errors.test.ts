import { describe, expect, it } from 'vitest';
import { classifyEtcdError, gatewayError, gatewayRaftTerm, responseRaftTerm } from './etcd-errors.ts';
import { decodeGrpcMessage } from './grpc-status.ts';
import { varint } from './protobuf-encode.testing.ts';

describe('classifyEtcdError: which etcd answers prove a call was not applied', () => {
  it.each<[code: number, message: string, notApplied: boolean, relearn: boolean]>([
    // Refused before anything entered the raft log: sent once more.
    [2, 'raft proposal dropped', true, true],
    [14, 'etcdserver: no leader', true, true],
    [9, 'etcdserver: not leader', true, true],
    [14, 'etcdserver: leader changed', true, true],
    [9, 'etcdserver: rpc not supported for learner', true, true],
    // Refused for load: not applied, but the client's to back off from.
    [8, 'etcdserver: too many requests', false, false],
    // Ambiguous: proposed, and may still apply. Never sent twice.
    [14, 'etcdserver: request timed out', false, false],
    [14, 'etcdserver: request timed out, possibly due to previous leader failure', false, true],
    [14, 'etcdserver: request timed out, possibly due to connection lost', false, false],
    [14, 'etcdserver: request timed out, leader transfer took too long', false, true],
    [14, 'etcdserver: server stopped', false, true],
    [1, 'etcdserver: request canceled', false, false],
    [4, 'context deadline exceeded', false, false],
    // The same words under another code are not etcd's error; unknown errors are left alone.
    [2, 'etcdserver: no leader', false, false],
    [14, 'raft proposal dropped', false, false],
    [3, 'etcdserver: key is not provided', false, false],
    [0, '', false, false],
  ])('%i %s → not applied %s, learn the leader again %s', (code, message, notApplied, relearn) => {
    const v = classifyEtcdError(code, message);
    expect({ notApplied: v.notApplied, relearn: v.relearn }).toEqual({ notApplied, relearn });
    expect(v.reason.length).toBeGreaterThan(10);
  });

  it('decodes percent-encoded grpc-message values, and leaves a malformed one as it is', () => {
    expect(decodeGrpcMessage('etcdserver: no leader')).toBe('etcdserver: no leader');
    expect(decodeGrpcMessage('caf%C3%A9 100%25')).toBe('café 100%');
    expect(decodeGrpcMessage('bad %E0%')).toBe('bad %E0%');
    expect(decodeGrpcMessage(undefined)).toBe('');
  });
});

/** A gRPC-framed etcd response whose ResponseHeader has these fields (and a body field after it). */
function response(header: number[]): Buffer {
  const msg = [0x0a, ...varint(header.length), ...header, 0x10, 0x01];
  return Buffer.from([0, ...[24, 16, 8, 0].map((s) => (msg.length >>> s) & 0xff), ...msg]);
}

describe('responseRaftTerm: the raft term in a response header', () => {
  const full = [0x08, ...varint(14841639068965178418n), 0x10, ...varint(10276657743932975437n), 0x18, ...varint(1234), 0x20, ...varint(7)];
  it.each<[name: string, body: Buffer, term: number | undefined]>([
    ['every header field, 64-bit IDs', response(full), 7],
    ['only the term', response([0x20, ...varint(300)]), 300],
    ['no term', response([0x08, 1, 0x18, 5]), undefined],
    ['an empty header', response([]), undefined],
    ['cut off inside the header', response(full).subarray(0, 20), undefined],
    ['compressed', Buffer.concat([Buffer.from([1]), response(full).subarray(1)]), undefined],
    ['no header first', Buffer.from([0, 0, 0, 0, 2, 0x10, 1]), undefined],
    ['a non-varint field in the header', response([0x22, 1, 0]), undefined],
    ['too short', Buffer.from([0, 0, 0]), undefined],
  ])('%s → %s', (_name, body, term) => {
    expect(responseRaftTerm(body)).toBe(term);
  });
});

describe('the JSON gateway: error statuses and the raft term', () => {
  it.each<[body: string, status: { code: number; message: string } | undefined]>([
    ['{"code":2,"message":"raft proposal dropped","details":[]}', { code: 2, message: 'raft proposal dropped' }],
    ['{"error":"etcdserver: no leader","code":14}', { code: 14, message: 'etcdserver: no leader' }],
    ['{"code":"14"}', undefined],
    ['not json', undefined],
    ['{"header":{}}', undefined],
  ])('%s', (body, status) => {
    expect(gatewayError(body)).toEqual(status);
  });

  it.each<[body: string, term: number | undefined]>([
    ['{"header":{"cluster_id":"1","member_id":"2","revision":"3","raft_term":"7"}}', 7],
    ['{"header":{"raftTerm":"12"}}', 12],
    ['{"header":{"revision":"3"}}', undefined],
    ['{"header":{"raft_term":"0"}}', undefined],
  ])('%s → %s', (body, term) => {
    expect(gatewayRaftTerm(Buffer.from(body))).toBe(term);
  });
});
