import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, createWriteStream } from 'node:fs';

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((f) => existsSync(f));

/**
 * The command line that runs file with args and dies with this process: setpriv --pdeathsig makes the
 * kernel send SIGKILL when the test process goes away, however abruptly, so no cluster outlives it.
 */
export function dyingWithParent(file: string, args: string[]): [string, string[]] {
  return SETPRIV ? [SETPRIV, ['--pdeathsig', 'KILL', '--', file, ...args]] : [file, args];
}

/** Spawns a long-running process with its output appended to a log file; the child is its own process group. */
export function spawnLogged(file: string, args: string[], log: string, options: SpawnOptions = {}): ChildProcess {
  const out = createWriteStream(log, { flags: 'a' });
  const [cmd, argv] = dyingWithParent(file, args);
  const child = spawn(cmd, argv, { ...options, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  child.stdout.pipe(out);
  child.stderr.pipe(out);
  child.on('error', (err) => out.write(`spawn failed: ${err.message}\n`));
  return child;
}

/** True while the child has neither exited nor been killed by a signal. */
export function alive(child: ChildProcess | undefined): boolean {
  return child !== undefined && child.exitCode === null && child.signalCode === null;
}

/**
 * Sends signal to the child's whole process group and waits for the child to exit; after graceMs
 * it sends SIGKILL. Resolves at once for a child that already exited.
 */
export async function terminate(child: ChildProcess | undefined, graceMs = 10_000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!child || !alive(child) || child.pid === undefined) return;
  const pid = child.pid;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        child.kill(sig);
      } catch {
        // already gone
      }
    }
  };
  kill(signal);
  if (signal === 'SIGKILL') return exited;
  const timer = setTimeout(() => kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}
