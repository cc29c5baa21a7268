import type { V1Container } from '@kubernetes/client-node';
import type { KubeRest } from './kube-rest.ts';
import { expandVars } from './images.ts';
import type { Pod } from './types.ts';

/** Thrown when a pod cannot be started as specified; becomes the container's waiting reason. */
export class PodConfigError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** Reads a downward-API field path of the pod (metadata.name, status.podIP, metadata.labels['k'] ...). */
export function fieldValue(pod: Pod, fieldPath: string): string {
  const labelOrAnnotation = /^metadata\.(labels|annotations)\['([^']+)'\]$/.exec(fieldPath);
  if (labelOrAnnotation) {
    const map = labelOrAnnotation[1] === 'labels' ? pod.metadata.labels : pod.metadata.annotations;
    return map?.[labelOrAnnotation[2]!] ?? '';
  }
  const render = (m: Record<string, string> | undefined): string =>
    Object.entries(m ?? {})
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join('\n');
  switch (fieldPath) {
    case 'metadata.name':
      return pod.metadata.name;
    case 'metadata.namespace':
      return pod.metadata.namespace ?? 'default';
    case 'metadata.uid':
      return pod.metadata.uid ?? '';
    case 'metadata.labels':
      return render(pod.metadata.labels);
    case 'metadata.annotations':
      return render(pod.metadata.annotations);
    case 'spec.nodeName':
      return pod.spec?.nodeName ?? '';
    case 'spec.serviceAccountName':
      return pod.spec?.serviceAccountName ?? 'default';
    case 'status.podIP':
      return pod.status?.podIP ?? '';
    case 'status.podIPs':
      return (pod.status?.podIPs ?? []).map((p) => p.ip).join(',');
    case 'status.hostIP':
      return pod.status?.hostIP ?? '';
    case 'status.hostIPs':
      return (pod.status?.hostIPs ?? []).map((p) => p.ip).join(',');
    default:
      throw new PodConfigError('CreateContainerConfigError', `unsupported fieldRef fieldPath "${fieldPath}"`);
  }
}

/** Reads one key of a ConfigMap or Secret (decoded), or undefined when it is absent. */
export async function readKey(api: KubeRest, kind: 'configmaps' | 'secrets', ns: string, name: string, key: string): Promise<string | undefined> {
  const obj = await api.call<{ data?: Record<string, string> }>('GET', `/api/v1/namespaces/${ns}/${kind}/${name}`).catch(() => undefined);
  const raw = obj?.data?.[key];
  if (raw === undefined) return undefined;
  return kind === 'secrets' ? Buffer.from(raw, 'base64').toString('utf8') : raw;
}

/**
 * Resolves a container's environment as the kubelet does: envFrom first, then env in order, each
 * value expanding $(VAR) against the variables defined before it.
 */
export async function containerEnv(api: KubeRest, pod: Pod, container: V1Container, base: Record<string, string>): Promise<Record<string, string>> {
  const ns = pod.metadata.namespace ?? 'default';
  const env: Record<string, string> = { ...base };
  for (const from of container.envFrom ?? []) {
    const ref = from.configMapRef ?? from.secretRef;
    const kind = from.configMapRef ? 'configmaps' : 'secrets';
    if (!ref?.name) continue;
    const obj = await api.call<{ data?: Record<string, string> }>('GET', `/api/v1/namespaces/${ns}/${kind}/${ref.name}`).catch(() => undefined);
    if (!obj && !ref.optional) throw new PodConfigError('CreateContainerConfigError', `${kind === 'configmaps' ? 'configmap' : 'secret'} "${ref.name}" not found`);
    for (const [k, v] of Object.entries(obj?.data ?? {})) env[`${from.prefix ?? ''}${k}`] = kind === 'secrets' ? Buffer.from(v, 'base64').toString('utf8') : v;
  }
  for (const e of container.env ?? []) {
    if (e.value !== undefined) {
      env[e.name] = expandVars(e.value, env);
      continue;
    }
    const from = e.valueFrom;
    if (from?.fieldRef) env[e.name] = fieldValue(pod, from.fieldRef.fieldPath);
    else if (from?.configMapKeyRef || from?.secretKeyRef) {
      const ref = (from.configMapKeyRef ?? from.secretKeyRef)!;
      const kind = from.configMapKeyRef ? 'configmaps' : 'secrets';
      const value = await readKey(api, kind, ns, ref.name ?? '', ref.key);
      if (value === undefined && !ref.optional) {
        throw new PodConfigError('CreateContainerConfigError', `key "${ref.key}" of ${kind === 'configmaps' ? 'configmap' : 'secret'} "${ref.name}" not found (env ${e.name})`);
      }
      if (value !== undefined) env[e.name] = value;
    } else if (from?.resourceFieldRef) {
      // The local cluster enforces no resources; report the declared value, or nothing.
      const [kind, res] = from.resourceFieldRef.resource.split('.') as ['limits' | 'requests', string];
      env[e.name] = container.resources?.[kind]?.[res]?.toString() ?? '0';
    } else env[e.name] = '';
  }
  return env;
}
