import type { V1Secret, V1StatefulSet } from '@kubernetes/client-node';
import type { Clock, ConditionUpdate } from '../api/conditions.ts';
import type { EtcdTopology } from '../api/etcd-topology.ts';
import { parseDuration } from '../flags.ts';
import { createCa, issueLeaf, type CertificatePem } from '../pki/issuer.ts';
import { newValidity } from '../pki/renewal.ts';
import { leafRequests, tlsSecretNames, type TlsSecretNames } from '../pki/sans.ts';
import { CA_CRT, checkTlsSecret, isProblem, TLS_CRT, TLS_KEY, type TlsMaterial, type TlsProblem } from '../pki/secret-check.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { EventRecorder, EventTarget } from './events.ts';
import type { EtcdAdminClient } from '../etcd/admin-client.ts';
import type { Informers } from './informers.ts';
import type { KubeWriter } from './kube.ts';
import { labels, namespaceOf, ownerReference } from './components/meta.ts';
import { desiredMemberNames, memberHost, namesOf } from './components/names.ts';

/** The built-in CA's own lifetime; CA rotation is not automated yet (docs/tls.md). */
const CA_LIFETIME_MS = 10 * 365 * 24 * 3_600_000;

/** What the rest of the reconcile needs from the TLS step. */
export interface TlsState {
  /** Whether members serve TLS: spec.tls.enabled, unless the cluster already runs in plaintext. */
  enabled: boolean;
  /** What the operator presents to the members; undefined while no valid client certificate exists. */
  operatorClient?: { ca: string; cert: string; key: string };
  /** TLSReady; undefined when TLS is off. */
  condition?: ConditionUpdate;
  /** When the next certificate is due for renewal (ms from now). */
  requeueAfterMs?: number;
  /** Do not create the member StatefulSet yet: its pods would mount certificates that are about to go. */
  holdMembers?: boolean;
  /** When each usable certificate expires, by Secret (for etcd_topology_certificate_expiry_timestamp_seconds). */
  expiries?: { secret: string; notAfter: Date }[];
}

export interface TlsDeps {
  writer: KubeWriter;
  events: EventRecorder;
  clock: Clock;
}

type Checked = TlsMaterial | TlsProblem;

/**
 * Keeps one topology's certificates: with the built-in CA, creates the CA Secret once and issues or
 * renews every leaf (at 2/3 of its lifetime, or at once when missing, broken or not covering the
 * member names); with user Secrets, only checks them. Writes Secrets only when something changes;
 * never logs or records their content.
 */
export class TlsCertificates {
  private readonly deps: TlsDeps;
  /** The last good operator client material per topology, kept while its Secret is being fixed. */
  private readonly lastClient = new Map<string, { ca: string; cert: string; key: string }>();

  constructor(deps: TlsDeps) {
    this.deps = deps;
  }

