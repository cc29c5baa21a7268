import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  HttpMethod,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  RequestContext,
  setHeaderOptions,
  type CoreV1Event,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import type { Counter } from 'prom-client';
import { fetch } from 'undici';
import { GROUP, KIND, PLURAL, VERSION } from '../api/etcd-topology.ts';
import { isKubeError, KubeApiError, TopologyError, type KubeErrorCode } from '../errors.ts';
import { FIELD_MANAGER } from './apply.ts';

/** Loads --kubeconfig, else the in-cluster service account, else the default kubeconfig ($KUBECONFIG, ~/.kube/config). */
export function loadKubeConfig(file: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else if (process.env['KUBERNETES_SERVICE_HOST']) kc.loadFromCluster();
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster()) throw new TopologyError('ETOP_KUBECONFIG', 'no Kubernetes cluster configured: pass --kubeconfig, set KUBECONFIG, or run in a pod');
  return kc;
}

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
  // No answer: a refused connection, a reset, a timeout (undici's "fetch failed" names the reason in its cause).
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
 * item's apiVersion and kind filled in. (client-node's typed list returns class instances whose times
 * are Dates and whose items lack kind and apiVersion, as a List's items do on the wire; an informer
 * cache filled from it holds objects that differ from the same objects delivered by the watch.)
 */
export async function listObjects(kc: KubeConfig, path: string, listed: ListedKind, labelSelector?: string): Promise<KubernetesListObject<KubernetesObject>> {
  return call('list', `${listed.kind} objects at ${path}`, async () => {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new TopologyError('ETOP_KUBECONFIG', 'no Kubernetes cluster configured');
    const url = new URL(cluster.server + path);
    if (labelSelector !== undefined) url.searchParams.set('labelSelector', labelSelector);
    const ctx = new RequestContext(url.toString(), HttpMethod.GET);
    ctx.setHeaderParam('Accept', 'application/json');
    await kc.applySecurityAuthentication(ctx);
    const dispatcher = ctx.getDispatcher();
    const res = await fetch(url, { headers: ctx.getHeaders(), ...(dispatcher ? { dispatcher } : {}) });
    const body = await res.text();
    if (!res.ok) throw Object.assign(new Error(`HTTP ${res.status}`), { code: res.status, body });
    const list = JSON.parse(body) as KubernetesListObject<KubernetesObject>;
    return { ...list, items: (list.items ?? []).map((item) => ({ ...item, apiVersion: listed.apiVersion, kind: listed.kind })) };
  });
}

/**
 * Every write the operator makes goes through here, so that each one is counted (by verb and kind)
 * and a test can prove a no-change resync writes nothing.
 */
export class KubeWriter {
  readonly objects: KubernetesObjectApi;
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly custom: CustomObjectsApi;
  private readonly writes: Counter<'verb' | 'kind'>;

  constructor(kc: KubeConfig, writes: Counter<'verb' | 'kind'>) {
    this.objects = KubernetesObjectApi.makeApiClient(kc);
    this.core = kc.makeApiClient(CoreV1Api);
    this.apps = kc.makeApiClient(AppsV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.writes = writes;
  }

  /** Server-side apply with the operator's one field manager, taking ownership of conflicting fields. */
  async apply<T extends KubernetesObject>(obj: T): Promise<T> {
    this.writes.inc({ verb: 'apply', kind: obj.kind ?? '' });
    const object = describeObject(obj.kind ?? '?', obj.metadata?.namespace, obj.metadata?.name ?? '?');
    return call('apply', object, () => this.objects.patch(obj, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply));
  }

  /**
   * Deletes one object and, in the background, what it owns (a Job's pods: batch/v1 would orphan them
   * by default); an object already gone is not an error.
   */
  async delete(apiVersion: string, kind: string, namespace: string, name: string): Promise<void> {
    this.writes.inc({ verb: 'delete', kind });
    await callUnlessGone('delete', describeObject(kind, namespace, name), () =>
      this.objects.delete({ apiVersion, kind, metadata: { name, namespace } }, undefined, undefined, undefined, undefined, 'Background'),
    );
  }

  /** Deletes a pod with its own grace period (the kubelet stops it gracefully); gone already is fine. */
  async deletePod(namespace: string, name: string): Promise<void> {
    this.writes.inc({ verb: 'delete', kind: 'Pod' });
    await callUnlessGone('delete', describeObject('Pod', namespace, name), () => this.core.deleteNamespacedPod({ namespace, name }));
  }

  /**
   * Sets a PersistentVolume's reclaim policy to Retain (a read first: no write when it already is), so
   * that deleting its claim keeps the data. Says whether it changed the policy now, found it Retain
   * already, or found no such volume.
   */
  async retainVolume(name: string): Promise<'changed' | 'already' | 'gone'> {
    const object = describeObject('PersistentVolume', undefined, name);
    const pv = await callUnlessGone('read', object, () => this.core.readPersistentVolume({ name }));
    if (!pv) return 'gone';
    if (pv.spec?.persistentVolumeReclaimPolicy === 'Retain') return 'already';
    this.writes.inc({ verb: 'patch', kind: 'PersistentVolume' });
    await call('patch', object, () =>
      this.core.patchPersistentVolume({ name, body: { spec: { persistentVolumeReclaimPolicy: 'Retain' } }, fieldManager: FIELD_MANAGER }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)),
    );
    return 'changed';
  }

  /** Merge-patches the status subresource of an EtcdTopology. */
  async patchTopologyStatus(namespace: string, name: string, status: unknown): Promise<void> {
    this.writes.inc({ verb: 'patch-status', kind: PLURAL });
    await call('write the status of', describeObject(KIND, namespace, name), () =>
      this.custom.patchNamespacedCustomObjectStatus(
        { group: GROUP, version: VERSION, plural: PLURAL, namespace, name, body: { status }, fieldManager: FIELD_MANAGER },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    );
  }

  /** Strategic-merge-patches one pod's status conditions (readiness gates), leaving the kubelet's own untouched. */
  async patchPodConditions(namespace: string, name: string, conditions: unknown[]): Promise<void> {
    this.writes.inc({ verb: 'patch-status', kind: 'Pod' });
    await call('set the readiness gate of', describeObject('Pod', namespace, name), () =>
      this.core.patchNamespacedPodStatus({ namespace, name, body: { status: { conditions } }, fieldManager: FIELD_MANAGER }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch)),
    );
  }

  /** Creates an Event. */
  async createEvent(namespace: string, event: CoreV1Event): Promise<void> {
    this.writes.inc({ verb: 'create', kind: 'Event' });
    await call('create', `an Event in namespace ${namespace}`, () => this.core.createNamespacedEvent({ namespace, body: event }));
  }
}
