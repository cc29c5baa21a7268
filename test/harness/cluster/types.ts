import type { V1Node, V1PersistentVolume, V1PersistentVolumeClaim, V1Pod, V1Service } from '@kubernetes/client-node';
import type { KubeObject } from './kube-rest.ts';

// The harness reads objects as plain JSON; these aliases give them client-node's field types while
// keeping the metadata shape the REST client needs.
export type Pod = V1Pod & KubeObject;
export type Service = V1Service & KubeObject;
export type Node = V1Node & KubeObject;
export type PersistentVolumeClaim = V1PersistentVolumeClaim & KubeObject;
export type PersistentVolume = V1PersistentVolume & KubeObject;

/** A node of the local cluster as the test asks for it. */
export interface NodeSpec {
  name: string;
  labels?: Record<string, string>;
  taints?: { key: string; value?: string; effect: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute' }[];
}
