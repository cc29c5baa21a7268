import { describe, expect, it } from 'vitest';
import { memberClientUrls } from './discovery.ts';
import { pointsAtListener } from './loop.ts';
import { sniffProtocol } from './sniff.ts';
import { UpstreamSet } from './upstreams.ts';

describe('UpstreamSet', () => {
  const a = 'http://10.0.0.1:2379';
  const b = 'http://10.0.0.2:2379';
  const c = 'http://10.0.0.3:2379';

  it('rotates idle picks across every member', () => {
    const set = new UpstreamSet([a, b, c], { failureWaitMs: 5000, now: () => 0 });
    const picks = Array.from({ length: 6 }, () => set.pick());
    expect(new Set(picks.slice(0, 3))).toEqual(new Set([a, b, c]));
    expect(picks.slice(3)).toEqual(picks.slice(0, 3));
  });

  it('sends new calls away from a member whose calls are outstanding (power of two choices)', () => {
    const set = new UpstreamSet([a, b, c], { failureWaitMs: 5000, now: () => 0 });
    // a is stuck: every call sent to it stays open; calls on b and c end at once.
    const counts = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const m = set.pick()!;
      counts.set(m, (counts.get(m) ?? 0) + 1);
      set.begin(m);
      if (m !== a) set.done(m);
    }
    // Once a call is stuck on a, a is the first choice of every pick (picked longest ago) and loses
    // each comparison with the other choice.
    expect(counts.get(a)).toBe(1);
    expect(set.list().find((m) => m.url === a)!.outstanding).toBe(1);
    expect((counts.get(b) ?? 0) + (counts.get(c) ?? 0)).toBe(299);
  });

  it('takes the second choice only when it has fewer calls outstanding', () => {
    const set = new UpstreamSet([a, b, c], { failureWaitMs: 5000, now: () => 0, random: () => 0 });
    const [x, y, z] = set.list().map((m) => m.url) as [string, string, string];
    expect([set.pick(), set.pick(), set.pick()]).toEqual([x, y, z]); // idle: a tie, so the one picked longest ago
    set.begin(x);
    set.begin(y);
    // x is first choice (picked longest ago) and y the second (random 0): equal load keeps x.
    expect(set.pick()).toBe(x);
    set.begin(x);
    // y is first choice now, z the second with nothing outstanding.
    expect(set.pick()).toBe(z);
    for (let i = 0; i < 4; i++) set.done(x); // more done() than begin() never goes below zero
    expect(set.list().find((m) => m.url === x)!.outstanding).toBe(0);
  });

  it('holds a failed member off for the failure wait, then uses it again', () => {
    let now = 1000;
    const set = new UpstreamSet([a, b], { failureWaitMs: 5000, now: () => now });
    set.markFailed(a);
    expect(Array.from({ length: 4 }, () => set.pick())).toEqual([b, b, b, b]);
    now += 4999;
    expect(set.isAvailable(a)).toBe(false);
    now += 1;
    expect(set.isAvailable(a)).toBe(true);
    expect(new Set([set.pick(), set.pick()])).toEqual(new Set([a, b]));
  });

  it('when every member left is held off, asks the one whose hold ends first; nothing only when all are excluded', () => {
    let now = 0;
    const set = new UpstreamSet([a, b], { failureWaitMs: 5000, now: () => now });
    set.markFailed(a);
    now = 1000;
    set.markFailed(b);
    expect(set.pick(new Set([b]))).toBe(a);
    expect(set.pick()).toBe(a);
    expect(set.hasAvailable()).toBe(false);
    expect(set.pick(new Set([a, b]))).toBeUndefined();
  });

  it('shuffles on replace and keeps what it knew about members it had', () => {
    const seq = [0.9, 0.1, 0.5];
    let i = 0;
    const set = new UpstreamSet([a], { failureWaitMs: 5000, now: () => 0, random: () => seq[i++ % seq.length]! });
    set.markFailed(a);
    const diff = set.replace([a, b, c, c]);
    expect(diff).toEqual({ added: [b, c], removed: [] });
    expect(set.list().map((m) => m.url).sort()).toEqual([a, b, c]);
    expect(set.isAvailable(a)).toBe(false);
    expect(set.replace([b])).toEqual({ added: [], removed: [a, c] });
  });

  it('sends new picks away from a member that reports NOT_SERVING, unless it is the only one left', () => {
    const set = new UpstreamSet([a, b], { failureWaitMs: 5000, now: () => 0 });
    set.setServing(a, false);
    expect(Array.from({ length: 4 }, () => set.pick())).toEqual([b, b, b, b]);
    expect(set.pick(new Set([b]))).toBe(a);
    set.markFailed(b);
    expect(set.pick()).toBe(a);
    set.setServing(a, true);
    expect(set.list().find((m) => m.url === a)!.serving).toBe(true);
  });

  it('reports answering only for members that answered and are not held off', () => {
    const set = new UpstreamSet([a, b], { failureWaitMs: 5000, now: () => 0 });
    expect(set.anyAnswering()).toBe(false);
    set.markAnswered(a);
    expect(set.anyAnswering()).toBe(true);
    set.markFailed(a);
    expect(set.anyAnswering()).toBe(false);
  });
});

