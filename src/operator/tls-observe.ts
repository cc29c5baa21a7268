import type { V1Pod } from '@kubernetes/client-node';
import type { X509Certificate } from 'node:crypto';
import http from 'node:http';
import tls from 'node:tls';
import type { EtcdTopology } from '../api/etcd-topology.ts';
import { httpRequest, readText } from '../http-request.ts';
import { certificateOf, splitPem } from '../pki/secret-check.ts';
import type { TlsReport } from '../proxy/tls-reload.ts';
import { TLS_REPORT_PATH } from '../proxy/tls-reload.ts';
import { TRUST_HASH_ANNOTATION } from './components/member-statefulset/member-statefulset.ts';
import { labelMatcher, selectorLabels } from './components/meta.ts';
import { CLIENT_PORT, desiredMemberNames, memberHost, PEER_PORT, PROXY_METRICS_PORT } from './components/names.ts';
import type { Informers } from './informers.ts';

/** PEM material presented on a probe: a client certificate with its key. */
export interface ClientPem {
  cert: string;
  key: string;
}

/** What a CA rotation must see of the running members and proxies; the live one reads pods and dials them. */
export interface TlsObserver {
  /** Desired members whose pod is missing, not ready, terminating, or started on another trust bundle. */
  membersNotOnBundle(topology: EtcdTopology, trustHash: string): string[];
  /** Running proxies that do not report trusting exactly the bundle (or do not answer). */
  proxiesNotOnBundle(topology: EtcdTopology, bundle: string): Promise<string[]>;
  /** Member ports and proxies that serve or present a certificate the signing CA did not sign. */
  notOnSigningCa(topology: EtcdTopology, signingCa: string, material: { client: ClientPem; peer: ClientPem }): Promise<string[]>;
}

const isReady = (p: V1Pod): boolean => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
const fingerprints = (bundle: string): string[] => splitPem(bundle).map((pem) => certificateOf(pem).fingerprint256).sort();

/** Whether a certificate was signed by the CA. */
export function signedBy(cert: X509Certificate, ca: X509Certificate): boolean {
  return cert.checkIssued(ca) && cert.verify(ca.publicKey);
}

/** The certificate a TLS server serves on ip:port for servername (verification is the caller's), or the error. */
export function servedCertificate(ip: string, port: number, servername: string, material: ClientPem, timeoutMs = 3000): Promise<X509Certificate | Error> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: ip, port, servername, cert: material.cert, key: material.key, rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    const done = (r: X509Certificate | Error): void => {
      socket.destroy();
      resolve(r);
    };
    socket.setTimeout(timeoutMs, () => done(new Error('timed out')));
    socket.once('secureConnect', () => {
      const peer = socket.getPeerX509Certificate();
      done(peer ?? new Error('no certificate served'));
    });
    socket.once('error', (err: Error) => done(err));
  });
}

/** What the built-in CA must see of a proxy's client listener: the certificate it serves, and whether it verifies clients. */
export interface ListenerExpectation {
  /** The built-in CA issues what the listener serves (spec.proxy.tls without a Secret of the user's). */
  served: boolean;
  /** The listener verifies clients against the built-in CA's bundle (requireClientCertificate). */
  verifiesClients: boolean;
}

/** What a CA rotation must check of the proxies' listeners for this topology. */
export function listenerExpectation(topology: EtcdTopology): ListenerExpectation {
  const serving = topology.spec.proxy.tls;
  const served = topology.spec.tls.enabled && serving.enabled && serving.secret === undefined;
  return { served, verifiesClients: served && serving.requireClientCertificate };
}

/**
 * Where a proxy's report does not show exactly the bundle trusted: towards the members, and on its
 * client listener when that verifies clients with the built-in CA. Empty when it does.
 */
export function untrustedSides(report: TlsReport, bundle: string, listener: ListenerExpectation): string[] {
  const want = fingerprints(bundle).join(',');
  const trusts = (pems: string[]): boolean => fingerprints(pems.join('\n')).join(',') === want;
  const out: string[] = [];
  if (!trusts(report.trusted)) out.push('towards the members');
  if (listener.verifiesClients && !trusts(report.listener?.trusted ?? [])) out.push('on its client port');
  return out;
}

/**
 * Where a proxy presents or serves a certificate the CA did not sign: its client certificate towards
 * the members, and what its client listener serves when the built-in CA issues that. Empty when none.
 */
export function unsignedSides(report: TlsReport, ca: X509Certificate, listener: ListenerExpectation): string[] {
  const signed = (pem: string | undefined): boolean => pem !== undefined && signedBy(certificateOf(pem), ca);
  const out: string[] = [];
  if (!signed(report.certificate)) out.push('towards the members');
  if (listener.served && !signed(report.listener?.certificate)) out.push('on its client port');
  return out;
}

