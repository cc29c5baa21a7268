import { afterAll, beforeAll } from 'vitest';
import { EtcdCluster, type EtcdClusterOptions, printEtcdLogsOnFailure } from '../harness/etcd-cluster.ts';
import { etcdClients, type EtcdClients } from './grpc-client.ts';
import { startProxyProcess, type ProxyProcess } from './proxy-process.ts';

/** What a proxy test works with: the etcd cluster, the proxy process in front of it, and gRPC clients of the proxy. */
export interface ProxyFixture {
  cluster: EtcdCluster;
  proxy: ProxyProcess;
  /** Node gRPC clients on one channel to the proxy. */
  c: EtcdClients;
}

export interface ProxyFixtureOptions extends EtcdClusterOptions {
  /** Flags for the proxy besides --endpoints, --listen-client-urls and --metrics-addr. */
  proxyArgs?: string[];
  /** The --endpoints the proxy starts from (default: every member). */
  endpoints?: (cluster: EtcdCluster) => string;
  /** Runs after the cluster is up and before the proxy starts (seed data, for example). */
  beforeProxy?: (cluster: EtcdCluster) => Promise<void>;
  /** More options for startProxyProcess (a TLS listener, a fixed port). */
  proxyOptions?: () => Promise<Parameters<typeof startProxyProcess>[2]>;
}

/**
 * Registers beforeAll and afterAll hooks in the calling describe block that start a real etcd
 * cluster (3 members by default), the proxy as a child process in front of it, and gRPC clients,
 * and stop them all afterwards. The returned object's fields are set once beforeAll has run.
 */
export function useProxyFixture(options: ProxyFixtureOptions = {}): ProxyFixture {
  const f = {} as ProxyFixture;
  beforeAll(async () => {
    f.cluster = await EtcdCluster.start(options);
    await options.beforeProxy?.(f.cluster);
    const endpoints = options.endpoints?.(f.cluster) ?? f.cluster.endpoints;
    f.proxy = await startProxyProcess(endpoints, options.proxyArgs ?? [], await options.proxyOptions?.());
    f.c = etcdClients(f.proxy.target);
  });
  printEtcdLogsOnFailure(() => f.cluster);
  afterAll(async () => {
    // Each part is stopped even when starting a later one failed.
    f.c?.close();
    await f.proxy?.stop();
    await f.cluster?.stop();
  });
  return f;
}
