import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certificateFields } from '../../src/pki/certificate-fields.ts';
import { TLS_REPORT_PATH, type TlsReport } from '../../src/proxy/tls-reload.ts';
import { waitFor } from '../harness/ports.ts';
import type { Pod } from '../harness/cluster/types.ts';
import { componentPods, conditionOf, getTopology, isReady, startOperatorCluster, topologyManifest, type OperatorCluster } from '../operator/setup.ts';
import { AckedWriter, QuorumSampler } from '../quorum/upgrade-load.ts';
import { memberGateway, readTlsSecret, type SecretPem } from './tls-client.ts';

// CA rotation on the local cluster: real etcd members, real proxies on the workers, Secret volumes
// swapped in place as the kubelet does. The rotation is asked for with the annotation and runs under a
// continuous write load through a proxy that serves TLS on its client port and verifies its clients
// (spec.proxy.tls): the writer is a node-local client with <name>-client-tls, read again as it changes.

const NS = 'default';
const NAME = 'car';
const PROXY_METRICS_PORT = 9091;
const host = (member: string): string => `${member}.${NAME}-peer.${NS}.svc`;
/** The name a client on a node verifies the proxy's certificate against (its node-local Service). */
const PROXY_HOST = `${NAME}-proxy.${NS}.svc`;

interface RotationStatus {
  status?: { tls?: { caRotation?: { phase: string; message?: string }; lastCaRotation?: string; rotateCaAnswered?: string; caNotAfter?: string } };
}

/** The certificate a server on ip:port serves for servername, presenting the given client certificate. */
function served(ip: string, port: number, servername: string, material: SecretPem): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: ip, port, servername, cert: material.cert, key: material.key, rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    socket.setTimeout(5000, () => {
      socket.destroy();
      reject(new Error(`timed out on ${ip}:${port}`));
    });
    socket.once('secureConnect', () => {
      const cert = socket.getPeerX509Certificate();
      socket.destroy();
      if (cert) resolve(cert);
      else reject(new Error(`no certificate from ${ip}:${port}`));
    });
    socket.once('error', reject);
  });
}

const signedBy = (cert: X509Certificate, ca: X509Certificate): boolean => cert.checkIssued(ca) && cert.verify(ca.publicKey);
/** A certificate's authority key identifier (hex), which must be its CA's subject key identifier. */
const authorityKeyId = (cert: X509Certificate): string | undefined => certificateFields(cert.raw).authorityKeyId?.toString('hex');
const subjectKeyId = (cert: X509Certificate): string | undefined => certificateFields(cert.raw).subjectKeyId?.toString('hex');

/** A JSON gateway call to a member with a client certificate, verifying the member against ca: 'ok' or 'refused'. */
async function memberListWith(member: Pod, material: SecretPem, ca: string): Promise<'ok' | 'refused'> {
  const res = await memberGateway(member.status!.podIP!, host(member.metadata.name), { cert: material.cert, key: material.key, ca }, '/v3/cluster/member/list', {});
  return res.status === 200 ? 'ok' : 'refused';
}

/** A JSON gateway read through a proxy's TLS client port with a client certificate, verifying the proxy against ca: 'ok' or 'refused'. */
async function proxyReadWith(proxy: Pod, material: SecretPem, ca: string): Promise<'ok' | 'refused'> {
  const res = await memberGateway(proxy.status!.podIP!, PROXY_HOST, { cert: material.cert, key: material.key, ca }, '/v3/kv/range', { key: Buffer.from('car/').toString('base64') });
  return res.status === 200 ? 'ok' : 'refused';
}

