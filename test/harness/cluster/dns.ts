import type { Pod, Service } from './types.ts';

/** What one pod's /etc/hosts is computed from. */
export interface DnsView {
  services: Service[];
  pods: Pod[];
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

const isReady = (p: Pod): boolean => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

function selects(svc: Service, pod: Pod): boolean {
  const selector = svc.spec?.selector;
  if (!selector || Object.keys(selector).length === 0) return false;
  if (pod.metadata.namespace !== svc.metadata.namespace || !pod.status?.podIP || pod.metadata.deletionTimestamp) return false;
  return Object.entries(selector).every(([k, v]) => pod.metadata.labels?.[k] === v);
}

/**
 * Renders the hosts file a pod sees, standing in for cluster DNS. Kubernetes refuses loopback
 * addresses in EndpointSlices, so endpoints are derived here from Service selectors and pod readiness:
 * headless Services resolve to every ready pod (every pod with publishNotReadyAddresses) and give each
 * pod with a matching subdomain its own name; other Services resolve to one ready pod (for
 * internalTrafficPolicy Local, one on the pod's own node, or none), since nothing may send traffic to
 * the service cluster IP range here. Short names (`svc`, `svc.ns`) follow the pod's namespace as the
 * search path would.
 */
export function hostsFor(pod: Pod, nodeName: string, view: DnsView): string {
  const ns = pod.metadata.namespace ?? 'default';
  const podIP = pod.status?.podIP;
  const lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback'];
  const hostname = pod.spec?.hostname ?? pod.metadata.name;
  if (podIP) {
    const fqdn = pod.spec?.subdomain ? [`${hostname}.${pod.spec.subdomain}.${ns}.svc.cluster.local`, `${hostname}.${pod.spec.subdomain}.${ns}.svc`] : [];
    lines.push(`${podIP}\t${[...fqdn, hostname].join(' ')}`);
  }
  const names = (svcName: string, svcNs: string, prefix = ''): string[] => {
    const full = [`${prefix}${svcName}.${svcNs}.svc.cluster.local`, `${prefix}${svcName}.${svcNs}.svc`];
    if (prefix === '') full.push(`${svcName}.${svcNs}`);
    if (prefix === '' && svcNs === ns) full.push(svcName);
    return full;
  };
  const services = [...view.services].sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));
  for (const svc of services) {
    const svcNs = svc.metadata.namespace ?? 'default';
    const headless = svc.spec?.clusterIP === 'None';
    const endpoints = view.pods
      .filter((p) => selects(svc, p) && ((headless && svc.spec?.publishNotReadyAddresses) || isReady(p)))
      .sort((a, b) => a.status!.podIP!.localeCompare(b.status!.podIP!, 'en', { numeric: true }));
    if (headless) {
      for (const p of endpoints) lines.push(`${p.status!.podIP}\t${names(svc.metadata.name, svcNs).join(' ')}`);
      for (const p of endpoints) {
        if (p.spec?.subdomain === svc.metadata.name) lines.push(`${p.status!.podIP}\t${names(svc.metadata.name, svcNs, `${p.spec.hostname ?? p.metadata.name}.`).join(' ')}`);
      }
      continue;
    }
    const candidates = svc.spec?.internalTrafficPolicy === 'Local' ? endpoints.filter((p) => p.spec?.nodeName === nodeName) : endpoints;
    if (candidates.length === 0) continue;
    const chosen = candidates[hash(`${ns}/${pod.metadata.name}`) % candidates.length]!;
    lines.push(`${chosen.status!.podIP}\t${names(svc.metadata.name, svcNs).join(' ')}`);
  }
  return `${lines.join('\n')}\n`;
}
