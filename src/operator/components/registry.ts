import type { KubernetesObject } from '@kubernetes/client-node';
import type { EtcdTopology } from '../../api/etcd-topology.ts';
import { clientService } from './client-service/client-service.ts';
import { memberStatefulSet } from './member-statefulset/member-statefulset.ts';
import type { ApplyGuards, Component, ComponentContext, OwnedObject } from './meta.ts';
import { podDisruptionBudget } from './pdb/pdb.ts';
import { peerService } from './peer-service/peer-service.ts';
import { proxyDaemonSet } from './proxy-daemonset/proxy-daemonset.ts';
import { proxyNodeLocalService } from './proxy-node-local-service/proxy-node-local-service.ts';
import { memberServiceAccount, proxyServiceAccount } from './service-accounts/service-accounts.ts';

export type { ComponentContext } from './meta.ts';

/**
 * Every owned object, in apply order: identities first, then the peer Service the members resolve each
 * other through, the budget before the pods it guards, the members, and the proxies that need them.
 */
export const components: readonly Component[] = [
  memberServiceAccount,
  proxyServiceAccount,
  peerService,
  clientService,
  podDisruptionBudget,
  memberStatefulSet,
  proxyDaemonSet,
  proxyNodeLocalService,
];

/** The desired objects of a topology with their components' hold hooks, in apply order; components that must not exist are left out. */
export function ownedObjects(topology: EtcdTopology, context: ComponentContext): OwnedObject[] {
  return components.flatMap((c) => {
    const object = c.desired(topology, context);
    if (object === undefined) return [];
    const hold = c.hold?.bind(c);
    return [hold ? { object, hold: (live: KubernetesObject | undefined, guards: ApplyGuards) => hold(live, context, guards) } : { object }];
  });
}

/** The desired objects of a topology, in apply order; components that must not exist are left out. */
export function renderOwned(topology: EtcdTopology, context: ComponentContext): KubernetesObject[] {
  return ownedObjects(topology, context).map((o) => o.object);
}

/** Objects a topology may own that must not exist now (proxy disabled, host network): delete them if found. */
export function unwantedOwned(topology: EtcdTopology, context: ComponentContext): { apiVersion: string; kind: string; name: string }[] {
  return components
    .filter((c) => c.desired(topology, context) === undefined)
    .flatMap((c) => c.names(topology).map((name) => ({ apiVersion: c.apiVersion, kind: c.kind, name })));
}

/** Every object a topology may own, by kind and name. */
export function ownedNames(topology: EtcdTopology): { apiVersion: string; kind: string; name: string }[] {
  return components.flatMap((c) => c.names(topology).map((name) => ({ apiVersion: c.apiVersion, kind: c.kind, name })));
}
