import type { V1Pod } from '@kubernetes/client-node';
import { X509Certificate } from 'node:crypto';
import http from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import { createCa, issueLeaf } from '../pki/issuer.ts';
import { leafRequests } from '../pki/sans.ts';
import { tlsReport, type TlsReport } from '../proxy/tls-reload.ts';
import { bundleOf } from './ca-secret.ts';
import { selectorLabels } from './components/meta.ts';
import { PROXY_METRICS_PORT } from './components/names.ts';
import { topology } from './components/testing.ts';
import type { Informers } from './informers.ts';
import { listenerExpectation, LiveTlsObserver, unsignedSides, untrustedSides } from './tls-observe.ts';

const now = Date.now();
const validity = { notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000) };
const pem = (s: string): Buffer => Buffer.from(s, 'utf8');

describe('what a CA rotation checks of a proxy listener', () => {
  it('checks the served certificate only when the built-in CA issues it, and the client CAs only when clients are verified', () => {
    expect(listenerExpectation(topology({}))).toEqual({ served: false, verifiesClients: false });
    expect(listenerExpectation(topology({ proxy: { tls: { enabled: true } } }))).toEqual({ served: true, verifiesClients: false });
    expect(listenerExpectation(topology({ proxy: { tls: { enabled: true, requireClientCertificate: true } } }))).toEqual({ served: true, verifiesClients: true });
    // A Secret of the user's: the built-in CA neither issues what is served nor decides whom it trusts.
    expect(listenerExpectation(topology({ proxy: { tls: { enabled: true, secret: 'mine', requireClientCertificate: true } } }))).toEqual({ served: false, verifiesClients: false });
  });
});

describe('a proxy report read during a CA rotation', async () => {
  const t = topology({ proxy: { tls: { enabled: true, requireClientCertificate: true } } });
  const oldCa = await createCa('main-ca', validity);
  const newCa = await createCa('main-ca-2', validity);
  const request = (secret: 'proxy' | 'proxyServing') => leafRequests(t).find((l) => l.secret === secret)!.request;
  const clientOld = await issueLeaf(oldCa, request('proxy'), validity);
  const clientNew = await issueLeaf(newCa, request('proxy'), validity);
  const servingOld = await issueLeaf(oldCa, request('proxyServing'), validity);
  const servingNew = await issueLeaf(newCa, request('proxyServing'), validity);
  const both = bundleOf(oldCa.cert, newCa.cert);
  const report = (upstream: { ca: string; cert: string }, listener?: { ca?: string; cert: string }): TlsReport =>
    tlsReport({ ca: pem(upstream.ca), cert: pem(upstream.cert) }, listener && { ...(listener.ca ? { ca: pem(listener.ca) } : {}), cert: pem(listener.cert) });
  const expectation = listenerExpectation(t);

  it('trusts the bundle only when both sides hold exactly it, in any order', () => {
    expect(untrustedSides(report({ ca: both, cert: clientOld.cert }, { ca: bundleOf(newCa.cert, oldCa.cert), cert: servingOld.cert }), both, expectation)).toEqual([]);
    expect(untrustedSides(report({ ca: both, cert: clientOld.cert }, { ca: oldCa.cert, cert: servingOld.cert }), both, expectation)).toEqual(['on its client port']);
    expect(untrustedSides(report({ ca: oldCa.cert, cert: clientOld.cert }, { ca: both, cert: servingOld.cert }), both, expectation)).toEqual(['towards the members']);
    // A listener that reports nothing while it should verify clients is not taken as trusting anything.
    expect(untrustedSides(report({ ca: both, cert: clientOld.cert }), both, expectation)).toEqual(['on its client port']);
    // Without requireClientCertificate the listener trusts no CA, and that is not waited for.
    expect(untrustedSides(report({ ca: both, cert: clientOld.cert }, { cert: servingOld.cert }), both, listenerExpectation(topology({ proxy: { tls: { enabled: true } } })))).toEqual([]);
  });

  it('names each side that still presents or serves a certificate of the old CA', () => {
    const signing = new X509Certificate(newCa.cert);
    expect(unsignedSides(report({ ca: both, cert: clientNew.cert }, { ca: both, cert: servingNew.cert }), signing, expectation)).toEqual([]);
    expect(unsignedSides(report({ ca: both, cert: clientNew.cert }, { ca: both, cert: servingOld.cert }), signing, expectation)).toEqual(['on its client port']);
    expect(unsignedSides(report({ ca: both, cert: clientOld.cert }, { ca: both, cert: servingOld.cert }), signing, expectation)).toEqual(['towards the members', 'on its client port']);
    expect(unsignedSides(report({ ca: both, cert: clientNew.cert }), signing, expectation)).toEqual(['on its client port']);
    // A topology whose proxies serve plaintext: only the client certificate counts.
    expect(unsignedSides(report({ ca: both, cert: clientNew.cert }), signing, listenerExpectation(topology({})))).toEqual([]);
  });
});

describe('the live observer during a CA rotation', async () => {
  const t = topology({ proxy: { tls: { enabled: true } } });
  const oldCa = await createCa('main-ca', validity);
  const newCa = await createCa('main-ca-2', validity);
  const client = await issueLeaf(oldCa, leafRequests(t).find((l) => l.secret === 'proxy')!.request, validity);
  const serving = await issueLeaf(oldCa, leafRequests(t).find((l) => l.secret === 'proxyServing')!.request, validity);
  // A proxy's telemetry server on a loopback address of its own, reporting trust in the old CA only.
  const ip = '127.91.0.1';
  const server = http.createServer((_req, res) => res.end(JSON.stringify(tlsReport({ ca: pem(oldCa.cert), cert: pem(client.cert) }, { ca: pem(oldCa.cert), cert: pem(serving.cert) }))));
  await new Promise<void>((r) => server.listen(PROXY_METRICS_PORT, ip, r));
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  const proxyPod = { metadata: { name: 'main-proxy-abcde', labels: selectorLabels(t, 'proxy') }, status: { phase: 'Running', podIP: ip } } as V1Pod;
  // The pod informer holds members and backups only, never proxies: the observer must list them.
  const informers = { list: () => [] } as unknown as Informers;
  const asked: string[] = [];
  const observer = new LiveTlsObserver(informers, (namespace, labels) => {
    asked.push(`${namespace} ${JSON.stringify(labels)}`);
    return Promise.resolve([proxyPod]);
  });

  it('lists the proxies from the API server and names one that does not trust the bundle yet', async () => {
    expect(await observer.proxiesNotOnBundle(t, bundleOf(oldCa.cert, newCa.cert))).toEqual(['main-proxy-abcde (towards the members)']);
    expect(asked).toEqual([`${t.metadata.namespace} ${JSON.stringify(selectorLabels(t, 'proxy'))}`]);
  });

  it('names a proxy that still presents and serves certificates of the old CA', async () => {
    expect(await observer.notOnSigningCa(t, newCa.cert, { client, peer: client })).toEqual(['proxy main-proxy-abcde (towards the members and on its client port)']);
  });
});
