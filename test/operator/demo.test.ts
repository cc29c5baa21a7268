import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../harness/run.ts';

const repo = path.resolve(import.meta.dirname, '..', '..');

// The README's first command, end to end: the chart installs the operator as a pod (in-cluster
// config, service-account token, leader election), which brings the example to Available.
describe('npm run demo -- --once', () => {
  it('installs the chart, reaches Available and serves a write through a worker proxy', { timeout: 600_000 }, async () => {
    const out = await run(process.execPath, [path.join(repo, 'hack', 'demo.ts'), '--once']);
    expect(out).toMatch(/Reached Available in \d+s\./);
    expect(out).toMatch(/Through the proxy on worker-\d: written through the proxy on worker-\d/);
    expect(out).toMatch(/example\s+3\/3\s+2\/2\s+example-member-\d\s+True/);
  });
});
