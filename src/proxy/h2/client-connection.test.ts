import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ClientConnection } from './client-connection.ts';
import { CLIENT_PREFACE, encodeHeaderBlock, encodePing, encodeSettings, encodeWindowUpdate } from './frames.ts';
import { HpackEncoder } from './hpack.ts';
import type { StreamHandler } from './stream.ts';
import { FakeSocket, readFrames, recordingLogger, type SeenFrame } from './testing.ts';

const settings = { streamWindow: 1024 * 1024, connectionWindow: 16 * 1024 * 1024, maxHeaderListSize: 64 * 1024 };
const request = [':method', 'POST', ':scheme', 'http', ':path', '/etcdserverpb.Watch/Watch', ':authority', 'a', 'content-type', 'application/grpc'];

/** A member-facing connection with keepalive on a fake socket, past the member's SETTINGS. */
function connect(): { socket: FakeSocket; conn: ClientConnection; events: string[]; handler: StreamHandler; sent: () => SeenFrame[]; pings: () => SeenFrame[] } {
  const socket = new FakeSocket();
  const events: string[] = [];
  const handler: StreamHandler = {
    onHeaders: (s, _h, end) => events.push(`headers ${s.id} ${end}`),
    onData: (s, d, end) => events.push(`data ${s.id} ${d.length} ${end}`),
    onReset: (s, code, cause) => events.push(`reset ${s.id} ${code} ${cause}`),
    onSent: () => undefined,
  };
  const conn = new ClientConnection(socket, settings, recordingLogger(), { intervalMs: 10_000, timeoutMs: 5_000 });
  socket.feed(encodeSettings([]));
  const all: SeenFrame[] = [];
  // Writes are flushed on setImmediate, which the fake timers leave alone: drain them by hand.
  const sent = (): SeenFrame[] => {
    const frames = readAll(Buffer.concat(socket.written.splice(0)));
    all.push(...frames);
    return frames;
  };
  const pings = (): SeenFrame[] => {
    sent();
    return all.filter((f) => f.type === 'PING' && !f.ack);
  };
  return { socket, conn, events, handler, sent, pings };
}

/** The frames in bytes, past the client preface when they start with it. */
function readAll(bytes: Buffer): SeenFrame[] {
  return readFrames(bytes.subarray(0, CLIENT_PREFACE.length).equals(CLIENT_PREFACE) ? bytes.subarray(CLIENT_PREFACE.length) : bytes);
}

/** Lets pending flushes run, then advances the fake clock. */
async function advance(ms: number): Promise<void> {
  await new Promise((r) => setImmediate(r));
  await vi.advanceTimersByTimeAsync(ms);
  await new Promise((r) => setImmediate(r));
}

const lastPingPayload = (pings: SeenFrame[]): Buffer => pings.at(-1)!.data!;

describe('client connection keepalive', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('pings after 10 s without a frame while a stream is open, keeps an answered connection, and destroys an unanswered one', async () => {
    const { socket, conn, events, handler, pings } = connect();
    conn.request(request, false, handler);
    await advance(9_000);
    expect(pings()).toHaveLength(0);
    await advance(1_100);
    expect(pings()).toHaveLength(1);
    socket.feed(encodePing(lastPingPayload(pings()), true));
    await advance(9_000);
    expect(conn.closed).toBe(false);
    expect(pings()).toHaveLength(1);
    await advance(1_100);
    expect(pings()).toHaveLength(2);
    // No answer: 5 s later the connection is dead and the stream fails with cause 'connection'.
    await advance(4_800);
    expect(conn.closed).toBe(false);
    const errors: Error[] = [];
    socket.on('error', (e: Error) => errors.push(e));
    await advance(300);
    expect(socket.destroyed).toBe(true);
    expect(errors[0]?.message).toMatch(/keepalive PING within 5000ms/);
    expect(events).toContain('reset 1 8 connection');
  });

  it('does not ping while frames keep arriving, and counts any frame after an unanswered PING as alive', async () => {
    const { socket, conn, handler, pings } = connect();
    conn.request(request, false, handler);
    for (let i = 0; i < 5; i++) {
      await advance(8_000);
      socket.feed(encodeWindowUpdate(0, 1));
    }
    expect(pings()).toHaveLength(0);
    await advance(10_100);
    expect(pings()).toHaveLength(1);
    // The ACK is late (behind other frames), but the member is talking: not dead.
    await advance(3_000);
    socket.feed(encodeWindowUpdate(0, 1));
    await advance(3_000);
    expect(conn.closed).toBe(false);
    expect(socket.destroyed).toBe(false);
  });

  it('with no stream open pings once per silence, then not again until the member sends HEADERS or DATA', async () => {
    const { socket, conn, handler, pings } = connect();
    await advance(10_100);
    expect(pings()).toHaveLength(1);
    socket.feed(encodePing(lastPingPayload(pings()), true));
    // etcd would count each further stream-less PING as a strike (three: GOAWAY ENHANCE_YOUR_CALM).
    await advance(120_000);
    expect(pings()).toHaveLength(1);
    expect(conn.closed).toBe(false);
    // A stream opened after a long silence checks the member at once.
    const stream = conn.request(request, true, handler);
    await advance(0);
    expect(pings()).toHaveLength(2);
    socket.feed(encodePing(lastPingPayload(pings()), true));
    socket.feed(encodeHeaderBlock(stream.id, Buffer.from(new HpackEncoder().encode([':status', '200', 'grpc-status', '0'])), true, 16_384));
    expect(conn.streams.size).toBe(0);
    // The member answered (HEADERS), so one more stream-less PING after the next silence is forgiven.
    await advance(10_100);
    expect(pings()).toHaveLength(3);
    socket.feed(encodePing(lastPingPayload(pings()), true));
    await advance(60_000);
    expect(pings()).toHaveLength(3);
  });

  it('destroys a new connection that hears nothing from the member within 5 s (a frozen process, a blackholed SYN)', async () => {
    const socket = new FakeSocket();
    const conn = new ClientConnection(socket, settings, recordingLogger(), { intervalMs: 10_000, timeoutMs: 5_000 });
    const errors: Error[] = [];
    socket.on('error', (e: Error) => errors.push(e));
    await advance(4_900);
    expect(socket.destroyed).toBe(false);
    await advance(200);
    expect(socket.destroyed).toBe(true);
    expect(errors).toHaveLength(1);
    expect(conn.hasRoom()).toBe(false);
  });

  it('sends no PING without keepalive', async () => {
    const socket = new FakeSocket();
    const conn = new ClientConnection(socket, settings, recordingLogger());
    conn.request(request, false, { onHeaders: () => undefined, onData: () => undefined, onReset: () => undefined, onSent: () => undefined });
    await advance(60_000);
    const frames = readAll(Buffer.concat(socket.written.splice(0)));
    expect(frames.filter((f) => f.type === 'PING')).toHaveLength(0);
    expect(conn.closed).toBe(false);
  });
});
