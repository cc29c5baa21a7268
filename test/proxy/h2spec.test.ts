import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { binaries } from '../harness/binaries.ts';
import { createPki } from '../harness/cluster/pki.ts';
import { useProxyFixture } from './fixture.ts';

/** h2spec's summary line and its "Failures:" section (grouped by RFC section), from one run. */
interface H2specResult {
  tests: number;
  passed: number;
  failed: number;
  failures: string;
}

function h2spec(args: string[]): Promise<H2specResult> {
  return new Promise((resolve, reject) => {
    // Exits 1 when a case fails: the summary is what counts, so the exit code is not an error here.
    execFile(binaries().h2spec, ['--timeout', '5', ...args], { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const summary = /(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed/.exec(stdout);
      if (summary === null) {
        reject(new Error(`h2spec printed no summary (${err?.message ?? 'exit 0'}): ${stderr || stdout}`));
        return;
      }
      const at = stdout.indexOf('Failures:');
      const failures = at < 0 ? '' : stdout.slice(at, stdout.lastIndexOf(summary[0])).trim();
      resolve({ tests: Number(summary[1]), passed: Number(summary[2]), failed: Number(summary[4]), failures });
    });
  });
}

describe('HTTP/2 conformance: h2spec against the proxy (one etcd member behind it)', () => {
  let dir: string | undefined;
  const f = useProxyFixture({
    size: 1,
    proxyOptions: async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), 'proxy-h2spec-'));
      const pki = await createPki(dir);
      return { tlsListener: { cert: pki.apiserver.cert, key: pki.apiserver.key } };
    },
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it.each([
    ['cleartext listener (h2c, prior knowledge)', false],
    ['TLS listener (ALPN h2)', true],
  ])('passes every case on the %s, and the proxy keeps serving', async (_name, tls) => {
    const url = new URL(tls ? f.proxy.tlsUrl! : f.proxy.url);
    const result = await h2spec(['-h', url.hostname, '-p', url.port, ...(tls ? ['-t', '-k'] : [])]);
    // Failures are printed by RFC section, so that a regression names the rule it broke.
    if (result.failed > 0) console.error(`h2spec against ${url.href}:\n${result.failures}`);
    expect(result).toEqual({ tests: 145, passed: 145, failed: 0, failures: '' });
    // 145 connections that broke the protocol on purpose cost no one else anything.
    expect(f.proxy.child.exitCode).toBeNull();
    await f.c.unary(f.c.kv, 'Put', { key: Buffer.from('/h2spec'), value: Buffer.from(url.protocol) });
    const r = await f.c.unary<{ kvs: { value: Buffer }[] }>(f.c.kv, 'Range', { key: Buffer.from('/h2spec') });
    expect(Buffer.from(r.kvs[0]!.value).toString()).toBe(url.protocol);
  }, 180_000);
});
