import { Status } from '../grpc-status.ts';
import {
  decodeWatchRequest, decodeWatchResponse, encodeCreateRequest, encodeWatchResponse, specKey, withWatchId,
  type WatchRequest, type WatchResponse, type WatchSpec,
} from './wire.ts';

/**
 * The client's credentials and call options that reach the member with a watch (authorization
 * token, hasleader): watches are shared only between clients whose scope is the same, so a member
 * checks every shared watch's permission exactly as it would have checked each client's.
 */
export interface Scope {
  /** Equal for equal scopes. */
  key: string;
  /** The headers, as [name, value, ...], that the upstream watch carries. */
  headers: readonly string[];
}

/** What the coalescer does to the world; the shell implements it with HTTP/2 streams. */
export interface CoalescerPorts<S> {
  /** Opens the upstream watch of group: a Watch stream to a member, sending create (one WatchRequest) first. */
  openUpstream(group: number, create: Uint8Array, scope: Scope): void;
  /** Sends a WatchProgressRequest on the group's upstream stream. */
  requestProgress(group: number): void;
  /** Closes the group's upstream stream (the member cancels its watch). */
  closeUpstream(group: number): void;
  /** Sends one WatchResponse message to a client stream. */
  send(stream: S, message: Uint8Array): void;
  /**
   * Sends a response of the group's upstream watch (its events, or a progress notification) to a
   * client stream, as the response of the client's watch watchId. The shell may merge consecutive
   * event responses of one watch that wait for the same client (wire.ts mergeable).
   */
  sendEvents(stream: S, watchId: number, r: WatchResponse): void;
  /** Ends a client stream with a gRPC status (its watches are already gone from the coalescer). */
  end(stream: S, code: number, message: string): void;
}

/** etcd's own words when a client asks for a watch ID its stream already has (mvcc.ErrWatcherDuplicateID). */
export const DUPLICATE_ID = 'mvcc: duplicate watch ID provided on the WatchStream';

type WatchState = 'founding' | 'joining' | 'active' | 'gone';

interface ClientWatch<S> {
  kind: 'watch';
  stream: ClientStream<S>;
  id: number;
  spec: WatchSpec;
  group: Group<S>;
  state: WatchState;
  /** When it began to wait for a progress answer to join (ms, the coalescer's clock). */
  askedAt: number;
}

/** A client's WatchProgressRequest, answered once every group its watches are in has reported progress since. */
interface ProgressAsk<S> {
  kind: 'progress';
  stream: ClientStream<S>;
  pending: Set<Group<S>>;
  revision: number;
  header: Uint8Array | undefined;
  done: boolean;
  /** When the client asked (ms, the coalescer's clock). */
  askedAt: number;
}

type Waiter<S> = ClientWatch<S> | ProgressAsk<S>;

export interface CoalescerOptions {
  /** Monotonic milliseconds (default performance.now). */
  now?: () => number;
  /** How long a joiner or a client's progress request waits for a group's progress answer (default PROGRESS_WAIT_MS). */
  progressWaitMs?: number;
}

/**
 * How long a member may leave a progress request unanswered before the coalescer stops waiting for
 * it (expireProgress). etcd answers within milliseconds once its watch is synced; a watch that stays
 * unsynced (a member far behind, or overloaded) may defer its answer for minutes. Long enough that a
 * loaded member's answer is not given up on, short enough that a client's create or progress
 * request is not left hanging.
 */
export const PROGRESS_WAIT_MS = 10_000;

/**
 * How many requests a client stream may send while one of its creates is being answered (see
 * request); clientv3 sends the next create only after the previous one is answered. Beyond it the
 * stream ends: the proxy credits a client's flow-control window as it reads, so this is what bounds
 * the memory a client that floods one stream with requests can take.
 */
export const MAX_BACKLOG = 1000;

/** One client Watch stream. */
export interface ClientStream<S> {
  readonly handle: S;
  readonly scope: Scope;
  watches: Map<number, ClientWatch<S>>;
  nextId: number;
  progress: ProgressAsk<S> | undefined;
  closed: boolean;
  /** The watch whose create is being answered: the stream's later requests wait for it (see request). */
  creating: ClientWatch<S> | undefined;
  /** Requests that arrived while a create was being answered, in order. */
  backlog: WatchRequest[];
}

