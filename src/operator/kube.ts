import type { CoreV1Event, KubernetesListObject, KubernetesObject, V1PersistentVolume, V1Pod, V1Secret } from '@kubernetes/client-node';
import type { Counter } from '../telemetry/lean-metrics.ts';
import { GROUP, KIND, PLURAL, VERSION } from '../api/etcd-topology.ts';
import { isKubeError, KubeApiError, TopologyError, type KubeErrorCode } from '../errors.ts';
import { FIELD_MANAGER } from './apply.ts';
import { resourcePath, type KubeClient } from './kube-client.ts';

/** The fields of the Status object the API server answers a failed request with. */
interface ApiStatus {
  message?: string;
  reason?: string;
}

function statusOf(body: unknown): ApiStatus | undefined {
  if (typeof body === 'string') {
    try {
      return JSON.parse(body) as ApiStatus;
    } catch {
      return body === '' ? undefined : { message: body };
    }
  }
  return body !== null && typeof body === 'object' ? body : undefined;
}

/** The error code for an HTTP status the API server answered. */
export function kubeErrorCode(status: number): KubeErrorCode {
  if (status === 401 || status === 403) return 'ETOP_KUBE_FORBIDDEN';
  if (status === 400 || status === 422) return 'ETOP_KUBE_INVALID';
  if (status === 404) return 'ETOP_KUBE_NOT_FOUND';
  if (status === 409) return 'ETOP_KUBE_CONFLICT';
  if (status === 429 || status >= 500) return 'ETOP_KUBE_UNAVAILABLE';
  return 'ETOP_KUBE_API';
}

/** "StatefulSet default/main-member", or "PersistentVolume pv-1" for a cluster-scoped object. */
export function describeObject(kind: string, namespace: string | undefined, name: string): string {
  return `${kind} ${namespace ? `${namespace}/` : ''}${name}`;
}

/**
 * Wraps what a Kubernetes API call threw, once, into a KubeApiError that names the request and quotes
 * the API server's answer (its Status message and reason), with the original as its cause. An error
 * that is already one of ours passes through unchanged.
 */
export function kubeApiError(err: unknown, request: { verb: string; object: string }): TopologyError {
  if (err instanceof TopologyError) return err;
  const e = err as { code?: unknown; body?: unknown; message?: unknown; cause?: unknown };
  if (typeof e.code === 'number') {
    const answer = statusOf(e.body);
    return new KubeApiError(kubeErrorCode(e.code), request, { status: e.code, reason: answer?.reason, message: answer?.message ?? `HTTP ${e.code}` }, { cause: err });
  }
  // No answer: a refused connection, a reset, a timeout (the message names it; a wrapper's cause may say more).
  const why = [e.message, (e.cause as { message?: unknown } | undefined)?.message].filter((m): m is string => typeof m === 'string' && m !== '').join(': ');
  return new KubeApiError('ETOP_KUBE_UNAVAILABLE', request, { message: why || String(err) }, { cause: err });
}

/** Runs one API call, wrapping its failure (see kubeApiError). */
async function call<T>(verb: string, object: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw kubeApiError(err, { verb, object });
  }
}

/** Runs one API call for which "not found" is an answer, not a failure: resolves undefined then. */
async function callUnlessGone<T>(verb: string, object: string, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await call(verb, object, fn);
  } catch (err) {
    if (isKubeError(err, 'ETOP_KUBE_NOT_FOUND')) return undefined;
    throw err;
  }
}

/** A kind to list: where it lives in the API and what it is called. */
export interface ListedKind {
  apiVersion: string;
  kind: string;
}

/**
 * Lists objects as the API server sends them, the shape watch events have too: plain JSON, with each
 * item's apiVersion and kind filled in (a List's items lack them on the wire).
 */
export async function listObjects(client: KubeClient, path: string, listed: ListedKind, labelSelector?: string): Promise<KubernetesListObject<KubernetesObject>> {
  return call('list', `${listed.kind} objects at ${path}`, async () => {
    const list = await client.call<KubernetesListObject<KubernetesObject>>('GET', path, { query: { labelSelector } });
    return { ...list, items: (list.items ?? []).map((item) => ({ ...item, apiVersion: listed.apiVersion, kind: listed.kind })) };
  });
}

/**
 * Every write the operator makes goes through here, so that each one is counted (by verb and kind)
 * and a test can prove a no-change resync writes nothing.
 */
export class KubeWriter {
  private readonly client: KubeClient;
  private readonly writes: Counter<'verb' | 'kind'>;
  /**
   * The one read tls-certificates.ts makes, in the shape of client-node's CoreV1Api it was written
   * against (a missing Secret throws an error whose code is 404, as client-node's did).
   */
  readonly core: { readNamespacedSecret(args: { name: string; namespace: string }): Promise<V1Secret> };

