import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { spawnLogged, terminate } from '../harness/cluster/processes.ts';
import { freePort, waitFor } from '../harness/ports.ts';

const repo = path.resolve(import.meta.dirname, '..', '..');

/** The operator run from dist/ as a local process with the admin kubeconfig, for tests that need its metrics. */
export class OperatorProcess {
  readonly metricsUrl: string;
  readonly logFile: string;
  private readonly child: ChildProcess;

  private constructor(child: ChildProcess, metricsUrl: string, logFile: string) {
    this.child = child;
    this.metricsUrl = metricsUrl;
    this.logFile = logFile;
  }

  /**
   * Starts `etcd-topology operator` and waits for /readyz (a standby is ready too). identity becomes
   * POD_NAME, the leader-election identity, so that several replicas can be told apart; nodeArgs go
   * to node itself (a benchmark's --heapsnapshot-signal, V8 heap sizes); env is added to the
   * environment (a benchmark's malloc tuning).
   */
  static async start(kubeconfig: string, logFile: string, extraArgs: string[] = [], identity?: string, nodeArgs: string[] = [], env: Record<string, string> = {}): Promise<OperatorProcess> {
    const [metrics, health] = [await freePort(), await freePort()];
    const child = spawnLogged(
      process.execPath,
      [...nodeArgs, path.join(repo, 'dist', 'cli.js'), 'operator', `--kubeconfig=${kubeconfig}`, `--metrics-addr=127.0.0.1:${metrics}`, `--health-addr=127.0.0.1:${health}`, '--leader-election-namespace=default', ...extraArgs],
      logFile,
      identity === undefined && Object.keys(env).length === 0 ? {} : { env: { ...process.env, ...env, ...(identity === undefined ? {} : { POD_NAME: identity }) } },
    );
    await waitFor('the operator /readyz', async () => {
      if (child.exitCode !== null) throw new Error(`the operator exited with ${child.exitCode}; see ${logFile}`);
      const res = await fetch(`http://127.0.0.1:${health}/readyz`).catch(() => undefined);
      return res?.status === 200;
    });
    return new OperatorProcess(child, `http://127.0.0.1:${metrics}/metrics`, logFile);
  }

  /** A counter's value per label set, from /metrics. */
  async series(name: string): Promise<Record<string, number>> {
    return OperatorProcess.seriesIn(await this.scrape(), name);
  }

  /** A counter's value per label set, from one /metrics text (to read several series of one instant). */
  static seriesIn(text: string, name: string): Record<string, number> {
    const out: Record<string, number> = {};
    for (const line of text.split('\n')) {
      const m = new RegExp(`^${name}(\\{[^}]*\\})? ([0-9.e+-]+)$`).exec(line);
      if (m) out[m[1] ?? ''] = Number(m[2]);
    }
    return out;
  }

  /**
   * The /metrics text. A request that fails on the socket is sent once more: fetch reuses a
   * keep-alive connection that the operator's HTTP server may be closing at that moment (its idle
   * timeout), and the request then fails with "other side closed" although the server is fine.
   */
  async scrape(): Promise<string> {
    try {
      return await (await fetch(this.metricsUrl)).text();
    } catch (err) {
      if (!this.alive) throw err;
      return await (await fetch(this.metricsUrl)).text();
    }
  }

  /** Sum of a counter over the label sets that pass filter. */
  async counter(name: string, filter: (labels: string) => boolean = () => true): Promise<number> {
    return OperatorProcess.counterIn(await this.scrape(), name, filter);
  }

  /** Sum of a counter over the label sets that pass filter, from one /metrics text. */
  static counterIn(text: string, name: string, filter: (labels: string) => boolean = () => true): number {
    return Object.entries(OperatorProcess.seriesIn(text, name))
      .filter(([labels]) => filter(labels))
      .reduce((sum, [, v]) => sum + v, 0);
  }

  /** The operator's process ID (for RSS). */
  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The exit code, or the signal that ended it; undefined while it runs. */
  get exit(): number | NodeJS.Signals | undefined {
    return this.child.exitCode ?? this.child.signalCode ?? undefined;
  }

  /** Kills the operator at once (SIGKILL): no release of its lease, as when its node dies. */
  async kill(): Promise<void> {
    await terminate(this.child, 0, 'SIGKILL');
  }

  async stop(): Promise<number | null> {
    await terminate(this.child, 10_000);
    return this.child.exitCode;
  }
}
