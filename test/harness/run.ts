import { spawn } from 'node:child_process';
import path from 'node:path';

/** Runs a command and resolves its stdout; rejects with its stderr when it exits non-zero. */
export function run(file: string, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: options.env ?? process.env, cwd: options.cwd });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${path.basename(file)} ${args.join(' ')} exited ${code}: ${err.trim() || out.trim()}`));
    });
    if (child.stdin) {
      // The command may exit before reading its input; that is its exit code's business, not an EPIPE crash.
      child.stdin.on('error', () => undefined);
      child.stdin.end(options.input);
    }
  });
}
