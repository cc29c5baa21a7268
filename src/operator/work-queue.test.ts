import { describe, expect, it } from 'vitest';
import { WorkQueue } from './work-queue.ts';

function manualTimers() {
  const timers: { fn: () => void; ms: number; cleared: boolean }[] = [];
  return {
    timers,
    setTimer: (fn: () => void, ms: number) => {
      const t = { fn, ms, cleared: false };
      timers.push(t);
      return t;
    },
    clearTimer: (h: unknown) => {
      (h as { cleared: boolean }).cleared = true;
    },
    fire: () => {
      for (const t of timers.splice(0)) if (!t.cleared) t.fn();
    },
  };
}

describe('WorkQueue', () => {
  it('de-duplicates keys that are waiting', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('a');
    q.add('b');
    expect(q.length).toBe(2);
    expect(await q.next()).toBe('a');
    expect(await q.next()).toBe('b');
  });

  it('aborts the superseded signal of a key in flight when a spec change for it arrives, and only then', async () => {
    const q = new WorkQueue();
    q.add('a', 'routine');
    expect(await q.next()).toBe('a');
    const signal = q.supersededSignal('a')!;
    q.add('a', 'news');
    q.add('a', 'routine');
    expect(signal.aborted).toBe(false);
    q.add('a', 'spec');
    expect(signal.aborted).toBe(true);
    q.done('a');
    expect(q.supersededSignal('a')).toBeUndefined();
    // The key runs again at once from the spec lane, with a signal of its own.
    expect(await q.next()).toBe('a');
    expect(q.laneOf('a')).toBe('spec');
    expect(q.supersededSignal('a')!.aborted).toBe(false);
  });

  it('never hands out a key twice at once, and runs it again when added while in flight', async () => {
    const q = new WorkQueue();
    q.add('a');
    expect(await q.next()).toBe('a');
    q.add('a');
    expect(q.length).toBe(0);
    q.done('a');
    expect(q.length).toBe(1);
    expect(await q.next()).toBe('a');
  });

  it('hands a key to a worker already waiting', async () => {
    const q = new WorkQueue();
    const pending = q.next();
    q.add('x');
    expect(await pending).toBe('x');
  });

  it('backs off exponentially per key up to the cap and forgets on success', () => {
    const t = manualTimers();
    const q = new WorkQueue({ baseDelayMs: 100, maxDelayMs: 1000, ...t });
    expect([q.retry('k'), q.retry('k'), q.retry('k'), q.retry('k'), q.retry('k')]).toEqual([100, 200, 400, 800, 1000]);
    q.forget('k');
    expect(q.retry('k')).toBe(100);
  });

  it('keeps the earlier of two scheduled visits and lets add() cancel a scheduled one', () => {
    const t = manualTimers();
    const q = new WorkQueue(t);
    q.addAfter('k', 5000);
    q.addAfter('k', 1000);
    q.addAfter('k', 3000);
    expect(t.timers.filter((x) => !x.cleared).map((x) => x.ms)).toEqual([1000]);
    q.add('k');
    expect(t.timers.every((x) => x.cleared)).toBe(true);
    expect(q.length).toBe(1);
  });

  it('resolves waiting workers with undefined on shutdown', async () => {
    const q = new WorkQueue();
    const pending = q.next();
    q.shutdown();
    expect(await pending).toBeUndefined();
    q.add('late');
    expect(q.length).toBe(0);
  });

  it('hands out news before routine visits, and moves a waiting routine key ahead when it gets news', async () => {
    const t = manualTimers();
    const q = new WorkQueue(t);
    for (const k of ['r1', 'r2', 'r3']) q.addAfter(k, 5000);
    t.fire();
    q.add('spec-change');
    q.add('r3');
    expect(q.length).toBe(4);
    expect([await q.next(), await q.next(), await q.next(), await q.next()]).toEqual(['spec-change', 'r3', 'r1', 'r2']);
  });

  it('a key with news while in flight runs again as news; a routine visit while in flight stays routine', async () => {
    const t = manualTimers();
    const q = new WorkQueue(t);
    q.add('a');
    q.add('b');
    const a = await q.next();
    const b = await q.next();
    q.addAfter('other', 1);
    t.fire();
    q.add(a!, 'routine');
    q.add(b!, 'routine');
    q.add(b!);
    q.done(a!);
    q.done(b!);
    expect([await q.next(), await q.next(), await q.next()]).toEqual(['b', 'other', 'a']);
  });

  it('hands out spec changes before news and routine visits, and moves a waiting key up to the spec lane', async () => {
    const t = manualTimers();
    const q = new WorkQueue(t);
    for (const k of ['r1', 'r2']) q.addAfter(k, 5000);
    t.fire();
    q.add('n1');
    q.add('n2');
    q.add('s1', 'spec');
    q.add('n2', 'spec');
    q.add('r2', 'news');
    q.add('s1', 'routine');
    expect([q.waitingIn('spec'), q.waitingIn('news'), q.waitingIn('routine')]).toEqual([2, 2, 1]);
    expect([await q.next(), await q.next(), await q.next(), await q.next(), await q.next()]).toEqual(['s1', 'n2', 'n1', 'r2', 'r1']);
  });

  it('a key that gets a spec change while in flight runs again in the spec lane, ahead of news', async () => {
    const q = new WorkQueue();
    q.add('a');
    const a = await q.next();
    q.add(a!, 'news');
    q.add(a!, 'spec');
    q.add(a!, 'routine');
    q.add('b');
    q.done(a!);
    expect([await q.next(), await q.next()]).toEqual(['a', 'b']);
  });

  it('runs at most maxRoutineInFlight routine visits at once, and spec changes and news beside them', async () => {
    const t = manualTimers();
    const q = new WorkQueue({ ...t, maxRoutineInFlight: 2 });
    for (const k of ['r1', 'r2', 'r3', 'r4']) q.addAfter(k, 5000);
    t.fire();
    const first = [await q.next(), await q.next()];
    expect(first).toEqual(['r1', 'r2']);
    let third: string | undefined;
    void q.next().then((k) => (third = k));
    await Promise.resolve();
    expect(third).toBeUndefined();
    q.add('s', 'spec');
    await Promise.resolve();
    expect(third).toBe('s');
    q.add('n', 'news');
    expect(await q.next()).toBe('n');
    const waiting = q.next();
    q.done('s');
    q.done('r1');
    expect(await waiting).toBe('r3');
    expect(q.waitingIn('routine')).toBe(1);
  });

  it('reports each key\'s lane and how long it waited, from its spec change, not its earlier routine entry', async () => {
    let now = 0;
    const taken: [string, number][] = [];
    const q = new WorkQueue({ now: () => now, onTake: (lane, ms) => taken.push([lane, ms]) });
    q.add('a', 'routine');
    now = 100;
    q.add('a', 'spec');
    now = 250;
    expect(await q.next()).toBe('a');
    expect(q.laneOf('a')).toBe('spec');
    now = 300;
    q.add('a', 'news');
    now = 400;
    q.done('a');
    now = 450;
    expect(await q.next()).toBe('a');
    expect(taken).toEqual([['spec', 150], ['news', 150]]);
  });

  it('refuses a routine cap below 1', () => {
    expect(() => new WorkQueue({ maxRoutineInFlight: 0 })).toThrow(/maxRoutineInFlight must be at least 1, got 0/);
  });
});
