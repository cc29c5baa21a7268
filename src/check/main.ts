import { KubernetesObjectApi, type KubernetesObject, type V1Pod } from '@kubernetes/client-node';
import { z } from 'zod';
import { API_VERSION, KIND } from '../api/etcd-topology.ts';
import type { EtcdTopologyStatus } from '../api/status.ts';
import { UsageError } from '../errors.ts';
import { parseFlags } from '../flags.ts';
import { loadKubeConfig } from '../cli-kubeconfig.ts';
import { drainAnswers, type TopologyOnNode } from './drain.ts';

const usage = `usage: etcd-topology check drain NODE [--kubeconfig FILE] [--namespace NS]

Answers whether draining NODE now keeps every etcd cluster's budget and quorum, and why, from the
status the operator keeps. Exit 0: safe; 1: not safe now; 2: bad usage.`;

const flagsSchema = z.object({
  kubeconfig: z.string().optional(),
  namespace: z.string().optional(),
  help: z.boolean().default(false),
});

/** Runs `check drain NODE`; resolves the exit code. */
export async function main(argv: string[]): Promise<number> {
  const { flags, positionals } = parseFlags('check', flagsSchema, argv);
  if (flags.help) {
    console.error(usage);
    return 0;
  }
  const [what, node, ...extra] = positionals;
  if (what !== 'drain' || node === undefined || extra.length > 0) {
    throw new UsageError(`check: expected "check drain NODE", got "${['check', ...positionals].join(' ')}"`);
  }
  const objects = KubernetesObjectApi.makeApiClient(loadKubeConfig(flags.kubeconfig));
  const [topologies, pods] = await Promise.all([
    objects.list<KubernetesObject & { status?: EtcdTopologyStatus }>(API_VERSION, KIND, flags.namespace),
    objects.list<V1Pod>('v1', 'Pod', flags.namespace, undefined, undefined, undefined, `spec.nodeName=${node}`, 'app.kubernetes.io/component=member,app.kubernetes.io/managed-by=etcd-topology'),
  ]);
  const onNode: TopologyOnNode[] = topologies.items.map((t) => ({
    key: `${t.metadata?.namespace}/${t.metadata?.name}`,
    generation: t.metadata?.generation ?? 0,
    status: t.status,
    membersOnNode: pods.items
      .filter((p) => p.metadata?.namespace === t.metadata?.namespace && p.metadata?.labels?.['app.kubernetes.io/instance'] === t.metadata?.name)
      .map((p) => p.metadata!.name!),
  }));
  const lines = drainAnswers(onNode);
  if (lines.length === 0) {
    process.stdout.write(`SAFE  node ${node} runs no etcd member managed by etcd-topology\n`);
    return 0;
  }
  for (const l of lines) process.stdout.write(`${l.safe ? 'SAFE  ' : 'UNSAFE'} ${l.topology} ${l.member}: ${l.reason}: ${l.message}\n`);
  return lines.every((l) => l.safe) ? 0 : 1;
}
