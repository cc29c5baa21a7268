/** One etcd member the proxy may forward to, by advertised client URL. */
export interface Upstream {
  url: string;
  /** Until this time (ms, from the injected clock) the member is held off after a failure. */
  heldUntil: number;
  /** Whether the member answered the last time the proxy asked (a request or a health probe). */
  answered: boolean;
  /**
   * False while the member's gRPC health service says NOT_SERVING (etcd does so while it
   * defragments, with --feature-gates=StopGRPCServiceOnDefrag=true): new calls go elsewhere.
   */
  serving: boolean;
  /** Calls and streams the proxy has open on the member now: the load that picks compare. */
  outstanding: number;
  /** When the member was last picked (a sequence number): ties go to the one picked longest ago. */
  lastPicked: number;
}

export interface UpstreamSetOptions {
  failureWaitMs: number;
  now?: () => number;
  random?: () => number;
}

/**
 * The members the proxy forwards to: replaced on every discovery, shuffled so that proxies spread
 * over members, each new call or stream sent by least outstanding requests over two random choices,
 * with a failed member held off for the failure wait. Pure state with an injected clock and random
 * source; sessions and probes live in the shells that use it.
 */
export class UpstreamSet {
  private members: Upstream[] = [];
  private picks = 0;
  private leader: string | undefined;
  private readonly failureWaitMs: number;
  private readonly now: () => number;
  private readonly random: () => number;

  constructor(seeds: readonly string[], options: UpstreamSetOptions) {
    this.failureWaitMs = options.failureWaitMs;
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.replace(seeds);
  }

  /** Replaces the members with urls in a fresh random order, keeping what is known about those seen before. */
  replace(urls: readonly string[]): { added: string[]; removed: string[] } {
    const before = new Map(this.members.map((m) => [m.url, m]));
    const unique = [...new Set(urls)];
    const next = unique.map((url) => before.get(url) ?? { url, heldUntil: 0, answered: false, serving: true, outstanding: 0, lastPicked: 0 });
    for (let i = next.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [next[i], next[j]] = [next[j]!, next[i]!];
    }
    this.members = next;
    return {
      added: unique.filter((u) => !before.has(u)),
      removed: [...before.keys()].filter((u) => !unique.includes(u)),
    };
  }

  /**
   * A member for a new call, other than those in exclude and not held off: of two choices, the
   * member picked longest ago and another at random, the one with fewer calls outstanding (power of
   * two choices), so a slow or stuck member, whose calls pile up, gets fewer new ones, while idle
   * members take turns as in a rotation. One that reports NOT_SERVING only when no other is left (a
   * lone member that defragments is slow, not gone). When every member left is held off, the one
   * whose hold ends first: a hold is a guess that a member is down (a starved proxy can miss its
   * keepalives to all of them at once), and asking the likeliest to be back beats refusing every
   * call until a hold ends. Undefined only when exclude leaves none.
   */
  pick(exclude?: ReadonlySet<string>): string | undefined {
    return this.choose(exclude, true) ?? this.choose(exclude, false) ?? this.soonestReleased(exclude);
  }

  private soonestReleased(exclude: ReadonlySet<string> | undefined): string | undefined {
    let best: Upstream | undefined;
    for (const m of this.members) if (!exclude?.has(m.url) && (best === undefined || m.heldUntil < best.heldUntil)) best = m;
    if (best === undefined) return undefined;
    best.lastPicked = ++this.picks;
    return best.url;
  }

  /** The leader when it is known, in the set, not held off and serving, and not in exclude; else undefined. */
  pickLeader(exclude?: ReadonlySet<string>): string | undefined {
    const m = this.leader === undefined ? undefined : this.members.find((x) => x.url === this.leader);
    if (m === undefined || exclude?.has(m.url) || !m.serving || m.heldUntil > this.now()) return undefined;
    return m.url;
  }

  /** Records which member leads (its client URL), or that it is not known. */
  setLeader(url: string | undefined): void {
    this.leader = url;
  }

  /** The leader's client URL as last learned, for logs and tests. */
  get knownLeader(): string | undefined {
    return this.leader;
  }

  /** Records what the member's gRPC health service reports. */
  setServing(url: string, serving: boolean): void {
    const m = this.members.find((x) => x.url === url);
    if (m) m.serving = serving;
  }

  /** Whether pick(exclude) would find a member, without moving the rotation. */
  hasAvailable(exclude?: ReadonlySet<string>): boolean {
    const now = this.now();
    return this.members.some((m) => m.heldUntil <= now && !exclude?.has(m.url));
  }

  /** Holds the member off for the failure wait. */
  markFailed(url: string): void {
    const m = this.members.find((x) => x.url === url);
    if (!m) return;
    m.heldUntil = this.now() + this.failureWaitMs;
    m.answered = false;
  }

  /** Records that the member answered. */
  markAnswered(url: string): void {
    const m = this.members.find((x) => x.url === url);
    if (m) m.answered = true;
  }

  /** Whether the member is in the set and not held off. */
  isAvailable(url: string): boolean {
    const m = this.members.find((x) => x.url === url);
    return m !== undefined && m.heldUntil <= this.now();
  }

  /** Whether any member answered the last time it was asked and is not held off. */
  anyAnswering(): boolean {
    const now = this.now();
    return this.members.some((m) => m.answered && m.heldUntil <= now);
  }

  /** The call just sent to url is in flight until done(url). */
  begin(url: string): void {
    const m = this.members.find((x) => x.url === url);
    if (m) m.outstanding++;
  }

  /** A call begun on url ended (answered in full, failed or cancelled). */
  done(url: string): void {
    const m = this.members.find((x) => x.url === url);
    if (m && m.outstanding > 0) m.outstanding--;
  }

  private choose(exclude: ReadonlySet<string> | undefined, servingOnly: boolean): string | undefined {
    const now = this.now();
    const candidates = this.members.filter((m) => m.heldUntil <= now && !exclude?.has(m.url) && (!servingOnly || m.serving));
    if (candidates.length === 0) return undefined;
    // The first choice is the one picked longest ago (idle members thus take turns exactly, and a
    // stuck member stays first choice, to lose each comparison); the second is any other at random.
    let first = 0;
    for (let i = 1; i < candidates.length; i++) if (candidates[i]!.lastPicked < candidates[first]!.lastPicked) first = i;
    let m = candidates[first]!;
    if (candidates.length > 1) {
      const other = candidates[(first + 1 + Math.floor(this.random() * (candidates.length - 1))) % candidates.length]!;
      if (other.outstanding < m.outstanding) m = other;
    }
    m.lastPicked = ++this.picks;
    return m.url;
  }

  /** The members in their current order, for discovery, probes and metrics. */
  list(): readonly Readonly<Upstream>[] {
    return this.members;
  }
}