/** One upstream watch and the client watches it serves. */
interface Group<S> {
  id: number;
  key: string;
  spec: WatchSpec;
  scope: Scope;
  state: 'opening' | 'open' | 'closed';
  /** The watch ID the member gave the upstream watch. */
  upstreamId: number;
  /** Every client watch in the group: the one that opened it, those joining and those receiving. */
  members: Set<ClientWatch<S>>;
  /** The client watches events go to. */
  receivers: Set<ClientWatch<S>>;
  /** Served by the answer to the progress request in flight (or, while opening, to the first one). */
  waiting: Waiter<S>[];
  /** Arrived while a progress request was in flight: served by the next one. */
  queued: Waiter<S>[];
  progressInFlight: boolean;
  /** The newest ResponseHeader from the member, and its revision. */
  header: Uint8Array | undefined;
  lastEventRevision: number;
  /** The first revision whose events the upstream watch delivers (known once it is created). */
  coversFrom: number;
}

/**
 * The pure core of watch coalescing: which client watch is served by which upstream watch, and what
 * each client sees. Client watches identical in everything that shapes their events (key,
 * range_end, filters, prev_kv, progress_notify, fragment) and in scope share one upstream watch.
 *
 * A client joins a group only at a point where the group's position is proven: the answer to a
 * WatchProgressRequest the proxy sends on the group's stream after the client asked. etcd answers
 * it (watch ID -1, revision P) only once its watch is synced, after every event up to P, so the
 * joining client's created response carries revision P and it receives exactly the events after P,
 * as from a watch of its own created at P. A watch from an explicit start revision S joins only
 * when nothing is lost or repeated and compaction cannot matter: no event at or after S was
 * delivered yet, S is P or P+1 (a compaction is never above the current revision P), and the group's
 * own watch started at or before S; any other gets an upstream watch of its own. A group that started
 * from a revision in the future is joined only once it is no longer ahead. A client's progress request is answered the same way, with the
 * lowest P over the groups of its watches, so it is true for every watch on its stream.
 */
export class Coalescer<S> {
  /** Events delivered to client watches that a member did not send separately for them. */
  coalescedEvents = 0;
  private readonly ports: CoalescerPorts<S>;
  private readonly groups = new Map<number, Group<S>>();
  /** The group a new watch with this scope and spec joins. */
  private readonly shared = new Map<string, Group<S>>();
  private nextGroup = 1;
  private watches = 0;
  private readonly resumable = new Set<ClientStream<S>>();
  private readonly now: () => number;
  private readonly progressWaitMs: number;

  constructor(ports: CoalescerPorts<S>, options: CoalescerOptions = {}) {
    this.ports = ports;
    this.now = options.now ?? (() => performance.now());
    this.progressWaitMs = options.progressWaitMs ?? PROGRESS_WAIT_MS;
  }

  /** Client watches open now (created or being created). */
  get clientWatches(): number {
    return this.watches;
  }

  /** Upstream watches open now. */
  get upstreamWatches(): number {
    return this.groups.size;
  }

  openStream(handle: S, scope: Scope): ClientStream<S> {
    return { handle, scope, watches: new Map(), nextId: 0, progress: undefined, closed: false, creating: undefined, backlog: [] };
  }

  /**
   * One WatchRequest from a client. Throws MalformedMessage when it does not decode. Like etcd,
   * which handles a stream's requests one after the other, a request that comes while a create on
   * the same stream is still being answered (a joiner waits for a progress answer, a new group for
   * the member) waits for it: created responses leave in the order of their requests, which clients
   * that send several creates without waiting match their watches by.
   */
  request(stream: ClientStream<S>, message: Uint8Array): void {
    if (stream.closed) return;
    const req = decodeWatchRequest(message);
    if (stream.creating === undefined) this.handle(stream, req);
    else if (stream.backlog.length < MAX_BACKLOG) stream.backlog.push(req);
    else {
      this.closeStream(stream);
      this.ports.end(
        stream.handle,
        Status.RESOURCE_EXHAUSTED,
        `etcd-topology proxy: more than ${MAX_BACKLOG} watch requests waited on this stream for a create to be answered, so its watches were cancelled; send a create after the previous one is answered`,
      );
    }
    this.resumeStreams();
  }

  private handle(stream: ClientStream<S>, req: WatchRequest): void {
    if (req.kind === 'create') this.create(stream, req.spec, req.watchId);
    else if (req.kind === 'cancel') this.cancel(stream, req.watchId);
    else if (req.kind === 'progress') this.askProgress(stream);
  }

