/** Options of the work queue; the clock and timers are injectable for tests. */
export interface WorkQueueOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
  /**
   * How many routine visits may be in flight at once (the other workers wait for spec changes and
   * news). Priority decides only the order of taking: the reconciles in flight share one JavaScript
   * thread, so a spec change taken first still waits at each of its awaits behind every routine visit
   * running beside it. Capping them bounds that.
   */
  maxRoutineInFlight?: number;
  /** Hears, as each key is handed out, its lane and how long it waited for a worker, in ms. */
  onTake?: (lane: Lane, waitedMs: number) => void;
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

/**
 * Which lane a key waits in, first served first: spec (the topology's spec changed: its generation
 * moved, or it is new; a user waits for it to be applied), news (something else changed: an owned
 * object's or a central node's watch event, an action's follow-up) or a routine visit (a resync, a
 * scheduled look, a retry after back-off, the operator's own status write coming back).
 */
export type Lane = 'spec' | 'news' | 'routine';

/** A key's lane and since when it has waited for it (ms, the queue's clock). */
interface Entry {
  lane: Lane;
  since: number;
}

/** The lanes in the order workers take from them. */
const LANES: readonly Lane[] = ['spec', 'news', 'routine'];
const rank = (lane: Lane): number => LANES.indexOf(lane);

/**
 * A keyed work queue as controllers use it: adding a key that is already waiting is a no-op, a key is
 * never processed by two workers at once (a key added while in flight runs once more afterwards),
 * failures retry with per-key exponential back-off, and addAfter schedules a later visit.
 *
 * Keys wait in three lanes, and workers take spec changes first, then news, then routine visits (as
 * controller-runtime's priority queue does): with a hundred topologies revisited every few seconds
 * and their proxies' DaemonSets changing status all the time, the queue is never empty, and a spec
 * change must wait behind neither. A waiting key added to a higher lane moves up to it. With
 * maxRoutineInFlight, at most that many routine visits run at once, however many workers are idle,
 * so that a spec change shares the thread with few of them.
 */
export class WorkQueue {
  private readonly lanes: Record<Lane, string[]> = { spec: [], news: [], routine: [] };
  /** Keys waiting, each one's lane and since when it has waited there (reset when it moves up). */
  private readonly waiting = new Map<string, Entry>();
  /** Keys in flight and the lane each was taken from. */
  private readonly active = new Map<string, Lane>();
  /** Per key in flight: aborted when a spec change for it arrives (supersededSignal). */
  private readonly superseding = new Map<string, AbortController>();
  private routineInFlight = 0;
  /** Keys added while in flight, the lane they go back to and since when. */
  private readonly dirty = new Map<string, Entry>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { handle: unknown; due: number }>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private readonly options: Required<Omit<WorkQueueOptions, 'onTake'>> & Pick<WorkQueueOptions, 'onTake'>;
  private shuttingDown = false;

  constructor(options: WorkQueueOptions = {}) {
    this.options = {
      baseDelayMs: options.baseDelayMs ?? 500,
      maxDelayMs: options.maxDelayMs ?? 60_000,
      setTimer: options.setTimer ?? ((fn, ms) => setTimeout(fn, ms).unref()),
      clearTimer: options.clearTimer ?? ((h) => clearTimeout(h as NodeJS.Timeout)),
      maxRoutineInFlight: options.maxRoutineInFlight ?? Infinity,
      onTake: options.onTake,
      now: options.now ?? (() => performance.now()),
    };
    if (!(this.options.maxRoutineInFlight >= 1)) throw new Error(`WorkQueue: maxRoutineInFlight must be at least 1, got ${this.options.maxRoutineInFlight}`);
  }

  /** Queues key now (news by default), unless it is already waiting; a higher lane moves a waiting key up. */
  add(key: string, lane: Lane = 'news'): void {
    this.enter(key, lane, this.options.now());
  }

