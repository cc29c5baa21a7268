import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { etcdTopologySchema } from '../../src/api/etcd-topology.ts';
import { OPERATOR_MALLOC_ARENA_MAX, OPERATOR_NODE_OPTIONS } from '../../src/operator/node-options.ts';
import { run } from '../harness/run.ts';

// The chart under deploy/, checked with the real helm that hack/helm.sh puts in the cache.
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const chart = path.join(root, 'deploy/etcd-topology');
const RELEASE = 'etcd-topology';
const NAMESPACE = 'etcd-topology-system';

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}
interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}
interface Container {
  name: string;
  image: string;
  args: string[];
  env: { name: string; value?: string }[];
  ports: { name: string; containerPort: number }[];
  securityContext: Record<string, unknown>;
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
}
interface Deployment extends K8sObject {
  spec: {
    replicas: number;
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string> }; spec: { serviceAccountName: string; securityContext: Record<string, unknown>; containers: Container[] } };
  };
}

interface Role extends K8sObject {
  rules: PolicyRule[];
}
interface Binding extends K8sObject {
  roleRef: { kind: string; name: string };
  subjects: { kind: string; name: string; namespace: string }[];
}

let helm = '';

/** The verbs rules grant on one resource, sorted. */
function verbs(rules: PolicyRule[], group: string, resource: string): string[] {
  return rules.filter((r) => r.apiGroups.includes(group) && r.resources.includes(resource)).flatMap((r) => r.verbs).sort();
}

