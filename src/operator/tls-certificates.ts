import type { V1Secret, V1StatefulSet } from '@kubernetes/client-node';
import type { Clock, ConditionUpdate } from '../api/conditions.ts';
import type { EtcdTopology } from '../api/etcd-topology.ts';
import { ROTATE_CA_ANNOTATION, type TlsStatus } from '../api/tls.ts';
import { caRotationStep, type CaRotationDecision, type CaRotationFacts } from '../pki/ca-rotation.ts';
import { parseDuration } from '../flags.ts';
import { createCa, issueLeaf, type CertificatePem } from '../pki/issuer.ts';
import { newValidity } from '../pki/renewal.ts';
import { leafRequests, tlsSecretNames, type TlsSecretNames } from '../pki/sans.ts';
import { CA_CRT, certificateOf, checkTlsSecret, isProblem, TLS_CRT, TLS_KEY, type TlsMaterial, type TlsProblem } from '../pki/secret-check.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { EventRecorder, EventTarget } from './events.ts';
import type { EtcdAdminClient } from '../etcd/admin-client.ts';
import type { Informers } from './informers.ts';
import type { KubeWriter } from './kube.ts';
import { labels, namespaceOf, ownerReference } from './components/meta.ts';
import { desiredMemberNames, memberHost, namesOf } from './components/names.ts';
import { TRUST_HASH_ANNOTATION } from './components/member-statefulset/member-statefulset.ts';
import { bundleOf, caSecretContent, caStateOf, tlsStatusOf, trustHashOf, type CaState } from './ca-secret.ts';
import { LiveTlsObserver, signedBy, type TlsObserver } from './tls-observe.ts';
import { liveSecrets, readSecretWith, type SecretSource } from './secret-cache.ts';

/** The built-in CA's own lifetime; it is rotated at 2/3 of it (src/pki/ca-rotation.ts). */
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
  /** The hash of the CA bundle members must trust (goes into their pod template: etcd reads it only at start). */
  trustHash?: string;
  /** A CA rotation is under way: members without a trust hash are not taken as trusting the bundle. */
  rotating?: boolean;
  /** status.tls (the built-in CA). */
  status?: TlsStatus;
}

export interface TlsDeps {
  writer: KubeWriter;
  events: EventRecorder;
  clock: Clock;
  /** The member pods and proxies a CA rotation watches; with informers, the live observer is used. */
  informers?: Informers;
  observer?: TlsObserver;
  /** Where Secrets are read (the Secret informer, SecretCache); without it, each read is a GET. */
  secrets?: SecretSource;
}

