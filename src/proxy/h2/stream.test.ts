import { describe, expect, it } from 'vitest';
import { H2Stream, type StreamOwner } from './stream.ts';

/** An owner that records DATA frames and lets the test open the stream's window. */
function recordingOwner(): StreamOwner & { frames: { data: Buffer; end: boolean }[] } {
  const frames: { data: Buffer; end: boolean }[] = [];
  return {
    frames,
    peerMaxFrameSize: 16_384,
    sendWindow: 1 << 30,
    localInitialWindow: 65_535,
    canWrite: () => true,
    writeData: (_id, data, end) => frames.push({ data, end }),
    writeHeaders: () => undefined,
    writeWindowUpdate: () => undefined,
    writeRst: () => undefined,
    blocked: () => undefined,
    forget: () => undefined,
  };
}

describe('H2Stream send queue', () => {
  it('sends a long queue held back by a closed window in order, window by window, then ends it', () => {
    const owner = recordingOwner();
    const stream = new H2Stream(1, owner, 0, false);
    const messages = Array.from({ length: 5000 }, (_, i) => Buffer.from(`message ${i};`));
    for (const m of messages) expect(stream.sendData(m)).toBe(0);
    stream.end();
    const total = messages.reduce((n, m) => n + m.length, 0);
    expect(stream.queued).toBe(total);
    // The window opens a little at a time, splitting messages at odd places.
    while (stream.queued > 0) {
      stream.sendWindow += 1000;
      stream.flush();
    }
    const sent = Buffer.concat(owner.frames.map((f) => f.data));
    expect(sent.toString()).toBe(Buffer.concat(messages).toString());
    expect(owner.frames.filter((f) => f.end)).toHaveLength(1);
    expect(owner.frames.at(-1)!.end).toBe(true);
    expect(stream.localEnded).toBe(true);
  });
});
