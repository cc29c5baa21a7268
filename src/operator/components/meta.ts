import type { KubernetesObject, V1ObjectMeta, V1OwnerReference, V1ResourceRequirements } from '@kubernetes/client-node';
import { API_VERSION, KIND, type EtcdTopology, type Resources } from '../../api/etcd-topology.ts';
import { TopologyError } from '../../errors.ts';

/** What rendering needs beyond the topology itself. */
export interface ComponentContext {
  /** The operator's own image, which the proxies run. */
  proxyImage: string;
  /**
   * etcd's current member set (learners included), by name. It decides the member StatefulSet's
   * replicas and the --initial-cluster a joining member starts with. Undefined (or empty) before
   * the cluster exists: then every ordinal of members.count bootstraps a new cluster.
   */
  members?: readonly { name: string; isLearner?: boolean }[] | undefined;
  /**
   * The backup a new cluster starts from (spec.bootstrap.fromBackup resolved to one key). Only while the
   * cluster is new: members added later join empty and get their data from the leader.
   */
  restore?: { key: string; sha256?: string | undefined } | undefined;
  /**
   * A hash of the CA bundle the members trust (the server and peer Secrets' ca.crt). etcd reads its
   * trusted CA files only at start, so a changed bundle is a change of member configuration: it goes
   * into the pod template and the members restart onto it one at a time (CA rotation).
   */
  trustHash?: string | undefined;
}

/** What the apply loop knows this round beyond the render input, for a component's hold hook. */
export interface ApplyGuards {
  /** No member may start yet: a restore whose backup is not resolved, or certificates about to be replaced. */
  holdMembers: boolean;
}

/**
 * One owned object kind: the names it owns and its desired state (undefined: it must not exist).
 * hold, when present, may keep the live object as it is this round and says why.
 */
export interface Component<T extends KubernetesObject = KubernetesObject> {
  apiVersion: string;
  kind: string;
  names(topology: EtcdTopology): string[];
  desired(topology: EtcdTopology, context: ComponentContext): T | undefined;
  hold?(live: KubernetesObject | undefined, context: ComponentContext, guards: ApplyGuards): string | undefined;
}

/** A desired object and its component's hold hook, bound to this round's render input. */
export interface OwnedObject {
  object: KubernetesObject;
  hold?: (live: KubernetesObject | undefined, guards: ApplyGuards) => string | undefined;
}

export type Role = 'member' | 'proxy' | 'backup';

export const MANAGED_BY = 'etcd-topology';
export const APP_NAME = 'etcd-topology';

/** Whether labels carry every one of want's; the entries are taken once, for a matcher applied to many objects. */
export function labelMatcher(want: Record<string, string>): (labels: Record<string, string> | undefined) => boolean {
  const entries = Object.entries(want);
  return (labels) => {
    for (const [k, v] of entries) if (labels?.[k] !== v) return false;
    return true;
  };
}

/** Labels that select one topology's members or proxies; kept apart because selectors are immutable. */
export function selectorLabels(topology: EtcdTopology, role: Role): Record<string, string> {
  return { 'app.kubernetes.io/name': APP_NAME, 'app.kubernetes.io/instance': nameOf(topology), 'app.kubernetes.io/component': role };
}

/** Every label the operator puts on what it owns. */
export function labels(topology: EtcdTopology, role: Role): Record<string, string> {
  return { ...selectorLabels(topology, role), 'app.kubernetes.io/managed-by': MANAGED_BY };
}

/** The owner reference that makes the garbage collector remove an object with its topology. */
export function ownerReference(topology: EtcdTopology): V1OwnerReference {
  const uid = topology.metadata.uid;
  if (uid === undefined) {
    throw new TopologyError('ETOP_RENDER', `EtcdTopology ${nameOf(topology)} has no uid; render only topologies read from the API server`);
  }
  return { apiVersion: API_VERSION, kind: KIND, name: nameOf(topology), uid, controller: true, blockOwnerDeletion: true };
}

/** metadata of an owned object: name, namespace, labels, owner reference. */
export function objectMeta(topology: EtcdTopology, name: string, role: Role): V1ObjectMeta {
  return { name, namespace: namespaceOf(topology), labels: labels(topology, role), ownerReferences: [ownerReference(topology)] };
}

/** The topology's name; the API server guarantees it, a parsed object may not say so in its type. */
export function nameOf(topology: EtcdTopology): string {
  const name = topology.metadata.name;
  if (name === undefined) throw new TopologyError('ETOP_RENDER', 'EtcdTopology has no metadata.name');
  return name;
}

/** The topology's namespace. */
export function namespaceOf(topology: EtcdTopology): string {
  const ns = topology.metadata.namespace;
  if (ns === undefined) throw new TopologyError('ETOP_RENDER', `EtcdTopology ${topology.metadata.name ?? ''} has no metadata.namespace`);
  return ns;
}

/** The restricted-profile security context both containers run with. */
export const restrictedContainerSecurity = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  runAsUser: 65532,
  runAsGroup: 65532,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

/** Compute resources as the core API types them (quantities as strings; the API server accepts both). */
export function resourceRequirements(r: Resources | undefined): { resources: V1ResourceRequirements } | Record<string, never> {
  if (r === undefined) return {};
  const strings = (m: Record<string, number | string> | undefined) => (m === undefined ? undefined : Object.fromEntries(Object.entries(m).map(([k, v]) => [k, String(v)])));
  const resources: V1ResourceRequirements = {};
  if (r.limits !== undefined) resources.limits = strings(r.limits);
  if (r.requests !== undefined) resources.requests = strings(r.requests);
  return { resources };
}
