import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { binaries } from './binaries.ts';
import { freePort, StopWaiting, waitFor } from './ports.ts';
import { dyingWithParent } from './cluster/processes.ts';
import { run } from './run.ts';
import { beforeEach } from 'vitest';

/** One etcd member run as a local process on 127.0.0.1. */
export interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  process: ChildProcess | undefined;
  /** Arguments the member was first started with (with --initial-cluster-state new). */
  args: string[];
}

export interface EtcdClusterOptions {
  size?: number;
  /** Extra flags for every member, e.g. ['--quota-backend-bytes=...']. */
  extraArgs?: string[];
}

/**
 * A real etcd cluster of local processes, each with free ports and its own data directory in one
 * temp dir. Members can be killed, restarted, wiped, added and removed; stop() leaves nothing behind.
 */
export class EtcdCluster {
  readonly members: EtcdMember[] = [];
  readonly dir: string;
  private readonly extraArgs: string[];
  private constructor(dir: string, extraArgs: string[]) {
    this.dir = dir;
    this.extraArgs = extraArgs;
  }

  /** Starts size members and waits until every one answers /health. */
  static async start(options: EtcdClusterOptions = {}): Promise<EtcdCluster> {
    const size = options.size ?? 3;
    const dir = await mkdtemp(path.join(os.tmpdir(), 'etcd-cluster-'));
    const cluster = new EtcdCluster(dir, options.extraArgs ?? []);
    try {
      for (let i = 0; i < size; i++) cluster.members.push(await cluster.newMember(`m${i}`));
      const initialCluster = cluster.members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
      for (const m of cluster.members) {
        m.args = cluster.argsFor(m, initialCluster, 'new');
        cluster.spawn(m);
      }
      await Promise.all(cluster.members.map((m) => cluster.waitHealthy(m)));
      await cluster.waitFormed();
      return cluster;
    } catch (err) {
      const logs = await cluster.logTails();
      await cluster.stop();
      throw new Error(`${err instanceof Error ? err.message : String(err)}\n${logs}`, { cause: err });
    }
  }

  /** Client URLs of the running members, comma-separated, for --endpoints. */
  get endpoints(): string {
    return this.members.filter((m) => m.process).map((m) => m.clientUrl).join(',');
  }

  member(name: string): EtcdMember {
    const m = this.members.find((x) => x.name === name);
    if (!m) throw new Error(`no etcd member ${name}`);
    return m;
  }

