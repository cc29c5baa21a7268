import type { V1Secret } from '@kubernetes/client-node';
import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Clock } from '../api/conditions.ts';
import { createRootLogger } from '../telemetry/logger.ts';
import { topology } from './components/testing.ts';
import type { EventRecorder } from './events.ts';
import type { KubeWriter } from './kube.ts';
import { TlsCertificates, withTlsEnabled } from './tls-certificates.ts';
import type { TlsObserver } from './tls-observe.ts';

/** Secrets kept in memory behind the two KubeWriter calls the TLS step makes: read by name, apply. */
function secretStore() {
  const secrets = new Map<string, V1Secret>();
  let writes = 0;
  const writer = {
    core: {
      readNamespacedSecret: ({ name }: { name: string }) => {
        const s = secrets.get(name);
        return s ? Promise.resolve(structuredClone(s)) : Promise.reject(Object.assign(new Error('not found'), { code: 404 }));
      },
    },
    apply: (obj: V1Secret) => {
      writes++;
      secrets.set(obj.metadata!.name!, structuredClone(obj));
      return Promise.resolve(obj);
    },
  } as unknown as KubeWriter;
  return { secrets, writer, writes: () => writes };
}

const log = createRootLogger({ name: 'test', level: 'silent' });
const events = { record: () => undefined } as unknown as EventRecorder;
const target = { apiVersion: 'etcdtopology.io/v1alpha1', kind: 'EtcdTopology', name: 'main', namespace: 'etcd' };
const serial = (s: V1Secret | undefined): string => new X509Certificate(Buffer.from(s!.data!['tls.crt']!, 'base64')).serialNumber;

describe('the TLS step with the built-in CA', () => {
  it('creates the CA and five leaves once, writes nothing when nothing is due, and renews at 2/3 of the lifetime', async () => {
    let now = new Date('2026-03-01T00:00:00Z');
    const clock: Clock = { now: () => now };
    const store = secretStore();
    const step = new TlsCertificates({ writer: store.writer, events, clock });
    const t = topology({ tls: { certificateLifetime: '1h' } });

    const first = await step.reconcile(t, false, target, log);
    expect([...store.secrets.keys()].sort()).toEqual(['main-ca', 'main-client-tls', 'main-operator-tls', 'main-peer-tls', 'main-proxy-tls', 'main-server-tls']);
    expect(store.secrets.get('main-server-tls')?.type).toBe('kubernetes.io/tls');
    expect(store.secrets.get('main-server-tls')?.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'EtcdTopology', name: 'main', controller: true });
    expect(first).toMatchObject({ enabled: true, condition: { type: 'TLSReady', status: 'True', reason: 'CertificatesValid' } });
    expect(first.operatorClient?.cert).toContain('BEGIN CERTIFICATE');
    // Backdated by 3 minutes (a twentieth of 1h): renewal is due 2/3 of 63 minutes after that, at 00:39.
    expect(first.requeueAfterMs).toBe(39 * 60_000 + 500);

    const before = { writes: store.writes(), server: serial(store.secrets.get('main-server-tls')), ca: serial(store.secrets.get('main-ca')) };
    now = new Date('2026-03-01T00:38:59Z');
    await step.reconcile(t, false, target, log);
    expect(store.writes()).toBe(before.writes);

    now = new Date('2026-03-01T00:39:01Z');
    const renewed = await step.reconcile(t, false, target, log);
    expect(store.writes()).toBe(before.writes + 5);
    expect(serial(store.secrets.get('main-server-tls'))).not.toBe(before.server);
    expect(serial(store.secrets.get('main-ca'))).toBe(before.ca);
    expect(renewed.condition).toMatchObject({ status: 'True', reason: 'CertificatesValid' });
  });

  it('reissues a leaf whose Secret someone broke, and reports a broken CA Secret without replacing it', async () => {
    const clock: Clock = { now: () => new Date() };
    const store = secretStore();
    const step = new TlsCertificates({ writer: store.writer, events, clock });
    const t = topology();
    await step.reconcile(t, false, target, log);
    const proxy = store.secrets.get('main-proxy-tls')!;
    store.secrets.set('main-proxy-tls', { ...proxy, data: { ...proxy.data, 'tls.key': store.secrets.get('main-client-tls')!.data!['tls.key']! } });
    const r = await step.reconcile(t, false, target, log);
    expect(r.condition).toMatchObject({ status: 'True' });
    expect(serial(store.secrets.get('main-proxy-tls'))).not.toBe(serial(proxy));

    const ca = store.secrets.get('main-ca')!;
    store.secrets.set('main-ca', { ...ca, data: { ...ca.data, 'tls.key': '' } });
    const broken = await step.reconcile(t, false, target, log);
    expect(broken.condition).toMatchObject({ status: 'False', reason: 'SecretKeyMissing' });
    expect(broken.condition?.message).toContain('Secret main-ca has no tls.key');
    expect(store.secrets.get('main-ca')!.data!['tls.crt']).toBe(ca.data!['tls.crt']);
  });

  it('issues the proxy\'s serving certificate only with spec.proxy.tls, for the proxy Service and the node loopback', async () => {
    const store = secretStore();
    const step = new TlsCertificates({ writer: store.writer, events, clock: { now: () => new Date() } });
    await step.reconcile(topology({ proxy: { tls: { enabled: true } } }), false, target, log);
    const cert = new X509Certificate(Buffer.from(store.secrets.get('main-proxy-serving-tls')!.data!['tls.crt']!, 'base64'));
    expect(cert.subjectAltName).toBe('DNS:main-proxy, DNS:main-proxy.etcd, DNS:main-proxy.etcd.svc, DNS:main-proxy.etcd.svc.cluster.local, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    const plain = secretStore();
    await new TlsCertificates({ writer: plain.writer, events, clock: { now: () => new Date() } }).reconcile(topology(), false, target, log);
    expect(plain.secrets.has('main-proxy-serving-tls')).toBe(false);
  });

  it('waits, holding the members, while a deleted namesake\'s Secrets await garbage collection', async () => {
    const store = secretStore();
    const step = new TlsCertificates({ writer: store.writer, events, clock: { now: () => new Date() } });
    await step.reconcile(topology(), false, target, log);
    const before = store.writes();
    const recreated = { ...topology(), metadata: { ...topology().metadata, uid: 'uid-2' } };
    const r = await step.reconcile(recreated, false, target, log);
    expect(r).toMatchObject({ enabled: true, holdMembers: true, condition: { status: 'False', reason: 'SecretNotOwned' } });
    expect(r.condition?.message).toContain('Secret main-ca, main-server-tls, main-peer-tls, main-operator-tls, main-proxy-tls, main-client-tls exists but is not owned by this EtcdTopology');
    expect(store.writes()).toBe(before);
    store.secrets.clear();
    expect(await step.reconcile(recreated, false, target, log)).toMatchObject({ condition: { status: 'True' } });
  });

  it('leaves a topology whose members run in plaintext in plaintext, saying why', async () => {
    const store = secretStore();
    const step = new TlsCertificates({ writer: store.writer, events, clock: { now: () => new Date() } });
    const r = await step.reconcile(topology(), true, target, log);
    expect(r).toMatchObject({ enabled: false, condition: { status: 'False', reason: 'PlaintextCluster' } });
    expect(store.writes()).toBe(0);
    expect(withTlsEnabled(topology(), false).spec.tls.enabled).toBe(false);
    expect(await step.reconcile(topology({ tls: { enabled: false } }), false, target, log)).toEqual({ enabled: false });
  });

  it('checks user Secrets and issues nothing', async () => {
    const store = secretStore();
    const step = new TlsCertificates({ writer: store.writer, events, clock: { now: () => new Date() } });
    const r = await step.reconcile(topology({ tls: { secrets: { server: 's', peer: 'p', client: 'c' } } }), false, target, log);
    expect(r.condition).toMatchObject({ status: 'False', reason: 'SecretMissing', message: 'Secret s does not exist; Secret p does not exist; Secret c does not exist' });
    expect(store.writes()).toBe(0);
  });
});

