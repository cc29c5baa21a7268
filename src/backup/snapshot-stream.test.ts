import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { EtcdSnapshotCheck } from './snapshot-stream.ts';

/** A database of n bytes followed by its sha256, as etcd streams it; chunked at odd sizes. */
function snapshot(n: number, chunk: number, corrupt = false): { chunks: Buffer[]; whole: Buffer } {
  const db = Buffer.alloc(n, 7);
  for (let i = 0; i < n; i += 97) db[i] = i % 251;
  const whole = Buffer.concat([db, createHash('sha256').update(db).digest()]);
  if (corrupt) whole.writeUInt8(whole.readUInt8(Math.floor(n / 2)) ^ 0xff, Math.floor(n / 2));
  const chunks: Buffer[] = [];
  for (let i = 0; i < whole.length; i += chunk) chunks.push(whole.subarray(i, i + chunk));
  return { chunks, whole };
}

async function run(chunks: Buffer[]): Promise<{ out: Buffer; check: EtcdSnapshotCheck; ended: boolean }> {
  const check = new EtcdSnapshotCheck();
  const got: Buffer[] = [];
  let ended = false;
  const sink = new Writable({
    write(c: Buffer, _e, done) {
      got.push(c);
      done();
    },
    final(done) {
      ended = true;
      done();
    },
  });
  await pipeline(Readable.from(chunks), check, sink);
  return { out: Buffer.concat(got), check, ended };
}

describe('EtcdSnapshotCheck', () => {
  it.each([[1], [31], [32], [33], [4096], [100_000]])('passes a good snapshot through unchanged in chunks of %i bytes and reports its size and sha256', async (chunk) => {
    const { chunks, whole } = snapshot(50_000, chunk);
    const { out, check, ended } = await run(chunks);
    expect(out.equals(whole)).toBe(true);
    expect(ended).toBe(true);
    expect(check.digest()).toEqual({ size: whole.length, sha256: createHash('sha256').update(whole).digest('hex') });
  });

  it('fails a corrupted snapshot before its consumer sees the end', async () => {
    const { chunks } = snapshot(50_000, 1000, true);
    const check = new EtcdSnapshotCheck();
    let ended = false;
    const sink = new Writable({ write: (_c, _e, done) => done(), final: (done) => ((ended = true), done()) });
    await expect(pipeline(Readable.from(chunks), check, sink)).rejects.toThrow(/does not match the [0-9a-f]{64} etcd sent with it/);
    expect(ended).toBe(false);
    expect(() => check.digest()).toThrow(/not been verified/);
  });

  it('fails a stream cut short', async () => {
    await expect(run([Buffer.alloc(10)])).rejects.toThrow(/too short to hold a database/);
  });
});