  /** Sends SIGKILL to the member and waits for it to exit. */
  async kill(name: string): Promise<void> {
    const m = this.member(name);
    const p = m.process;
    if (!p) return;
    m.process = undefined;
    if (p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  }

  /** Starts a killed member again on the same ports and data directory. */
  async restart(name: string): Promise<void> {
    const m = this.member(name);
    if (m.process) throw new Error(`etcd member ${name} is still running`);
    this.spawn(m, m.args.map((a) => (a === '--initial-cluster-state=new' ? '--initial-cluster-state=existing' : a)));
    await this.waitHealthy(m);
  }

  /** Kills the member and deletes its data directory (a lost disk). */
  async wipe(name: string): Promise<void> {
    await this.kill(name);
    await rm(this.member(name).dataDir, { recursive: true, force: true });
  }

  /** Adds a member with etcdctl member add (optionally as a learner) and starts it. */
  async add(name: string, { learner = false } = {}): Promise<EtcdMember> {
    const m = await this.newMember(name);
    // etcd refuses reconfiguration ("unhealthy cluster") until every member has been connected
    // for a few seconds, as right after a restart; that refusal is transient, anything else is not.
    await waitFor(`member add ${name}`, async () => {
      try {
        return await this.etcdctl(['member', 'add', name, `--peer-urls=${m.peerUrl}`, ...(learner ? ['--learner'] : [])]);
      } catch (err) {
        if (err instanceof Error && err.message.includes('unhealthy cluster')) return false;
        throw new StopWaiting(err);
      }
    }, { timeoutMs: 30_000 });
    this.members.push(m);
    const initialCluster = this.members.map((x) => `${x.name}=${x.peerUrl}`).join(',');
    m.args = this.argsFor(m, initialCluster, 'existing');
    this.spawn(m);
    await this.waitHealthy(m, learner);
    return m;
  }

  /** Runs etcdctl against the running members and returns its stdout. */
  async etcdctl(args: string[], endpoints = this.endpoints): Promise<string> {
    return run(binaries().etcdctl, [`--endpoints=${endpoints}`, ...args]);
  }

  /**
   * The last lines of each member's log, for a failing test to print: the temp dir with the logs
   * is gone after stop().
   */
  async logTails(lines = 30): Promise<string> {
    const parts = await Promise.all(this.members.map(async (m) => {
      const text = await readFile(path.join(this.dir, `${m.name}.log`), 'utf8').catch(() => '(no log)');
      const state = m.process === undefined ? 'stopped' : m.process.exitCode !== null ? `exited ${m.process.exitCode}` : `pid ${m.process.pid}`;
      return `--- etcd ${m.name} (${state}, client ${m.clientUrl}, peer ${m.peerUrl}), last ${lines} log lines:\n${text.trimEnd().split('\n').slice(-lines).join('\n')}`;
    }));
    return parts.join('\n');
  }

  /** Kills every member and removes the temp dir. */
  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => this.kill(m.name)));
    await rm(this.dir, { recursive: true, force: true });
  }

  private async newMember(name: string): Promise<EtcdMember> {
    const clientPort = await freePort();
    const peerPort = await freePort();
    return {
      name,
      clientUrl: `http://127.0.0.1:${clientPort}`,
      peerUrl: `http://127.0.0.1:${peerPort}`,
      dataDir: path.join(this.dir, name),
      process: undefined,
      args: [],
    };
  }

  private argsFor(m: EtcdMember, initialCluster: string, state: 'new' | 'existing'): string[] {
    return [
      `--name=${m.name}`,
      `--data-dir=${m.dataDir}`,
      `--listen-client-urls=${m.clientUrl}`,
      `--advertise-client-urls=${m.clientUrl}`,
      `--listen-peer-urls=${m.peerUrl}`,
      `--initial-advertise-peer-urls=${m.peerUrl}`,
      `--initial-cluster=${initialCluster}`,
      `--initial-cluster-state=${state}`,
      '--initial-cluster-token=etcd-topology-test',
      // Local processes on one loaded machine: short ticks but generous elections, and no fsync cost.
      '--heartbeat-interval=50',
      '--election-timeout=1000',
      '--unsafe-no-fsync',
      '--log-level=warn',
      ...this.extraArgs,
    ];
  }

  private spawn(m: EtcdMember, args = m.args): void {
    const log = createWriteStream(path.join(this.dir, `${m.name}.log`), { flags: 'a' });
    const [cmd, argv] = dyingWithParent(binaries().etcd, args);
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pipe(log);
    child.stderr.pipe(log);
    m.process = child;
  }

  /**
   * Waits until every member lists every member with its client URL: a member serves clients 5 s
   * after start even when it has not yet published its attributes through raft (etcd's
   * wait-cluster-ready timeout), and a test reading the member list must not see that half state.
   */
  private async waitFormed(): Promise<void> {
    const names = this.members.map((m) => m.name).sort().join(',');
    await waitFor(`etcd members ${names} to list each other with client URLs`, async () => {
      const lists = await Promise.all(this.members.map(async (m) => {
        const res = await fetch(`${m.clientUrl}/v3/cluster/member/list`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(3_000) });
        const body = (await res.json()) as { members?: { name?: string; clientURLs?: string[] }[] };
        return body.members ?? [];
      }));
      return lists.every((list) => list.filter((x) => x.clientURLs?.length).map((x) => x.name).sort().join(',') === names);
    });
  }

  private async waitHealthy(m: EtcdMember, learner = false): Promise<void> {
    // A learner does not serve /health as healthy until promoted; it is ready once it answers at all.
    await waitFor(`etcd member ${m.name} at ${m.clientUrl}`, async () => {
      if (m.process?.exitCode !== null && m.process?.exitCode !== undefined) {
        throw new Error(`etcd member ${m.name} exited with ${m.process.exitCode}; see ${path.join(this.dir, `${m.name}.log`)}`);
      }
      const res = await fetch(`${m.clientUrl}/health`).catch(() => undefined);
      if (!res) return false;
      if (learner) return true;
      const body = (await res.json()) as { health?: string };
      return body.health === 'true';
    });
  }
}

/**
 * Registers a beforeEach in the calling describe block that prints the members' log tails when a
 * test fails: the logs live in the cluster's temp dir, which stop() removes.
 */
export function printEtcdLogsOnFailure(cluster: () => EtcdCluster | undefined): void {
  beforeEach(({ onTestFailed }) => {
    onTestFailed(async () => {
      const c = cluster();
      if (c) console.error(await c.logTails());
    });
  });
}
