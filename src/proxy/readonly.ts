import { splitMessages } from './grpc-frame.ts';
import { gatewayMethod, grpcMethod, type MethodInfo } from './methods.ts';
import { readFields, type WireField } from './protobuf.ts';

/** The readonly decision for one request: pass it on, or refuse it with a reason for the client. */
export type Verdict = { allow: true } | { allow: false; reason: string };

const allow: Verdict = { allow: true };
const refuse = (what: string): Verdict => ({ allow: false, reason: `etcd-topology proxy is read-only: ${what} is a write and was refused` });

/** Whether readonly mode must see the request body before deciding on this method. */
export function needsBody(info: MethodInfo): boolean {
  return info.access === 'txn' || info.access === 'alarm';
}

/**
 * Decides a gRPC call in readonly mode from its path and, for Txn and Alarm, its complete request
 * body. Deny by default: an unknown method, a body that does not decode, or anything but exactly one
 * message is refused. Never throws.
 */
export function classifyGrpc(path: string, body?: Uint8Array, encoding?: string): Verdict {
  const info = grpcMethod(path);
  if (info === undefined) return refuse(`unknown method ${path}`);
  if (info.access === 'read') return allow;
  const name = `${info.service.split('.').pop() ?? info.service}.${info.method}`;
  if (info.access === 'write' || body === undefined) return refuse(name);
  let messages: Uint8Array[];
  try {
    messages = splitMessages(body, encoding);
  } catch {
    return refuse(`${name} (undecodable request)`);
  }
  if (messages.length !== 1) return refuse(`${name} (expected one request message)`);
  const ok = info.access === 'txn' ? isTxnReadOnly(messages[0]!) : isAlarmGet(messages[0]!);
  return ok ? allow : refuse(info.access === 'txn' ? 'a Txn with a put, delete or nested txn' : 'an Alarm other than GET');
}

/**
 * Whether a TxnRequest only reads, as etcd's own IsTxnReadonly decides: every RequestOp in success
 * (field 2) and failure (field 3) must be a request_range (oneof field 1). A put (2), delete (3),
 * nested txn (4), an empty op or anything unknown counts as a write. Never throws.
 */
export function isTxnReadOnly(message: Uint8Array): boolean {
  try {
    for (const f of readFields(message)) {
      if (f.num === 1) continue; // compare: conditions only, never a write
      if (f.num !== 2 && f.num !== 3) return false;
      if (f.bytes === undefined || !isRangeOp(f.bytes)) return false;
    }
    return true;
  } catch {
    return false;
  }
}

function isRangeOp(op: Uint8Array): boolean {
  const fields: WireField[] = readFields(op);
  return fields.length > 0 && fields.every((f) => f.num === 1 && f.wireType === 2);
}

/** Whether an AlarmRequest only reads: action (field 1) absent or GET (0). Never throws. */
export function isAlarmGet(message: Uint8Array): boolean {
  try {
    return readFields(message).every((f) => f.num !== 1 || (f.wireType === 0 && f.varint === 0n));
  } catch {
    return false;
  }
}

/**
 * Decides a JSON gateway request (/v3/... or /v3beta/...) in readonly mode from its path and, for
 * Txn and Alarm, its body. Deny by default, like classifyGrpc. Never throws.
 */
export function classifyGateway(path: string, body?: string): Verdict {
  const info = gatewayMethod(path);
  if (info === undefined) return refuse(`unknown gateway path ${path}`);
  if (info.access === 'read') return allow;
  const name = `${info.service.split('.').pop() ?? info.service}.${info.method}`;
  if (info.access === 'write' || body === undefined) return refuse(name);
  let parsed: unknown;
  try {
    parsed = body.trim() === '' ? {} : JSON.parse(body);
  } catch {
    return refuse(`${name} (body is not JSON)`);
  }
  const ok = info.access === 'txn' ? isJsonTxnReadOnly(parsed) : isJsonAlarmGet(parsed);
  return ok ? allow : refuse(info.access === 'txn' ? 'a Txn with a put, delete or nested txn' : 'an Alarm other than GET');
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The JSON twin of isTxnReadOnly; accepts both proto names (request_range) and JSON names (requestRange). */
export function isJsonTxnReadOnly(txn: unknown): boolean {
  if (!isObject(txn)) return false;
  for (const [key, ops] of Object.entries(txn)) {
    if (key === 'compare') continue;
    if (key !== 'success' && key !== 'failure') return false;
    if (ops === null) continue;
    if (!Array.isArray(ops)) return false;
    for (const op of ops) {
      if (!isObject(op)) return false;
      const keys = Object.keys(op);
      if (keys.length === 0) return false;
      if (!keys.every((k) => (k === 'request_range' || k === 'requestRange') && isObject(op[k]))) return false;
    }
  }
  return true;
}

/** The JSON twin of isAlarmGet: action absent, null, "GET" or 0. */
export function isJsonAlarmGet(alarm: unknown): boolean {
  if (!isObject(alarm)) return false;
  const action = alarm['action'];
  return action === undefined || action === null || action === 'GET' || action === 0 || action === '0';
}
