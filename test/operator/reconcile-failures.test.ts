import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCluster } from '../harness/cluster/local-cluster.ts';
import { waitFor } from '../harness/ports.ts';
import { conditionOf, getTopology, startOperatorCluster, topologyManifest, type OperatorCluster, type TopologyStatus } from './setup.ts';

// A step that fails still ends in status: an apply refused by a ValidatingAdmissionPolicy (built into
// kube-apiserver, CEL, no webhook server) shows Degraded ReconcileFailed with the API server's answer
// and clears once the policy is gone; an EtcdTopology the operator cannot parse (the CRD loosened, as an
// older CRD or a hand edit would let through) shows Degraded InvalidSpec naming the field, and the
// operator neither crash-loops nor retries it.

const NS = 'default';
const repo = path.resolve(import.meta.dirname, '..', '..');
const RETRIES = 'etcd_topology_operator_queue_retries_total';
const POLICY = 'etop-test-refuse-client-service';
const POLICY_MESSAGE = 'test policy: the Service refused-client may not be created';

interface KubeEvent {
  type: string;
  reason: string;
  message: string;
  involvedObject: { name: string };
}

describe('reconcile failures reach status', () => {
  let env: OperatorCluster;
  let cluster: LocalCluster;

  const events = async (name: string, reason: string): Promise<KubeEvent[]> =>
    (JSON.parse(await cluster.kubectl(['get', 'events', '-n', NS, '-o', 'json'])) as { items: KubeEvent[] }).items.filter((e) => e.involvedObject.name === name && e.reason === reason);
  const topology = (name: string): Promise<TopologyStatus> => getTopology(cluster, name, NS);
  /** Waits until the topology's status describes its current generation and passes check. */
  const statusFor = (name: string, what: string, check: (t: TopologyStatus) => boolean): Promise<TopologyStatus> =>
    waitFor(what, async () => {
      const t = await topology(name);
      return t.status?.observedGeneration === t.metadata.generation && check(t) ? t : false;
    }, { timeoutMs: 90_000, intervalMs: 500 });

  beforeAll(async () => {
    env = await startOperatorCluster({}, ['--resync-period=3s']);
    cluster = env.cluster;
  });
  afterAll(async () => {
    await env?.stop();
  });

  it('an apply refused by an admission policy shows Degraded ReconcileFailed with the API server\'s answer, once as an Event, and clears after the policy is deleted', async () => {
    const name = 'refused';
    const policy = {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicy',
      metadata: { name: POLICY },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: { resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['services'] }] },
        validations: [{ expression: `object.metadata.name != '${name}-client'`, message: POLICY_MESSAGE }],
      },
    };
    const binding = { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingAdmissionPolicyBinding', metadata: { name: POLICY }, spec: { policyName: POLICY, validationActions: ['Deny'] } };
    await cluster.kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [policy, binding] }));
    // The API server enforces a new policy once its own informer has it: probe with a server-side dry run.
    const probe = JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: `${name}-client`, namespace: NS }, spec: { ports: [{ port: 2379 }] } });
    await waitFor('the policy in force', () => cluster.kubectl(['create', '--dry-run=server', '-f', '-'], probe).then(() => false, (err: Error) => err.message.includes(POLICY_MESSAGE)), { timeoutMs: 30_000, intervalMs: 500 });

    const retriesBefore = await env.operator.counter(RETRIES);
    await cluster.kubectl(['apply', '-f', '-'], topologyManifest(name, NS, { members: { count: 1 } }));
    const failed = await statusFor(name, 'Degraded ReconcileFailed', (t) => conditionOf(t, 'Degraded')?.reason === 'ReconcileFailed');
    const degraded = conditionOf(failed, 'Degraded')!;
    expect(degraded.status).toBe('True');
    expect(degraded.message).toContain('reconcile step apply failed (ETOP_KUBE_INVALID): apply Service default/refused-client failed: the API server answered 422');
    expect(degraded.message).toContain(POLICY_MESSAGE);
    expect(conditionOf(failed, 'Progressing')).toMatchObject({ status: 'False', reason: 'ReconcileFailed', message: degraded.message });
    // The objects before the refused one in apply order were applied; nothing after it was.
    await cluster.kubectl(['get', 'serviceaccount', `${name}-member`, '-n', NS]);
    await expect(cluster.kubectl(['get', 'statefulset', `${name}-member`, '-n', NS])).rejects.toThrow(/NotFound/);

    // Retried with back-off, announced once.
    await waitFor('three retries', async () => (await env.operator.counter(RETRIES)) >= retriesBefore + 3, { timeoutMs: 30_000 });
    const warnings = await events(name, 'ReconcileFailed');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ type: 'Warning', message: `Degraded=True: ${degraded.message}` });
    // Logged as an object with its cause: the step, the code, the API server's words.
    const logged = (await readFile(env.operator.logFile, 'utf8'))
      .split('\n')
      .filter((l) => l.includes('"msg":"Failed to reconcile; retrying"'))
      .map((l) => JSON.parse(l) as { err: { type: string; code: string; step: string; message: string } });
    expect(logged.length).toBeGreaterThanOrEqual(3);
    expect(logged.at(-1)!.err).toMatchObject({ type: 'StepError', code: 'ETOP_KUBE_INVALID', step: 'apply' });
    expect(logged.at(-1)!.err.message).toContain(`reconcile step apply failed: apply Service default/refused-client failed: the API server answered 422`);
    expect(logged.at(-1)!.err.message).toContain(POLICY_MESSAGE);

    await cluster.kubectl(['delete', 'validatingadmissionpolicybinding', POLICY]);
    await cluster.kubectl(['delete', 'validatingadmissionpolicy', POLICY]);
    const cleared = await statusFor(name, 'Degraded no longer ReconcileFailed', (t) => conditionOf(t, 'Degraded')?.reason !== 'ReconcileFailed' && conditionOf(t, 'Progressing')?.reason !== 'ReconcileFailed');
    expect(conditionOf(cleared, 'Degraded')?.message).not.toContain(POLICY_MESSAGE);
    await cluster.kubectl(['get', 'service', `${name}-client`, '-n', NS]);
    await waitFor('the member StatefulSet', () => cluster.kubectl(['get', 'statefulset', `${name}-member`, '-n', NS]).then(() => true, () => false), { timeoutMs: 30_000 });
    expect(env.operator.alive).toBe(true);
    await cluster.kubectl(['delete', 'etop', name, '-n', NS, '--wait=false']);
  });

  it('an EtcdTopology the operator cannot parse shows Degraded InvalidSpec naming the field, without a crash loop or retries, and clears once fixed', async () => {
    const name = 'unreadable';
    // An older or hand-edited CRD: members.count without its "1, 3, 5 or 7" rule.
    const countRule = '/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/members/properties/count/x-kubernetes-validations';
    await cluster.kubectl(['patch', 'crd', 'etcdtopologies.etcdtopology.io', '--type=json', '-p', JSON.stringify([{ op: 'remove', path: countRule }])]);
    try {
      await waitFor('the loosened CRD in force', () => cluster.kubectl(['apply', '--dry-run=server', '-f', '-'], topologyManifest(name, NS, { members: { count: 4 } })).then(() => true, () => false), { timeoutMs: 30_000, intervalMs: 500 });
      // This object's retries, from the operator's log: the queue's counter also counts other
      // topologies (the previous case's, deleted without waiting, may still be retried).
      const retries = async (): Promise<number> =>
        (await readFile(env.operator.logFile, 'utf8')).split('\n').filter((l) => l.includes('"msg":"Failed to reconcile; retrying"') && l.includes(`"etcdtopology":"${NS}/${name}"`)).length;
      await cluster.kubectl(['apply', '-f', '-'], topologyManifest(name, NS, { members: { count: 4 } }));
      const invalid = await statusFor(name, 'Degraded InvalidSpec', (t) => conditionOf(t, 'Degraded')?.reason === 'InvalidSpec');
      const degraded = conditionOf(invalid, 'Degraded')!;
      expect(degraded.status).toBe('True');
      expect(degraded.message).toMatch(/^EtcdTopology default\/unreadable cannot be read by this operator: spec\.members\.count: .*1, 3, 5 or 7.*\(got 4\); the operator changes nothing/);
      expect(conditionOf(invalid, 'Progressing')).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
      // Nothing was rendered from it. Another visit (any change to the object queues one) says the
      // same without a second Event, nothing is retried, and the operator runs on.
      await expect(cluster.kubectl(['get', 'serviceaccount', `${name}-member`, '-n', NS])).rejects.toThrow(/NotFound/);
      const visits = async (): Promise<number> => (await readFile(env.operator.logFile, 'utf8')).split('\n').filter((l) => l.includes('"msg":"Cannot read the EtcdTopology') && l.includes(`"etcdtopology":"${NS}/${name}"`)).length;
      const seen = await visits();
      await cluster.kubectl(['annotate', 'etop', name, '-n', NS, 'example.com/touched=1']);
      await waitFor('another visit', async () => (await visits()) > seen, { timeoutMs: 30_000 });
      expect(await retries()).toBe(0);
      expect(await events(name, 'InvalidSpec')).toHaveLength(1);
      expect(env.operator.alive).toBe(true);

      await cluster.kubectl(['patch', 'etop', name, '-n', NS, '--type=merge', '-p', JSON.stringify({ spec: { members: { count: 1 } } })]);
      const fixed = await statusFor(name, 'Degraded no longer InvalidSpec', (t) => conditionOf(t, 'Degraded')?.reason !== 'InvalidSpec');
      expect(fixed.status?.observedGeneration).toBe(2);
      await waitFor('the member StatefulSet', () => cluster.kubectl(['get', 'statefulset', `${name}-member`, '-n', NS]).then(() => true, () => false), { timeoutMs: 30_000 });
    } finally {
      await cluster.kubectl(['delete', 'etop', name, '-n', NS, '--ignore-not-found', '--wait=false']);
      await cluster.kubectl(['apply', '--server-side', '--force-conflicts', '-f', path.join(repo, 'crds')]);
    }
  });
});