describe('CA rotation by overlapping trust', () => {
  let oc: OperatorCluster;

  beforeAll(async () => {
    oc = await startOperatorCluster();
    await oc.cluster.kubectl(['apply', '-f', '-'], topologyManifest(NAME, NS, { proxy: { tls: { enabled: true, requireClientCertificate: true } } }));
    await waitFor(
      'the TLS topology to become Available with TLSReady and both proxies',
      async () => {
        const t = await getTopology(oc.cluster, NAME, NS);
        return conditionOf(t, 'Available')?.status === 'True' && conditionOf(t, 'TLSReady')?.status === 'True' && t.status?.proxies?.ready === 2;
      },
      { timeoutMs: 240_000, intervalMs: 1000 },
    );
  });
  afterAll(async () => {
    await oc?.stop();
  });

  it(
    'rotates the CA on demand under a write load through a proxy: no failed write, quorum at every sample, nothing served or presented by the old CA afterwards',
    async () => {
      const oldCa = new X509Certificate((await readTlsSecret(oc.cluster, NS, `${NAME}-ca`)).cert);
      const client = await readTlsSecret(oc.cluster, NS, `${NAME}-client-tls`);
      const proxy = (await componentPods(oc.cluster, NAME, NS, 'proxy')).find(isReady)!;
      // The client Secret's certificate and bundle change during the rotation, and member pods are
      // replaced: both are read again in the background, so that each sample costs only etcd calls.
      const endpoints = new EndpointsWatch(oc);
      await endpoints.start();
      const proxyUrl = `https://${proxy.status!.podIP}:2379`;
      const writer = new AckedWriter(() => Promise.resolve([{ url: proxyUrl, tls: { ...endpoints.client, servername: PROXY_HOST } }]), 'car/', { reresolveMs: 1000 });
      const sampler = new QuorumSampler(() => Promise.resolve(endpoints.current), () => endpoints.readNow());
      const phases: string[] = [];
      const timeline: string[] = [];
      // What the proxy's client port serves and its report say, against what the writer trusts, every
      // 250 ms: printed around a failed write, to tell which side of the handshake was behind.
      const probes = new ServedProbe(proxy.status!.podIP!, endpoints);
      writer.start();
      sampler.start(2);
      probes.start();
      try {
        await oc.cluster.kubectl(['annotate', 'etop', NAME, '-n', NS, 'etcdtopology.io/rotate-ca=first']);
        await waitFor(
          'the CA rotation to finish',
          async () => {
            const t = JSON.parse(await oc.cluster.kubectl(['get', 'etop', NAME, '-n', NS, '-o', 'json'])) as RotationStatus;
            const phase = t.status?.tls?.caRotation?.phase;
            if (phase !== undefined && phases.at(-1) !== phase) {
              phases.push(phase);
              timeline.push(`${new Date().toISOString()} ${phase}`);
            }
            return t.status?.tls?.rotateCaAnswered === 'first' && phase === undefined && t.status.tls.lastCaRotation !== undefined;
          },
          { timeoutMs: 900_000, intervalMs: 500 },
        );
      } finally {
        await writer.stop();
        await sampler.stop();
        await probes.stop();
        await endpoints.stop();
      }
      const missing = await writer.missing();
      await writer.close();
      console.log(
        `CA rotation under load: phases ${phases.join(' → ')}; ${writer.acked.size} writes acknowledged, ${writer.failures} failed, longest gap ${writer.longestStallMs} ms; ` +
          `${sampler.samples} quorum samples (${sampler.straddled} asked again across a leader change, ${sampler.reread} at freshly read endpoints), fewest healthy voters ${sampler.minHealthy}`,
      );
      expect(phases).toEqual(['Trusting', 'Reissuing', 'Retiring']);
      // Each failed write with when it was sent, how long it took, why, and the phases around it.
      const failed = writer.failed.map((f) => `${new Date(f.sent).toISOString()} (+${f.failed - f.sent} ms): ${f.error}`);
      if (failed.length > 0) {
        const around = writer.failed.flatMap((f) => probes.around(f.sent));
        console.log(`failed writes:\n${failed.slice(0, 20).join('\n')}\nphases:\n${timeline.join('\n')}\nprobes around them:\n${[...new Set(around)].join('\n')}`);
      }
      // What a client that follows the client Secret meets: the proxy serves, at every moment, a
      // certificate of a CA that the Secret's bundle holds (the rotation waits for the proxies).
      expect(probes.untrusted).toEqual([]);
      expect(failed).toEqual([]);
      expect(writer.failures).toBe(0);
      expect(writer.acked.size).toBeGreaterThan(100);
      expect(missing).toEqual([]);
      expect(sampler.lowSamples).toEqual([]);
      expect(sampler.samples).toBeGreaterThan(60);
      expect(sampler.minHealthy).toBeGreaterThanOrEqual(2);

      // The CA Secret holds only the new CA, and every Secret's bundle is that CA alone.
      const caSecret = await readTlsSecret(oc.cluster, NS, `${NAME}-ca`);
      const newCa = new X509Certificate(caSecret.cert);
      expect(newCa.fingerprint256).not.toBe(oldCa.fingerprint256);
      for (const s of ['ca', 'server-tls', 'peer-tls', 'operator-tls', 'proxy-tls', 'client-tls']) {
        const pem = await readTlsSecret(oc.cluster, NS, `${NAME}-${s}`);
        expect(new X509Certificate(pem.ca).fingerprint256, `${s} ca.crt`).toBe(newCa.fingerprint256);
        expect(pem.ca.match(/BEGIN CERTIFICATE/g), `${s} ca.crt holds one CA`).toHaveLength(1);
      }

      // Every member serves certificates of the new CA on its client and peer ports; none of the old.
      const fresh = await readTlsSecret(oc.cluster, NS, `${NAME}-client-tls`);
      const peer = await readTlsSecret(oc.cluster, NS, `${NAME}-peer-tls`);
      const members: Pod[] = (await componentPods(oc.cluster, NAME, NS, 'member')).filter((p) => !p.metadata.deletionTimestamp);
      expect(members).toHaveLength(3);
      const newSki = subjectKeyId(newCa);
      for (const p of members) {
        for (const [port, material] of [[2379, fresh], [2380, peer]] as const) {
          const cert = await served(p.status!.podIP!, port, host(p.metadata.name), material);
          expect(signedBy(cert, newCa), `${p.metadata.name}:${port} signed by the new CA`).toBe(true);
          expect(signedBy(cert, oldCa), `${p.metadata.name}:${port} not signed by the old CA`).toBe(false);
          expect(cert.issuer).toBe(newCa.subject);
          expect(authorityKeyId(cert)).toBe(newSki);
        }
      }
      // A client certificate of the old CA is refused now on every member: they no longer trust it.
      for (const p of members) {
        expect(await memberListWith(p, client, fresh.ca), `${p.metadata.name} refuses the old CA's client certificate`).toBe('refused');
        expect(await memberListWith(p, fresh, fresh.ca), `${p.metadata.name} serves the new client certificate`).toBe('ok');
      }

      // Every proxy presents a certificate of the new CA and trusts only the new CA towards the members;
      // on its client port it serves a certificate of the new CA, and accepts clients of the new CA only.
      const proxies = (await componentPods(oc.cluster, NAME, NS, 'proxy')).filter((x) => !x.metadata.deletionTimestamp);
      expect(proxies).toHaveLength(2);
      for (const p of proxies) {
        const report = (await (await fetch(`http://${p.status!.podIP}:${PROXY_METRICS_PORT}${TLS_REPORT_PATH}`, { signal: AbortSignal.timeout(5000) })).json()) as TlsReport;
        const presented = new X509Certificate(report.certificate!);
        expect(signedBy(presented, newCa), `proxy ${p.metadata.name} presents a certificate of the new CA`).toBe(true);
        expect(authorityKeyId(presented)).toBe(newSki);
        expect(report.trusted.map((pem) => new X509Certificate(pem).fingerprint256)).toEqual([newCa.fingerprint256]);
        expect(report.listener?.trusted.map((pem) => new X509Certificate(pem).fingerprint256), `proxy ${p.metadata.name} client port trusts only the new CA`).toEqual([newCa.fingerprint256]);
        const servedByProxy = await served(p.status!.podIP!, 2379, PROXY_HOST, fresh);
        expect(signedBy(servedByProxy, newCa), `proxy ${p.metadata.name} client port serves a certificate of the new CA`).toBe(true);
        expect(signedBy(servedByProxy, oldCa), `proxy ${p.metadata.name} client port does not serve the old CA's`).toBe(false);
        expect(authorityKeyId(servedByProxy)).toBe(newSki);
        expect(servedByProxy.fingerprint256).toBe(new X509Certificate(report.listener!.certificate!).fingerprint256);
        expect(await proxyReadWith(p, client, fresh.ca), `proxy ${p.metadata.name} refuses the old CA's client certificate`).toBe('refused');
        expect(await proxyReadWith(p, fresh, fresh.ca), `proxy ${p.metadata.name} serves the new client certificate`).toBe('ok');
      }
      const t = await getTopology(oc.cluster, NAME, NS);
      expect(conditionOf(t, 'Available')?.status).toBe('True');
      expect(conditionOf(t, 'TLSReady')?.status).toBe('True');
    },
    1_200_000,
  );
});

