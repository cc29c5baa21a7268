import type { EtcdTopology } from '../api/etcd-topology.ts';
import { nameOf, namespaceOf } from '../operator/components/meta.ts';
import { namesOf } from '../operator/components/names.ts';
import type { LeafRequest } from './issuer.ts';

/** The Secrets of one topology's TLS; the built-in CA fills the first five, user Secrets replace server, peer and client. */
export interface TlsSecretNames {
  ca: string;
  server: string;
  peer: string;
  /** What the operator presents to the members. */
  operator: string;
  /** What the proxies present to the members. */
  proxy: string;
  /** For people and tools: etcdctl, backups. */
  client: string;
  /** What the proxies serve when spec.proxy.tls is enabled. */
  proxyServing: string;
}

/** The Secret names of a topology's TLS: the user's when spec.tls.secrets is set, else the built-in CA's. */
export function tlsSecretNames(topology: EtcdTopology): TlsSecretNames {
  const n = nameOf(topology);
  const user = topology.spec.tls.secrets;
  const proxyServing = topology.spec.proxy.tls.secret ?? `${n}-proxy-serving-tls`;
  if (user?.server !== undefined && user.peer !== undefined && user.client !== undefined) {
    return { ca: `${n}-ca`, server: user.server, peer: user.peer, operator: user.client, proxy: user.client, client: user.client, proxyServing };
  }
  return { ca: `${n}-ca`, server: `${n}-server-tls`, peer: `${n}-peer-tls`, operator: `${n}-operator-tls`, proxy: `${n}-proxy-tls`, client: `${n}-client-tls`, proxyServing };
}

/** The common name every peer certificate carries; members accept peers only with it (--peer-cert-allowed-cn). */
export function peerCommonName(topology: EtcdTopology): string {
  return `${nameOf(topology)}-peer`;
}

/**
 * The DNS names through which members are reached: each member under the headless peer Service (a
 * wildcard, so that replacement members with new ordinals are covered), with and without the
 * cluster domain.
 */
export function memberWildcards(topology: EtcdTopology): string[] {
  const base = `${namesOf(topology).peerService}.${namespaceOf(topology)}.svc`;
  return [`*.${base}`, `*.${base}.cluster.local`];
}

/**
 * Every name a client may use for a member: the member names, the client Service in each form the
 * cluster's search path allows, and the loopback names for a client inside the member's own pod.
 * Pod IPs are not in the certificate (they change with every pod and are unknown at issue time):
 * clients that dial an IP send the member's DNS name as SNI and verify against it, which is also
 * what keeps etcd's certificate reload working (etcd-io/etcd#9541: no SNI, no reload).
 */
export function serverNames(topology: EtcdTopology): { dnsNames: string[]; ipAddresses: string[] } {
  const svc = namesOf(topology).clientService;
  const ns = namespaceOf(topology);
  return {
    dnsNames: [...memberWildcards(topology), svc, `${svc}.${ns}`, `${svc}.${ns}.svc`, `${svc}.${ns}.svc.cluster.local`, 'localhost'],
    ipAddresses: ['127.0.0.1', '::1'],
  };
}

/** The names of the proxy's node-local Service, and the node's loopback for a proxy in the host network. */
export function proxyServingNames(topology: EtcdTopology): { dnsNames: string[]; ipAddresses: string[] } {
  const svc = namesOf(topology).proxyService;
  const ns = namespaceOf(topology);
  return { dnsNames: [svc, `${svc}.${ns}`, `${svc}.${ns}.svc`, `${svc}.${ns}.svc.cluster.local`, 'localhost'], ipAddresses: ['127.0.0.1', '::1'] };
}

/** The leaf certificates the built-in CA issues for a topology, by the Secret that holds each. */
export function leafRequests(topology: EtcdTopology): { secret: keyof Omit<TlsSecretNames, 'ca'>; request: LeafRequest }[] {
  const n = nameOf(topology);
  return [
    // The gRPC gateway inside etcd dials its own listener with the server certificate: it needs clientAuth too.
    { secret: 'server', request: { commonName: `${n}-server`, ...serverNames(topology), usages: ['server', 'client'] } },
    { secret: 'peer', request: { commonName: peerCommonName(topology), dnsNames: memberWildcards(topology), ipAddresses: [], usages: ['server', 'client'] } },
    { secret: 'operator', request: { commonName: 'etcd-topology-operator', dnsNames: [], ipAddresses: [], usages: ['client'] } },
    { secret: 'proxy', request: { commonName: `${n}-proxy`, dnsNames: [], ipAddresses: [], usages: ['client'] } },
    { secret: 'client', request: { commonName: `${n}-client`, dnsNames: [], ipAddresses: [], usages: ['client'] } },
    ...(topology.spec.proxy.tls.enabled && topology.spec.proxy.tls.secret === undefined
      ? [{ secret: 'proxyServing' as const, request: { commonName: `${n}-proxy`, ...proxyServingNames(topology), usages: ['server' as const] } }]
      : []),
  ];
}
