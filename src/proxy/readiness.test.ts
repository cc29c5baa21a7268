import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Readiness, REVISION_PATH, revisionServedAt, VOUCH_AFTER_READY_MS } from './readiness.ts';

describe('Readiness', () => {
  const refused = (asked: string, own = 'new'): string => `this is the proxy of pod template revision ${own}; the probe asks for ${asked}`;

  it("answers a probe for its own revision (or none) with its own state, and refuses another pod's", () => {
    const r = new Readiness('new', undefined);
    expect(r.answer('new', undefined)).toBeUndefined();
    expect(r.answer(null, 'no etcd member answers')).toBe('no etcd member answers');
    expect(r.answer('old', undefined)).toBe(refused('old'));
    expect(new Readiness(undefined, undefined).answer('old', undefined)).toBe('this is the proxy of pod template revision (none: no --revision); the probe asks for old');
  });

  it('answers its predecessor ready, also while it is not ready itself, until 30 s after its own first ready answer', () => {
    let now = 1_000;
    const r = new Readiness('new', 'old', () => now);
    expect(r.answer('old', undefined)).toBeUndefined();
    // Not ready itself (no member answers yet): the predecessor still serves, and its probes say so.
    expect(r.answer('new', 'no etcd member answers')).toBe('no etcd member answers');
    now += 60_000;
    expect(r.answer('old', undefined)).toBeUndefined();
    // A third revision (a newer pod than this one) is never vouched for.
    expect(r.answer('newer', undefined)).toBe(refused('newer'));
    expect(r.answer('new', undefined)).toBeUndefined();
    now += VOUCH_AFTER_READY_MS - 1;
    expect(r.answer('old', undefined)).toBeUndefined();
    now += 1;
    expect(r.answer('old', undefined)).toBe(refused('old'));
  });
});

describe('revisionServedAt', () => {
  let server: http.Server | undefined;
  afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));
  const serve = async (handler: http.RequestListener): Promise<string> => {
    server = http.createServer(handler);
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    return `127.0.0.1:${(server.address() as AddressInfo).port}`;
  };

  it("reads the revision a proxy names on its metrics address; none from an older proxy (404), a wildcard address asks loopback", async () => {
    const addr = await serve((req, res) => {
      if (req.url === REVISION_PATH) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ revision: 'old' }));
      else res.writeHead(404).end();
    });
    expect(await revisionServedAt(addr)).toBe('old');
    expect(await revisionServedAt(`0.0.0.0:${addr.split(':')[1]}`)).toBe('old');
    server!.removeAllListeners('request');
    server!.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => res.writeHead(404).end('not found'));
    expect(await revisionServedAt(addr)).toBeUndefined();
  });

  it('answers undefined when nothing listens, or nothing answers within the timeout', async () => {
    const addr = await serve(() => undefined);
    expect(await revisionServedAt(addr, 200)).toBeUndefined();
    await new Promise<void>((r) => server!.close(() => r()));
    server = undefined;
    expect(await revisionServedAt(addr)).toBeUndefined();
  });
});
