import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCa, issueLeaf } from '../../src/pki/issuer.ts';
import { waitFor } from '../harness/ports.ts';
import type { Pod } from '../harness/cluster/types.ts';
import { componentPods, conditionOf, getTopology, isReady, startOperatorCluster, topologyManifest, type OperatorCluster } from '../operator/setup.ts';
import { AckedWriter } from '../quorum/upgrade-load.ts';
import { etcdctl, handshake, memberGateway, readTlsSecret, serialOf, type SecretPem } from './tls-client.ts';

// TLS on the local cluster: real etcd members serving mutual TLS with certificates the operator
// issued, proxies on the workers presenting theirs, Secret volumes updated in place as the kubelet
// does. One cluster serves every case, in order.

const NS = 'default';
const NAME = 'sec';
// Short enough to see two renewals within the test; long enough for a Secret volume to follow.
const LIFETIME = '90s';
const host = (member: string, name = NAME): string => `${member}.${name}-peer.${NS}.svc`;
const b64 = (s: string): string => Buffer.from(s).toString('base64');

describe('TLS by default, with certificates the operator issues and rotates', () => {
  let oc: OperatorCluster;
  let dir: string;
  let members: Pod[];
  let client: SecretPem;
  const hostsOf = (pods: Pod[], name = NAME): Record<string, string> => Object.fromEntries(pods.map((p) => [host(p.metadata.name, name), p.status!.podIP!]));

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'tls-test-'));
    oc = await startOperatorCluster();
    await oc.cluster.kubectl(['apply', '-f', '-'], topologyManifest(NAME, NS, { tls: { certificateLifetime: LIFETIME } }));
    await waitFor(
      'the TLS topology to become Available with TLSReady',
      async () => {
        const t = await getTopology(oc.cluster, NAME, NS);
        return conditionOf(t, 'Available')?.status === 'True' && conditionOf(t, 'TLSReady')?.status === 'True' && t.status?.proxies?.ready === 2;
      },
      { timeoutMs: 240_000, intervalMs: 1000 },
    );
    members = await componentPods(oc.cluster, NAME, NS, 'member');
    client = await readTlsSecret(oc.cluster, NS, `${NAME}-client-tls`);
  });
  afterAll(async () => {
    await oc?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('refuses a plaintext client and a TLS client without a certificate on every member', async () => {
    expect(members).toHaveLength(3);
    for (const p of members) {
      const ip = p.status!.podIP!;
      // Plaintext HTTP to the client port: etcd answers a TLS alert or closes, never a member list.
      const plain = await fetch(`http://${ip}:2379/v3/cluster/member/list`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(5000) }).then(
        async (r) => `HTTP ${r.status}: ${await r.text()}`,
        (err: Error & { cause?: { code?: string } }) => `error ${err.cause?.code ?? err.message}`,
      );
      expect(plain).not.toContain('"members"');
      const noCert = await memberGateway(ip, host(p.metadata.name), { ca: client.ca }, '/v3/cluster/member/list', {});
      expect(noCert.status).toBe(0);
      const withCert = await memberGateway<{ members: unknown[] }>(ip, host(p.metadata.name), client, '/v3/cluster/member/list', {});
      expect(withCert.status).toBe(200);
      expect(withCert.json?.members).toHaveLength(3);
      // A certificate of another CA is refused too.
      const stranger = await createCa('stranger', { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3_600_000) });
      const strangerLeaf = await issueLeaf(stranger, { commonName: 'x', dnsNames: [], ipAddresses: [], usages: ['client'] }, { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3_600_000) });
      expect((await memberGateway(ip, host(p.metadata.name), { ca: client.ca, ...strangerLeaf }, '/v3/cluster/member/list', {})).status).toBe(0);
    }
  });

  it('serves etcdctl with the <name>-client-tls Secret, and the peers talk https', async () => {
    const endpoints = members.map((p) => `https://${host(p.metadata.name)}:2379`).join(',');
    const out = await etcdctl(dir, hostsOf(members), client, [`--endpoints=${endpoints}`, 'member', 'list', '-w', 'json']);
    const list = JSON.parse(out) as { members: { name: string; peerURLs: string[]; clientURLs: string[] }[] };
    expect(list.members.map((m) => m.name).sort()).toEqual(members.map((p) => p.metadata.name).sort());
    for (const m of list.members) {
      expect(m.peerURLs).toEqual([`https://${host(m.name)}:2380`]);
      expect(m.clientURLs).toEqual([`https://${host(m.name)}:2379`]);
    }
    expect(await etcdctl(dir, hostsOf(members), client, [`--endpoints=${endpoints}`, 'put', '/tls/ctl', 'yes'])).toBe('OK\n');
    // The metrics listener stays plain HTTP for probes and Prometheus.
    const metrics = await fetch(`http://${members[0]!.status!.podIP}:2381/metrics`, { signal: AbortSignal.timeout(5000) });
    expect(metrics.status).toBe(200);
  });

  it('writes and reads through a proxy on each worker, which talks mutual TLS to the members', async () => {
    const proxies = (await componentPods(oc.cluster, NAME, NS, 'proxy')).filter(isReady);
    expect(proxies.map((p) => p.spec?.nodeName).sort()).toEqual(['worker-0', 'worker-1']);
    const [a, b] = proxies.map((p) => `http://${p.status!.podIP}:2379`);
    const put = await fetch(`${a}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: b64('/tls/proxy'), value: b64('through-proxy') }), signal: AbortSignal.timeout(5000) });
    expect(put.status).toBe(200);
    const got = (await (await fetch(`${b}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: b64('/tls/proxy') }), signal: AbortSignal.timeout(5000) })).json()) as { kvs: { value: string }[] };
    expect(Buffer.from(got.kvs[0]!.value, 'base64').toString()).toBe('through-proxy');
  });

  it('refuses at admission to turn TLS off, and to turn it on for a topology created without it', async () => {
    const off = await oc.cluster.kubectl(['patch', 'etop', NAME, '-n', NS, '--type=merge', '-p', '{"spec":{"tls":{"enabled":false}}}', '--dry-run=server']).then(
      () => 'accepted',
      (err: Error) => err.message,
    );
    expect(off).toContain('tls.enabled cannot be turned off');
    await oc.cluster.kubectl(['apply', '-f', '-'], topologyManifest('plain', NS, { members: { count: 1 }, proxy: { enabled: false }, tls: { enabled: false } }));
    const on = await oc.cluster.kubectl(['patch', 'etop', 'plain', '-n', NS, '--type=merge', '-p', '{"spec":{"tls":{"enabled":true}}}', '--dry-run=server']).then(
      () => 'accepted',
      (err: Error) => err.message,
    );
    expect(on).toContain('tls.enabled cannot be turned on for a topology created without TLS');
    await oc.cluster.kubectl(['delete', 'etop', 'plain', '-n', NS, '--wait=false']);
  });

  it(
    'renews every leaf at 2/3 of its lifetime under a write load through a proxy: no failed write, no member restarted, members serve the new certificates',
    async () => {
      const restartsOf = (pods: Pod[]): Record<string, string> =>
        Object.fromEntries(pods.map((p) => [p.metadata.name, `${p.metadata.uid}/${p.status?.containerStatuses?.[0]?.restartCount ?? 0}`]));
      const before = restartsOf(await componentPods(oc.cluster, NAME, NS, 'member'));
      const proxiesBefore = restartsOf(await componentPods(oc.cluster, NAME, NS, 'proxy'));
      const proxy = (await componentPods(oc.cluster, NAME, NS, 'proxy')).find(isReady)!;
      const writer = new AckedWriter(`http://${proxy.status!.podIP}:2379`);
      const serials = (s: SecretPem): string => serialOf(s.cert);
      const initial = await Promise.all(['server', 'peer', 'proxy', 'operator'].map(async (k) => serials(await readTlsSecret(oc.cluster, NS, `${NAME}-${k}-tls`))));
      const seen = { server: new Set<string>([initial[0]!]), peer: new Set<string>([initial[1]!]), proxy: new Set<string>([initial[2]!]) };
      const peerSecret = async (): Promise<SecretPem> => readTlsSecret(oc.cluster, NS, `${NAME}-peer-tls`);
      writer.start();
      try {
        // Two renewals of each leaf, and each time every member serves the new server and peer certificate
        // on a fresh handshake (with SNI, as every client here sends it).
        for (let round = 1; round <= 2; round++) {
          await waitFor(
            `renewal ${round} of the server, peer and proxy certificates`,
            async () => {
              const now = {
                server: serials(await readTlsSecret(oc.cluster, NS, `${NAME}-server-tls`)),
                peer: serials(await peerSecret()),
                proxy: serials(await readTlsSecret(oc.cluster, NS, `${NAME}-proxy-tls`)),
              };
              for (const k of ['server', 'peer', 'proxy'] as const) seen[k].add(now[k]);
              return Object.values(seen).every((s) => s.size >= round + 1) ? now : undefined;
            },
            { timeoutMs: 150_000, intervalMs: 1000 },
          );
          const current = { server: serials(await readTlsSecret(oc.cluster, NS, `${NAME}-server-tls`)), peer: await peerSecret() };
          for (const p of members) {
            const ip = p.status!.podIP!;
            await waitFor(
              `${p.metadata.name} to serve the renewed certificates`,
              async () => {
                const c = await handshake(ip, 2379, host(p.metadata.name), client);
                const peer = await handshake(ip, 2380, host(p.metadata.name), current.peer);
                return c.serial === current.server && peer.serial === serialOf(current.peer.cert) && c.authorized && peer.authorized;
              },
              { timeoutMs: 30_000, intervalMs: 500 },
            );
          }
        }
      } finally {
        await writer.stop();
      }
      expect(writer.failures).toBe(0);
      expect(writer.acked.size).toBeGreaterThan(100);
      expect(restartsOf(await componentPods(oc.cluster, NAME, NS, 'member'))).toEqual(before);
      expect(restartsOf(await componentPods(oc.cluster, NAME, NS, 'proxy'))).toEqual(proxiesBefore);
      // The original certificates have expired by now: new connections work only with the renewed ones.
      const t = await getTopology(oc.cluster, NAME, NS);
      expect(conditionOf(t, 'TLSReady')).toMatchObject({ status: 'True', reason: 'CertificatesValid' });
      const fresh = await readTlsSecret(oc.cluster, NS, `${NAME}-client-tls`);
      const endpoints = members.map((p) => `https://${host(p.metadata.name)}:2379`).join(',');
      expect(await etcdctl(dir, hostsOf(members), fresh, [`--endpoints=${endpoints}`, 'endpoint', 'health', '--cluster'])).toContain('is healthy');
      console.log(`leaf rotation under load: ${writer.acked.size} writes acknowledged, ${writer.failures} failed, longest gap ${writer.longestStallMs} ms; server serials seen ${seen.server.size}`);
    },
    420_000,
  );

  it('serves TLS on the proxy\'s own port with spec.proxy.tls, verifying clients, and serves its renewed certificate without a restart', async () => {
    await oc.cluster.kubectl(['patch', 'etop', NAME, '-n', NS, '--type=merge', '-p', '{"spec":{"proxy":{"tls":{"enabled":true,"requireClientCertificate":true}}}}']);
    const proxies = await waitFor(
      'the proxies to roll to a TLS listener',
      async () => {
        const l = await componentPods(oc.cluster, NAME, NS, 'proxy');
        const tlsReady = l.filter((p) => isReady(p) && !p.metadata.deletionTimestamp && p.spec?.containers[0]?.args?.includes('--listen-client-urls=https://$(POD_IP):2379'));
        return l.length === 2 && tlsReady.length === 2 ? tlsReady : undefined;
      },
      { timeoutMs: 180_000, intervalMs: 1000 },
    );
    const servername = `${NAME}-proxy.${NS}.svc`;
    const ip = proxies[0]!.status!.podIP!;
    const serving = await readTlsSecret(oc.cluster, NS, `${NAME}-proxy-serving-tls`);
    const plain = await fetch(`http://${ip}:2379/v3/kv/range`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(5000) }).then((r) => `HTTP ${r.status}`, () => 'refused');
    expect(plain).not.toBe('HTTP 200');
    const call = (material: Partial<SecretPem>) =>
      memberGateway<{ header: unknown }>(ip, servername, material, '/v3/kv/put', { key: b64('/tls/proxy-listener'), value: b64('v') });
    expect((await call({ ca: serving.ca })).status).toBe(0);
    const fresh = await readTlsSecret(oc.cluster, NS, `${NAME}-client-tls`);
    expect((await call({ ...fresh, ca: serving.ca })).status).toBe(200);
    // The serving certificate is renewed like every leaf; the proxy serves the new one on new handshakes.
    const first = serialOf(serving.cert);
    const renewed = await waitFor('the serving certificate to be renewed', async () => {
      const s = serialOf((await readTlsSecret(oc.cluster, NS, `${NAME}-proxy-serving-tls`)).cert);
      return s !== first ? s : undefined;
    }, { timeoutMs: 120_000, intervalMs: 1000 });
    await waitFor('the proxy to serve the renewed certificate', async () => (await handshake(ip, 2379, servername, fresh)).serial === renewed, { timeoutMs: 30_000, intervalMs: 500 });
    const after = await componentPods(oc.cluster, NAME, NS, 'proxy');
    expect(after.find((p) => p.metadata.uid === proxies[0]!.metadata.uid)?.status?.containerStatuses?.[0]?.restartCount).toBe(proxies[0]!.status?.containerStatuses?.[0]?.restartCount);
  }, 360_000);

  describe('user Secrets in cert-manager\'s shape', () => {
    const USER = 'own';
    const validity = { notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 24 * 3_600_000) };
    const names = [`*.${USER}-peer.${NS}.svc`, `*.${USER}-peer.${NS}.svc.cluster.local`];
    const secretJson = (name: string, pem: { cert: string; key: string }, ca: string): string =>
      JSON.stringify({ apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name, namespace: NS }, data: { 'tls.crt': b64(pem.cert), 'tls.key': b64(pem.key), 'ca.crt': b64(ca) } });

    it('makes the topology Available with them; a broken one gives TLSReady False naming the Secret and nothing restarts', async () => {
      const ca = await createCa('user-ca', validity);
      const server = await issueLeaf(ca, { commonName: 'srv', dnsNames: names, ipAddresses: [], usages: ['server', 'client'] }, validity);
      const peer = await issueLeaf(ca, { commonName: 'peer', dnsNames: names, ipAddresses: [], usages: ['server', 'client'] }, validity);
      const user = await issueLeaf(ca, { commonName: 'ops', dnsNames: [], ipAddresses: [], usages: ['client'] }, validity);
      for (const [n, pem] of [['u-server', server], ['u-peer', peer], ['u-client', user]] as const) await oc.cluster.kubectl(['apply', '-f', '-'], secretJson(n, pem, ca.cert));
      await oc.cluster.kubectl(['apply', '-f', '-'], topologyManifest(USER, NS, { members: { count: 1 }, proxy: { enabled: false }, tls: { secrets: { server: 'u-server', peer: 'u-peer', client: 'u-client' } } }));
      await waitFor(
        'the topology with user Secrets to become Available',
        async () => {
          const t = await getTopology(oc.cluster, USER, NS);
          return conditionOf(t, 'Available')?.status === 'True' && conditionOf(t, 'TLSReady')?.status === 'True';
        },
        { timeoutMs: 180_000, intervalMs: 1000 },
      );
      const [pod] = await componentPods(oc.cluster, USER, NS, 'member');
      const res = await memberGateway<{ members: unknown[] }>(pod!.status!.podIP!, host(pod!.metadata.name, USER), { ...user, ca: ca.cert }, '/v3/cluster/member/list', {});
      expect(res.status).toBe(200);
      // The operator issued nothing for it: no built-in CA Secret.
      expect(await oc.cluster.kubectl(['get', 'secret', `${USER}-ca`, '-n', NS]).then(() => 'found', () => 'absent')).toBe('absent');

      // A client certificate whose key is another's, then one the members' CA did not sign.
      const other = await issueLeaf(ca, { commonName: 'ops', dnsNames: [], ipAddresses: [], usages: ['client'] }, validity);
      await oc.cluster.kubectl(['apply', '-f', '-'], secretJson('u-client', { cert: user.cert, key: other.key }, ca.cert));
      const mismatch = await waitFor('TLSReady False for the key mismatch', async () => {
        const c = conditionOf(await getTopology(oc.cluster, USER, NS), 'TLSReady');
        return c?.status === 'False' ? c : undefined;
      });
      expect(mismatch).toMatchObject({ reason: 'KeyMismatch', message: 'Secret u-client: tls.key is not the private key of the certificate in tls.crt' });
      const stranger = await createCa('stranger', validity);
      await oc.cluster.kubectl(['apply', '-f', '-'], secretJson('u-client', await issueLeaf(stranger, { commonName: 'x', dnsNames: [], ipAddresses: [], usages: ['client'] }, validity), stranger.cert));
      const unsigned = await waitFor('TLSReady False for the foreign CA', async () => {
        const c = conditionOf(await getTopology(oc.cluster, USER, NS), 'TLSReady');
        return c?.reason === 'NotSignedByCA' ? c : undefined;
      });
      expect(unsigned.message).toContain('Secret u-client: the certificate (issuer "CN=stranger") is not signed by the CA that the members trust');
      // A server certificate that does not cover the member names.
      const narrow = await issueLeaf(ca, { commonName: 'srv', dnsNames: ['elsewhere.example'], ipAddresses: [], usages: ['server', 'client'] }, validity);
      await oc.cluster.kubectl(['apply', '-f', '-'], secretJson('u-server', narrow, ca.cert));
      const uncovered = await waitFor('TLSReady False for the names', async () => {
        const c = conditionOf(await getTopology(oc.cluster, USER, NS), 'TLSReady');
        return c?.reason === 'NamesNotCovered' ? c : undefined;
      });
      expect(uncovered.message).toContain(`Secret u-server: the certificate's names do not cover ${USER}-member-0.${USER}-peer.${NS}.svc`);
      const [after] = await componentPods(oc.cluster, USER, NS, 'member');
      expect(`${after!.metadata.uid}/${after!.status?.containerStatuses?.[0]?.restartCount}`).toBe(`${pod!.metadata.uid}/${pod!.status?.containerStatuses?.[0]?.restartCount}`);
      // No key material in the operator's log or in Events.
      const events = await oc.cluster.kubectl(['get', 'events', '-n', NS, '-o', 'json']);
      const log = await readFile(path.join(oc.cluster.dir, 'operator.log'), 'utf8');
      for (const pem of [user.key, other.key, server.key]) {
        const body = pem.split('\n')[1]!;
        expect(events).not.toContain(body);
        expect(log).not.toContain(body);
      }
      expect(log).not.toContain('PRIVATE KEY');
    });
  });
});
