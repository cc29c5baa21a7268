/** Options of the work queue; the clock and timers are injectable for tests. */
export interface WorkQueueOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

/**
 * A keyed work queue as controllers use it: adding a key that is already waiting is a no-op, a key is
 * never processed by two workers at once (a key added while in flight runs once more afterwards),
 * failures retry with per-key exponential back-off, and addAfter schedules a later visit.
 */
export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly waiting = new Set<string>();
  private readonly active = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { handle: unknown; due: number }>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private readonly options: Required<WorkQueueOptions>;
  private shuttingDown = false;

  constructor(options: WorkQueueOptions = {}) {
    this.options = {
      baseDelayMs: options.baseDelayMs ?? 500,
      maxDelayMs: options.maxDelayMs ?? 60_000,
      setTimer: options.setTimer ?? ((fn, ms) => setTimeout(fn, ms).unref()),
      clearTimer: options.clearTimer ?? ((h) => clearTimeout(h as NodeJS.Timeout)),
    };
  }

  /** Queues key now, unless it is already waiting. */
  add(key: string): void {
    if (this.shuttingDown) return;
    const timer = this.timers.get(key);
    if (timer !== undefined) {
      this.options.clearTimer(timer.handle);
      this.timers.delete(key);
    }
    if (this.active.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.waiting.has(key)) return;
    this.waiting.add(key);
    const waiter = this.waiters.shift();
    if (waiter) {
      this.waiting.delete(key);
      this.active.add(key);
      waiter(key);
    } else this.queue.push(key);
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
      this.add(key);
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
    const key = this.queue.shift();
    if (key !== undefined) {
      this.waiting.delete(key);
      this.active.add(key);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Marks a key finished; if it was added while in flight, it is queued again. */
  done(key: string): void {
    this.active.delete(key);
    if (this.dirty.delete(key)) this.add(key);
  }

  /** Number of keys waiting (not in flight, not scheduled). */
  get length(): number {
    return this.queue.length;
  }

  /** Stops handing out keys; pending next() calls resolve undefined. */
  shutdown(): void {
    this.shuttingDown = true;
    for (const t of this.timers.values()) this.options.clearTimer(t.handle);
    this.timers.clear();
    for (const w of this.waiters.splice(0)) w(undefined);
  }
}