describe('loop protection', () => {
  const local = new Set(['10.1.2.3', '127.0.0.1', '::1']);
  it.each([
    [['127.0.0.1'], 2379, [{ host: '127.0.0.1', port: 2379 }], true],
    [['127.0.0.1'], 2380, [{ host: '127.0.0.1', port: 2379 }], false],
    [['10.9.9.9'], 2379, [{ host: '127.0.0.1', port: 2379 }], false],
    [['10.1.2.3'], 2379, [{ host: '0.0.0.0', port: 2379 }], true],
    [['127.0.0.5'], 2379, [{ host: '0.0.0.0', port: 2379 }], true],
    [['10.9.9.9'], 2379, [{ host: '::', port: 2379 }], false],
    [['::ffff:10.1.2.3'], 2379, [{ host: '::', port: 2379 }], true],
    [['[::1]'], 2379, [{ host: '::1', port: 2379 }], true],
    [['10.9.9.9', '127.0.0.1'], 2379, [{ host: '127.0.0.1', port: 2379 }], true],
  ])('%j:%i against %j → loop %s', (addrs, port, listeners, loop) => {
    expect(pointsAtListener(addrs, port, listeners, local)).toBe(loop);
  });
});

describe('member list parsing', () => {
  it('keeps voters’ client URLs and leaves out learners and members not started yet', () => {
    const body = {
      header: {},
      members: [
        { ID: '1', name: 'm0', clientURLs: ['http://127.0.0.1:1/', 'https://10.0.0.1:2379'] },
        { ID: '2', name: 'm1', clientURLs: ['http://127.0.0.1:2'], isLearner: true },
        { ID: '3', name: '', peerURLs: ['http://127.0.0.1:3'] },
        { ID: '4', name: 'm3', clientURLs: ['unix://sock', 'not a url'] },
      ],
    };
    expect(memberClientUrls(body)).toEqual(['http://127.0.0.1:1', 'https://10.0.0.1:2379']);
    expect(memberClientUrls({ members: 'x' })).toBeUndefined();
    expect(memberClientUrls({})).toEqual([]);
  });
});

describe('protocol sniffing', () => {
  it.each([
    ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'h2'],
    ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04', 'h2'],
    ['PRI * HTT', 'more'],
    ['', 'more'],
    ['POST /v3/kv/range HTTP/1.1\r\n', 'http1'],
    ['GET /health HTTP/1.1\r\n', 'http1'],
    ['PRI * HTTP/1.1\r\n', 'http1'],
    ['GET /hea', 'more'],
    ['GET', 'more'],
    // Neither protocol: closed without an answer (RFC 9113, section 3.4; h2spec 3.5/2).
    ['\x16\x03\x01', 'neither'],
    ['INVALID CONNECTION PREFACE\r\n\r\n', 'neither'],
    ['GET / HTTP/2.0\r\n', 'neither'],
    ['\x00\x01garbage\n', 'neither'],
  ])('%j → %s', (head, protocol) => {
    expect(sniffProtocol(Buffer.from(head, 'latin1'))).toBe(protocol);
  });
});
