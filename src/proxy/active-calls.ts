/** A request or stream in flight through the proxy, as the drain on SIGTERM sees it. */
export interface ActiveCall {
  /** A stream (Watch, LeaseKeepAlive, Observe, Snapshot) rather than one request and one answer. */
  readonly streaming: boolean;
  /** Ends the call now, telling the client to go elsewhere (gRPC UNAVAILABLE, or closing an HTTP stream). */
  abort(reason: string): void;
}

/** The calls in flight, so that a drain can wait for unary ones and end streaming ones. */
export class ActiveCalls {
  private readonly calls = new Set<ActiveCall>();
  private unary = 0;
  private idle: (() => void)[] = [];

  /** Tracks a call until delete. */
  add(call: ActiveCall): void {
    this.calls.add(call);
    if (!call.streaming) this.unary++;
  }

  /** Stops tracking a call; wakes waiters when the last unary call is gone. */
  delete(call: ActiveCall): void {
    if (!this.calls.delete(call)) return;
    if (!call.streaming && --this.unary === 0) {
      const waiters = this.idle;
      this.idle = [];
      for (const w of waiters) w();
    }
  }

  /** How many calls are in flight, by kind. */
  counts(): { unary: number; streaming: number } {
    return { unary: this.unary, streaming: this.calls.size - this.unary };
  }

  /** Resolves true once no unary call is in flight, or false when timeoutMs passes first. */
  async unaryFinished(timeoutMs: number): Promise<boolean> {
    if (this.unary === 0) return true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.idle.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** Aborts every call of the kind asked for (both when streaming is undefined). */
  abortAll(reason: string, streaming?: boolean): void {
    for (const call of [...this.calls]) if (streaming === undefined || call.streaming === streaming) call.abort(reason);
  }
}