/** How often a CA rotation under way looks again. */
const ROTATION_POLL_MS = 2_000;
/** The longest requeue a timer takes (setTimeout's limit); a CA's rotation by age is years away. */
const MAX_REQUEUE_MS = 2 ** 31 - 1;

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
  private readonly observer: TlsObserver | undefined;
  private readonly secrets: SecretSource;

  constructor(deps: TlsDeps) {
    this.deps = deps;
    this.secrets = deps.secrets ?? liveSecrets(readSecretWith(deps.writer));
    this.observer = deps.observer ?? (deps.informers ? new LiveTlsObserver(deps.informers, (namespace, labels) => deps.writer.listPods(namespace, labels)) : undefined);
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
    let rotation: { status: TlsStatus; rotating: boolean; requeueAfterMs: number } | undefined;
    if (topology.spec.tls.secrets !== undefined) {
      results = await this.checkUserSecrets(topology, names, hosts, now);
    } else {
      const built = await this.builtIn(topology, names, hosts, now, target, log);
      if ('problem' in built) {
        return { enabled: true, holdMembers: true, requeueAfterMs: 2_000, condition: { type: 'TLSReady', status: 'False', reason: built.problem.reason, message: built.problem.message } };
      }
      results = built.results;
      rotation = built.rotation;
    }
    const servedByProxy = topology.spec.proxy.tls;
    if (topology.spec.proxy.enabled && servedByProxy.enabled && servedByProxy.secret !== undefined) {
      results.push({ secret: servedByProxy.secret, result: checkTlsSecret(servedByProxy.secret, (await this.read(namespaceOf(topology), servedByProxy.secret))?.data, {}, now) });
    }
    const operator = results.find((r) => r.secret === names.operator)?.result;
    if (operator && !isProblem(operator)) this.lastClient.set(key, { ca: operator.ca, cert: operator.cert, key: operator.key });
    const problems = results.filter((r): r is { secret: string; result: TlsProblem } => isProblem(r.result));
    const soonest = results.flatMap((r) => (isProblem(r.result) ? [] : [r.result.renewal.renewAt.getTime()]));
    const renewIn = soonest.length > 0 ? Math.max(1_000, Math.min(...soonest) - now.getTime() + 500) : undefined;
    const requeueAfterMs = Math.min(renewIn ?? Infinity, rotation?.requeueAfterMs ?? Infinity);
    const client = this.lastClient.get(key);
    const expiries = results.flatMap((r) => (isProblem(r.result) ? [] : [{ secret: r.secret, notAfter: new Date(r.result.leaf.validTo) }]));
    const trustHash = this.trustHash(topology, names, results);
    const base = {
      enabled: true,
      expiries,
      ...(client ? { operatorClient: client } : {}),
      ...(Number.isFinite(requeueAfterMs) ? { requeueAfterMs } : {}),
      ...(trustHash !== undefined ? { trustHash } : {}),
      ...(rotation ? { status: rotation.status, rotating: rotation.rotating } : {}),
    };
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

  /**
   * The hash of the bundles the members trust (the server and peer Secrets' ca.crt). While either
   * Secret is unusable, the hash the member StatefulSet carries now is kept: a broken Secret restarts nothing.
   */
  private trustHash(topology: EtcdTopology, names: TlsSecretNames, results: { secret: string; result: Checked }[]): string | undefined {
    const server = results.find((r) => r.secret === names.server)?.result;
    const peer = results.find((r) => r.secret === names.peer)?.result;
    if (server && peer && !isProblem(server) && !isProblem(peer)) return trustHashOf(server.ca, peer.ca);
    const sts = this.deps.informers?.get<V1StatefulSet>('StatefulSet', namesOf(topology).memberStatefulSet, namespaceOf(topology));
    return sts?.spec?.template.metadata?.annotations?.[TRUST_HASH_ANNOTATION];
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
  ): Promise<{ results: { secret: string; result: Checked }[]; rotation: { status: TlsStatus; rotating: boolean; requeueAfterMs: number } } | { problem: TlsProblem }> {
    const ns = namespaceOf(topology);
    const leaves = leafRequests(topology);
    const live = new Map<string, V1Secret | undefined>();
    // Read at once: from the Secret informer (SecretCache) these cost nothing; as GETs in turn they cost
    // six round trips in every reconcile, seconds on a loaded API server.
    const wanted = [names.ca, ...leaves.map((l) => names[l.secret])];
    for (const [i, secret] of (await Promise.all(wanted.map((name) => this.read(ns, name)))).entries()) live.set(wanted[i]!, secret);
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
    const existing = await this.ensureCa(topology, names.ca, live.get(names.ca), now, target, log);
    if ('problem' in existing) return existing;
    const rotated = await this.rotateCa(topology, existing.state, names, live, now, target, log);
    const ca = rotated.state;
    const lifetimeMs = parseDuration(topology.spec.tls.certificateLifetime)!;
    const results: { secret: string; result: Checked }[] = [];
    for (const { secret, request } of leaves) {
      const name = names[secret];
      const needsHosts = secret === 'server' || secret === 'peer';
      const expect = { trustedCa: ca.signing.cert, ...(needsHosts ? { hosts } : {}) };
      let result = checkTlsSecret(name, live.get(name)?.data, expect, now);
      if (isProblem(result) || result.renewal.renew) {
        const why = isProblem(result) ? result.reason : `renewal due (${result.renewal.state})`;
        const leaf = await issueLeaf(ca.signing, request, newValidity(lifetimeMs, now));
        await this.write(this.secret(topology, name, leaf, ca.bundle));
        const message = `Issued a certificate into Secret ${name}: ${why}`;
        log.info({ secret: name, reason: why }, message);
        this.deps.events.record(target, 'Normal', 'CertificateIssued', message);
        result = checkTlsSecret(name, this.secret(topology, name, leaf, ca.bundle).data, expect, now);
      } else if (result.ca !== ca.bundle) {
        // The trust bundle changed (a CA rotation): the same leaf, with the new ca.crt.
        const secretObj = this.secret(topology, name, { cert: result.cert, key: result.key }, ca.bundle);
        await this.write(secretObj);
        log.info({ secret: name }, `Updated the CA bundle in Secret ${name}`);
        result = checkTlsSecret(name, secretObj.data, expect, now);
      }
      results.push({ secret: name, result });
    }
    return { results, rotation: { status: tlsStatusOf(ca, rotated.message), rotating: ca.phase !== undefined, requeueAfterMs: rotated.requeueAfterMs } };
  }

  /**
   * One step of the CA rotation (src/pki/ca-rotation.ts): decides on what the members, proxies and
   * Secrets show, writes the CA Secret when the phase changes, and returns the CA state the leaves
   * are issued from. Records an Event at each phase; what it waits for goes to status.tls.
   */
  private async rotateCa(
    topology: EtcdTopology,
    ca: CaState,
    names: TlsSecretNames,
    live: Map<string, V1Secret | undefined>,
    now: Date,
    target: EventTarget,
    log: Logger,
  ): Promise<{ state: CaState; message?: string; requeueAfterMs: number }> {
    const requested = topology.metadata.annotations?.[ROTATE_CA_ANNOTATION];
    const signingCert = certificateOf(ca.signing.cert);
    const facts: CaRotationFacts = {
      now,
      signing: { notBefore: new Date(signingCert.validFrom), notAfter: new Date(signingCert.validTo) },
      phase: ca.phase,
      requested,
      answered: ca.answered,
      membersNotOnBundle: [],
      proxiesNotOnBundle: [],
      notOnSigningCa: [],
    };
    if (ca.phase !== undefined) {
      if (this.observer === undefined) return { state: ca, message: 'the CA rotation cannot observe the members and proxies here', requeueAfterMs: ROTATION_POLL_MS };
      if (ca.phase === 'Reissuing') {
        facts.notOnSigningCa = await this.notOnSigningCa(topology, ca, names, live);
      } else {
        const trustHash = trustHashOf(ca.bundle, ca.bundle);
        facts.membersNotOnBundle = this.observer.membersNotOnBundle(topology, trustHash);
        facts.proxiesNotOnBundle = await this.observer.proxiesNotOnBundle(topology, ca.bundle);
      }
    }
    const decision = caRotationStep(facts);
    if (decision.action === 'None') return { state: ca, requeueAfterMs: Math.min(MAX_REQUEUE_MS, Math.max(1_000, decision.renewAt.getTime() - now.getTime())) };
    if (decision.action === 'Wait') return { state: ca, message: decision.message, requeueAfterMs: ROTATION_POLL_MS };
    const next = await this.nextCaState(topology, ca, decision, requested, now);
    await this.write(this.caSecret(topology, names.ca, next));
    const reason = { Start: 'CARotationStarted', Advance: decision.action === 'Advance' && decision.to === 'Reissuing' ? 'CARotationReissuing' : 'CARotationRetiring', Finish: 'CARotated' }[decision.action];
    const message = decision.message.replace(/^./, (c) => c.toUpperCase());
    log.info({ secret: names.ca, phase: next.phase ?? 'done' }, message);
    this.deps.events.record(target, 'Normal', reason, message);
    return { state: next, requeueAfterMs: ROTATION_POLL_MS };
  }

  /** The CA state after a decision that changes it; a new CA is created on Start. */
  private async nextCaState(topology: EtcdTopology, ca: CaState, decision: Exclude<CaRotationDecision, { action: 'None' | 'Wait' }>, requested: string | undefined, now: Date): Promise<CaState> {
    switch (decision.action) {
      case 'Start': {
        // A subject of its own, so that no verifier mistakes one CA for the other while both are trusted.
        const stamp = now.toISOString().replace(/[-:]/g, '').slice(0, 15);
        const fresh = await createCa(`${topology.metadata.name}-ca-${stamp}`, newValidity(CA_LIFETIME_MS, now));
        return {
          ...ca,
          next: fresh,
          bundle: bundleOf(ca.signing.cert, fresh.cert),
          phase: 'Trusting',
          trigger: decision.trigger,
          startTime: now.toISOString(),
          answered: decision.trigger === 'OnDemand' ? requested : ca.answered,
        };
      }
      case 'Advance':
        if (decision.to === 'Reissuing') return { ...ca, signing: ca.next ?? ca.signing, next: undefined, phase: 'Reissuing' };
        return { ...ca, bundle: bundleOf(ca.signing.cert), phase: 'Retiring' };
      case 'Finish':
        return { ...ca, phase: undefined, trigger: undefined, startTime: undefined, lastRotation: now.toISOString() };
    }
  }

  /** Where a certificate the signing CA did not sign is still in a leaf Secret, served by a member, or presented by a proxy. */
  private async notOnSigningCa(topology: EtcdTopology, ca: CaState, names: TlsSecretNames, live: Map<string, V1Secret | undefined>): Promise<string[]> {
    const signing = certificateOf(ca.signing.cert);
    const leafOf = (name: string): { cert: string; key: string } | undefined => {
      const data = live.get(name)?.data;
      if (!data?.[TLS_CRT] || !data[TLS_KEY]) return undefined;
      return { cert: Buffer.from(data[TLS_CRT], 'base64').toString('utf8'), key: Buffer.from(data[TLS_KEY], 'base64').toString('utf8') };
    };
    const secrets = leafRequests(topology).map((l) => names[l.secret]);
    const stale = secrets.filter((n) => {
      const leaf = leafOf(n);
      return leaf === undefined || !signedBy(certificateOf(leaf.cert), signing);
    });
    if (stale.length > 0) return stale.map((n) => `Secret ${n}`);
    const client = leafOf(names.operator);
    const peer = leafOf(names.peer);
    if (!client || !peer) return [`Secret ${!client ? names.operator : names.peer}`];
    return this.observer!.notOnSigningCa(topology, ca.signing.cert, { client, peer });
  }

  /** The CA Secret, created once; a CA Secret that is there but unusable is reported, never replaced (every leaf and member trusts it). */
  private async ensureCa(topology: EtcdTopology, name: string, live: V1Secret | undefined, now: Date, target: EventTarget, log: Logger): Promise<{ state: CaState } | { problem: TlsProblem }> {
    if (live === undefined) {
      const pem = await createCa(`${topology.metadata.name}-ca`, newValidity(CA_LIFETIME_MS, now));
      const state: CaState = { signing: pem, bundle: bundleOf(pem.cert) };
      await this.write(this.caSecret(topology, name, state));
      log.info({ secret: name }, `Created CA Secret ${name}`);
      this.deps.events.record(target, 'Normal', 'CACreated', `Created the topology's CA in Secret ${name}`);
      return { state };
    }
    const checked = checkTlsSecret(name, live.data, {}, now);
    if (isProblem(checked)) return { problem: { reason: checked.reason, message: `${checked.message} (the built-in CA; restore it from a backup or delete it to start a new CA, which restarts every member)` } };
    return { state: caStateOf(live, { cert: checked.cert, key: checked.key }) };
  }

  private caSecret(topology: EtcdTopology, name: string, state: CaState): V1Secret {
    const { data, annotations } = caSecretContent(state);
    return {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: { name, namespace: namespaceOf(topology), labels: labels(topology, 'member'), ...(Object.keys(annotations).length > 0 ? { annotations } : {}), ownerReferences: [ownerReference(topology)] },
      data,
    };
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

  private read(namespace: string, name: string): Promise<V1Secret | undefined> {
    return this.secrets.read(namespace, name);
  }

  /** Applies a Secret and tells the source what the API server now holds (read-your-writes). */
  private async write(secret: V1Secret): Promise<void> {
    this.secrets.wrote(await this.deps.writer.apply(secret));
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
