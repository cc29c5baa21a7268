import { describe, expect, it } from 'vitest';
import { MessageWriter } from '../protobuf.ts';
import { Coalescer, DUPLICATE_ID, MAX_BACKLOG, type CoalescerPorts, type Scope } from './coalescer.ts';
import { decodeWatchRequest, decodeWatchResponse, encodeCreateRequest, encodeWatchResponse, PROGRESS_REQUEST, withWatchId, type WatchResponse, type WatchSpec } from './wire.ts';

const scope: Scope = { key: '[]', headers: [] };
const other: Scope = { key: '["authorization","t2"]', headers: ['authorization', 't2'] };

function spec(key: string, more: Partial<WatchSpec> = {}): WatchSpec {
  return { key: Buffer.from(key), rangeEnd: new Uint8Array(0), startRevision: 0, progressNotify: false, filters: 0, prevKv: false, fragment: false, ...more };
}

const create = (key: string, more: Partial<WatchSpec> = {}): Uint8Array => encodeCreateRequest(spec(key, more), more.startRevision ?? 0);
const cancel = (id: number): Uint8Array => new MessageWriter().bytesField(2, new MessageWriter().varint(1, id).finish()).finish();
const header = (revision: number): Uint8Array => new MessageWriter().varint(1, 7).varint(2, 9).varint(3, revision).varint(4, 2).finish();
const created = (revision: number, watchId = 0): Uint8Array => encodeWatchResponse({ header: header(revision), watchId, created: true });
const progress = (revision: number): Uint8Array => encodeWatchResponse({ header: header(revision), watchId: -1 });

/** A WatchResponse with one PUT event per revision given. */
function events(...revisions: number[]): Uint8Array {
  const w = new MessageWriter().bytesField(1, header(revisions.at(-1)!));
  for (const rev of revisions) {
    const kv = new MessageWriter().bytesField(1, Buffer.from('k')).varint(3, rev).bytesField(5, Buffer.from(`v${rev}`)).finish();
    w.bytesField(11, new MessageWriter().bytesField(2, kv).finish());
  }
  return w.finish();
}

class Client {
  readonly got: WatchResponse[] = [];
  ended: { code: number; message: string } | undefined;
}

class FakePorts implements CoalescerPorts<Client> {
  readonly opened: { group: number; create: Uint8Array; scope: Scope }[] = [];
  readonly progressAsked: number[] = [];
  readonly closed: number[] = [];
  openUpstream(group: number, create: Uint8Array, s: Scope): void {
    this.opened.push({ group, create, scope: s });
  }
  requestProgress(group: number): void {
    this.progressAsked.push(group);
  }
  closeUpstream(group: number): void {
    this.closed.push(group);
  }
  send(stream: Client, message: Uint8Array): void {
    stream.got.push(decodeWatchResponse(message));
  }
  sendEvents(stream: Client, watchId: number, r: WatchResponse): void {
    this.send(stream, withWatchId(r, watchId));
  }
  end(stream: Client, code: number, message: string): void {
    stream.ended = { code, message };
  }
}

function setup() {
  const ports = new FakePorts();
  const clock = { ms: 0 };
  const core = new Coalescer<Client>(ports, { now: () => clock.ms, progressWaitMs: 10_000 });
  const client = (s: Scope = scope) => {
    const c = new Client();
    return { c, ref: core.openStream(c, s) };
  };
  return { ports, core, client, clock };
}

const brief = (r: WatchResponse) => ({ id: r.watchId, rev: r.revision, created: r.created, canceled: r.canceled, events: r.events, last: r.lastEventRevision });

