import { Registry, collectDefaultMetrics } from 'prom-client';

/** Creates the process's one metrics registry, with Node's default process metrics under the project prefix. */
export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'etcd_topology_' });
  return registry;
}
