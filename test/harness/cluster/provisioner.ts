import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { KubeRest } from './kube-rest.ts';
import type { PersistentVolume, PersistentVolumeClaim } from './types.ts';

/** The local cluster's default StorageClass name and provisioner. */
export const STORAGE_CLASS = 'local';
export const PROVISIONER = 'etcdtopology.io/local-process';

/**
 * Provisions PersistentVolumes for claims of the `local` StorageClass (WaitForFirstConsumer): once the
 * scheduler picked a node for the claim's pod, a node-pinned directory becomes the volume, so data
 * survives pod restarts and moves with nothing. Released volumes of reclaim policy Delete are removed.
 */
export class LocalProvisioner {
  private readonly api: KubeRest;
  private readonly nodeDir: (node: string) => string | undefined;
  private readonly inFlight = new Set<string>();

  constructor(api: KubeRest, nodeDir: (node: string) => string | undefined) {
    this.api = api;
    this.nodeDir = nodeDir;
  }

  /** Creates the default StorageClass and starts watching claims and volumes. */
  async start(): Promise<void> {
    await this.api.call('POST', '/apis/storage.k8s.io/v1/storageclasses', {
      apiVersion: 'storage.k8s.io/v1',
      kind: 'StorageClass',
      metadata: { name: STORAGE_CLASS, annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } },
      provisioner: PROVISIONER,
      volumeBindingMode: 'WaitForFirstConsumer',
      reclaimPolicy: 'Delete',
      allowVolumeExpansion: false,
    });
    this.api.watch<PersistentVolumeClaim>('/api/v1/persistentvolumeclaims', (e) => {
      if (e.type !== 'DELETED') void this.provision(e.object);
    });
    this.api.watch<PersistentVolume>('/api/v1/persistentvolumes', (e) => {
      if (e.type !== 'DELETED') void this.reclaim(e.object);
    });
  }

  private async provision(pvc: PersistentVolumeClaim): Promise<void> {
    const node = pvc.metadata.annotations?.['volume.kubernetes.io/selected-node'];
    if (pvc.spec?.storageClassName !== STORAGE_CLASS || !node || pvc.spec.volumeName || pvc.status?.phase === 'Bound') return;
    const uid = pvc.metadata.uid ?? '';
    const base = this.nodeDir(node);
    if (!base || this.inFlight.has(uid)) return;
    this.inFlight.add(uid);
    const name = `pvc-${uid}`;
    const dir = path.join(base, 'volumes', name);
    try {
      await mkdir(dir, { recursive: true });
      await this.api.call('POST', '/api/v1/persistentvolumes', {
        apiVersion: 'v1',
        kind: 'PersistentVolume',
        metadata: { name, annotations: { 'pv.kubernetes.io/provisioned-by': PROVISIONER }, labels: { 'etcdtopology.io/local-node': node } },
        spec: {
          capacity: { storage: pvc.spec.resources?.requests?.['storage'] ?? '1Gi' },
          accessModes: pvc.spec.accessModes ?? ['ReadWriteOnce'],
          persistentVolumeReclaimPolicy: 'Delete',
          storageClassName: STORAGE_CLASS,
          volumeMode: 'Filesystem',
          local: { path: dir },
          claimRef: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: pvc.metadata.namespace, name: pvc.metadata.name, uid },
          nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [node] }] }] } },
        },
      });
    } catch (err) {
      // 409: provisioned already. Anything else is retried on the claim's next update.
      if ((err as { status?: number }).status !== 409) this.inFlight.delete(uid);
    }
  }

  private async reclaim(pv: PersistentVolume): Promise<void> {
    if (pv.metadata.annotations?.['pv.kubernetes.io/provisioned-by'] !== PROVISIONER) return;
    if (pv.status?.phase !== 'Released' || pv.spec?.persistentVolumeReclaimPolicy !== 'Delete') return;
    const dir = pv.spec.local?.path;
    if (dir) await rm(dir, { recursive: true, force: true });
    await this.api.call('DELETE', `/api/v1/persistentvolumes/${pv.metadata.name}`).catch(() => undefined);
  }
}