  /** The create of w was answered (created or refused): the stream's waiting requests go on. */
  private answered(w: ClientWatch<S>): void {
    const stream = w.stream;
    if (stream.creating !== w) return;
    stream.creating = undefined;
    // Not from inside a loop over a group's members, which the next create may join: once the
    // upstream response or expiry that answered it is handled (resumeStreams).
    if (stream.backlog.length > 0) this.resumable.add(stream);
  }

  /** Handles the waiting requests of streams whose create was answered. */
  private resumeStreams(): void {
    for (const stream of this.resumable) {
      this.resumable.delete(stream);
      while (!stream.closed && stream.creating === undefined && stream.backlog.length > 0) this.handle(stream, stream.backlog.shift()!);
    }
  }

  /** The client stream is gone (reset, lost, or ended by the proxy): its watches leave their groups. */
  closeStream(stream: ClientStream<S>): void {
    if (stream.closed) return;
    stream.closed = true;
    stream.backlog = [];
    for (const w of stream.watches.values()) this.leave(w);
    stream.watches.clear();
  }

  /** One WatchResponse from the group's upstream stream. Throws MalformedMessage when it does not decode. */
  upstreamResponse(groupId: number, message: Uint8Array): void {
    const g = this.groups.get(groupId);
    if (g === undefined || g.state === 'closed') return;
    this.route(g, decodeWatchResponse(message));
    this.resumeStreams();
  }

  private route(g: Group<S>, r: WatchResponse): void {
    if (r.header !== undefined) g.header = r.header;
    if (g.state === 'opening') {
      if (r.created) this.opened(g, r);
      return;
    }
    if (r.canceled) {
      if (r.watchId === g.upstreamId) this.canceledUpstream(g, r);
    } else if (r.events > 0 || r.fragment) {
      this.fanOut(g, r);
      if (r.events > 0) g.lastEventRevision = r.lastEventRevision;
    } else if (r.watchId === -1) {
      this.progressed(g, r);
    } else if (r.watchId === g.upstreamId && !r.created) {
      // A progress_notify notification, which every receiver asked for; without progress_notify,
      // the answer to the proxy's progress request from a member before etcd 3.6 (its own watch ID).
      if (g.spec.progressNotify) this.fanOut(g, r);
      else if (g.progressInFlight) this.progressed(g, r);
    }
  }

  /** The group's upstream stream failed: each client stream with a watch in it ends with this status. */
  upstreamFailed(groupId: number, code: number, message: string): void {
    const g = this.groups.get(groupId);
    if (g === undefined) return;
    const streams = new Set([...g.members].map((w) => w.stream));
    this.closeGroup(g, false);
    for (const s of streams) {
      this.closeStream(s);
      this.ports.end(s.handle, code, message);
    }
  }

  // --- client requests ---------------------------------------------------------------------

  private create(stream: ClientStream<S>, spec: WatchSpec, requestedId: number): void {
    let id = requestedId;
    if (id !== 0 && stream.watches.has(id)) {
      this.ports.send(stream.handle, encodeWatchResponse({ header: undefined, watchId: -1, created: true, canceled: true, cancelReason: DUPLICATE_ID }));
      return;
    }
    if (id === 0) {
      while (stream.watches.has(stream.nextId)) stream.nextId++;
      id = stream.nextId++;
    }
    const w: ClientWatch<S> = { kind: 'watch', stream, id, spec, group: undefined as unknown as Group<S>, state: 'joining', askedAt: 0 };
    stream.watches.set(id, w);
    this.watches++;
    stream.creating = w;
    this.place(w, true);
  }

  /** Puts a watch into the group it joins, or into a new group of its own. */
  private place(w: ClientWatch<S>, mayJoin: boolean): void {
    const key = `${w.stream.scope.key}\n${specKey(w.spec)}`;
    const existing = mayJoin ? this.shared.get(key) : undefined;
    if (existing !== undefined) {
      w.group = existing;
      w.state = 'joining';
      existing.members.add(w);
      this.wait(existing, w);
      return;
    }
    const g: Group<S> = {
      id: this.nextGroup++, key, spec: w.spec, scope: w.stream.scope, state: 'opening', upstreamId: 0,
      members: new Set([w]), receivers: new Set(), waiting: [], queued: [], progressInFlight: false, header: undefined, lastEventRevision: 0, coversFrom: 0,
    };
    this.groups.set(g.id, g);
    if (!this.shared.has(key)) this.shared.set(key, g);
    w.group = g;
    w.state = 'founding';
    // A progress request already waiting on this stream waits for the new group too.
    const ask = w.stream.progress;
    if (ask !== undefined && !ask.done) {
      ask.pending.add(g);
      g.waiting.push(ask);
    }
    this.ports.openUpstream(g.id, encodeCreateRequest(w.spec, w.spec.startRevision), w.stream.scope);
  }

