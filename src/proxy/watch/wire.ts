import { int64, MalformedMessage, MessageWriter, readFields, type WireField } from '../protobuf.ts';

// The Watch messages of etcd's api/etcdserverpb/rpc.proto (v3.6), by field number: only the fields
// that decide how a watch is shared and how its responses are routed are decoded; everything else
// in a response is copied as received.

/** Event filters of a WatchCreateRequest, as a bit set. */
export const Filter = { NOPUT: 1, NODELETE: 2 } as const;

const EMPTY = new Uint8Array(0);

/** Everything in a WatchCreateRequest that shapes the events a watch delivers, plus where it starts. */
export interface WatchSpec {
  key: Uint8Array;
  rangeEnd: Uint8Array;
  /** 0 for "from now". */
  startRevision: number;
  progressNotify: boolean;
  /** Filter bits (NOPUT, NODELETE); unknown filter values are ignored, as etcd ignores them. */
  filters: number;
  prevKv: boolean;
  fragment: boolean;
}

export type WatchRequest =
  | { kind: 'create'; spec: WatchSpec; /** 0 asks the server to choose. */ watchId: number }
  | { kind: 'cancel'; watchId: number }
  | { kind: 'progress' }
  /** A WatchRequest with no known request in it; etcd ignores those. */
  | { kind: 'none' };

/** Decodes one WatchRequest message. Throws MalformedMessage when it does not decode. */
export function decodeWatchRequest(msg: Uint8Array): WatchRequest {
  let result: WatchRequest = { kind: 'none' };
  for (const f of readFields(msg)) {
    // A oneof: the last member on the wire wins.
    if (f.num === 1 && f.bytes !== undefined) result = decodeCreate(f.bytes);
    else if (f.num === 2 && f.bytes !== undefined) result = { kind: 'cancel', watchId: int64(readFields(f.bytes).findLast((c) => c.num === 1 && c.wireType === 0)) };
    else if (f.num === 3 && f.bytes !== undefined) result = { kind: 'progress' };
  }
  return result;
}

function decodeCreate(bytes: Uint8Array): WatchRequest {
  const spec: WatchSpec = { key: EMPTY, rangeEnd: EMPTY, startRevision: 0, progressNotify: false, filters: 0, prevKv: false, fragment: false };
  let watchId = 0;
  for (const f of readFields(bytes)) {
    switch (f.num) {
      case 1: spec.key = lengthDelimited(f, 'key'); break;
      case 2: spec.rangeEnd = lengthDelimited(f, 'range_end'); break;
      case 3: spec.startRevision = int64(varintField(f, 'start_revision')); break;
      case 4: spec.progressNotify = varintField(f, 'progress_notify').varint !== 0n; break;
      case 5: spec.filters |= filterBits(f); break;
      case 6: spec.prevKv = varintField(f, 'prev_kv').varint !== 0n; break;
      case 7: watchId = int64(varintField(f, 'watch_id')); break;
      case 8: spec.fragment = varintField(f, 'fragment').varint !== 0n; break;
    }
  }
  return { kind: 'create', spec, watchId };
}

/** A repeated enum, packed (wire type 2) or not (wire type 0). */
function filterBits(f: WireField): number {
  const values: bigint[] = [];
  if (f.wireType === 0) values.push(f.varint!);
  else if (f.wireType === 2) {
    let v = 0n;
    let shift = 0n;
    for (const b of f.bytes!) {
      v |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if ((b & 0x80) === 0) {
        values.push(v);
        v = 0n;
        shift = 0n;
      }
    }
    if (shift !== 0n) throw new MalformedMessage('truncated packed filters');
  } else throw new MalformedMessage('filters has the wrong wire type');
  let bits = 0;
  for (const v of values) {
    if (v === 0n) bits |= Filter.NOPUT;
    else if (v === 1n) bits |= Filter.NODELETE;
  }
  return bits;
}

function lengthDelimited(f: WireField, name: string): Uint8Array {
  if (f.bytes === undefined) throw new MalformedMessage(`${name} has the wrong wire type`);
  return f.bytes;
}

function varintField(f: WireField, name: string): WireField {
  if (f.varint === undefined) throw new MalformedMessage(`${name} has the wrong wire type`);
  return f;
}

/** A WatchRequest with one create_request for spec from startRevision, the server choosing the watch ID. */
export function encodeCreateRequest(spec: WatchSpec, startRevision: number): Buffer {
  const w = new MessageWriter();
  if (spec.key.length > 0) w.bytesField(1, spec.key);
  if (spec.rangeEnd.length > 0) w.bytesField(2, spec.rangeEnd);
  if (startRevision !== 0) w.varint(3, startRevision);
  if (spec.progressNotify) w.varint(4, true);
  if ((spec.filters & Filter.NOPUT) !== 0) w.varint(5, 0);
  if ((spec.filters & Filter.NODELETE) !== 0) w.varint(5, 1);
  if (spec.prevKv) w.varint(6, true);
  if (spec.fragment) w.varint(8, true);
  return new MessageWriter().bytesField(1, w.finish()).finish();
}

/** WatchRequest{progress_request: {}}. */
export const PROGRESS_REQUEST: Buffer = new MessageWriter().bytesField(3, EMPTY).finish();