  /** Runs the TLS step; plaintextCluster says the member StatefulSet already runs without TLS. */
  async reconcile(topology: EtcdTopology, plaintextCluster: boolean, target: EventTarget, log: Logger): Promise<TlsState> {
    const key = `${namespaceOf(topology)}/${topology.metadata.name}`;
    if (!topology.spec.tls.enabled) {
      this.lastClient.delete(key);
      return { enabled: false };
    }
    if (plaintextCluster) {
      return {
        enabled: false,
        condition: {
          type: 'TLSReady',
          status: 'False',
          reason: 'PlaintextCluster',
          message:
            'spec.tls.enabled is true but the members already run in plaintext (the topology predates TLS or was created without it); ' +
            'the operator does not move a running cluster to TLS in place: create a new EtcdTopology and migrate the data (docs/tls.md)',
        },
      };
    }
    const names = tlsSecretNames(topology);
    const now = this.deps.clock.now();
    const hosts = desiredMemberNames(topology).map((m) => memberHost(topology, m));
    let results: { secret: string; result: Checked }[];
    if (topology.spec.tls.secrets !== undefined) {
      results = await this.checkUserSecrets(topology, names, hosts, now);
    } else {
      const built = await this.builtIn(topology, names, hosts, now, target, log);
      if ('problem' in built) {
        return { enabled: true, holdMembers: true, requeueAfterMs: 2_000, condition: { type: 'TLSReady', status: 'False', reason: built.problem.reason, message: built.problem.message } };
      }
      results = built.results;
    }
    const servedByProxy = topology.spec.proxy.tls;
    if (topology.spec.proxy.enabled && servedByProxy.enabled && servedByProxy.secret !== undefined) {
      results.push({ secret: servedByProxy.secret, result: checkTlsSecret(servedByProxy.secret, (await this.read(namespaceOf(topology), servedByProxy.secret))?.data, {}, now) });
    }
    const operator = results.find((r) => r.secret === names.operator)?.result;
    if (operator && !isProblem(operator)) this.lastClient.set(key, { ca: operator.ca, cert: operator.cert, key: operator.key });
    const problems = results.filter((r): r is { secret: string; result: TlsProblem } => isProblem(r.result));
    const soonest = results.flatMap((r) => (isProblem(r.result) ? [] : [r.result.renewal.renewAt.getTime()]));
    const requeueAfterMs = soonest.length > 0 ? Math.max(1_000, Math.min(...soonest) - now.getTime() + 500) : undefined;
    const client = this.lastClient.get(key);
    const expiries = results.flatMap((r) => (isProblem(r.result) ? [] : [{ secret: r.secret, notAfter: new Date(r.result.leaf.validTo) }]));
    const base = { enabled: true, expiries, ...(client ? { operatorClient: client } : {}), ...(requeueAfterMs !== undefined ? { requeueAfterMs } : {}) };
    if (problems.length > 0) {
      return { ...base, condition: { type: 'TLSReady', status: 'False', reason: problems[0]!.result.reason, message: problems.map((p) => p.result.message).join('; ') } };
    }
    const materials = results.map((r) => ({ secret: r.secret, m: r.result as TlsMaterial }));
    const expiring = materials.filter((x) => !x.m.renewal.ready);
    if (expiring.length > 0) {
      const message = expiring.map((x) => `Secret ${x.secret}: the certificate expires at ${new Date(x.m.leaf.validTo).toISOString()} and has not been renewed`).join('; ');
      return { ...base, condition: { type: 'TLSReady', status: 'False', reason: 'CertificateExpiringSoon', message } };
    }
    const firstExpiry = Math.min(...materials.map((x) => new Date(x.m.leaf.validTo).getTime()));
    const issuer = topology.spec.tls.secrets === undefined ? 'the built-in CA' : 'the given Secrets';
    return {
      ...base,
      condition: { type: 'TLSReady', status: 'True', reason: 'CertificatesValid', message: `Certificates from ${issuer} are valid; the first expires at ${new Date(firstExpiry).toISOString()}` },
    };
  }

  /** The user's Secrets, checked: server and peer cover the member names, the client is signed by the CA the members trust. */
  private async checkUserSecrets(topology: EtcdTopology, names: TlsSecretNames, hosts: string[], now: Date): Promise<{ secret: string; result: Checked }[]> {
    const ns = namespaceOf(topology);
    const server = checkTlsSecret(names.server, (await this.read(ns, names.server))?.data, { hosts }, now);
    const peer = checkTlsSecret(names.peer, (await this.read(ns, names.peer))?.data, { hosts }, now);
    const trustedCa = isProblem(server) ? undefined : server.ca;
    const client = checkTlsSecret(names.client, (await this.read(ns, names.client))?.data, trustedCa === undefined ? {} : { trustedCa }, now);
    return [
      { secret: names.server, result: server },
      { secret: names.peer, result: peer },
      { secret: names.client, result: client },
    ];
  }