  private cancel(stream: ClientStream<S>, id: number): void {
    const w = stream.watches.get(id);
    if (w === undefined) return; // etcd answers nothing for an unknown watch ID
    stream.watches.delete(id);
    const header = w.group.header;
    this.leave(w);
    this.ports.send(stream.handle, encodeWatchResponse({ header, watchId: id, canceled: true }));
  }

  private askProgress(stream: ClientStream<S>): void {
    // Like etcd, a progress request while one is still being answered adds nothing.
    if (stream.progress !== undefined && !stream.progress.done) return;
    const groups = new Set<Group<S>>();
    for (const w of stream.watches.values()) groups.add(w.group);
    if (groups.size === 0) return; // etcd sends nothing for a stream without watches
    const ask: ProgressAsk<S> = { kind: 'progress', stream, pending: groups, revision: Number.MAX_SAFE_INTEGER, header: undefined, done: false, askedAt: this.now() };
    stream.progress = ask;
    for (const g of groups) this.wait(g, ask);
  }

  /** A watch leaves its group; a group nobody is in is closed. */
  private leave(w: ClientWatch<S>): void {
    if (w.state === 'gone') return;
    w.state = 'gone';
    this.watches--;
    const g = w.group;
    g.members.delete(w);
    g.receivers.delete(w);
    if (g.members.size === 0 && g.state !== 'closed') this.closeGroup(g, true);
  }

  // --- progress ----------------------------------------------------------------------------

  /**
   * Gives up on progress answers that a member left unanswered for the progress wait; the shell
   * calls it periodically. A group whose member did not answer in time takes no more joiners (the
   * next identical watch founds a group of its own); each watch that waited to join it is placed
   * again, and so gets a group, and an upstream watch, that answers; each client stream whose
   * progress request waited on it ends with UNAVAILABLE and the reason, as after a member failure,
   * so that the client watches again. Watches already receiving from the group keep receiving.
   */
  expireProgress(): void {
    this.expire();
    this.resumeStreams();
  }

  private expire(): void {
    const now = this.now();
    const due = (w: Waiter<S>): boolean => now - w.askedAt >= this.progressWaitMs;
    for (const g of [...this.groups.values()]) {
      if (g.state === 'closed' || !(g.waiting.some(due) || g.queued.some(due))) continue;
      const expired = [...g.waiting.filter(due), ...g.queued.filter(due)];
      g.waiting = g.waiting.filter((w) => !due(w));
      g.queued = g.queued.filter((w) => !due(w));
      if (this.shared.get(g.key) === g) this.shared.delete(g.key);
      const seconds = Math.round(this.progressWaitMs / 1000);
      for (const ask of expired) {
        if (ask.kind !== 'progress' || ask.done) continue;
        ask.done = true;
        if (ask.stream.closed) continue;
        this.closeStream(ask.stream);
        this.ports.end(
          ask.stream.handle,
          Status.UNAVAILABLE,
          `etcd-topology proxy: the etcd member serving a watch on this stream did not answer a progress request within ${seconds}s, so this stream's watches were cancelled; watch again from the revision after the last event received`,
        );
      }
      for (const w of expired) {
        if (w.kind !== 'watch' || w.state !== 'joining' || w.group !== g) continue;
        g.members.delete(w);
        this.place(w, true);
      }
      if (g.members.size === 0) this.closeGroup(g, true);
    }
  }

  /** Adds a waiter to the next progress answer of the group that comes from a request sent from now on. */
  private wait(g: Group<S>, waiter: Waiter<S>): void {
    if (waiter.kind === 'watch') waiter.askedAt = this.now();
    if (g.state === 'opening') g.waiting.push(waiter);
    else if (g.progressInFlight) g.queued.push(waiter);
    else {
      g.waiting.push(waiter);
      g.progressInFlight = true;
      this.ports.requestProgress(g.id);
    }
  }

  private progressed(g: Group<S>, r: WatchResponse): void {
    const serve = g.waiting;
    g.waiting = g.queued;
    g.queued = [];
    g.progressInFlight = g.waiting.length > 0;
    if (g.progressInFlight) this.ports.requestProgress(g.id);
    for (const waiter of serve) {
      if (waiter.kind === 'progress') this.progressOf(waiter, g, r.revision, r.header);
      else if (waiter.state === 'joining') this.join(g, waiter, r);
    }
  }

