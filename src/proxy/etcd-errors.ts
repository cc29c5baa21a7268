import { objectOf, stringField } from './json-fields.ts';

/**
 * What an etcd error answer means for the proxy: whether etcd provably did not apply the call (so
 * it may be sent once more), and whether it says the proxy's idea of the leader is stale.
 *
 * Sources (etcd v3.6): server/etcdserver/errors/errors.go (the messages),
 * api/v3rpc/rpctypes/error.go (their gRPC codes), server/etcdserver/api/v3rpc/util.go (togRPCError:
 * an error not in its map, such as raft's ErrProposalDropped, goes out as UNKNOWN with its own
 * message), server/etcdserver/v3_server.go (processInternalRaftRequestOnce: where each is returned).
 */
export interface EtcdErrorVerdict {
  /** etcd provably did not apply the call: it may be sent once more (to the leader as learned again). */
  notApplied: boolean;
  /** The answer says leadership moved or is unknown: learn the leader again now. */
  relearn: boolean;
  /** Why, for the table below and for logs. */
  reason: string;
}

const OK: EtcdErrorVerdict = { notApplied: false, relearn: false, reason: 'not an error etcd reports about leadership' };

// Matched on the exact message etcd sends (grpc-message, percent-decoded); the gRPC code is checked
// too, so that an application error that happens to carry the same words is not mistaken for etcd's.
const table: { code: number; message: string; verdict: EtcdErrorVerdict }[] = [
  {
    // raft's ErrProposalDropped, returned synchronously by Propose (node.stepWithWaitOption waits for
    // Step's result) when the leader is transferring leadership (leadTransferee set), a follower knows
    // no leader, or forwarding is disabled: the entry never reached the log, so it can never apply.
    code: 2, // UNKNOWN: togRPCError has no mapping for it
    message: 'raft proposal dropped',
    verdict: { notApplied: true, relearn: true, reason: 'raft dropped the proposal before it entered the log (leader transfer, or no leader)' },
  },
  {
    // ErrGRPCNoLeader: from the unary interceptor (require-leader metadata) before the handler runs,
    // and from waitLeader before a lease call is forwarded; nothing was proposed.
    code: 14,
    message: 'etcdserver: no leader',
    verdict: { notApplied: true, relearn: true, reason: 'the member had no leader and refused the call before handling it' },
  },
  {
    // ErrGRPCNotLeader: MoveLeader (and lease calls) on a member that is not the leader, checked first.
    code: 9,
    message: 'etcdserver: not leader',
    verdict: { notApplied: true, relearn: true, reason: 'the member is not the leader and refused the call before acting' },
  },
  {
    // ErrGRPCLeaderChanged: only from the linearizable read path (read index wait, read-only Txn,
    // Range) and LeaseTimeToLive on a demoted lessor; raft writes never return it. Nothing was written.
    code: 14,
    message: 'etcdserver: leader changed',
    verdict: { notApplied: true, relearn: true, reason: 'the leader changed while the member waited for a read index; nothing was written' },
  },
  {
    // ErrGRPCNotSupportedForLearner: the unary interceptor refuses every call but serializable reads
    // and Status on a learner before the handler runs. The proxy meets one when a member was replaced
    // under the same name (and URL) and the next discovery has not yet said it is a learner.
    code: 9,
    message: 'etcdserver: rpc not supported for learner',
    verdict: { notApplied: true, relearn: true, reason: 'the member is a learner and refused the call before handling it' },
  },
  {
    // ErrTooManyRequests: refused before proposing, but because the member is behind on applying,
    // not because of leadership: sending it again only adds load, so the client gets it.
    code: 8,
    message: 'etcdserver: too many requests',
    verdict: { notApplied: false, relearn: false, reason: 'refused for load before proposing; passed to the client, whose backoff it is' },
  },
];