describe('CA rotation through the TLS step', () => {
  /** An observer the test drives: what is still pending in each respect. */
  function fakeObserver() {
    const pending = { members: [] as string[], proxies: [] as string[], served: [] as string[] };
    const seen: { trustHash?: string; signingCa?: string } = {};
    const observer: TlsObserver = {
      membersNotOnBundle: (_t, trustHash) => {
        seen.trustHash = trustHash;
        return pending.members;
      },
      proxiesNotOnBundle: () => Promise.resolve(pending.proxies),
      notOnSigningCa: (_t, signingCa) => {
        seen.signingCa = signingCa;
        return Promise.resolve(pending.served);
      },
    };
    return { pending, seen, observer };
  }
  const text = (s: V1Secret | undefined, k: string): string => Buffer.from(s!.data![k]!, 'base64').toString();
  const cas = (s: V1Secret | undefined): string[] => (text(s, 'ca.crt').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((p) => new X509Certificate(p).fingerprint256);
  const fp = (pem: string): string => new X509Certificate(pem).fingerprint256;
  const leaves = ['main-server-tls', 'main-peer-tls', 'main-operator-tls', 'main-proxy-tls', 'main-client-tls'];

  it('walks Trusting, Reissuing, Retiring on demand: trust first, then the new CA signs, then the old CA leaves the bundle', async () => {
    const now = new Date('2026-03-01T00:00:00Z');
    const store = secretStore();
    const recorded: string[] = [];
    const ev = { record: (_t: unknown, _type: string, reason: string) => void recorded.push(reason) } as unknown as EventRecorder;
    const { pending, seen, observer } = fakeObserver();
    const step = new TlsCertificates({ writer: store.writer, events: ev, clock: { now: () => now }, observer });
    const plain = topology();
    const idle = await step.reconcile(plain, false, target, log);
    const oldCa = text(store.secrets.get('main-ca'), 'tls.crt');
    const oldSerials = leaves.map((l) => serial(store.secrets.get(l)));
    expect(idle).toMatchObject({ rotating: false, status: { caNotAfter: new Date(new X509Certificate(oldCa).validTo).toISOString() } });
    expect(idle.status?.caRotation).toBeUndefined();

    // Asked for: a second CA joins the bundle of every Secret; the leaves stay the old CA's.
    const asked = topology();
    asked.metadata.annotations = { 'etcdtopology.io/rotate-ca': 'r1' };
    pending.members = ['main-member-0'];
    const trusting = await step.reconcile(asked, false, target, log);
    const newCa = text(store.secrets.get('main-ca'), 'next.crt');
    expect(text(store.secrets.get('main-ca'), 'tls.crt')).toBe(oldCa);
    for (const l of ['main-ca', ...leaves]) expect(cas(store.secrets.get(l)), l).toEqual([fp(oldCa), fp(newCa)]);
    expect(leaves.map((l) => serial(store.secrets.get(l)))).toEqual(oldSerials);
    expect(trusting).toMatchObject({ rotating: true, status: { caRotation: { phase: 'Trusting', trigger: 'OnDemand' }, rotateCaAnswered: 'r1' } });
    expect(trusting.trustHash).not.toBe(idle.trustHash);
    expect(recorded).toContain('CARotationStarted');

    // A member not yet restarted onto the bundle holds the new CA back.
    const held = await step.reconcile(asked, false, target, log);
    expect(held.status?.caRotation?.phase).toBe('Trusting');
    expect(held.status?.caRotation?.message).toContain('member main-member-0');
    expect(seen.trustHash).toBe(trusting.trustHash);
    expect(leaves.map((l) => serial(store.secrets.get(l)))).toEqual(oldSerials);

    // Everyone trusts both: the new CA signs every leaf; both stay in the bundle.
    pending.members = [];
    pending.served = ['main-member-1 peer port'];
    const reissuing = await step.reconcile(asked, false, target, log);
    expect(reissuing.status?.caRotation?.phase).toBe('Reissuing');
    expect(text(store.secrets.get('main-ca'), 'tls.crt')).toBe(newCa);
    expect(store.secrets.get('main-ca')?.data?.['next.crt']).toBeUndefined();
    for (const l of leaves) {
      const leaf = new X509Certificate(text(store.secrets.get(l), 'tls.crt'));
      expect(leaf.checkIssued(new X509Certificate(newCa)) && leaf.verify(new X509Certificate(newCa).publicKey), l).toBe(true);
      expect(cas(store.secrets.get(l))).toEqual([fp(oldCa), fp(newCa)]);
    }
    expect(reissuing.trustHash).toBe(trusting.trustHash);
    const stillServed = await step.reconcile(asked, false, target, log);
    expect(stillServed.status?.caRotation?.phase).toBe('Reissuing');
    expect(stillServed.status?.caRotation?.message).toContain('main-member-1 peer port');
    expect(seen.signingCa).toBe(newCa);

    // Nothing uses the old CA: it leaves every bundle, and the members restart once more.
    pending.served = [];
    pending.proxies = ['main-proxy-abc'];
    const retiring = await step.reconcile(asked, false, target, log);
    expect(retiring.status?.caRotation?.phase).toBe('Retiring');
    for (const l of ['main-ca', ...leaves]) expect(cas(store.secrets.get(l)), l).toEqual([fp(newCa)]);
    expect(retiring.trustHash).not.toBe(trusting.trustHash);
    const proxyHeld = await step.reconcile(asked, false, target, log);
    expect(proxyHeld.status?.caRotation?.message).toContain('proxy main-proxy-abc');

    pending.proxies = [];
    const done = await step.reconcile(asked, false, target, log);
    expect(done).toMatchObject({ rotating: false, status: { rotateCaAnswered: 'r1', lastCaRotation: now.toISOString() } });
    expect(done.status?.caRotation).toBeUndefined();
    expect(recorded.filter((r) => r.startsWith('CARot'))).toEqual(['CARotationStarted', 'CARotationReissuing', 'CARotationRetiring', 'CARotated']);
    // The same annotation value again starts nothing.
    const writes = store.writes();
    expect((await step.reconcile(asked, false, target, log)).rotating).toBe(false);
    expect(store.writes()).toBe(writes);
  });

  it('rotates by age at 2/3 of the CA\'s lifetime, and not before', async () => {
    let now = new Date('2026-03-01T00:00:00Z');
    const store = secretStore();
    const { observer } = fakeObserver();
    const step = new TlsCertificates({ writer: store.writer, events, clock: { now: () => now }, observer });
    await step.reconcile(topology(), false, target, log);
    const ca = new X509Certificate(text(store.secrets.get('main-ca'), 'tls.crt'));
    const start = new Date(ca.validFrom).getTime();
    const due = start + ((new Date(ca.validTo).getTime() - start) * 2) / 3;
    now = new Date(due - 60_000);
    expect((await step.reconcile(topology(), false, target, log)).rotating).toBe(false);
    now = new Date(due + 60_000);
    const started = await step.reconcile(topology(), false, target, log);
    expect(started.status?.caRotation).toMatchObject({ phase: 'Trusting', trigger: 'CAAging' });
  });
});
