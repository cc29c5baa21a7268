import type { V1Secret } from '@kubernetes/client-node';
import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Clock } from '../api/conditions.ts';
import { createRootLogger } from '../telemetry/logger.ts';
import { topology } from './components/testing.ts';
import type { EventRecorder } from './events.ts';
import type { KubeWriter } from './kube.ts';
import { TlsCertificates, withTlsEnabled } from './tls-certificates.ts';

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
