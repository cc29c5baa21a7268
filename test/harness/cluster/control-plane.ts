import type { ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Agent, request } from 'undici';
import { binaries } from '../binaries.ts';
import { freePort, waitFor } from '../ports.ts';
import { createPki, kubeconfig, type Pki } from './pki.ts';
import { alive, spawnLogged, terminate } from './processes.ts';

/** A running Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler. */
export interface ControlPlane {
  server: string;
  apiserverPort: number;
  pki: Pki;
  /** Admin kubeconfig (system:masters). */
  kubeconfig: string;
  /**
   * Stops kube-apiserver, keeps it down for downMs, then starts it again with the same port, flags
   * and etcd data, and waits for its /readyz. Resolves how long each phase took: stopping (signal
   * until exit), down, starting (until /readyz). SIGKILL (the default) stops it at once, as a crash;
   * with SIGTERM its graceful shutdown refuses requests for up to 10 s more while watches drain.
   */
  restartApiserver(downMs: number, signal?: NodeJS.Signals): Promise<{ stoppingMs: number; downMs: number; startingMs: number }>;
  /**
   * Freezes kube-apiserver (SIGSTOP) for ms, then lets it go on (SIGCONT): an outage of exactly
   * that long, with connections open and requests unanswered, and no start-up time after it.
   */
  freezeApiserver(ms: number): Promise<void>;
  stop(): Promise<void>;
}

/** Options to tune the control plane for tests. */
export interface ControlPlaneOptions {
  dir: string;
  /** How long a node may miss heartbeats before it is marked NotReady (kube-controller-manager). */
  nodeMonitorGracePeriod?: string;
  /**
   * Client QPS of kube-controller-manager and kube-scheduler (burst twice that); their defaults (20
   * and 50) make a DaemonSet over 1,000 simulated nodes take minutes to create and bind its pods.
   */
  controllerQps?: number;
}

