// What the proxy benchmarks share to measure the proxy as deployed: its memory from /proc, and the
// proxy compiled to JavaScript as the image runs it.
import { access, readFile, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import { run } from '../test/harness/run.ts';

const root = path.join(import.meta.dirname, '..');

/** Resident memory of a process in MiB: all of it (VmRSS), private (RssAnon) and file-backed pages (RssFile: mapped binaries, shared). */
export interface Memory { rss: number; anon: number; file: number }

export async function memoryOf(pid: number): Promise<Memory> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const mib = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) / 1024;
  return { rss: mib('VmRSS'), anon: mib('RssAnon'), file: mib('RssFile') };
}

/**
 * Compiles the proxy in srcDir (a checkout: src/, tsconfig.json, tsconfig.build.json) to JavaScript
 * as the image build does, into SRCDIR/bench-results/build/NAME, and returns its cli.js. The output
 * resolves packages from srcDir's node_modules: a checkout whose package-lock.json is this
 * repository's gets a link to ours, one with other packages (an older proxy on undici and pino) gets
 * its own from `npm ci`, so that each build runs with the packages it was written for.
 */
export async function buildProxy(srcDir: string, name: string): Promise<string> {
  const out = path.join(srcDir, 'bench-results', 'build', name);
  await rm(out, { recursive: true, force: true });
  if (!(await access(path.join(srcDir, 'node_modules')).then(() => true, () => false))) {
    const lock = async (dir: string): Promise<string> => readFile(path.join(dir, 'package-lock.json'), 'utf8').catch(() => '');
    if ((await lock(srcDir)) === (await lock(root))) await symlink(path.join(root, 'node_modules'), path.join(srcDir, 'node_modules'));
    else await run('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: srcDir });
  }
  await run(path.join(srcDir, 'node_modules', '.bin', 'tsc'), ['-p', path.join(srcDir, 'tsconfig.build.json'), '--outDir', out]);
  return path.join(out, 'cli.js');
}
