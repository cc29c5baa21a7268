import { Duplex } from 'node:stream';
import type { Logger } from '../../telemetry/logger.ts';
import { FrameReader, type FrameHandler } from './frame-reader.ts';

/** A frame as a test sees it. */
export interface SeenFrame {
  type: string;
  streamId: number;
  endStream?: boolean;
  data?: Buffer;
  block?: Buffer;
  code?: number;
  increment?: number;
  settings?: [number, number][];
  lastStreamId?: number;
  ack?: boolean;
}

/** Parses bytes into frames for assertions; throws H2Error like the reader does. */
export function readFrames(bytes: Buffer, maxFrameSize = 16_384): SeenFrame[] {
  const seen: SeenFrame[] = [];
  const handler: FrameHandler = {
    onData: (streamId, data, endStream) => seen.push({ type: 'DATA', streamId, data: Buffer.from(data), endStream }),
    onHeaders: (streamId, block, endStream) => seen.push({ type: 'HEADERS', streamId, block: Buffer.from(block), endStream }),
    onRstStream: (streamId, code) => seen.push({ type: 'RST_STREAM', streamId, code }),
    onSettings: (settings) => seen.push({ type: 'SETTINGS', streamId: 0, settings }),
    onSettingsAck: () => seen.push({ type: 'SETTINGS', streamId: 0, ack: true }),
    onPing: (p, ack) => seen.push({ type: 'PING', streamId: 0, ack, data: Buffer.from(p) }),
    onGoaway: (lastStreamId, code) => seen.push({ type: 'GOAWAY', streamId: 0, lastStreamId, code }),
    onWindowUpdate: (streamId, increment) => seen.push({ type: 'WINDOW_UPDATE', streamId, increment }),
    onStreamError: (streamId, code) => seen.push({ type: 'STREAM_ERROR', streamId, code }),
  };
  new FrameReader(handler, { maxFrameSize, maxHeaderBlock: 1 << 20 }).push(bytes);
  return seen;
}

/** An in-memory socket: what the connection writes is collected; feed() delivers bytes to it. */
export class FakeSocket extends Duplex {
  readonly written: Buffer[] = [];
  constructor() {
    super({ allowHalfOpen: false });
  }
  override _read(): void {}
  /** While true, writes are not acknowledged, as with a peer that stopped reading; release() lets them go. */
  hold = false;
  private held: (() => void)[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.written.push(chunk);
    if (this.hold) this.held.push(callback);
    else callback();
  }
  release(): void {
    this.hold = false;
    for (const cb of this.held.splice(0)) cb();
  }
  override _final(callback: () => void): void {
    callback();
  }
  feed(bytes: Buffer): void {
    this.emit('data', bytes);
  }
  /** Everything written since the last call, as frames. */
  sent(): SeenFrame[] {
    const bytes = Buffer.concat(this.written.splice(0));
    return readFrames(bytes);
  }
}

/** A logger that records error-level messages and drops the rest. */
export function recordingLogger(): Logger & { errors: unknown[] } {
  const errors: unknown[] = [];
  const noop = (): void => undefined;
  const log = { errors, error: (...args: unknown[]) => errors.push(args), warn: noop, info: noop, debug: noop, trace: noop, fatal: noop, child: () => log };
  return log as unknown as Logger & { errors: unknown[] };
}

/** Resolves after the check phase in which connections flush their writes (setImmediate). */
export const ticked = (): Promise<void> => new Promise((r) => setImmediate(r));
