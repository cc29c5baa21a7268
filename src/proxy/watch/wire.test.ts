import { describe, expect, it } from 'vitest';
import { MalformedMessage, MessageWriter } from '../protobuf.ts';
import { decodeWatchRequest, decodeWatchResponse, encodeCreateRequest, encodeWatchResponse, Filter, mergeable, mergeEvents, specKey, withWatchId, type WatchSpec } from './wire.ts';

const base: WatchSpec = { key: Buffer.from('a'), rangeEnd: Buffer.from('b'), startRevision: 7, progressNotify: true, filters: Filter.NODELETE, prevKv: true, fragment: true };

describe('watch wire format', () => {
  it('round-trips a create request through its encoding', () => {
    const r = decodeWatchRequest(encodeCreateRequest(base, 7));
    if (r.kind !== 'create') throw new Error(`decoded as ${r.kind}`);
    expect({ ...r.spec, key: Buffer.from(r.spec.key).toString(), rangeEnd: Buffer.from(r.spec.rangeEnd).toString() }).toEqual({ ...base, key: 'a', rangeEnd: 'b' });
    expect(r.watchId).toBe(0);
  });

  it('reads filters packed and unpacked, ignoring unknown values', () => {
    const packed = new MessageWriter().bytesField(1, Buffer.from('k')).bytesField(5, Uint8Array.from([0, 1, 9])).finish();
    const unpacked = new MessageWriter().bytesField(1, Buffer.from('k')).varint(5, 1).finish();
    const req = (m: Uint8Array) => decodeWatchRequest(new MessageWriter().bytesField(1, m).finish());
    expect(req(packed)).toMatchObject({ spec: { filters: Filter.NOPUT | Filter.NODELETE } });
    expect(req(unpacked)).toMatchObject({ spec: { filters: Filter.NODELETE } });
  });

  it('decodes cancel and progress requests, and refuses bytes that are not a message', () => {
    expect(decodeWatchRequest(new MessageWriter().bytesField(2, new MessageWriter().varint(1, 3).finish()).finish())).toEqual({ kind: 'cancel', watchId: 3 });
    expect(decodeWatchRequest(Uint8Array.from([0x1a, 0]))).toEqual({ kind: 'progress' });
    expect(() => decodeWatchRequest(Uint8Array.from([0x0a, 5, 1]))).toThrow(MalformedMessage);
  });

  it('re-encodes a response with another watch ID, copying every other field', () => {
    const header = new MessageWriter().varint(3, 42).finish();
    const r = decodeWatchResponse(encodeWatchResponse({ header, watchId: -1, canceled: true, compactRevision: 5, cancelReason: 'why' }));
    expect(r).toMatchObject({ watchId: -1, revision: 42, canceled: true, compactRevision: 5 });
    const moved = decodeWatchResponse(withWatchId(r, 9));
    expect(moved).toMatchObject({ watchId: 9, revision: 42, canceled: true, compactRevision: 5 });
    expect(decodeWatchResponse(withWatchId(moved, 0)).watchId).toBe(0);
  });

  it('keys specs by every field that shapes events, with etcd’s empty-key normalisation', () => {
    const k = specKey(base);
    expect(specKey({ ...base, startRevision: 99 })).toBe(k);
    for (const change of [{ prevKv: false }, { filters: 0 }, { fragment: false }, { progressNotify: false }, { rangeEnd: Buffer.from('c') }]) {
      expect(specKey({ ...base, ...change })).not.toBe(k);
    }
    expect(specKey({ ...base, key: new Uint8Array(0) })).toBe(specKey({ ...base, key: Uint8Array.from([0]) }));
  });
  it('merges event responses of one watch into one, in order, under the newest header; other responses stay whole', () => {
    const event = (rev: number) => new MessageWriter().bytesField(2, new MessageWriter().bytesField(1, Buffer.from(`k${rev}`)).varint(3, rev).finish()).finish();
    const response = (rev: number, events: number[], more: (w: MessageWriter) => void = () => {}) => {
      const w = new MessageWriter().bytesField(1, new MessageWriter().varint(3, rev).finish()).varint(2, 4);
      for (const e of events) w.bytesField(11, event(e));
      more(w);
      return decodeWatchResponse(w.finish());
    };
    const a = response(5, [4, 5]);
    const b = response(7, [7]);
    expect([a, b].map(mergeable)).toEqual([true, true]);
    const merged = decodeWatchResponse(mergeEvents([a, b], 9));
    expect(merged).toMatchObject({ watchId: 9, revision: 7, events: 3, lastEventRevision: 7, fragment: false });
    expect(merged.fields.filter((f) => f.num === 11).map((f) => Buffer.from(f.bytes!))).toEqual([event(4), event(5), event(7)].map((e) => Buffer.from(e)));
    expect(decodeWatchResponse(mergeEvents([a], 0)).watchId).toBe(0);
    // A fragment, a response without events, and one with a field this proxy does not know stay whole.
    expect(mergeable(response(8, [8], (w) => w.varint(7, true)))).toBe(false);
    expect(mergeable(response(8, []))).toBe(false);
    expect(mergeable(response(8, [8], (w) => w.varint(15, 1)))).toBe(false);
    expect(mergeable(decodeWatchResponse(encodeWatchResponse({ header: undefined, watchId: 4, canceled: true })))).toBe(false);
  });
});
