// npm run cluster [-- --central 3 --workers 2]
// Starts the local cluster, prints the KUBECONFIG path and the nodes, runs until Ctrl-C, then cleans up.
import { parseArgs } from 'node:util';
import { defaultNodes, LocalCluster } from '../test/harness/cluster/local-cluster.ts';

function count(flag: string, value: string | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > 50) {
    console.error(`cluster: invalid value "${value}" for --${flag}: expected a whole number from ${min} to 50`);
    process.exit(2);
  }
  return Number(value);
}

let values: { central?: string; workers?: string };
try {
  ({ values } = parseArgs({ options: { central: { type: 'string' }, workers: { type: 'string' } }, strict: true }));
} catch (err) {
  console.error(`cluster: ${(err as Error).message}; accepted: --central N, --workers N`);
  process.exit(2);
}

const started = Date.now();
const cluster = await LocalCluster.start({ nodes: defaultNodes(count('central', values.central, 3, 0), count('workers', values.workers, 2, 0)) });
let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  console.log('\nStopping the local cluster...');
  await cluster.stop();
  console.log('Stopped; nothing is left running.');
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());

await new Promise((r) => setTimeout(r, 1500));
console.log(`Local cluster up in ${((Date.now() - started) / 1000).toFixed(1)}s.\n`);
console.log(`export KUBECONFIG=${cluster.kubeconfig}\n`);
console.log(await cluster.kubectl(['get', 'nodes', '-o', 'wide']));
console.log('Pods run as local processes; logs and volumes are under', cluster.dir);
console.log('Press Ctrl-C to stop and clean up.');