function bindings(objects: K8sObject[]): Binding[] {
  return objects.filter((o): o is Binding => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding');
}

/** [kind, namespace, role kind, role name] of every binding. */
function bindingsOf(objects: K8sObject[]): string[][] {
  return bindings(objects).map((b) => [b.kind, b.metadata.namespace ?? '', b.roleRef.kind, b.roleRef.name]);
}

/** No wildcards, and none of the verbs that hand out more power than a rule names. */
function expectNoPowerTools(rules: PolicyRule[]): void {
  for (const rule of rules) {
    for (const field of [rule.apiGroups, rule.resources, rule.verbs]) expect(field.some((v) => v.includes('*')), JSON.stringify(rule)).toBe(false);
    for (const verb of ['escalate', 'bind', 'impersonate']) expect(rule.verbs, JSON.stringify(rule)).not.toContain(verb);
  }
}

/** What the operator may do in a namespace it reconciles: exactly what its code calls, no more. */
function expectNamespacedRules(rules: PolicyRule[]): void {
  expect(verbs(rules, 'etcdtopology.io', 'etcdtopologies')).toEqual(['get', 'list', 'watch']);
  expect(verbs(rules, 'etcdtopology.io', 'etcdtopologies/status')).toEqual(['get', 'patch', 'update']);
  expect(verbs(rules, '', 'secrets')).toEqual(['create', 'get', 'list', 'patch', 'update', 'watch']);
  expect(verbs(rules, '', 'pods')).toEqual(['delete', 'get', 'list', 'watch']);
  expect(verbs(rules, '', 'pods/status')).toEqual(['patch']);
  expect(verbs(rules, '', 'pods/eviction')).toEqual([]);
  expect(verbs(rules, '', 'persistentvolumeclaims')).toEqual(['delete', 'get', 'list', 'watch']);
  expect(verbs(rules, 'batch', 'jobs')).toEqual(['create', 'delete', 'get', 'list', 'patch', 'watch']);
  expect(verbs(rules, 'rbac.authorization.k8s.io', 'roles')).toEqual([]);
  expect(verbs(rules, 'rbac.authorization.k8s.io', 'rolebindings')).toEqual([]);
}

/** The cluster-scoped kinds, in the ClusterRole in both modes. */
function expectClusterRules(rules: PolicyRule[]): void {
  expect(verbs(rules, '', 'nodes')).toEqual(['get', 'list', 'watch']);
  expect(verbs(rules, '', 'persistentvolumes')).toEqual(['get', 'patch']);
}

beforeAll(async () => {
  helm = (await run('bash', [path.join(root, 'hack/helm.sh')])).trim();
});

/** Every YAML document of a multi-document stream, failing on any parse error or warning. */
function parseDocs(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      expect(doc.errors, `YAML errors: ${doc.errors.map((e) => e.message).join('; ')}`).toEqual([]);
      expect(doc.warnings).toEqual([]);
      return doc.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

async function template(...args: string[]): Promise<K8sObject[]> {
  return parseDocs(await run(helm, ['template', RELEASE, chart, '--namespace', NAMESPACE, ...args]));
}

function only<T extends K8sObject>(objects: K8sObject[], kind: string): T {
  const found = objects.filter((o) => o.kind === kind);
  expect(found.map((o) => o.metadata.name), `one ${kind}`).toHaveLength(1);
  return found[0] as T;
}

describe('Helm chart deploy/etcd-topology', () => {
  it('passes helm lint --strict', async () => {
    const out = await run(helm, ['lint', '--strict', chart]);
    expect(out).toContain('1 chart(s) linted, 0 chart(s) failed');
  });

  it('renders documents that parse, of the expected kinds, namespaced in the release namespace', async () => {
    const objects = await template();
    expect(objects.map((o) => o.kind).sort()).toEqual(
      ['ClusterRole', 'ClusterRoleBinding', 'Deployment', 'Role', 'RoleBinding', 'Service', 'ServiceAccount'].sort(),
    );
    for (const o of objects) {
      expect(o.apiVersion, o.kind).toMatch(/^[a-z0-9.]*\/?v[0-9a-z]+$/);
      expect(o.metadata.labels?.['app.kubernetes.io/name'], o.kind).toBe('etcd-topology');
      expect(o.metadata.labels?.['app.kubernetes.io/instance'], o.kind).toBe(RELEASE);
      expect(o.metadata.labels?.['helm.sh/chart'], o.kind).toBe('etcd-topology-0.1.0');
      if (!o.kind.startsWith('Cluster')) expect(o.metadata.namespace, o.kind).toBe(NAMESPACE);
    }
    const withCrds = await template('--include-crds');
    const crd = only(withCrds, 'CustomResourceDefinition');
    expect(crd.metadata.name).toBe('etcdtopologies.etcdtopology.io');
  });

  it("ships a CRD byte-identical to crds/ (refresh with hack/sync-chart-crds.sh)", async () => {
    const file = 'etcdtopology.io_etcdtopologies.yaml';
    const generated = await readFile(path.join(root, 'crds', file));
    const inChart = await readFile(path.join(chart, 'crds', file));
    expect(inChart.equals(generated), `deploy/etcd-topology/crds/${file} differs from crds/${file}; run hack/sync-chart-crds.sh`).toBe(true);
    await run('bash', [path.join(root, 'hack/sync-chart-crds.sh'), '--check']);
  });

  it('runs the operator image with the contract flags, probes and env', async () => {
    const deployment = only<Deployment>(await template(), 'Deployment');
    expect(deployment.spec.replicas).toBe(1);
    const [container, ...others] = deployment.spec.template.spec.containers;
    expect(others).toEqual([]);
    expect(container!.image).toBe('etcd-topology:0.1.0');
    expect(container!.args).toEqual([
      'operator',
      '--metrics-addr=$(POD_IP):8080',
      '--health-addr=$(POD_IP):8081',
      '--leader-elect=true',
      '--proxy-image=etcd-topology:0.1.0',
    ]);
    expect(container!.env.find((e) => e.name === 'POD_IP')).toEqual({ name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } });
    expect(container!.env.find((e) => e.name === 'LOG_LEVEL')?.value).toBe('info');
    expect(container!.env.find((e) => e.name === 'NODE_OPTIONS')?.value).toBe(OPERATOR_NODE_OPTIONS);
    expect(container!.env.find((e) => e.name === 'MALLOC_ARENA_MAX')?.value).toBe(String(OPERATOR_MALLOC_ARENA_MAX));
    expect(container!.ports.map((p) => [p.name, p.containerPort])).toEqual([
      ['metrics', 8080],
      ['health', 8081],
    ]);
    expect(container!.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'health' });
    expect(container!.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'health' });

    const other = only<Deployment>(
      await template('--set', 'image.repository=mirror/etcd-topology', '--set-string', 'image.tag=dev', '--set', 'watchNamespaces={apps,team-b}', '--set', 'replicaCount=2'),
      'Deployment',
    );
    expect(other.spec.replicas).toBe(2);
    expect(other.spec.template.spec.containers[0]!.image).toBe('mirror/etcd-topology:dev');
    expect(other.spec.template.spec.containers[0]!.args).toContain('--namespaces=apps,team-b');
    expect(container!.args.some((a) => a.startsWith('--namespaces')), 'every namespace by default').toBe(false);
    // The proxy DaemonSet runs the same (overridden) image as the operator.
    expect(other.spec.template.spec.containers[0]!.args).toContain('--proxy-image=mirror/etcd-topology:dev');
  });

  it('selects only its own pods: selector labels apart, component=operator, and the metrics Service matches them', async () => {
    const objects = await template();
    const deployment = only<Deployment>(objects, 'Deployment');
    const selector = deployment.spec.selector.matchLabels;
    expect(selector).toEqual({ 'app.kubernetes.io/name': 'etcd-topology', 'app.kubernetes.io/instance': RELEASE, 'app.kubernetes.io/component': 'operator' });
    expect(deployment.spec.template.metadata.labels).toMatchObject(selector);
    const service = only<K8sObject & { spec: { selector: Record<string, string>; ports: { name: string; targetPort: string }[] } }>(objects, 'Service');
    expect(service.spec.selector).toEqual(selector);
    expect(service.spec.ports).toMatchObject([{ name: 'metrics', targetPort: 'metrics' }]);
    expect(deployment.spec.template.spec.serviceAccountName).toBe(only(objects, 'ServiceAccount').metadata.name);
  });

  it('runs the operator non-root on a read-only root file system with no privileges', async () => {
    const spec = only<Deployment>(await template(), 'Deployment').spec.template.spec;
    expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } });
    expect(spec.containers[0]!.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 65532,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
  });

  it('grants least privilege in every namespace by default: no wildcards, Secrets only by name, pods deleted but never patched or evicted, leases only in its namespace', async () => {
    const objects = await template();
    const clusterRole = only<Role>(objects, 'ClusterRole');
    const role = only<Role>(objects, 'Role');
    expectNoPowerTools([...clusterRole.rules, ...role.rules]);
    expectNamespacedRules(clusterRole.rules);
    expectClusterRules(clusterRole.rules);
    expect(verbs(clusterRole.rules, 'coordination.k8s.io', 'leases')).toEqual([]);
    expect(verbs(role.rules, 'coordination.k8s.io', 'leases')).toEqual(['create', 'get', 'update']);
    expect(role.metadata.namespace).toBe(NAMESPACE);
    expect(bindingsOf(objects)).toEqual(
      expect.arrayContaining([
        ['ClusterRoleBinding', '', 'ClusterRole', clusterRole.metadata.name],
        ['RoleBinding', NAMESPACE, 'Role', role.metadata.name],
      ]),
    );
    expect(bindingsOf(objects)).toHaveLength(2);
    for (const b of bindings(objects)) expect(b.subjects).toEqual([{ kind: 'ServiceAccount', name: only(objects, 'ServiceAccount').metadata.name, namespace: NAMESPACE }]);
  });

  it('with watchNamespaces, grants namespaced power by a Role in each of them and keeps only nodes and volumes cluster-wide', async () => {
    const objects = await template('--set', 'watchNamespaces={team-a,team-b}');
    const clusterRole = only<Role>(objects, 'ClusterRole');
    expectClusterRules(clusterRole.rules);
    // Nodes and PersistentVolumes only: read, and the one patch of a volume's reclaim policy.
    expect(clusterRole.rules.flatMap((r) => r.resources).sort()).toEqual(['nodes', 'persistentvolumes']);
    expect(clusterRole.rules.flatMap((r) => r.verbs).filter((v) => !['get', 'list', 'watch', 'patch'].includes(v))).toEqual([]);
    const roles = objects.filter((o): o is Role => o.kind === 'Role');
    expect(roles.map((r) => `${r.metadata.namespace}/${r.metadata.name}`).sort()).toEqual([
      `${NAMESPACE}/${RELEASE}-leader-election`,
      `team-a/${RELEASE}`,
      `team-b/${RELEASE}`,
    ]);
    for (const r of roles.filter((r) => r.metadata.namespace !== NAMESPACE)) {
      expectNoPowerTools(r.rules);
      expectNamespacedRules(r.rules);
      expect(verbs(r.rules, '', 'nodes')).toEqual([]);
    }
    expect(bindingsOf(objects).sort()).toEqual([
      ['ClusterRoleBinding', '', 'ClusterRole', clusterRole.metadata.name],
      ['RoleBinding', NAMESPACE, 'Role', `${RELEASE}-leader-election`],
      ['RoleBinding', 'team-a', 'Role', RELEASE],
      ['RoleBinding', 'team-b', 'Role', RELEASE],
    ]);
    for (const b of bindings(objects)) expect(b.subjects).toEqual([{ kind: 'ServiceAccount', name: only(objects, 'ServiceAccount').metadata.name, namespace: NAMESPACE }]);
    // The PodMonitor scrapes the same namespaces.
    const monitor = only<K8sObject & { spec: Record<string, unknown> }>(
      await template('--set', 'watchNamespaces={team-a,team-b}', '--set', 'podMonitor.enabled=true', '--api-versions', 'monitoring.coreos.com/v1/PodMonitor'),
      'PodMonitor',
    );
    expect(monitor.spec['namespaceSelector']).toEqual({ matchNames: ['team-a', 'team-b'] });
  });

  it.each([
    [['--set', 'watchNamespaces={team-a,Team-B}'], /watchNamespaces\/1.*does not match pattern/],
    [['--set', 'watchNamespaces={a,a}'], /watchNamespaces.*items at 0 and 1 are equal/],
    [['--set', 'watchNamespaces=team-a'], /watchNamespaces.*(got string, want array|expected array)/],
  ])('refuses watchNamespaces %j with the value named', async (args, message) => {
    await expect(template(...args)).rejects.toThrow(message);
  });

  it('refuses values that do not match values.schema.json, with helm\'s error', async () => {
    await expect(template('--set-string', 'replicaCount=two')).rejects.toThrow(/values don't meet the specifications of the schema[\s\S]*replicaCount/);
    await expect(template('--set', 'replicaCount=3')).rejects.toThrow(/replicaCount/);
    await expect(template('--set', 'logLevel=loud')).rejects.toThrow(/logLevel/);
    await expect(template('--set', 'replicas=2')).rejects.toThrow(/additional properties 'replicas' not allowed/);
  });

  it('renders a ServiceMonitor only when enabled, and refuses it when the cluster lacks the API', async () => {
    expect((await template('--api-versions', 'monitoring.coreos.com/v1/ServiceMonitor')).map((o) => o.kind)).not.toContain('ServiceMonitor');
    const enabled = await template('--set', 'serviceMonitor.enabled=true', '--api-versions', 'monitoring.coreos.com/v1/ServiceMonitor');
    const monitor = only<K8sObject & { spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string }[] } }>(enabled, 'ServiceMonitor');
    expect(monitor.spec.selector.matchLabels).toEqual(only<Deployment>(enabled, 'Deployment').spec.selector.matchLabels);
    expect(monitor.spec.endpoints.map((e) => e.port)).toEqual(['metrics']);
    await expect(template('--set', 'serviceMonitor.enabled=true')).rejects.toThrow(/does not serve monitoring.coreos.com\/v1 ServiceMonitor/);
    // The operator's series carry the topology's namespace and name; the scrape must not rename them.
    expect((monitor.spec.endpoints as { honorLabels?: boolean }[])[0]?.honorLabels).toBe(true);
  });

  it.each([
    ['prometheusRule', 'PrometheusRule'],
    ['podMonitor', 'PodMonitor'],
  ])('renders a %s only when enabled, and refuses it when the cluster lacks the API', async (value, kind) => {
    const api = `monitoring.coreos.com/v1/${kind}`;
    expect((await template('--api-versions', api)).map((o) => o.kind)).not.toContain(kind);
    expect((await template('--set', `${value}.enabled=true`, '--api-versions', api)).map((o) => o.kind)).toContain(kind);
    await expect(template('--set', `${value}.enabled=true`)).rejects.toThrow(new RegExp(`does not serve monitoring.coreos.com/v1 ${kind}`));
  });

  it('scrapes the member and proxy pods of every topology, labelled with the topology name', async () => {
    const monitor = only<K8sObject & { spec: Record<string, unknown> }>(await template('--set', 'podMonitor.enabled=true', '--api-versions', 'monitoring.coreos.com/v1/PodMonitor'), 'PodMonitor');
    expect(monitor.spec['selector']).toEqual({ matchLabels: { 'app.kubernetes.io/managed-by': 'etcd-topology' }, matchExpressions: [{ key: 'app.kubernetes.io/component', operator: 'In', values: ['member', 'proxy'] }] });
    expect(monitor.spec['namespaceSelector']).toEqual({ any: true });
    const endpoint = (monitor.spec['podMetricsEndpoints'] as { port: string; relabelings: { targetLabel: string }[] }[])[0]!;
    expect(endpoint.port).toBe('metrics');
    expect(endpoint.relabelings.map((r) => r.targetLabel)).toEqual(['name', 'component']);
  });

  it('deploy/manifests/etcd-topology.yaml is a fresh rendering of the chart (refresh with hack/render-manifests.sh)', async () => {
    const fresh = await run('bash', [path.join(root, 'hack/render-manifests.sh'), '--stdout']);
    const committed = await readFile(path.join(root, 'deploy/manifests/etcd-topology.yaml'), 'utf8');
    expect(committed === fresh, 'deploy/manifests/etcd-topology.yaml is stale; run hack/render-manifests.sh').toBe(true);
    // The same objects as the chart itself, plus the namespace they live in.
    const objects = parseDocs(committed);
    const chartObjects = await template('--include-crds');
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([`Namespace/${NAMESPACE}`, ...chartObjects.map((o) => `${o.kind}/${o.metadata.name}`)]);
  });
});