  private join(g: Group<S>, w: ClientWatch<S>, r: WatchResponse): void {
    const s = w.spec.startRevision;
    const from = s === 0 ? r.revision + 1 : s;
    // The group must deliver every event from the watch's first revision on, and none before it.
    const equivalent = g.coversFrom <= from && (s === 0 || (s >= r.revision && s <= r.revision + 1 && g.lastEventRevision < s));
    if (!equivalent) {
      g.members.delete(w);
      if (g.members.size === 0) this.closeGroup(g, true);
      this.place(w, false);
      return;
    }
    w.state = 'active';
    g.receivers.add(w);
    this.ports.send(w.stream.handle, encodeWatchResponse({ header: r.header, watchId: w.id, created: true }));
    this.answered(w);
  }

  private progressOf(ask: ProgressAsk<S>, g: Group<S>, revision: number, header: Uint8Array | undefined): void {
    if (ask.done || !ask.pending.delete(g)) return;
    if (header !== undefined && revision < ask.revision) {
      ask.revision = revision;
      ask.header = header;
    }
    if (ask.pending.size > 0) return;
    ask.done = true;
    if (ask.header !== undefined && !ask.stream.closed) this.ports.send(ask.stream.handle, encodeWatchResponse({ header: ask.header, watchId: -1 }));
  }

  // --- upstream responses ------------------------------------------------------------------

  private opened(g: Group<S>, r: WatchResponse): void {
    if (r.canceled) {
      // The member refused the watch (compacted start revision, permission denied, ...): the
      // watch that asked for it hears exactly that; those waiting to join are placed again.
      const waiting = [...g.members].filter((w) => w.state === 'joining');
      for (const w of g.members) {
        if (w.state !== 'founding') continue;
        w.stream.watches.delete(w.id);
        this.ports.send(w.stream.handle, withWatchId(r, w.id));
        this.answered(w);
      }
      for (const w of g.members) if (w.state === 'founding') this.leaveQuietly(w);
      this.closeGroup(g, true);
      for (const w of waiting) this.place(w, true);
      return;
    }
    g.state = 'open';
    g.upstreamId = r.watchId;
    g.coversFrom = g.spec.startRevision === 0 ? r.revision + 1 : g.spec.startRevision;
    for (const w of g.members) {
      if (w.state !== 'founding') continue;
      w.state = 'active';
      g.receivers.add(w);
      this.ports.send(w.stream.handle, withWatchId(r, w.id));
      this.answered(w);
    }
    if (g.waiting.length > 0) {
      g.progressInFlight = true;
      this.ports.requestProgress(g.id);
    }
  }

  private canceledUpstream(g: Group<S>, r: WatchResponse): void {
    // The member ended the watch (for example, a compaction overtook it): every client watch that
    // received from it hears the same; those still joining are placed again.
    const receivers = [...g.receivers];
    const waiting = [...g.members].filter((w) => w.state === 'joining' || w.state === 'founding');
    for (const w of receivers) {
      w.stream.watches.delete(w.id);
      this.ports.send(w.stream.handle, withWatchId(r, w.id));
      this.leaveQuietly(w);
    }
    this.closeGroup(g, true);
    for (const w of waiting) this.place(w, true);
  }

  private fanOut(g: Group<S>, r: WatchResponse): void {
    for (const w of g.receivers) this.ports.sendEvents(w.stream.handle, w.id, r);
    if (g.receivers.size > 1) this.coalescedEvents += r.events * (g.receivers.size - 1);
  }

  // --- groups --------------------------------------------------------------------------------

  /** Removes a watch from its group and the counts without closing the group. */
  private leaveQuietly(w: ClientWatch<S>): void {
    if (w.state === 'gone') return;
    w.state = 'gone';
    this.watches--;
    w.group.members.delete(w);
    w.group.receivers.delete(w);
  }

  private closeGroup(g: Group<S>, closeUpstream: boolean): void {
    if (g.state === 'closed') return;
    g.state = 'closed';
    this.groups.delete(g.id);
    if (this.shared.get(g.key) === g) this.shared.delete(g.key);
    if (closeUpstream) this.ports.closeUpstream(g.id);
    const waiters = [...g.waiting, ...g.queued];
    g.waiting = [];
    g.queued = [];
    // Progress requests waiting on this group are answered by the other groups alone.
    for (const waiter of waiters) if (waiter.kind === 'progress') this.progressOf(waiter, g, Number.MAX_SAFE_INTEGER, undefined);
  }
}