  private enter(key: string, lane: Lane, since: number): void {
    if (this.shuttingDown) return;
    const timer = this.timers.get(key);
    if (timer !== undefined) {
      this.options.clearTimer(timer.handle);
      this.timers.delete(key);
    }
    if (this.active.has(key)) {
      if (lane === 'spec') this.superseding.get(key)?.abort();
      const dirty = this.dirty.get(key);
      if (dirty === undefined || rank(lane) < rank(dirty.lane)) this.dirty.set(key, { lane, since });
      return;
    }
    const waitingIn = this.waiting.get(key)?.lane;
    if (waitingIn !== undefined) {
      if (rank(lane) < rank(waitingIn)) {
        this.lanes[waitingIn].splice(this.lanes[waitingIn].indexOf(key), 1);
        this.lanes[lane].push(key);
        this.waiting.set(key, { lane, since });
      }
      return;
    }
    this.waiting.set(key, { lane, since });
    this.lanes[lane].push(key);
    this.handOut();
  }

  /** Queues key after ms, keeping the earlier of two scheduled visits. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown || this.waiting.has(key)) return;
    const due = Date.now() + ms;
    const existing = this.timers.get(key);
    if (existing !== undefined) {
      if (existing.due <= due) return;
      this.options.clearTimer(existing.handle);
    }
    const handle = this.options.setTimer(() => {
      this.timers.delete(key);
      this.add(key, 'routine');
    }, ms);
    this.timers.set(key, { handle, due });
  }

  /** Schedules a retry with this key's next back-off delay and returns the delay. */
  retry(key: string): number {
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    const delay = Math.min(this.options.baseDelayMs * 2 ** (n - 1), this.options.maxDelayMs);
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears the back-off of a key that was processed successfully. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** Resolves the next key to process (marking it in flight), or undefined once shut down. */
  next(): Promise<string | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.take();
    if (key !== undefined) return Promise.resolve(key);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * Aborted when a spec change for this key in flight arrives: the round in flight may stop before its
   * next step, and the key runs again at once from the spec lane, so that a user's change waits for
   * no more than the step in flight (a status write, or etcd's answer to a round that read an older spec).
   */
  supersededSignal(key: string): AbortSignal | undefined {
    return this.superseding.get(key)?.signal;
  }

  /** The lane a key in flight was taken from. */
  laneOf(key: string): Lane | undefined {
    return this.active.get(key);
  }

  /** Marks a key finished; if it was added while in flight, it is queued again. */
  done(key: string): void {
    if (this.active.get(key) === 'routine') this.routineInFlight--;
    this.active.delete(key);
    this.superseding.delete(key);
    const dirty = this.dirty.get(key);
    if (dirty !== undefined) {
      this.dirty.delete(key);
      this.enter(key, dirty.lane, dirty.since);
    }
    this.handOut();
  }

  /** The first key of the first lane that may be taken now, marked in flight. */
  private take(): string | undefined {
    const lane = LANES.find((l) => this.lanes[l].length > 0 && (l !== 'routine' || this.routineInFlight < this.options.maxRoutineInFlight));
    if (lane === undefined) return undefined;
    const key = this.lanes[lane].shift()!;
    const { since } = this.waiting.get(key)!;
    this.waiting.delete(key);
    this.active.set(key, lane);
    this.superseding.set(key, new AbortController());
    if (lane === 'routine') this.routineInFlight++;
    this.options.onTake?.(lane, this.options.now() - since);
    return key;
  }

  /** Gives waiting workers what may be taken. */
  private handOut(): void {
    while (this.waiters.length > 0) {
      const key = this.take();
      if (key === undefined) return;
      this.waiters.shift()!(key);
    }
  }

  /** Number of keys waiting (not in flight, not scheduled), in every lane. */
  get length(): number {
    return this.lanes.spec.length + this.lanes.news.length + this.lanes.routine.length;
  }

  /** Number of keys waiting in one lane. */
  waitingIn(lane: Lane): number {
    return this.lanes[lane].length;
  }

  /** Stops handing out keys; pending next() calls resolve undefined. */
  shutdown(): void {
    this.shuttingDown = true;
    for (const t of this.timers.values()) this.options.clearTimer(t.handle);
    this.timers.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
  }
}