/** A WatchResponse as the proxy routes it. */
export interface WatchResponse {
  /** The ResponseHeader message as received (cluster, member, revision, raft term). */
  header: Uint8Array | undefined;
  /** The header's revision. */
  revision: number;
  watchId: number;
  created: boolean;
  canceled: boolean;
  compactRevision: number;
  fragment: boolean;
  /** How many events it carries. */
  events: number;
  /** The mod_revision of its last event (0 without events). */
  lastEventRevision: number;
  /** The message's fields, to re-encode it with another watch ID. */
  fields: WireField[];
  bytes: Uint8Array;
}

/** Decodes one WatchResponse message. Throws MalformedMessage when it does not decode. */
export function decodeWatchResponse(bytes: Uint8Array): WatchResponse {
  const fields = readFields(bytes);
  const r: WatchResponse = {
    header: undefined, revision: 0, watchId: 0, created: false, canceled: false, compactRevision: 0, fragment: false,
    events: 0, lastEventRevision: 0, fields, bytes,
  };
  let lastEvent: Uint8Array | undefined;
  for (const f of fields) {
    switch (f.num) {
      case 1: r.header = f.bytes; break;
      case 2: r.watchId = int64(f); break;
      case 3: r.created = f.varint !== undefined && f.varint !== 0n; break;
      case 4: r.canceled = f.varint !== undefined && f.varint !== 0n; break;
      case 5: r.compactRevision = int64(f); break;
      case 7: r.fragment = f.varint !== undefined && f.varint !== 0n; break;
      case 11:
        r.events++;
        lastEvent = f.bytes;
        break;
    }
  }
  if (r.header !== undefined) r.revision = headerRevision(r.header);
  if (lastEvent !== undefined) r.lastEventRevision = eventRevision(lastEvent);
  return r;
}

/** The revision (field 3) of a ResponseHeader. */
export function headerRevision(header: Uint8Array): number {
  return int64(readFields(header).findLast((f) => f.num === 3 && f.wireType === 0));
}

/** An Event's kv.mod_revision. */
function eventRevision(event: Uint8Array): number {
  const kv = readFields(event).findLast((f) => f.num === 2 && f.bytes !== undefined);
  if (kv === undefined) return 0;
  return int64(readFields(kv.bytes!).findLast((f) => f.num === 3 && f.wireType === 0));
}

/** The response re-encoded with another watch ID; every other field is copied as received. */
export function withWatchId(r: WatchResponse, watchId: number): Uint8Array {
  if (r.watchId === watchId) return r.bytes;
  const w = new MessageWriter();
  if (watchId !== 0) w.varint(2, watchId);
  for (const f of r.fields) if (f.num !== 2) w.copy(r.bytes.subarray(f.start, f.end));
  return w.finish();
}

/**
 * Whether a response carries nothing but its header, its watch ID and whole revisions of events, so
 * that it may be merged with the next responses of its watch (mergeEvents). A fragment, a progress
 * notification, a created or canceled response, and any field this proxy does not know stay whole.
 */
export function mergeable(r: WatchResponse): boolean {
  if (r.events === 0 || r.fragment) return false;
  for (const f of r.fields) if (f.num !== 1 && f.num !== 2 && f.num !== 11) return false;
  return true;
}

/**
 * One response holding the events of several mergeable responses of one watch, in order, under the
 * newest header: what etcd itself sends a watcher that fell behind (its events batched by revision).
 */
export function mergeEvents(responses: readonly WatchResponse[], watchId: number): Buffer {
  const w = new MessageWriter();
  const header = responses.findLast((r) => r.header !== undefined)?.header;
  if (header !== undefined) w.bytesField(1, header);
  if (watchId !== 0) w.varint(2, watchId);
  for (const r of responses) for (const f of r.fields) if (f.num === 11) w.copy(r.bytes.subarray(f.start, f.end));
  return w.finish();
}

/** A response the proxy writes itself (created, canceled or a progress notification). */
export interface OwnResponse {
  header: Uint8Array | undefined;
  watchId: number;
  created?: boolean;
  canceled?: boolean;
  compactRevision?: number;
  cancelReason?: string;
}

export function encodeWatchResponse(r: OwnResponse): Buffer {
  const w = new MessageWriter();
  if (r.header !== undefined) w.bytesField(1, r.header);
  if (r.watchId !== 0) w.varint(2, r.watchId);
  if (r.created) w.varint(3, true);
  if (r.canceled) w.varint(4, true);
  if (r.compactRevision) w.varint(5, r.compactRevision);
  if (r.cancelReason) w.bytesField(6, Buffer.from(r.cancelReason, 'utf8'));
  return w.finish();
}

/** etcd's normalisation before a watch is registered: an empty key is "\0", range_end "\0" means every key from key on. */
export function specKey(spec: WatchSpec): string {
  const key = spec.key.length === 0 ? '00' : Buffer.from(spec.key).toString('hex');
  return `${key}/${Buffer.from(spec.rangeEnd).toString('hex')}/${spec.filters}/${spec.prevKv ? 1 : 0}/${spec.progressNotify ? 1 : 0}/${spec.fragment ? 1 : 0}`;
}
