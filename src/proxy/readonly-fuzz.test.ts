import { describe, expect, it } from 'vitest';
import { frameMessage } from './grpc-frame.ts';
import { varint } from './protobuf-encode.testing.ts';
import { classifyGateway, classifyGrpc, isAlarmGet, isTxnReadOnly } from './readonly.ts';

// A seeded generator, so a failure names a seed that reproduces it.
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const enc = varint;
const field = (num: number, payload: number[]): number[] => [...enc((num << 3) | 2), ...enc(payload.length), ...payload];

/**
 * An independent model of etcd's IsTxnReadonly over the structures this generator builds: the
 * ground truth the classifier is checked against. ops are oneof numbers 1..4; 4 carries a nested txn.
 */
interface Op { kind: number; nested?: Txn }
interface Txn { success: Op[]; failure: Op[] }
const modelReadOnly = (t: Txn): boolean => [...t.success, ...t.failure].every((op) => op.kind === 1);

function genTxn(r: () => number, depth = 0): Txn {
  const ops = (): Op[] =>
    Array.from({ length: Math.floor(r() * 4) }, () => {
      const kind = 1 + Math.floor(r() * (depth < 2 ? 4 : 3));
      return kind === 4 ? { kind, nested: genTxn(r, depth + 1) } : { kind };
    });
  return { success: ops(), failure: ops() };
}

function encodeTxn(t: Txn, r: () => number): number[] {
  const body = (op: Op): number[] => (op.kind === 4 ? encodeTxn(op.nested!, r) : field(1, Array.from({ length: Math.floor(r() * 6) }, () => 97)));
  const parts: number[][] = [];
  if (r() < 0.5) parts.push(field(1, field(3, [107]))); // a compare
  for (const op of t.success) parts.push(field(2, field(op.kind, body(op))));
  for (const op of t.failure) parts.push(field(3, field(op.kind, body(op))));
  // Field order on the wire is free: shuffle it.
  for (let i = parts.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [parts[i], parts[j]] = [parts[j]!, parts[i]!];
  }
  return parts.flat();
}

describe('readonly classifier under random and mutated input', () => {
  it('agrees with the model of etcd IsTxnReadonly on 5,000 random well-formed Txns', () => {
    const r = rng(20260501);
    let reads = 0;
    const wrong: string[] = [];
    for (let i = 0; i < 5000; i++) {
      const t = genTxn(r);
      const bytes = new Uint8Array(encodeTxn(t, r));
      const expected = modelReadOnly(t);
      if (expected) reads++;
      if (isTxnReadOnly(bytes) !== expected) wrong.push(`case ${i}: isTxnReadOnly says ${!expected}: ${Buffer.from(bytes).toString('hex')}`);
      if (classifyGrpc('/etcdserverpb.KV/Txn', frameMessage(bytes)).allow !== expected) wrong.push(`case ${i}: classifyGrpc says ${!expected}`);
    }
    expect(wrong).toEqual([]);
    // Both outcomes must be well represented, or the test proves little.
    expect(reads).toBeGreaterThan(500);
    expect(reads).toBeLessThan(4500);
  });

  it('never throws and never passes a write when writes are mutated byte by byte', () => {
    const r = rng(7);
    let passed = 0;
    const wrong: string[] = [];
    for (let i = 0; i < 5000; i++) {
      let t = genTxn(r);
      while (modelReadOnly(t)) t = genTxn(r);
      const bytes = encodeTxn(t, r);
      const mutated = [...bytes];
      const edits = 1 + Math.floor(r() * 3);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(r() * (mutated.length + 1));
        const what = r();
        if (what < 0.4) mutated[at] = Math.floor(r() * 256);
        else if (what < 0.7) mutated.splice(at, 1);
        else mutated.splice(at, 0, Math.floor(r() * 256));
      }
      const m = new Uint8Array(mutated);
      const verdict = caseOf(i, m, () => isTxnReadOnly(m));
      // A mutation can turn a write into a genuine read (for example by rewriting a put's tag into a
      // range's); what must never happen is passing bytes that still hold a write. Re-derive the truth
      // by checking that no put, delete or nested-txn RequestOp survives in what was accepted.
      if (verdict) {
        passed++;
        if (holdsWrite(m)) wrong.push(`case ${i}: a write passed: ${Buffer.from(m).toString('hex')}`);
      }
    }
    expect(wrong).toEqual([]);
    expect(passed).toBeLessThan(5000);
  });

  it('never throws on random bytes for any method, and refuses writes whatever the body', () => {
    const r = rng(42);
    const wrong: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const bytes = Buffer.from(Array.from({ length: Math.floor(r() * 64) }, () => Math.floor(r() * 256)));
      caseOf(i, bytes, () => classifyGrpc('/etcdserverpb.KV/Txn', bytes));
      caseOf(i, bytes, () => isAlarmGet(bytes));
      if (caseOf(i, bytes, () => classifyGrpc('/etcdserverpb.KV/Put', bytes).allow)) wrong.push(`case ${i}: a Put passed`);
      caseOf(i, bytes, () => classifyGateway('/v3/kv/txn', bytes.toString('latin1')));
      const json = JSON.stringify({ success: [{ [r() < 0.5 ? 'request_put' : 'requestDeleteRange']: { key: bytes.toString('base64') } }] });
      if (classifyGateway('/v3/kv/txn', json).allow) wrong.push(`case ${i}: a gateway write passed: ${json}`);
    }
    expect(wrong).toEqual([]);
  });
});

/**
 * Runs one case's check, naming the case and its input if it throws. The loops check with plain
 * comparisons and assert once at the end: an expect() per case cost most of each test's time, which
 * under a loaded machine's CPU ran into vitest's 5 s default.
 */
function caseOf<T>(i: number, input: Uint8Array, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new Error(`case ${i} threw on ${Buffer.from(input).toString('hex')}`, { cause: err });
  }
}

/** An independent, schema-aware decoder: does this TxnRequest contain any RequestOp other than a lone range? */
function holdsWrite(msg: Uint8Array): boolean {
  const fields = decode(msg);
  if (fields === undefined) return true;
  for (const f of fields) {
    if (f.num === 1) continue;
    if ((f.num !== 2 && f.num !== 3) || f.payload === undefined) return true;
    const op = decode(f.payload);
    if (op === undefined || op.length === 0 || op.some((o) => o.num !== 1 || o.payload === undefined)) return true;
  }
  return false;
}

function decode(b: Uint8Array): { num: number; payload?: Uint8Array }[] | undefined {
  const out: { num: number; payload?: Uint8Array }[] = [];
  let i = 0;
  const v = (): number | undefined => {
    let n = 0;
    let mul = 1;
    for (let k = 0; k < 10; k++) {
      if (i >= b.length) return undefined;
      const x = b[i++]!;
      n += (x & 0x7f) * mul;
      if ((x & 0x80) === 0) return n;
      mul *= 128;
    }
    return undefined;
  };
  while (i < b.length) {
    const tag = v();
    if (tag === undefined) return undefined;
    const wt = tag % 8;
    const num = Math.floor(tag / 8);
    if (wt === 0) {
      if (v() === undefined) return undefined;
      out.push({ num });
    } else if (wt === 2) {
      const n = v();
      if (n === undefined || i + n > b.length) return undefined;
      out.push({ num, payload: b.subarray(i, i + n) });
      i += n;
    } else if (wt === 1 || wt === 5) {
      i += wt === 1 ? 8 : 4;
      if (i > b.length) return undefined;
      out.push({ num });
    } else return undefined;
  }
  return out;
}