  constructor(client: KubeClient, writes: Counter<'verb' | 'kind'>) {
    this.client = client;
    this.writes = writes;
    this.core = { readNamespacedSecret: ({ name, namespace }) => this.client.call<V1Secret>('GET', resourcePath('v1', 'Secret', namespace, name)) };
  }

  /** The namespace's pods that carry every one of the labels, read from the API server now. */
  async listPods(namespace: string, labels: Record<string, string>): Promise<V1Pod[]> {
    const selector = Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',');
    return (await listObjects(this.client, resourcePath('v1', 'Pod', namespace), { apiVersion: 'v1', kind: 'Pod' }, selector)).items;
  }

  /** Server-side apply with the operator's one field manager, taking ownership of conflicting fields. */
  async apply<T extends KubernetesObject>(obj: T): Promise<T> {
    this.writes.inc({ verb: 'apply', kind: obj.kind ?? '' });
    const object = describeObject(obj.kind ?? '?', obj.metadata?.namespace, obj.metadata?.name ?? '?');
    return call('apply', object, () =>
      this.client.call<T>('PATCH', resourcePath(obj.apiVersion ?? '', obj.kind ?? '', obj.metadata?.namespace, obj.metadata?.name ?? ''), {
        query: { fieldManager: FIELD_MANAGER, force: 'true' },
        // JSON is YAML: the apply content type takes either.
        contentType: 'application/apply-patch+yaml',
        body: obj,
      }),
    );
  }

  /**
   * Deletes one object and, in the background, what it owns (a Job's pods: batch/v1 would orphan them
   * by default); an object already gone is not an error.
   */
  async delete(apiVersion: string, kind: string, namespace: string, name: string): Promise<void> {
    this.writes.inc({ verb: 'delete', kind });
    await callUnlessGone('delete', describeObject(kind, namespace, name), () =>
      this.client.call('DELETE', resourcePath(apiVersion, kind, namespace, name), { body: { apiVersion: 'v1', kind: 'DeleteOptions', propagationPolicy: 'Background' } }),
    );
  }

  /** Deletes a pod with its own grace period (the kubelet stops it gracefully); gone already is fine. */
  async deletePod(namespace: string, name: string): Promise<void> {
    this.writes.inc({ verb: 'delete', kind: 'Pod' });
    await callUnlessGone('delete', describeObject('Pod', namespace, name), () => this.client.call('DELETE', resourcePath('v1', 'Pod', namespace, name)));
  }

  /**
   * Sets a PersistentVolume's reclaim policy to Retain (a read first: no write when it already is), so
   * that deleting its claim keeps the data. Says whether it changed the policy now, found it Retain
   * already, or found no such volume.
   */
  async retainVolume(name: string): Promise<'changed' | 'already' | 'gone'> {
    const object = describeObject('PersistentVolume', undefined, name);
    const at = resourcePath('v1', 'PersistentVolume', undefined, name);
    const pv = await callUnlessGone('read', object, () => this.client.call<V1PersistentVolume>('GET', at));
    if (!pv) return 'gone';
    if (pv.spec?.persistentVolumeReclaimPolicy === 'Retain') return 'already';
    this.writes.inc({ verb: 'patch', kind: 'PersistentVolume' });
    await call('patch', object, () =>
      this.client.call('PATCH', at, { query: { fieldManager: FIELD_MANAGER }, contentType: 'application/merge-patch+json', body: { spec: { persistentVolumeReclaimPolicy: 'Retain' } } }),
    );
    return 'changed';
  }

  /** Merge-patches the status subresource of an EtcdTopology. */
  async patchTopologyStatus(namespace: string, name: string, status: unknown): Promise<void> {
    this.writes.inc({ verb: 'patch-status', kind: PLURAL });
    await call('write the status of', describeObject(KIND, namespace, name), () =>
      this.client.call('PATCH', `${resourcePath(`${GROUP}/${VERSION}`, KIND, namespace, name, PLURAL)}/status`, {
        query: { fieldManager: FIELD_MANAGER },
        contentType: 'application/merge-patch+json',
        body: { status },
      }),
    );
  }

  /** Strategic-merge-patches one pod's status conditions (readiness gates), leaving the kubelet's own untouched. */
  async patchPodConditions(namespace: string, name: string, conditions: unknown[]): Promise<void> {
    this.writes.inc({ verb: 'patch-status', kind: 'Pod' });
    await call('set the readiness gate of', describeObject('Pod', namespace, name), () =>
      this.client.call('PATCH', `${resourcePath('v1', 'Pod', namespace, name)}/status`, {
        query: { fieldManager: FIELD_MANAGER },
        contentType: 'application/strategic-merge-patch+json',
        body: { status: { conditions } },
      }),
    );
  }

  /** Creates an Event. */
  async createEvent(namespace: string, event: CoreV1Event): Promise<void> {
    this.writes.inc({ verb: 'create', kind: 'Event' });
    await call('create', `an Event in namespace ${namespace}`, () => this.client.call('POST', resourcePath('v1', 'Event', namespace), { body: event }));
  }
}
