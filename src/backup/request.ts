import { CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { z } from 'zod';
import { BACKUP_NOW_ANNOTATION, type BackupStatus } from '../api/backup.ts';
import { GROUP, PLURAL, VERSION } from '../api/etcd-topology.ts';
import { UsageError } from '../errors.ts';
import { duration, namespaceName, parseFlags } from '../flags.ts';
import { loadKubeConfig } from '../cli-kubeconfig.ts';

const usage = `usage: etcd-topology backup NAME [-n NS] [--wait] [--timeout 10m] [--kubeconfig FILE]

Asks the operator for one backup of EtcdTopology NAME now (sets the ${BACKUP_NOW_ANNOTATION}
annotation to a new value). With --wait, waits for it and prints its key and revision (exit 0), or
the failure (exit 1).`;

const flagsSchema = z.object({
  namespace: namespaceName.optional(),
  kubeconfig: z.string().optional(),
  wait: z.boolean().default(false),
  timeout: duration.prefault('10m'),
  help: z.boolean().default(false),
});

/** Runs `backup NAME`; resolves the exit code. */
export async function main(argv: string[]): Promise<number> {
  // -n is kubectl's spelling; the flag parser knows only --long names.
  const args = argv.flatMap((a, i) => (a === '-n' ? ['--namespace'] : argv[i - 1] === '-n' ? [a] : [a]));
  const { flags, positionals } = parseFlags('backup', flagsSchema, args);
  if (flags.help) {
    console.error(usage);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(`backup: expected one EtcdTopology name, got ${positionals.length === 0 ? 'none' : positionals.join(' ')}`);
  const name = positionals[0]!;
  const kc = loadKubeConfig(flags.kubeconfig);
  const namespace = flags.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
  const api = kc.makeApiClient(CustomObjectsApi);
  const request = new Date().toISOString();
  const get = async (): Promise<{ metadata?: { annotations?: Record<string, string> }; status?: { backup?: BackupStatus } }> =>
    (await api.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace, name })) as never;
  await get().catch((err: { code?: number }) => {
    if (err.code === 404) throw new UsageError(`backup: EtcdTopology ${namespace}/${name} not found`);
    throw err;
  });
  await api.patchNamespacedCustomObject(
    { group: GROUP, version: VERSION, plural: PLURAL, namespace, name, body: { metadata: { annotations: { [BACKUP_NOW_ANNOTATION]: request } } } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
  process.stderr.write(`asked for a backup of ${namespace}/${name} (${BACKUP_NOW_ANNOTATION}=${request})\n`);
  if (!flags.wait) return 0;
  const deadline = Date.now() + flags.timeout;
  let seenActive = false;
  while (Date.now() < deadline) {
    const b = (await get()).status?.backup;
    if (b?.onDemand === request && b.active) seenActive = true;
    // Answered once the operator took this request and its Job is over: success or failure, whichever is newer.
    if (b?.onDemand === request && !b.active && (seenActive || b.lastAttemptTime !== undefined)) {
      // The outcome newer than this request's attempt (times in status have whole seconds).
      const attempt = Date.parse(b.lastAttemptTime ?? '') - 1000;
      const successAt = Date.parse(b.lastSuccess?.time ?? '') || -Infinity;
      const failureAt = Date.parse(b.lastFailure?.time ?? '') || -Infinity;
      if (failureAt >= attempt && failureAt > successAt) {
        process.stderr.write(`backup failed: ${b.lastFailure!.message}\n`);
        return 1;
      }
      if (successAt >= attempt) {
        process.stdout.write(`${b.lastSuccess!.key} revision ${b.lastSuccess!.revision}\n`);
        return 0;
      }
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  process.stderr.write(`backup: no answer from the operator within ${flags.timeout / 1000}s; see kubectl describe etop ${name} -n ${namespace}\n`);
  return 1;
}