// Ambiguous: the proposal may already be in the raft log and be applied later, so these are never
// replayed. They come after Propose returned (processInternalRaftRequestOnce's select on the
// request context or s.done), or from a context error that cannot tell whether Propose happened.
const ambiguous: { prefix: string; relearn: boolean; reason: string }[] = [
  // ErrTimeoutDueToLeaderFail, ErrTimeoutDueToConnectionLost, ErrTimeoutLeaderTransfer and
  // ErrTimeoutWaitAppliedIndex share this prefix; the leader-related ones say leadership moved.
  { prefix: 'etcdserver: request timed out, possibly due to previous leader failure', relearn: true, reason: 'timed out after proposing, around a leader loss' },
  { prefix: 'etcdserver: request timed out, leader transfer took too long', relearn: true, reason: 'timed out after proposing, during a leader transfer' },
  { prefix: 'etcdserver: request timed out', relearn: false, reason: 'timed out after proposing: it may still apply' },
  { prefix: 'etcdserver: server stopped', relearn: true, reason: 'the member stopped after proposing: it may still apply' },
  { prefix: 'etcdserver: request cancel', relearn: false, reason: 'cancelled after proposing: it may still apply' },
  { prefix: 'context deadline exceeded', relearn: false, reason: 'the member gave up waiting: it may still apply' },
];

/**
 * Classifies a gRPC status from an etcd member. Only the errors in the table above count as not
 * applied; timeouts, cancellations and anything unknown are ambiguous and never replayed.
 */
export function classifyEtcdError(code: number, message: string): EtcdErrorVerdict {
  if (code === 0) return OK;
  for (const row of table) if (row.code === code && row.message === message) return row.verdict;
  for (const row of ambiguous) if (message.startsWith(row.prefix)) return { notApplied: false, relearn: row.relearn, reason: row.reason };
  return OK;
}

/**
 * The raft term in the ResponseHeader that starts an etcd response, from the first bytes of a gRPC
 * response body (the 5-byte message prefix, then field 1 = header: cluster_id 1, member_id 2,
 * revision 3, raft_term 4). undefined when those bytes do not hold it (compressed, cut short, or a
 * message without a header). Never throws; reads at most the header.
 */
export function responseRaftTerm(body: Uint8Array): number | undefined {
  if (body.length < 7 || body[0] !== 0 || body[5] !== 0x0a) return undefined;
  const len = varint(body, 6);
  if (len === undefined) return undefined;
  let p = len.next;
  const end = Math.min(p + len.value, body.length);
  while (p < end) {
    const tag = body[p++]!;
    if ((tag & 7) !== 0) return undefined; // every ResponseHeader field is a varint
    const v = varint(body, p);
    if (v === undefined || v.next > end) return undefined;
    if (tag >> 3 === 4) return v.value > 0 ? v.value : undefined;
    p = v.next;
  }
  return undefined;
}

/**
 * A protobuf varint at offset p, as a number (exact below 2^53; larger values only need skipping).
 * protobuf.ts's readFields is exact but allocates; this runs on every unary response.
 */
function varint(b: Uint8Array, p: number): { value: number; next: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10 && p < b.length; i++) {
    const byte = b[p++]!;
    value += (byte & 0x7f) * scale;
    scale *= 128;
    if (byte < 0x80) return { value, next: p };
  }
  return undefined;
}

/**
 * The gRPC status in a JSON gateway error answer ({"code":2,"message":"raft proposal dropped"}, as
 * grpc-gateway writes a status), or undefined for a body that is not one.
 */
export function gatewayError(body: string): { code: number; message: string } | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  const d = objectOf(parsed);
  const code = d?.['code'];
  if (typeof code !== 'number' || !Number.isInteger(code)) return undefined;
  return { code, message: stringField(d, 'message') ?? stringField(d, 'error') ?? '' };
}

/** The raft term in the first bytes of a JSON gateway answer ("header":{..."raft_term":"7"}), or undefined. */
export function gatewayRaftTerm(chunk: Uint8Array): number | undefined {
  const head = Buffer.from(chunk.buffer, chunk.byteOffset, Math.min(chunk.length, 512)).toString('latin1');
  const m = /"raft_?[tT]erm":"?(\d{1,15})/.exec(head);
  const term = m === null ? 0 : Number(m[1]);
  return term > 0 ? term : undefined;
}
