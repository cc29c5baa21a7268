import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type CoreV1Event,
  type KubernetesObject,
} from '@kubernetes/client-node';
import type { Counter } from 'prom-client';
import { TopologyError } from '../errors.ts';
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
    return this.objects.patch(obj, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
  }

  /**
   * Deletes one object and, in the background, what it owns (a Job's pods: batch/v1 would orphan them
   * by default); an object already gone is not an error.
   */
  async delete(apiVersion: string, kind: string, namespace: string, name: string): Promise<void> {
    this.writes.inc({ verb: 'delete', kind });
    await this.objects.delete({ apiVersion, kind, metadata: { name, namespace } }, undefined, undefined, undefined, undefined, 'Background').catch((err: unknown) => {
      if ((err as { code?: number }).code !== 404) throw err;
    });
  }

  /** Deletes a pod with its own grace period (the kubelet stops it gracefully); gone already is fine. */
  async deletePod(namespace: string, name: string): Promise<void> {
    this.writes.inc({ verb: 'delete', kind: 'Pod' });
    await this.core.deleteNamespacedPod({ namespace, name }).catch((err: unknown) => {
      if ((err as { code?: number }).code !== 404) throw err;
    });
  }

  /**
   * Sets a PersistentVolume's reclaim policy to Retain (a read first: no write when it already is), so
   * that deleting its claim keeps the data. Says whether it changed the policy now, found it Retain
   * already, or found no such volume.
   */
  async retainVolume(name: string): Promise<'changed' | 'already' | 'gone'> {
    const pv = await this.core.readPersistentVolume({ name }).catch((err: unknown) => {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    });
    if (!pv) return 'gone';
    if (pv.spec?.persistentVolumeReclaimPolicy === 'Retain') return 'already';
    this.writes.inc({ verb: 'patch', kind: 'PersistentVolume' });
    await this.core.patchPersistentVolume(
      { name, body: { spec: { persistentVolumeReclaimPolicy: 'Retain' } }, fieldManager: FIELD_MANAGER },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    return 'changed';
  }

  /** Merge-patches the status subresource of a custom object. */
  async patchCustomStatus(group: string, version: string, plural: string, namespace: string, name: string, status: unknown): Promise<void> {
    this.writes.inc({ verb: 'patch-status', kind: plural });
    await this.custom.patchNamespacedCustomObjectStatus(
      { group, version, plural, namespace, name, body: { status }, fieldManager: FIELD_MANAGER },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  /** Strategic-merge-patches one pod's status conditions (readiness gates), leaving the kubelet's own untouched. */
  async patchPodConditions(namespace: string, name: string, conditions: unknown[]): Promise<void> {
    this.writes.inc({ verb: 'patch-status', kind: 'Pod' });
    await this.core.patchNamespacedPodStatus(
      { namespace, name, body: { status: { conditions } }, fieldManager: FIELD_MANAGER },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    );
  }

  /** Creates an Event. */
  async createEvent(namespace: string, event: CoreV1Event): Promise<void> {
    this.writes.inc({ verb: 'create', kind: 'Event' });
    await this.core.createNamespacedEvent({ namespace, body: event });
  }
}
