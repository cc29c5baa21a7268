import { readFileSync } from 'node:fs';
import os from 'node:os';
import { z } from 'zod';
import { systemClock } from '../api/conditions.ts';
import { EtcdAdminClient } from '../etcd/admin-client.ts';
import { UsageError } from '../errors.ts';
import { version } from '../version.ts';
import { duration, hostPort, namespaceList, parseFlags } from '../flags.ts';
import { startTelemetryServer } from '../telemetry/http-server.ts';
import { createRootLogger } from '../telemetry/logger.ts';
import { Counter, createLeanRegistry, Histogram } from '../telemetry/lean-metrics.ts';
import { ownedObjects, unwantedOwned } from './components/registry.ts';
import { BackupSteps } from './backup.ts';
import { Controller } from './controller.ts';
import { EventRecorder } from './events.ts';
import { KubeWriter } from './kube.ts';
import { KubeClient } from './kube-client.ts';
import { invalidTimings, LeaderElector } from './leader-election.ts';
import { Reconciler } from './reconciler.ts';
import { readSecretWith, SecretCache } from './secret-cache.ts';
import { TopologyMetrics } from './topology-metrics.ts';
import { Upkeep } from './upkeep.ts';

const SA_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

const flagsSchema = z.object({
  kubeconfig: z.string().optional(),
  namespaces: namespaceList.optional(),
  metricsAddr: hostPort.default(':8080'),
  healthAddr: hostPort.default(':8081'),
  leaderElect: z.boolean().default(true),
  leaderElectionNamespace: z.string().optional(),
  leaderElectLeaseDuration: duration.prefault('15s'),
  leaderElectRenewDeadline: duration.prefault('10s'),
  leaderElectRetryPeriod: duration.prefault('2s'),
  proxyImage: z.string().min(1).default(`etcd-topology:${version()}`),
  resyncPeriod: duration.prefault('30s'),
  help: z.boolean().default(false),
});

const usage = `usage: etcd-topology operator [flags]

  --kubeconfig FILE               kubeconfig (default: in-cluster, then $KUBECONFIG / ~/.kube/config)
  --namespaces NS[,NS...]         reconcile EtcdTopology objects in these namespaces only (default: every namespace)
  --metrics-addr HOST:PORT        Prometheus metrics (default :8080)
  --health-addr HOST:PORT         /healthz and /readyz (default :8081)
  --leader-elect=true|false       elect one active replica on a Lease (default true)
  --leader-election-namespace NS  namespace of the Lease (default: the pod's namespace, else default)
  --leader-elect-lease-duration DURATION  how long a standby waits after it last saw the Lease change before it takes over (default 15s)
  --leader-elect-renew-deadline DURATION  how long the leader retries failed renewals before it stops acting and exits; below the lease duration (default 10s)
  --leader-elect-retry-period DURATION    how often the leader renews and a standby tries to acquire; below the renew deadline (default 2s)
  --proxy-image IMAGE             this project's image, run by the proxy DaemonSet, backup Jobs and restores (default etcd-topology:${version()})
  --resync-period DURATION        how often a settled topology is checked again (default 30s)

Every flag also reads from ETCD_TOPOLOGY_<FLAG>, e.g. ETCD_TOPOLOGY_NAMESPACES.`;

function ownNamespace(flag: string | undefined): string {
  if (flag) return flag;
  if (process.env['POD_NAMESPACE']) return process.env['POD_NAMESPACE'];
  try {
    return readFileSync(SA_NAMESPACE_FILE, 'utf8').trim();
  } catch {
    return 'default';
  }
}

/** How long a stopping operator waits for the reconcile steps in flight before it exits anyway. */
const STOP_GRACE_MS = 10_000;