/** Short names for certificates in probe lines: the key identifier's first 8 hex digits. */
const kid = (pem: string): string => {
  try {
    const c = new X509Certificate(pem);
    return (c.ca ? subjectKeyId(c) : authorityKeyId(c))?.slice(0, 8) ?? '?';
  } catch {
    return 'unreadable';
  }
};
const kids = (bundle: string): string => (bundle.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []).map(kid).join('+');

/** Samples what a proxy's client port serves (leaf issuer key id) and reports, beside what the writer trusts. */
class ServedProbe {
  private readonly lines: { at: number; line: string }[] = [];
  /** Probes at which the proxy served a certificate that the client Secret's bundle, as read then, did not trust. */
  readonly untrusted: string[] = [];
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly ip: string;
  private readonly endpoints: EndpointsWatch;

  constructor(ip: string, endpoints: EndpointsWatch) {
    this.ip = ip;
    this.endpoints = endpoints;
  }

  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        const at = Date.now();
        const client = this.endpoints.client;
        const got = await served(this.ip, 2379, PROXY_HOST, client).catch((e: Error) => e);
        const issuer = got instanceof Error ? undefined : authorityKeyId(got)?.slice(0, 8);
        const cert = got instanceof Error ? `error ${got.message}` : `issuer ${issuer}`;
        const trusted = kids(client.ca).split('+');
        if (issuer !== undefined && !trusted.includes(issuer)) this.untrusted.push(`${new Date(at).toISOString().slice(11, 23)} served a leaf of ${issuer}, the client Secret trusts ${trusted.join('+')}`);
        const report = await fetch(`http://${this.ip}:${PROXY_METRICS_PORT}${TLS_REPORT_PATH}`, { signal: AbortSignal.timeout(2000) })
          .then(async (r) => (await r.json()) as TlsReport)
          .then((r) => `report listener leaf ${r.listener?.certificate ? kid(r.listener.certificate) : '-'} trusts ${(r.listener?.trusted ?? []).map(kid).join('+')}`, (e: Error) => `report error ${e.message}`);
        this.lines.push({ at, line: `${new Date(at).toISOString().slice(11, 23)} served leaf ${cert}; ${report}; writer trusts ${kids(client.ca)} presents ${kid(client.cert)}` });
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  /** The probe lines within 2 s of at. */
  around(at: number): string[] {
    return this.lines.filter((l) => Math.abs(l.at - at) <= 2000).map((l) => l.line);
  }
}