  private async builtIn(
    topology: EtcdTopology,
    names: TlsSecretNames,
    hosts: string[],
    now: Date,
    target: EventTarget,
    log: Logger,
  ): Promise<{ results: { secret: string; result: Checked }[] } | { problem: TlsProblem }> {
    const ns = namespaceOf(topology);
    const leaves = leafRequests(topology);
    const live = new Map<string, V1Secret | undefined>();
    for (const name of [names.ca, ...leaves.map((l) => names[l.secret])]) live.set(name, await this.read(ns, name));
    // A deleted topology's Secrets stay until the garbage collector removes them: using (or
    // overwriting) them races that deletion, and a CA that vanishes under running members splits them.
    const foreign = [...live].filter(([, s]) => s !== undefined && !s.metadata?.ownerReferences?.some((o) => o.uid === topology.metadata.uid && o.controller === true)).map(([n]) => n);
    if (foreign.length > 0) {
      return {
        problem: {
          reason: 'SecretNotOwned',
          message:
            `Secret ${foreign.join(', ')} exists but is not owned by this EtcdTopology (left by a deleted topology of the same name until the ` +
            'garbage collector removes it, or made by someone else): the operator waits and starts the members once it is gone; delete it if it is stale',
        },
      };
    }
    const ca = await this.ensureCa(topology, names.ca, live.get(names.ca), now, target, log);
    if ('problem' in ca) return ca;
    const lifetimeMs = parseDuration(topology.spec.tls.certificateLifetime)!;
    const results: { secret: string; result: Checked }[] = [];
    for (const { secret, request } of leaves) {
      const name = names[secret];
      const needsHosts = secret === 'server' || secret === 'peer';
      const expect = { trustedCa: ca.pem.cert, ...(needsHosts ? { hosts } : {}) };
      let result = checkTlsSecret(name, live.get(name)?.data, expect, now);
      if (isProblem(result) || result.renewal.renew) {
        const why = isProblem(result) ? result.reason : `renewal due (${result.renewal.state})`;
        const leaf = await issueLeaf(ca.pem, request, newValidity(lifetimeMs, now));
        await this.deps.writer.apply(this.secret(topology, name, leaf, ca.pem.cert));
        const message = `Issued a certificate into Secret ${name}: ${why}`;
        log.info({ secret: name, reason: why }, message);
        this.deps.events.record(target, 'Normal', 'CertificateIssued', message);
        result = checkTlsSecret(name, this.secret(topology, name, leaf, ca.pem.cert).data, expect, now);
      }
      results.push({ secret: name, result });
    }
    return { results };
  }

  /** The CA Secret, created once; a CA Secret that is there but unusable is reported, never replaced (every leaf and member trusts it). */
  private async ensureCa(topology: EtcdTopology, name: string, live: V1Secret | undefined, now: Date, target: EventTarget, log: Logger): Promise<{ pem: CertificatePem } | { problem: TlsProblem }> {
    if (live === undefined) {
      const pem = await createCa(`${topology.metadata.name}-ca`, newValidity(CA_LIFETIME_MS, now));
      await this.deps.writer.apply(this.secret(topology, name, pem, pem.cert));
      log.info({ secret: name }, `Created CA Secret ${name}`);
      this.deps.events.record(target, 'Normal', 'CACreated', `Created the topology's CA in Secret ${name}`);
      return { pem };
    }
    const checked = checkTlsSecret(name, live.data, {}, now);
    if (isProblem(checked)) return { problem: { reason: checked.reason, message: `${checked.message} (the built-in CA; restore it from a backup or delete it to start a new CA, which restarts every member)` } };
    return { pem: { cert: checked.cert, key: checked.key } };
  }

  private secret(topology: EtcdTopology, name: string, pem: CertificatePem, caBundle: string): V1Secret & { data: Record<string, string> } {
    const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
    return {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: { name, namespace: namespaceOf(topology), labels: labels(topology, 'member'), ownerReferences: [ownerReference(topology)] },
      data: { [TLS_CRT]: b64(pem.cert), [TLS_KEY]: b64(pem.key), [CA_CRT]: b64(caBundle) },
    };
  }

  private async read(namespace: string, name: string): Promise<V1Secret | undefined> {
    return this.deps.writer.core.readNamespacedSecret({ name, namespace }).catch((err: unknown) => {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    });
  }
}

/** The topology as the rest of the reconcile must see it: with TLS as actually in effect. */
export function withTlsEnabled(topology: EtcdTopology, enabled: boolean): EtcdTopology {
  if (topology.spec.tls.enabled === enabled) return topology;
  return { ...topology, spec: { ...topology.spec, tls: { ...topology.spec.tls, enabled } } };
}

/** Whether the topology's member StatefulSet exists and serves its peers in plaintext. */
export function runsPlaintext(informers: Informers, topology: EtcdTopology): boolean {
  const sts = informers.get<V1StatefulSet>('StatefulSet', namesOf(topology).memberStatefulSet, namespaceOf(topology));
  const args = sts?.spec?.template.spec?.containers.find((c) => c.name === 'etcd')?.args ?? [];
  return args.some((a) => a.startsWith('--listen-peer-urls=http://'));
}

/** Gives the admin client the operator's client certificate for each member endpoint, verifying the member's DNS name. */
export function useMemberTls(admin: EtcdAdminClient, topology: EtcdTopology, endpoints: readonly { name: string; url: string }[], tls: TlsState): void {
  for (const e of endpoints) {
    const client = tls.enabled ? tls.operatorClient : undefined;
    admin.setEndpointTls(e.url, client ? { ...client, servername: memberHost(topology, e.name) } : undefined);
  }
}
