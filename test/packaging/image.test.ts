import { chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { binaries } from '../harness/binaries.ts';
import { LocalCluster } from '../harness/cluster/local-cluster.ts';
import { freePort, StopWaiting, waitFor } from '../harness/ports.ts';
import { run } from '../harness/run.ts';
import { componentPods, conditionOf, getTopology, topologyManifest } from '../operator/setup.ts';
import { buildImage, Container, HARDENED } from './image.ts';

// The image, built by hack/build-image.sh from the Dockerfile (.ci/run builds it before npm test, so
// here it is a cached rebuild of this checkout), runs the operator and the proxy against the local
// cluster. Skipped only where no Docker engine can be installed or started.
const repo = path.resolve(import.meta.dirname, '..', '..');
const NS = 'default';
const NAME = 'image';
const UID = 65532;

const build = await buildImage();
if (!build.ok) console.warn(`image tests skipped: no Docker engine here: ${build.reason}`);

/**
 * The admin kubeconfig with its CA, certificate and key inlined (the original names files the container
 * cannot see), readable by the container's user only.
 */
async function containerKubeconfig(cluster: LocalCluster): Promise<string> {
  const config = parse(await readFile(cluster.kubeconfig, 'utf8')) as {
    clusters: { cluster: Record<string, string> }[];
    users: { user: Record<string, string> }[];
  };
  const inline = async (o: Record<string, string>, field: string): Promise<void> => {
    o[`${field}-data`] = (await readFile(o[field]!)).toString('base64');
    delete o[field];
  };
  for (const { cluster: c } of config.clusters) await inline(c, 'certificate-authority');
  for (const { user } of config.users) {
    await inline(user, 'client-certificate');
    await inline(user, 'client-key');
  }
  const file = path.join(cluster.dir, 'image.kubeconfig');
  await writeFile(file, stringify(config), { mode: 0o400 });
  await chown(file, UID, UID);
  return file;
}

/** A Secret's keys written as files into dir, readable by the container's user only; returns dir. */
async function secretFiles(cluster: LocalCluster, secret: string, dir: string): Promise<string> {
  const data = (JSON.parse(await cluster.kubectl(['get', 'secret', secret, '-n', NS, '-o', 'json'])) as { data: Record<string, string> }).data;
  await mkdir(dir, { mode: 0o500 });
  for (const [key, value] of Object.entries(data)) {
    await writeFile(path.join(dir, key), Buffer.from(value, 'base64'), { mode: 0o400 });
    await chown(path.join(dir, key), UID, UID);
  }
  await chown(dir, UID, UID);
  return dir;
}

/** Waits for a container's HTTP endpoint to answer 200, failing at once if the container ended. */
async function waitHttp(container: Container, url: string, timeoutMs = 30_000): Promise<void> {
  try {
    await waitFor(`${container.name} ${url}`, async () => {
      if (container.exitCode !== undefined) throw new StopWaiting(new Error(`exited ${container.exitCode}`));
      return (await fetch(url).catch(() => undefined))?.status === 200;
    }, { timeoutMs });
  } catch (err) {
    throw new Error(`${container.name}: ${(err as Error).message}; its log:\n${await container.log()}`, { cause: err });
  }
}

describe.skipIf(!build.ok)('the image on the local cluster', () => {
  const image = build.ok ? build.image : '';
  let cluster: LocalCluster;
  let operator: Container;
  let proxy: Container | undefined;
  let operatorMetrics: string;

  beforeAll(async () => {
    cluster = await LocalCluster.start();
    await cluster.kubectl(['apply', '--server-side', '-f', path.join(repo, 'crds')]);
    // Polled rather than `kubectl wait`, which fails outright while the new CRD has no status.conditions yet.
    await waitFor('the EtcdTopology CRD Established', async () => {
      const crd = JSON.parse(await cluster.kubectl(['get', 'crd', 'etcdtopologies.etcdtopology.io', '-o', 'json'])) as { status?: { conditions?: { type: string; status: string }[] } };
      return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ?? false;
    });
    const kubeconfig = await containerKubeconfig(cluster);
    const [metrics, health] = [await freePort(), await freePort()];
    operatorMetrics = `http://127.0.0.1:${metrics}/metrics`;
    operator = Container.start(
      `etcd-topology-operator-${process.pid}`,
      image,
      [...HARDENED, '--volume', `${kubeconfig}:/etc/etcd-topology/kubeconfig:ro`, '--env', 'POD_NAME=image-test-operator', '--env', `POD_NAMESPACE=${NS}`],
      ['operator', '--kubeconfig=/etc/etcd-topology/kubeconfig', `--metrics-addr=127.0.0.1:${metrics}`, `--health-addr=127.0.0.1:${health}`, '--resync-period=3s'],
      path.join(cluster.dir, 'operator-container.log'),
    );
    await waitHttp(operator, `http://127.0.0.1:${health}/readyz`, 60_000);
  });
  afterAll(async () => {
    await proxy?.stop();
    await operator?.stop();
    await cluster?.stop();
  });

  it("carries package.json's version as its label, the chart's appVersion", async () => {
    const labels = JSON.parse(await run('docker', ['image', 'inspect', '--format', '{{json .Config.Labels}}', image])) as Record<string, string>;
    const pkg = JSON.parse(await readFile(path.join(repo, 'package.json'), 'utf8')) as { version: string };
    const chart = parse(await readFile(path.join(repo, 'deploy', 'etcd-topology', 'Chart.yaml'), 'utf8')) as { appVersion: string };
    expect(image).toBe(`etcd-topology:${pkg.version}`);
    expect(labels['org.opencontainers.image.version']).toBe(pkg.version);
    expect(chart.appVersion).toBe(pkg.version);
    expect(await run('docker', ['run', '--rm', ...HARDENED, image, '--version'])).toBe(`etcd-topology ${pkg.version}\n`);
  });

  it('runs the operator as 65532 with a read-only root, no capabilities and no new privileges', async () => {
    const inspect = await operator.inspect();
    expect(inspect.HostConfig).toMatchObject({ NetworkMode: 'host', ReadonlyRootfs: true, CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'] });
    const { status, rootMountOptions } = await operator.process();
    expect(status['Uid']!.split(/\s+/)).toEqual([`${UID}`, `${UID}`, `${UID}`, `${UID}`]);
    expect(status['Gid']!.split(/\s+/)).toEqual([`${UID}`, `${UID}`, `${UID}`, `${UID}`]);
    expect(status['CapEff']).toBe('0000000000000000');
    expect(status['CapBnd']).toBe('0000000000000000');
    expect(status['NoNewPrivs']).toBe('1');
    expect(rootMountOptions).toContain('ro');
  });

  it('brings a 3-member topology to Available from the image: StatefulSet, members on central nodes, status', async () => {
    await cluster.kubectl(['apply', '-f', '-'], topologyManifest(NAME, NS, { members: { count: 3 } }));
    // Available needs only a quorum (2 of 3 healthy is Available too), so wait for all three as well.
    const t = await waitFor(`${NAME} Available with 3 healthy members`, async () => {
      if (operator.exitCode !== undefined) throw new StopWaiting(new Error(`the operator container exited ${operator.exitCode}: ${await operator.log()}`));
      const t = await getTopology(cluster, NAME, NS);
      return conditionOf(t, 'Available')?.status === 'True' && t.status?.quorum?.healthy === 3 ? t : false;
    }, { timeoutMs: 240_000, intervalMs: 1000 });
    expect(t.status?.quorum).toEqual({ size: 2, healthy: 3, faultTolerance: 1, disruptionsAllowed: 1 });
    expect(t.status?.members?.filter((m) => m.role === 'leader')).toHaveLength(1);
    const sts = JSON.parse(await cluster.kubectl(['get', 'statefulset', `${NAME}-member`, '-n', NS, '-o', 'json'])) as { metadata: { ownerReferences: { kind: string; name: string }[] }; spec: { replicas: number } };
    expect(sts.spec.replicas).toBe(3);
    expect(sts.metadata.ownerReferences).toMatchObject([{ kind: 'EtcdTopology', name: NAME }]);
    const members = await componentPods(cluster, NAME, NS, 'member');
    expect(members.map((p) => p.spec!.nodeName).sort()).toEqual(['central-0', 'central-1', 'central-2']);
    const reconciles = (await (await fetch(operatorMetrics)).text()).match(/^etcd_topology_operator_reconciles_total(\{[^}]*\})? (\d+)/m);
    expect(Number(reconciles?.[2])).toBeGreaterThan(0);
  });

  it("serves etcdctl put and get through `etcd-topology proxy` from the image, with mTLS to the operator's members", async () => {
    // As the DaemonSet runs it: the members' DNS names (here --add-host entries standing in for cluster
    // DNS, since the server certificates carry names, not pod IPs) and the proxy's client certificate.
    const members = await componentPods(cluster, NAME, NS, 'member');
    expect(members).toHaveLength(3);
    const hosts = members.map((p) => [`${p.metadata.name}.${NAME}-peer.${NS}.svc`, p.status!.podIP!] as const);
    const tls = await secretFiles(cluster, `${NAME}-proxy-tls`, path.join(cluster.dir, 'proxy-tls'));
    const [port, metrics] = [await freePort(), await freePort()];
    proxy = Container.start(
      `etcd-topology-proxy-${process.pid}`,
      image,
      [...HARDENED, '--volume', `${tls}:/etc/etcd-topology/tls:ro`, ...hosts.flatMap(([name, ip]) => ['--add-host', `${name}:${ip}`])],
      [
        'proxy',
        `--endpoints=${hosts.map(([name]) => `https://${name}:2379`).join(',')}`,
        '--cacert=/etc/etcd-topology/tls/ca.crt',
        '--cert=/etc/etcd-topology/tls/tls.crt',
        '--key=/etc/etcd-topology/tls/tls.key',
        `--listen-client-urls=http://127.0.0.1:${port}`,
        `--metrics-addr=127.0.0.1:${metrics}`,
      ],
      path.join(cluster.dir, 'proxy-container.log'),
    );
    await waitHttp(proxy, `http://127.0.0.1:${metrics}/readyz`);
    const { status, rootMountOptions } = await proxy.process();
    expect(status['Uid']!.split(/\s+/)[0]).toBe(`${UID}`);
    expect(status['CapEff']).toBe('0000000000000000');
    expect(rootMountOptions).toContain('ro');

    const { etcdctl } = binaries();
    const through = `--endpoints=127.0.0.1:${port}`;
    await run(etcdctl, [through, 'put', 'from-the-image', 'proxied']);
    expect(await run(etcdctl, [through, 'get', 'from-the-image', '--print-value-only'])).toBe('proxied\n');
    // The write is in etcd itself: a member answers it directly (by pod IP, which its certificate does
    // not name, hence no server verification; the member still checks the client certificate).
    const direct = JSON.parse(
      await run(etcdctl, [`--endpoints=https://${hosts[0]![1]}:2379`, '--insecure-skip-tls-verify', `--cert=${tls}/tls.crt`, `--key=${tls}/tls.key`, 'get', 'from-the-image', '-w', 'json']),
    ) as { kvs: { value: string }[] };
    expect(Buffer.from(direct.kvs[0]!.value, 'base64').toString()).toBe('proxied');
  });
});
