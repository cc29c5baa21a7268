import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, waitFor } from '../harness/ports.ts';

const cli = path.join(import.meta.dirname, '..', '..', 'src', 'cli.ts');

// A module hook that writes every module URL the process loaded to a file when it exits.
const hook = `import { registerHooks } from 'node:module';
import { writeFileSync } from 'node:fs';
const loaded = [];
registerHooks({ load(url, context, next) { loaded.push(url); return next(url, context); } });
process.on('exit', () => writeFileSync(process.env.MODULES_FILE, loaded.join('\\n')));
`;

// The proxy runs on every worker node, so what it loads at start is multiplied by the fleet
// (docs/bench/proxy-memory.md). This runs the real command, serving, and lists what it loaded.
describe('what `etcd-topology proxy` loads', () => {
  let dir: string;
  let loaded: string[];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'proxy-modules-'));
    await writeFile(path.join(dir, 'hook.mjs'), hook);
    const [port, metricsPort] = [await freePort(), await freePort()];
    const child = spawn(
      process.execPath,
      ['--import', path.join(dir, 'hook.mjs'), cli, 'proxy', '--endpoints=http://127.0.0.1:1', `--listen-client-urls=http://127.0.0.1:${port}`, `--metrics-addr=127.0.0.1:${metricsPort}`],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, MODULES_FILE: path.join(dir, 'modules'), LOG_LEVEL: 'info' } },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await waitFor('the proxy to start', () => {
      if (child.exitCode !== null) throw new Error(`the proxy exited ${child.exitCode}: ${out}`);
      return out.includes('Started the etcd proxy');
    }, { timeoutMs: 20_000 });
    // One scrape, so that whatever collecting metrics loads is loaded too.
    expect((await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).status).toBe(200);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    loaded = (await readFile(path.join(dir, 'modules'), 'utf8')).split('\n');
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('loads neither the operator nor its Kubernetes client, zod, pino, undici or all of prom-client', () => {
    const packages = new Set(loaded.map((u) => /node_modules\/((@[^/]+\/)?[^/]+)/.exec(u)?.[1]).filter((p) => p !== undefined));
    // prom-client's own files only: HTTP/1.1 to the members is node:http's client, logs the project's own writer.
    expect([...packages].sort()).toEqual(['prom-client']);
    expect(loaded.filter((u) => /\/src\/(operator|api|backup|check|etcd|quorum)\//.test(u))).toEqual([]);
    expect(loaded.filter((u) => /prom-client\/(index|lib\/(pushgateway|cluster|summary|defaultMetrics|metrics\/processCpuTotal))\.js$/.test(u))).toEqual([]);
  });
});