const proxySides = (name: string, sides: string[]): string => `${name} (${sides.join(' and ')})`;

/** Reads a proxy's report of the TLS material it uses towards the members. */
async function proxyReport(ip: string, timeoutMs = 3000): Promise<TlsReport | Error> {
  try {
    // One call per proxy (one per node) when a rotation asks: Node's global agent, whose idle connections close after 5 s.
    const res = await httpRequest(new URL(`http://${ip}:${PROXY_METRICS_PORT}${TLS_REPORT_PATH}`), { method: 'GET', agent: http.globalAgent, headersTimeoutMs: timeoutMs, bodyTimeoutMs: timeoutMs });
    const text = await readText(res.body);
    if (res.statusCode !== 200) return new Error(`HTTP ${res.statusCode}`);
    return JSON.parse(text) as TlsReport;
  } catch (err) {
    return err as Error;
  }
}

/** Lists a namespace's pods that carry every one of the labels (one API call). */
export type PodLister = (namespace: string, labels: Record<string, string>) => Promise<V1Pod[]>;

/**
 * The observer over the live cluster: members from the informers, proxies listed when a rotation asks
 * (the pod informer holds members and backups only: a cache of every proxy pod grows with the node
 * count), members and proxies dialled at their pod IPs.
 */
export class LiveTlsObserver implements TlsObserver {
  private readonly informers: Informers;
  private readonly listPods: PodLister;

  constructor(informers: Informers, listPods: PodLister) {
    this.informers = informers;
    this.listPods = listPods;
  }

  private pods(topology: EtcdTopology, role: 'member' | 'proxy'): V1Pod[] {
    const isRole = labelMatcher(selectorLabels(topology, role));
    return this.informers.list<V1Pod>('Pod', topology.metadata.namespace).filter((p) => isRole(p.metadata?.labels));
  }

  /** Running proxy pods with an address, as the API server lists them now (one that is starting reads the current files anyway). */
  private async proxies(topology: EtcdTopology): Promise<V1Pod[]> {
    if (!topology.spec.proxy.enabled) return [];
    const pods = await this.listPods(topology.metadata.namespace!, selectorLabels(topology, 'proxy'));
    return pods.filter((p) => !p.metadata?.deletionTimestamp && p.status?.phase === 'Running' && p.status.podIP);
  }

  membersNotOnBundle(topology: EtcdTopology, trustHash: string): string[] {
    const pods = new Map(this.pods(topology, 'member').map((p) => [p.metadata!.name!, p]));
    return desiredMemberNames(topology).filter((name) => {
      const p = pods.get(name);
      return p === undefined || p.metadata?.deletionTimestamp !== undefined || !isReady(p) || p.metadata?.annotations?.[TRUST_HASH_ANNOTATION] !== trustHash;
    });
  }

  async proxiesNotOnBundle(topology: EtcdTopology, bundle: string): Promise<string[]> {
    const listener = listenerExpectation(topology);
    const reports = await Promise.all(
      (await this.proxies(topology)).map(async (p) => {
        const r = await proxyReport(p.status!.podIP!);
        if (r instanceof Error) return [`${p.metadata!.name!} (no TLS report: ${r.message})`];
        const sides = untrustedSides(r, bundle, listener);
        return sides.length === 0 ? [] : [proxySides(p.metadata!.name!, sides)];
      }),
    );
    return reports.flat();
  }

  async notOnSigningCa(topology: EtcdTopology, signingCa: string, material: { client: ClientPem; peer: ClientPem }): Promise<string[]> {
    const ca = certificateOf(signingCa);
    const members = this.pods(topology, 'member').filter((p) => !p.metadata?.deletionTimestamp && p.status?.podIP);
    const probes = members.flatMap((p) => {
      const name = p.metadata!.name!;
      const host = memberHost(topology, name);
      return [
        { what: `${name} client port`, got: servedCertificate(p.status!.podIP!, CLIENT_PORT, host, material.client) },
        { what: `${name} peer port`, got: servedCertificate(p.status!.podIP!, PEER_PORT, host, material.peer) },
      ];
    });
    const listener = listenerExpectation(topology);
    const proxies = (await this.proxies(topology)).map(async (p) => {
      const r = await proxyReport(p.status!.podIP!);
      if (r instanceof Error) return [`proxy ${p.metadata!.name!} (no TLS report: ${r.message})`];
      const sides = unsignedSides(r, ca, listener);
      return sides.length === 0 ? [] : [`proxy ${proxySides(p.metadata!.name!, sides)}`];
    });
    const results = await Promise.all(probes.map(async (x) => ({ what: x.what, got: await x.got })));
    const stalePorts = results.filter((r) => r.got instanceof Error || !signedBy(r.got, ca)).map((r) => r.what);
    return [...stalePorts, ...(await Promise.all(proxies)).flat()];
  }
}