describe('Coalescer', () => {
  it('serves identical watches from now with one upstream watch; a joiner starts at the progress answer sent after it asked', () => {
    const { ports, core, client } = setup();
    const a = client();
    const b = client();
    core.request(a.ref, create('k'));
    expect(ports.opened).toHaveLength(1);
    core.upstreamResponse(1, created(10));
    expect(a.c.got.map(brief)).toEqual([{ id: 0, rev: 10, created: true, canceled: false, events: 0, last: 0 }]);

    core.request(b.ref, create('k'));
    expect(ports.opened).toHaveLength(1);
    expect(ports.progressAsked).toEqual([1]);
    // An event the member sent before answering reaches only the watch already there.
    core.upstreamResponse(1, events(11));
    core.upstreamResponse(1, progress(12));
    core.upstreamResponse(1, events(13));
    expect(a.c.got.map((r) => r.lastEventRevision).filter(Boolean)).toEqual([11, 13]);
    expect(b.c.got.map(brief)).toEqual([
      { id: 0, rev: 12, created: true, canceled: false, events: 0, last: 0 },
      { id: 0, rev: 13, created: false, canceled: false, events: 1, last: 13 },
    ]);
    expect(core.clientWatches).toBe(2);
    expect(core.upstreamWatches).toBe(1);
    expect(core.coalescedEvents).toBe(1);
  });

  it('gives each client its own watch ID on its stream', () => {
    const { core, client } = setup();
    const a = client();
    const b = client();
    core.request(a.ref, create('x'));
    core.request(a.ref, create('k'));
    core.request(b.ref, create('k'));
    core.upstreamResponse(1, created(5));
    core.upstreamResponse(2, created(5));
    core.upstreamResponse(2, progress(5));
    core.upstreamResponse(2, events(6));
    expect(a.c.got.filter((r) => r.events > 0).map((r) => r.watchId)).toEqual([1]);
    expect(b.c.got.filter((r) => r.events > 0).map((r) => r.watchId)).toEqual([0]);
  });

  it('keeps watches apart that differ in a field that shapes events, or in scope', () => {
    const { ports, core, client } = setup();
    core.request(client().ref, create('k'));
    core.request(client().ref, create('k', { prevKv: true }));
    core.request(client().ref, create('k', { filters: 1 }));
    core.request(client().ref, create('k', { rangeEnd: Buffer.from('l') }));
    core.request(client().ref, create('k', { fragment: true }));
    core.request(client().ref, create('k', { progressNotify: true }));
    core.request(client(other).ref, create('k'));
    expect(ports.opened).toHaveLength(7);
    expect(ports.opened[6]!.scope).toBe(other);
  });

  it('answers a cancel to that client only, and closes the upstream watch with the last one', () => {
    const { ports, core, client } = setup();
    const a = client();
    const b = client();
    core.request(a.ref, create('k'));
    core.upstreamResponse(1, created(10));
    core.request(b.ref, create('k'));
    core.upstreamResponse(1, progress(10));
    core.request(a.ref, cancel(0));
    expect(a.c.got.at(-1)).toMatchObject({ watchId: 0, canceled: true, revision: 10 });
    core.upstreamResponse(1, events(11));
    expect(a.c.got.filter((r) => r.events > 0)).toHaveLength(0);
    expect(b.c.got.filter((r) => r.events > 0)).toHaveLength(1);
    expect(ports.closed).toEqual([]);
    core.request(b.ref, cancel(0));
    expect(ports.closed).toEqual([1]);
    expect(core.clientWatches).toBe(0);
    expect(core.upstreamWatches).toBe(0);
    // Cancelling an unknown watch ID answers nothing, as etcd does.
    core.request(b.ref, cancel(5));
    expect(b.c.got.at(-1)).toMatchObject({ canceled: true, watchId: 0 });
  });

  it('lets a watch from an explicit revision join only when provably equivalent', () => {
    const { ports, core, client } = setup();
    core.request(client().ref, create('k'));
    core.upstreamResponse(1, created(10));
    core.upstreamResponse(1, events(11));
    const next = client();
    core.request(next.ref, create('k', { startRevision: 13 }));
    core.upstreamResponse(1, progress(12));
    expect(next.c.got.map(brief)).toEqual([{ id: 0, rev: 12, created: true, canceled: false, events: 0, last: 0 }]);

    // Start 11: the event at 11 was delivered already; start 5: compaction or older events may matter.
    const again = client();
    const old = client();
    core.request(again.ref, create('k', { startRevision: 11 }));
    core.request(old.ref, create('k', { startRevision: 5 }));
    core.upstreamResponse(1, progress(12));
    core.upstreamResponse(1, progress(12)); // old arrived while the request for again was in flight
    const starts = ports.opened.map((o) => decodeWatchRequest(o.create)).map((r) => (r.kind === 'create' ? r.spec.startRevision : undefined));
    expect(starts).toEqual([0, 11, 5]);
    expect(again.c.got).toEqual([]);
  });

  it('does not let a watch from now join a group that starts in the future', () => {
    const { ports, core, client } = setup();
    core.request(client().ref, create('k', { startRevision: 100 }));
    core.upstreamResponse(1, created(50));
    core.request(client().ref, create('k'));
    core.upstreamResponse(1, progress(50));
    expect(ports.opened).toHaveLength(2);
  });

  it('answers a client progress request from an upstream answer to a request sent after it', () => {
    const { ports, core, client } = setup();
    const a = client();
    core.request(a.ref, create('k'));
    core.upstreamResponse(1, created(10));
    core.request(client().ref, create('k')); // progress request 1 in flight
    core.request(a.ref, PROGRESS_REQUEST);
    expect(ports.progressAsked).toEqual([1]);
    core.upstreamResponse(1, progress(11));
    expect(a.c.got.filter((r) => r.watchId === -1)).toEqual([]);
    expect(ports.progressAsked).toEqual([1, 1]);
    core.upstreamResponse(1, events(12));
    core.upstreamResponse(1, progress(12));
    expect(a.c.got.map(brief).slice(-2)).toEqual([
      { id: 0, rev: 12, created: false, canceled: false, events: 1, last: 12 },
      { id: -1, rev: 12, created: false, canceled: false, events: 0, last: 0 },
    ]);
    // A member progress answer nobody waits for reaches no client.
    core.upstreamResponse(1, progress(13));
    expect(a.c.got.filter((r) => r.watchId === -1)).toHaveLength(1);
  });

  it('takes a progress answer with the watch’s own ID (etcd before 3.6) as the answer, and forwards progress_notify ones', () => {
    const { core, client } = setup();
    const a = client();
    const b = client();
    core.request(a.ref, create('k'));
    core.upstreamResponse(1, created(10, 3));
    core.request(b.ref, create('k'));
    core.upstreamResponse(1, encodeWatchResponse({ header: header(11), watchId: 3 }));
    expect(b.c.got.map(brief)).toEqual([{ id: 0, rev: 11, created: true, canceled: false, events: 0, last: 0 }]);
    expect(a.c.got).toHaveLength(1);
    const n = client();
    core.request(n.ref, create('k', { progressNotify: true }));
    core.upstreamResponse(2, created(11, 4));
    core.upstreamResponse(2, encodeWatchResponse({ header: header(12), watchId: 4 }));
    expect(n.c.got.map(brief).at(-1)).toEqual({ id: 0, rev: 12, created: false, canceled: false, events: 0, last: 0 });
  });

  it('answers progress for a stream with watches in two groups with the lower revision, after both', () => {
    const { core, client } = setup();
    const a = client();
    core.request(a.ref, create('k'));
    core.request(a.ref, create('j'));
    core.upstreamResponse(1, created(10));
    core.upstreamResponse(2, created(10));
    core.request(a.ref, PROGRESS_REQUEST);
    core.upstreamResponse(2, progress(15));
    expect(a.c.got.filter((r) => r.watchId === -1)).toEqual([]);
    core.upstreamResponse(1, progress(14));
    expect(a.c.got.filter((r) => r.watchId === -1).map((r) => r.revision)).toEqual([14]);
  });

  it('passes a compaction that ends the upstream watch to every client on it, each with its ID', () => {
    const { core, client } = setup();
    const a = client();
    const b = client();
    core.request(b.ref, create('x'));
    core.request(a.ref, create('k'));
    core.request(b.ref, create('k'));
    core.upstreamResponse(1, created(10));
    core.upstreamResponse(2, created(10));
    core.upstreamResponse(2, progress(10));
    core.upstreamResponse(2, encodeWatchResponse({ header: header(20), watchId: 0, canceled: true, compactRevision: 15 }));
    expect(a.c.got.at(-1)).toMatchObject({ watchId: 0, canceled: true, compactRevision: 15 });
    expect(b.c.got.at(-1)).toMatchObject({ watchId: 1, canceled: true, compactRevision: 15 });
    expect(core.upstreamWatches).toBe(1);
  });

  it('gives a refused create (a compacted start revision) to that client only', () => {
    const { ports, core, client } = setup();
    const a = client();
    const old = client();
    core.request(a.ref, create('k'));
    core.upstreamResponse(1, created(10));
    core.request(old.ref, create('k', { startRevision: 2 }));
    core.upstreamResponse(1, progress(10));
    core.upstreamResponse(2, encodeWatchResponse({ header: header(10), watchId: -1, created: true, canceled: true, compactRevision: 8, cancelReason: 'mvcc: required revision has been compacted' }));
    expect(old.c.got.map(brief)).toEqual([{ id: 0, rev: 10, created: true, canceled: true, events: 0, last: 0 }]);
    expect(old.c.got[0]!.compactRevision).toBe(8);
    expect(ports.closed).toEqual([2]);
    core.upstreamResponse(1, events(11));
    expect(a.c.got.at(-1)!.events).toBe(1);
    expect(old.c.got).toHaveLength(1);
  });

  it('ends every client stream with a watch on a failed upstream watch, and only those', () => {
    const { ports, core, client } = setup();
    const a = client();
    const b = client();
    const c = client();
    core.request(a.ref, create('k'));
    core.upstreamResponse(1, created(3));
    core.request(a.ref, create('only-a'));
    core.request(b.ref, create('k'));
    core.request(c.ref, create('x'));
    core.upstreamFailed(1, 14, 'connection to etcd member m was lost');
    expect(a.c.ended).toEqual({ code: 14, message: 'connection to etcd member m was lost' });
    expect(b.c.ended).toEqual(a.c.ended);
    expect(c.c.ended).toBeUndefined();
    expect(ports.closed).toEqual([2]); // a's other watch went with its stream
    expect(core.clientWatches).toBe(1);
  });

  it('refuses a watch ID the stream already has, with etcd’s words', () => {
    const { core, client } = setup();
    const a = client();
    const withId = (id: number) => new MessageWriter().bytesField(1, new MessageWriter().bytesField(1, Buffer.from('k')).varint(7, id).finish()).finish();
    core.request(a.ref, withId(4));
    core.request(a.ref, withId(4));
    expect(a.c.got).toEqual([]); // the second waits for the first to be answered, as in etcd
    core.upstreamResponse(1, created(3));
    expect(a.c.got.map((r) => ({ watchId: r.watchId, created: r.created, canceled: r.canceled }))).toEqual([
      { watchId: 4, created: true, canceled: false },
      { watchId: -1, created: true, canceled: true },
    ]);
    expect(Buffer.from(a.c.got.at(-1)!.bytes).toString()).toContain(DUPLICATE_ID);
  });

  it('ends a stream that sends more than MAX_BACKLOG requests while a create is being answered', () => {
    const { core, client } = setup();
    const a = client();
    for (let i = 0; i <= MAX_BACKLOG; i++) core.request(a.ref, create(`k${i}`));
    expect(a.c.ended).toBeUndefined();
    core.request(a.ref, create('one-more'));
    expect(a.c.ended?.code).toBe(8);
    expect(a.c.ended?.message).toMatch(/more than 1000 watch requests waited/);
    expect(core.clientWatches).toBe(0);
    expect(core.upstreamWatches).toBe(0);
  });

  it('answers creates sent without waiting in the order they were sent, whichever upstream answers first', () => {
    const { core, client } = setup();
    const first = client();
    core.request(first.ref, create('k'));
    core.upstreamResponse(1, created(3));
    const a = client();
    // 'k' joins group 1 and waits for its progress answer; 'x' would found group 2 and be answered at once.
    core.request(a.ref, create('k'));
    core.request(a.ref, create('x'));
    core.request(a.ref, new MessageWriter().bytesField(2, new MessageWriter().varint(1, 0).finish()).finish()); // cancel watch 0
    expect(core.upstreamWatches).toBe(1); // 'x' waits behind 'k'
    core.upstreamResponse(1, progress(5));
    core.upstreamResponse(2, created(5));
    expect(a.c.got.map((r) => ({ watchId: r.watchId, created: r.created, canceled: r.canceled }))).toEqual([
      { watchId: 0, created: true, canceled: false },
      { watchId: 1, created: true, canceled: false },
      { watchId: 0, created: false, canceled: true },
    ]);
  });

  it('forgets a client stream that went away; its group closes when it was the last', () => {
    const { ports, core, client } = setup();
    const a = client();
    core.request(a.ref, create('k'));
    core.upstreamResponse(1, created(3));
    core.closeStream(a.ref);
    expect(ports.closed).toEqual([1]);
    core.request(a.ref, create('k'));
    expect(ports.opened).toHaveLength(1);
  });

  describe('a member that leaves a progress request unanswered', () => {
    it('gives a joiner that waited the progress wait a new group of its own; the group it waited on takes no more joiners', () => {
      const { ports, core, client, clock } = setup();
      const a = client();
      core.request(a.ref, create('k'));
      core.upstreamResponse(1, created(10));
      const b = client();
      clock.ms = 1000;
      core.request(b.ref, create('k'));
      expect(ports.progressAsked).toEqual([1]);
      clock.ms = 10_999;
      core.expireProgress();
      expect(ports.opened).toHaveLength(1);
      clock.ms = 11_000;
      core.expireProgress();
      // b founds group 2 (a create of its own), a stays on group 1.
      expect(ports.opened.map((o) => o.group)).toEqual([1, 2]);
      expect(ports.closed).toEqual([]);
      core.upstreamResponse(2, created(12));
      expect(b.c.got.map(brief)).toEqual([{ id: 0, rev: 12, created: true, canceled: false, events: 0, last: 0 }]);
      // A late answer from group 1 serves nobody; events still reach a there, and b on its own group.
      core.upstreamResponse(1, progress(11));
      core.upstreamResponse(1, events(13));
      core.upstreamResponse(2, events(13));
      expect(a.c.got.filter((r) => r.events > 0)).toHaveLength(1);
      expect(b.c.got.filter((r) => r.events > 0)).toHaveLength(1);
      // The next identical watch joins b's group, which answers, not the one that did not.
      const c = client();
      core.request(c.ref, create('k'));
      expect(ports.progressAsked).toEqual([1, 2]);
      core.upstreamResponse(2, progress(13));
      expect(c.c.got.map(brief)).toEqual([{ id: 0, rev: 13, created: true, canceled: false, events: 0, last: 0 }]);
      expect(core.upstreamWatches).toBe(2);
      expect(core.clientWatches).toBe(3);
    });

    it('also expires a joiner queued behind the unanswered request, and one waiting for a group that never opened', () => {
      const { ports, core, client, clock } = setup();
      core.request(client().ref, create('k'));
      const early = client();
      core.request(early.ref, create('k')); // waits for the created response, which never comes
      core.request(client().ref, create('j'));
      core.upstreamResponse(2, created(10));
      core.request(client().ref, create('j')); // progress request in flight on group 2
      clock.ms = 5000;
      const queued = client();
      core.request(queued.ref, create('j')); // queued behind it
      clock.ms = 10_000;
      core.expireProgress();
      // The first joiner of j and early waited 10 s: each founds a group; the queued one waits on.
      expect(ports.opened.map((o) => o.group)).toEqual([1, 2, 3, 4]);
      clock.ms = 15_000;
      core.expireProgress();
      // The queued one joins j's new group (3), which was shared once 2 stopped taking joiners.
      expect(ports.opened).toHaveLength(4);
      expect(ports.progressAsked).toEqual([2]);
      core.upstreamResponse(4, created(11));
      expect(ports.progressAsked).toEqual([2, 4]);
      core.upstreamResponse(4, progress(11));
      expect(queued.c.got.map(brief)).toEqual([{ id: 0, rev: 11, created: true, canceled: false, events: 0, last: 0 }]);
    });

    it('ends a client stream whose progress request waited the progress wait with UNAVAILABLE and the reason; other streams go on', () => {
      const { ports, core, client, clock } = setup();
      const a = client();
      const b = client();
      core.request(a.ref, create('k'));
      core.request(a.ref, create('j'));
      core.request(b.ref, create('j'));
      core.upstreamResponse(1, created(10));
      core.upstreamResponse(2, created(10));
      core.upstreamResponse(2, progress(10));
      core.request(a.ref, PROGRESS_REQUEST);
      core.upstreamResponse(2, progress(11)); // group 2 answers, group 1 never does
      clock.ms = 10_000;
      core.expireProgress();
      expect(a.c.ended?.code).toBe(14);
      expect(a.c.ended?.message).toMatch(/did not answer a progress request within 10s.*watch again from the revision after the last event received/);
      expect(a.c.got.filter((r) => r.watchId === -1)).toEqual([]);
      expect(b.c.ended).toBeUndefined();
      expect(ports.closed).toEqual([1]); // a was group 1's only watch
      core.upstreamResponse(2, events(12));
      expect(b.c.got.filter((r) => r.events > 0)).toHaveLength(1);
      expect(core.clientWatches).toBe(1);
    });

    it('expires nothing that was answered in time', () => {
      const { ports, core, client, clock } = setup();
      const a = client();
      core.request(a.ref, create('k'));
      core.upstreamResponse(1, created(10));
      core.request(client().ref, create('k'));
      core.request(a.ref, PROGRESS_REQUEST);
      clock.ms = 9_999;
      core.upstreamResponse(1, progress(10));
      core.upstreamResponse(1, progress(10));
      clock.ms = 60_000;
      core.expireProgress();
      expect(ports.opened).toHaveLength(1);
      expect(a.c.ended).toBeUndefined();
      expect(a.c.got.filter((r) => r.watchId === -1)).toHaveLength(1);
    });
  });
});
