import type { ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { binaries } from './binaries.ts';
import { spawnLogged, terminate } from './cluster/processes.ts';
import { freePort, waitFor } from './ports.ts';

/**
 * A real S3-compatible server (versitygw over a directory) on 127.0.0.1, for backup tests: each bucket
 * is a folder under dir, each object a file, so a test can also corrupt one behind the server's back.
 */
export class S3Server {
  readonly endpoint: string;
  readonly dir: string;
  readonly accessKeyId = 'etcdtopologytest';
  readonly secretAccessKey = 'etcd-topology-test-secret';
  private readonly child: ChildProcess;

  private constructor(endpoint: string, dir: string, child: ChildProcess) {
    this.endpoint = endpoint;
    this.dir = dir;
    this.child = child;
  }

  static async start(host = '127.0.0.1'): Promise<S3Server> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 's3-server-'));
    const data = path.join(dir, 'data');
    await mkdir(data);
    const port = await freePort(host);
    const child = spawnLogged(binaries().versitygw, ['--access', 'etcdtopologytest', '--secret', 'etcd-topology-test-secret', '--port', `${host}:${port}`, 'posix', data], path.join(dir, 'versitygw.log'));
    const server = new S3Server(`http://${host}:${port}`, data, child);
    await waitFor(`versitygw on ${host}:${port}`, () =>
      new Promise<boolean>((resolve) => {
        if (child.exitCode !== null) resolve(false);
        const s = net.connect(port, host, () => {
          s.end();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      }),
    { timeoutMs: 30_000 });
    return server;
  }

  /** Makes a bucket (a folder, which is what versitygw's posix backend serves as one). */
  async createBucket(name: string): Promise<void> {
    await mkdir(path.join(this.dir, name), { recursive: true });
  }

  /** The file behind an object. */
  objectPath(bucket: string, key: string): string {
    return path.join(this.dir, bucket, key);
  }

  async stop(): Promise<void> {
    await terminate(this.child, 5_000);
    await rm(path.dirname(this.dir), { recursive: true, force: true });
  }
}