/** Runs the operator until SIGTERM or SIGINT; resolves the exit code. */
export async function main(argv: string[]): Promise<number> {
  const { flags } = parseFlags('operator', flagsSchema, argv);
  if (flags.help) {
    console.error(usage);
    return 0;
  }
  const timings = { leaseDurationMs: flags.leaderElectLeaseDuration, renewDeadlineMs: flags.leaderElectRenewDeadline, retryPeriodMs: flags.leaderElectRetryPeriod };
  const badTimings = invalidTimings(timings);
  if (badTimings) {
    const given = { 'leader-elect-lease-duration': timings.leaseDurationMs, 'leader-elect-renew-deadline': timings.renewDeadlineMs, 'leader-elect-retry-period': timings.retryPeriodMs }[badTimings.flag];
    throw new UsageError(`operator: invalid value ${String((given ?? 0) / 1000)}s for --${badTimings.flag}: ${badTimings.message}`);
  }
  const log = createRootLogger({ name: 'etcd-topology-operator' });
  const registry = createLeanRegistry('etcd_topology_');
  const kube = KubeClient.load(flags.kubeconfig);
  const writes = new Counter({ name: 'etcd_topology_operator_api_writes_total', help: 'Write calls to the Kubernetes API, by verb and kind.', labelNames: ['verb', 'kind'], registers: [registry] });
  const writer = new KubeWriter(kube, writes);
  const requests = new Counter({ name: 'etcd_topology_operator_api_requests_total', help: 'Calls to the Kubernetes API, reads included, by verb and resource.', labelNames: ['verb', 'resource'], registers: [registry] });
  kube.onRequest = (verb, resource) => requests.inc({ verb, resource });
  const steps = new Histogram({
    name: 'etcd_topology_operator_step_duration_seconds',
    help: 'Time one reconcile step took, by step (status: computing and writing the status) and the queue lane the reconcile was taken from (spec, news, routine).',
    labelNames: ['step', 'lane'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const admin = new EtcdAdminClient({ timeoutMs: 3000 });
  const controller = new Controller(kube, flags.namespaces, registry, log);
  const identity = process.env['POD_NAME'] ?? `${os.hostname()}_${process.pid}`;
  const elector = flags.leaderElect
    ? new LeaderElector({ client: kube, namespace: ownNamespace(flags.leaderElectionNamespace), name: 'etcd-topology-operator', identity, timings, logger: log })
    : undefined;

  const servers = [
    await startTelemetryServer(flags.metricsAddr, registry, { healthz: () => undefined, readyz: () => undefined }, log),
    await startTelemetryServer(
      flags.healthAddr,
      registry,
      {
        healthz: () => undefined,
        // Ready once the caches are warm; a standby replica is ready too, to take over at once.
        readyz: () => (controller.informers.hasSynced ? undefined : 'informer caches not synced yet'),
      },
      log,
    ),
  ];

  let exitCode = 0;
  let resolveStop!: () => void;
  const stopped = new Promise<void>((r) => (resolveStop = r));
  // Aborted on SIGTERM or a lost lease: reconciles in flight finish their current step and start no other.
  const acting = new AbortController();
  const shutdown = (code: number): void => {
    exitCode = code;
    acting.abort();
    resolveStop();
  };
  process.once('SIGTERM', () => shutdown(0));
  process.once('SIGINT', () => shutdown(0));

  await controller.startInformers();
  log.info({ namespaces: flags.namespaces ?? '(all)', identity }, 'Started informers');
  const events = new EventRecorder(writer, log);
  const metrics = new TopologyMetrics(registry);
  const reconciler = new Reconciler({
    informers: controller.informers,
    writer,
    admin,
    events,
    backup: new BackupSteps({ informers: controller.informers, writer, events, clock: systemClock, log, image: flags.proxyImage, registry }),
    clock: systemClock,
    log,
    metrics,
    upkeep: new Upkeep({ admin, events, clock: systemClock, log, metrics, requeue: (key) => controller.enqueue(key) }),
    resyncMs: flags.resyncPeriod,
    acting: acting.signal,
    secrets: new SecretCache(controller.informers, readSecretWith(writer)),
    stepDuration: (step, seconds, lane) => steps.observe({ step, lane }, seconds),
    render: {
      owned: (topology, input) => ownedObjects(topology, { ...input, proxyImage: flags.proxyImage }),
      unwanted: (topology, input) => unwantedOwned(topology, { ...input, proxyImage: flags.proxyImage }),
    },
  });
  if (elector) {
    elector.start(
      () => controller.startWorkers(reconciler),
      () => shutdown(1),
    );
  } else controller.startWorkers(reconciler);

  await stopped;
  log.info('Stopping: finishing the reconcile steps in flight');
  const grace = new Promise<'timeout'>((r) => setTimeout(r, STOP_GRACE_MS, 'timeout').unref());
  if ((await Promise.race([controller.stop().then(() => 'stopped' as const), grace])) === 'timeout') {
    // A step still waits on an API server that does not answer: no further step starts (acting is
    // aborted), and the pod must restart now rather than when that call times out.
    log.warn({ exitCode, graceSeconds: STOP_GRACE_MS / 1000 }, 'Reconcile steps still in flight after the grace period: exiting without waiting for them');
    process.exit(exitCode);
  }
  await elector?.stop();
  await admin.close();
  await kube.close();
  for (const s of servers) s.close();
  log.info({ exitCode }, 'Stopped');
  return exitCode;
}