/** Starts a secure control plane on 127.0.0.1 with free ports, writing everything under dir. */
export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const { dir } = options;
  const bin = binaries();
  const processes: { name: string; child: ChildProcess }[] = [];
  const stop = async (): Promise<void> => {
    // Reverse order: controllers first, the store last.
    for (const { child } of processes.reverse()) await terminate(child, 5_000);
  };
  const startProcess = (name: string, file: string, args: string[]): ChildProcess => {
    const child = spawnLogged(file, args, path.join(dir, `${name}.log`));
    processes.push({ name, child });
    return child;
  };
  const exitedEarly = async (name: string, child: ChildProcess): Promise<void> => {
    if (!alive(child)) {
      const log = await readFile(path.join(dir, `${name}.log`), 'utf8').catch(() => '');
      throw new Error(`${name} exited with ${child.exitCode ?? child.signalCode}: ${log.trim().split('\n').slice(-5).join('\n')}`);
    }
  };

  try {
    const pki = await createPki(dir);
    const [etcdClient, etcdPeer, apiserverPort, kcmPort, schedulerPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);

    const etcd = startProcess('etcd', bin.etcd, [
      '--name=control-plane',
      `--data-dir=${path.join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=control-plane=http://127.0.0.1:${etcdPeer}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);

    const server = `https://127.0.0.1:${apiserverPort}`;
    const apiserverArgs = [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      `--cert-dir=${dir}`,
      `--tls-cert-file=${pki.apiserver.cert}`,
      `--tls-private-key-file=${pki.apiserver.key}`,
      `--client-ca-file=${pki.ca.cert}`,
      `--secure-port=${apiserverPort}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      '--service-cluster-ip-range=10.0.0.0/24',
      '--allow-privileged=true',
      '--authorization-mode=RBAC',
      `--service-account-issuer=${server}`,
      `--service-account-key-file=${pki.serviceAccountPub}`,
      `--service-account-signing-key-file=${pki.serviceAccountKey}`,
      '--profiling=false',
      '--v=1',
    ];
    let apiserver = startProcess('kube-apiserver', bin.kubeApiserver, apiserverArgs);

    const adminKubeconfig = path.join(dir, 'admin.kubeconfig');
    await writeFile(adminKubeconfig, kubeconfig(server, pki.ca.cert, pki.admin, 'admin'));
    const kcmKubeconfig = path.join(dir, 'controller-manager.kubeconfig');
    await writeFile(kcmKubeconfig, kubeconfig(server, pki.ca.cert, pki.controllerManager, 'kube-controller-manager'));
    const schedulerKubeconfig = path.join(dir, 'scheduler.kubeconfig');
    await writeFile(schedulerKubeconfig, kubeconfig(server, pki.ca.cert, pki.scheduler, 'kube-scheduler'));

    const apiserverReady = async (): Promise<void> => {
      const agent = new Agent({ connect: { ca: await readFile(pki.ca.cert), cert: await readFile(pki.admin.cert), key: await readFile(pki.admin.key) } });
      try {
        await waitFor(
          'kube-apiserver /readyz',
          async () => {
            await exitedEarly('etcd', etcd);
            await exitedEarly('kube-apiserver', apiserver);
            const res = await request(`${server}/readyz`, { dispatcher: agent }).catch(() => undefined);
            if (!res) return false;
            await res.body.text();
            return res.statusCode === 200;
          },
          { timeoutMs: 120_000, intervalMs: 250 },
        );
      } finally {
        await agent.close();
      }
    };
    await apiserverReady();
    const restartApiserver = async (downMs: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<{ stoppingMs: number; downMs: number; startingMs: number }> => {
      const old = apiserver;
      const t0 = Date.now();
      await terminate(old, 10_000, signal);
      const t1 = Date.now();
      processes.splice(processes.findIndex((p) => p.child === old), 1);
      await new Promise((r) => setTimeout(r, downMs));
      apiserver = startProcess('kube-apiserver', bin.kubeApiserver, apiserverArgs);
      // Keep the stop order: the new apiserver must still stop before etcd.
      processes.splice(processes.findIndex((p) => p.child === etcd) + 1, 0, processes.pop()!);
      const t2 = Date.now();
      await apiserverReady();
      return { stoppingMs: t1 - t0, downMs: t2 - t1, startingMs: Date.now() - t2 };
    };

    const freezeApiserver = async (ms: number): Promise<void> => {
      const frozen = apiserver;
      frozen.kill('SIGSTOP');
      try {
        await new Promise((r) => setTimeout(r, ms));
      } finally {
        frozen.kill('SIGCONT');
      }
    };

    const qpsFlags = options.controllerQps ? [`--kube-api-qps=${options.controllerQps}`, `--kube-api-burst=${2 * options.controllerQps}`] : [];
    const kcm = startProcess('kube-controller-manager', bin.kubeControllerManager, [
      `--kubeconfig=${kcmKubeconfig}`,
      `--authentication-kubeconfig=${kcmKubeconfig}`,
      `--authorization-kubeconfig=${kcmKubeconfig}`,
      `--root-ca-file=${pki.ca.cert}`,
      `--service-account-private-key-file=${pki.serviceAccountKey}`,
      `--cluster-signing-cert-file=${pki.ca.cert}`,
      `--cluster-signing-key-file=${pki.ca.key}`,
      '--use-service-account-credentials=true',
      // Kubernetes refuses loopback addresses in Endpoints and EndpointSlices, and every pod IP here is
      // one, so those controllers could only fail; the node agent derives endpoints for its DNS itself.
      '--controllers=*,-endpoint,-endpointslice,-endpointslicemirroring',
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${kcmPort}`,
      `--cert-dir=${path.join(dir, 'kcm-certs')}`,
      // Short enough that tests of node failure finish quickly, long enough for a loaded 2-core machine.
      '--node-monitor-period=2s',
      `--node-monitor-grace-period=${options.nodeMonitorGracePeriod ?? '20s'}`,
      ...qpsFlags,
      '--v=1',
    ]);
    const scheduler = startProcess('kube-scheduler', bin.kubeScheduler, [
      `--kubeconfig=${schedulerKubeconfig}`,
      `--authentication-kubeconfig=${schedulerKubeconfig}`,
      `--authorization-kubeconfig=${schedulerKubeconfig}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${schedulerPort}`,
      `--cert-dir=${path.join(dir, 'scheduler-certs')}`,
      ...qpsFlags,
      '--v=1',
    ]);
    // Both serve /healthz with a self-signed certificate of their own once their controllers started.
    const insecure = new Agent({ connect: { rejectUnauthorized: false } });
    try {
      for (const [name, child, port] of [['kube-controller-manager', kcm, kcmPort], ['kube-scheduler', scheduler, schedulerPort]] as const) {
        await waitFor(`${name} /healthz`, async () => {
          await exitedEarly(name, child);
          const res = await request(`https://127.0.0.1:${port}/healthz`, { dispatcher: insecure }).catch(() => undefined);
          if (!res) return false;
          await res.body.text();
          return res.statusCode === 200;
        }, { timeoutMs: 60_000, intervalMs: 250 });
      }
    } finally {
      await insecure.close();
    }

    return { server, apiserverPort, pki, kubeconfig: adminKubeconfig, restartApiserver, freezeApiserver, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