/** The client Secret and the members' endpoints with it, read again every second in the background. */
class EndpointsWatch {
  current: { name: string; url: string; tls: SecretPem & { servername: string } }[] = [];
  /** <name>-client-tls as last read. */
  client: SecretPem = { cert: '', key: '', ca: '' };
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly oc: OperatorCluster;

  constructor(oc: OperatorCluster) {
    this.oc = oc;
  }

  private async read(): Promise<void> {
    const pem = await readTlsSecret(this.oc.cluster, NS, `${NAME}-client-tls`);
    this.client = pem;
    this.current = (await componentPods(this.oc.cluster, NAME, NS, 'member'))
      .filter((p) => p.status?.podIP && !p.metadata.deletionTimestamp)
      .map((p) => ({ name: p.metadata.name, url: `https://${p.status!.podIP}:2379`, tls: { ...pem, servername: host(p.metadata.name) } }));
  }

  /** Reads the endpoints now (for a sample that found one missing or stale) and returns them. */
  async readNow(): Promise<{ name: string; url: string; tls: SecretPem & { servername: string } }[]> {
    await this.read();
    return this.current;
  }

  async start(): Promise<void> {
    await this.read();
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        // An API server slow to answer keeps the last endpoints; the sampler then still asks etcd.
        await this.read().catch(() => undefined);
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}
