import { KubeConfig } from '@kubernetes/client-node';
import { TopologyError } from './errors.ts';

/**
 * The kubeconfig for the short-lived CLI commands that use client-node's typed APIs (check, backup):
 * --kubeconfig, else the in-cluster service account, else the default kubeconfig ($KUBECONFIG,
 * ~/.kube/config). The long-running operator uses its own client (src/operator/kube-client.ts).
 */
export function loadKubeConfig(file: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else if (process.env['KUBERNETES_SERVICE_HOST']) kc.loadFromCluster();
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster()) throw new TopologyError('ETOP_KUBECONFIG', 'no Kubernetes cluster configured: pass --kubeconfig, set KUBECONFIG, or run in a pod');
  return kc;
}
