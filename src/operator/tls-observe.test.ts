import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createCa, issueLeaf } from '../pki/issuer.ts';
import { leafRequests } from '../pki/sans.ts';
import { tlsReport, type TlsReport } from '../proxy/tls-reload.ts';
import { bundleOf } from './ca-secret.ts';
import { topology } from './components/testing.ts';
import { listenerExpectation, unsignedSides, untrustedSides } from './tls-observe.ts';

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
