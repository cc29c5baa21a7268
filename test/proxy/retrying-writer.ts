/** One write's outcome: the revision it was acknowledged at, or why it failed. */
export type PutOutcome = number | string;

/** How a writer puts one key through its proxy; retry says it is the second try after a failure. */
export type Put = (key: string, retry: boolean) => Promise<PutOutcome>;

/**
 * A client that writes continuously under prefix and retries a failed write once, as etcd's
 * clients do for a connection that went away; what it keeps says what a proxy roll cost it.
 */
export class RetryingWriter {
  readonly acked = new Map<string, number>();
  /** Writes that failed on the first try and on the retry. */
  readonly lost: string[] = [];
  retries = 0;
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly prefix: string;
  private readonly put: Put;
  private readonly pauseMs: number;

  constructor(prefix: string, put: Put, pauseMs: number) {
    this.prefix = prefix;
    this.put = put;
    this.pauseMs = pauseMs;
  }

  start(): void {
    this.running = true;
    this.loop = (async () => {
      for (let n = 0; this.running; n++) {
        const key = `${this.prefix}${String(n).padStart(6, '0')}`;
        const first = await this.put(key, false);
        if (typeof first === 'number') this.acked.set(key, first);
        else {
          this.retries++;
          const second = await this.put(key, true);
          if (typeof second === 'number') this.acked.set(key, second);
          else this.lost.push(`${key}: ${first}, then on the retry ${second}`);
        }
        await new Promise((r) => setTimeout(r, this.pauseMs));
      }
    })();
  }

  /** Stops after the write in progress. */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}
