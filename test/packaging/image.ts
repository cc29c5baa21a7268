import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { spawnLogged, terminate } from '../harness/cluster/processes.ts';
import { run } from '../harness/run.ts';

const repo = path.resolve(import.meta.dirname, '..', '..');

/** The exit status of hack/build-image.sh when no Docker engine can be installed or started. */
const NO_ENGINE = 3;

/** The image hack/build-image.sh built, or why there is no engine to build it with. */
export type ImageBuild = { ok: true; image: string } | { ok: false; reason: string };

/**
 * Runs hack/build-image.sh (seconds when warm). Resolves the image tag, or the script's reason when no
 * Docker engine can be installed or started here; rejects on any other failure, which is a real one.
 */
export function buildImage(): Promise<ImageBuild> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [path.join(repo, 'hack', 'build-image.sh')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const image = /^IMAGE=(\S+)$/m.exec(out)?.[1];
      if (code === 0 && image !== undefined) resolve({ ok: true, image });
      else if (code === NO_ENGINE) resolve({ ok: false, reason: /no Docker engine: (.*)/.exec(err)?.[1] ?? err.trim() });
      else reject(new Error(`hack/build-image.sh exited ${code}:\n${err.trim()}`));
    });
  });
}

/**
 * The flags every container of these tests runs with, as the chart's securityContext asks: host network
 * (sockets stay on loopback), the distroless nonroot user, a read-only root file system, no capabilities
 * and no privilege escalation.
 */
export const HARDENED = ['--network', 'host', '--user', '65532:65532', '--read-only', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges'];

/** A container run in the foreground by `docker run --rm`, its output appended to a log file. */
export class Container {
  readonly name: string;
  readonly logFile: string;
  private readonly client: ChildProcess;

  private constructor(name: string, logFile: string, client: ChildProcess) {
    this.name = name;
    this.logFile = logFile;
    this.client = client;
  }

  /** Starts IMAGE with dockerArgs before it and args (the entrypoint's) after it. */
  static start(name: string, image: string, dockerArgs: string[], args: string[], logFile: string): Container {
    return new Container(name, logFile, spawnLogged('docker', ['run', '--rm', '--name', name, ...dockerArgs, image, ...args], logFile));
  }

  /** The docker client's exit code once the container ended (undefined while it runs). */
  get exitCode(): number | undefined {
    return this.client.exitCode ?? undefined;
  }

  /** `docker inspect` of the running container. */
  async inspect(): Promise<ContainerInspect> {
    return (JSON.parse(await run('docker', ['inspect', this.name])) as ContainerInspect[])[0]!;
  }

  /** What the kernel says of the container's main process: its /proc/PID/status fields and its root mount's options. */
  async process(): Promise<{ status: Record<string, string>; rootMountOptions: string[] }> {
    const pid = (await this.inspect()).State.Pid;
    const status = Object.fromEntries(
      (await readFile(`/proc/${pid}/status`, 'utf8'))
        .split('\n')
        .filter((l) => l.includes(':'))
        .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
    );
    // mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ...
    const root = (await readFile(`/proc/${pid}/mountinfo`, 'utf8')).split('\n').map((l) => l.split(' ')).find((f) => f[4] === '/');
    return { status, rootMountOptions: root?.[5]?.split(',') ?? [] };
  }

  /** The container's log so far. */
  log(): Promise<string> {
    return readFile(this.logFile, 'utf8').catch(() => '');
  }

  /** Stops the container (SIGTERM, then SIGKILL after 10 s) and waits for the client to exit. */
  async stop(): Promise<void> {
    await run('docker', ['stop', '--time', '10', this.name]).catch(() => undefined);
    await terminate(this.client, 5_000);
  }
}

/** The parts of `docker inspect` (a container) the tests read. */
export interface ContainerInspect {
  State: { Pid: number; Running: boolean };
  Config: { User: string; Image: string };
  HostConfig: { NetworkMode: string; ReadonlyRootfs: boolean; CapDrop: string[] | null; SecurityOpt: string[] | null };
}