describe('examples/', () => {
  it.each([
    ['etcdtopology.yaml', 'example', 3, 'readwrite'],
    ['etcdtopology-readonly-proxy.yaml', 'example-readonly', 5, 'readonly'],
  ])('%s is a valid EtcdTopology', async (file, name, count, mode) => {
    const raw = parse(await readFile(path.join(root, 'examples', file), 'utf8')) as { spec: unknown };
    const object = etcdTopologySchema.parse(raw);
    // zod drops unknown keys: every field the example writes must survive parsing, so a misspelt one fails.
    expect(object.spec).toMatchObject(raw.spec as object);
    expect(object.metadata.name).toBe(name);
    expect(object.spec.members.count).toBe(count);
    expect(object.spec.proxy.mode).toBe(mode);
  });
});

describe('hack/ packaging scripts', () => {
  it('hack/helm.sh is idempotent: a second run prints the same cached binary and leaves it alone', async () => {
    const before = await stat(helm);
    const again = (await run('bash', [path.join(root, 'hack/helm.sh')])).trim();
    expect(again).toBe(helm);
    expect((await stat(again)).mtimeMs).toBe(before.mtimeMs);
    expect(await run(helm, ['version', '--short'])).toMatch(/^v[34]\.\d+\.\d+/);
  });

  it('the kind config has a control plane, 3 central nodes and 2 workers', async () => {
    const config = parse(await readFile(path.join(root, 'hack/kind/cluster.yaml'), 'utf8')) as {
      kind: string;
      apiVersion: string;
      nodes: { role: string; labels?: Record<string, string> }[];
    };
    expect([config.kind, config.apiVersion]).toEqual(['Cluster', 'kind.x-k8s.io/v1alpha4']);
    const roles = config.nodes.map((n) => (n.labels?.['etcdtopology.io/role'] === 'central' ? `central-${n.role}` : n.role));
    expect(roles.sort()).toEqual(['central-worker', 'central-worker', 'central-worker', 'control-plane', 'worker', 'worker']);
  });

  it.each(['helm.sh', 'kind.sh', 'render-manifests.sh', 'sync-chart-crds.sh'])('hack/%s is valid bash with strict mode', async (script) => {
    const file = path.join(root, 'hack', script);
    await run('bash', ['-n', file]);
    expect(await readFile(file, 'utf8')).toMatch(/^#!\/usr\/bin\/env bash\n[\s\S]*^set -euo pipefail$/m);
  });
});
