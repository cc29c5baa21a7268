// npm run demo [-- --once]
// Starts the local cluster (3 central, 2 worker nodes), installs the Helm chart with the operator
// running as a pod, applies examples/etcdtopology.yaml, waits for Available, then prints how to look
// at it and how to reach etcd through a worker's proxy. Runs until Ctrl-C; with --once it prints the
// status and exits 0 only if Available was reached.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { binaries } from '../test/harness/binaries.ts';
import { LocalCluster } from '../test/harness/cluster/local-cluster.ts';
import { run } from '../test/harness/run.ts';

const NS = 'etcd-topology';
const repo = path.resolve(import.meta.dirname, '..');

let once = false;
try {
  once = parseArgs({ options: { once: { type: 'boolean' } }, strict: true }).values.once ?? false;
} catch (err) {
  console.error(`demo: ${(err as Error).message}; accepted: --once`);
  process.exit(2);
}

const step = (s: string): void => console.log(`\n==> ${s}`);
const started = Date.now();

step('Building dist/ (the image the local cluster runs is this checkout)');
execFileSync(process.execPath, [path.join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(repo, 'tsconfig.build.json')], { stdio: 'inherit' });
const helm = execFileSync('bash', [path.join(repo, 'hack', 'helm.sh')], { encoding: 'utf8' }).trim();
const kubectlPath = binaries().kubectl;

step('Starting the local cluster: 3 central nodes, 2 workers');
const cluster = await LocalCluster.start();
let stopping = false;
const stop = async (code: number): Promise<never> => {
  if (!stopping) {
    stopping = true;
    console.log('\nStopping the local cluster...');
    await cluster.stop();
  }
  process.exit(code);
};
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

try {
  const k = (...args: string[]): Promise<string> => cluster.kubectl(args);
  await k('wait', '--for=condition=Ready', 'node', '--all', '--timeout=60s');
  console.log(await k('get', 'nodes', '-L', 'etcdtopology.io/role'));

  step('Installing the chart (operator as a pod, CRD from the chart)');
  await run(helm, ['install', 'etcd-topology', path.join(repo, 'deploy', 'etcd-topology'), '--namespace', NS, '--create-namespace', '--kubeconfig', cluster.kubeconfig, '--wait', '--timeout', '180s']);
  console.log(await k('get', 'deploy,pods', '-n', NS, '-o', 'wide'));

  step('Applying examples/etcdtopology.yaml and waiting for Available');
  await k('apply', '-n', NS, '-f', path.join(repo, 'examples', 'etcdtopology.yaml'));
  const available = await k('wait', '-n', NS, '--for=condition=Available', 'etop/example', '--timeout=300s').then(
    () => true,
    (err: Error) => {
      console.error(`EtcdTopology did not become Available: ${err.message}`);
      return false;
    },
  );
  if (available) {
    await k('wait', '-n', NS, '--for=condition=Ready', 'pod', '-l', 'app.kubernetes.io/component=proxy', '--timeout=120s').catch((err: Error) => {
      console.error(`proxies not ready: ${err.message}`);
    });
    // Available needs the members only; the status counts the proxies once the operator has seen the
    // DaemonSet's ready count, which Progressing=False (ReconcileComplete) says.
    await k('wait', '-n', NS, '--for=condition=Progressing=False', 'etop/example', '--timeout=120s').catch((err: Error) => {
      console.error(`topology not settled: ${err.message}`);
    });
  }
  console.log(await k('get', 'etop', '-n', NS));
  console.log(await k('get', 'pods', '-n', NS, '-o', 'wide'));
  const status = await k('get', 'etop', 'example', '-n', NS, '-o', 'jsonpath={.status}');
  console.log('status:', JSON.stringify(JSON.parse(status), null, 2));
  console.log(`\nReached ${available ? 'Available' : 'no Available condition'} in ${((Date.now() - started) / 1000).toFixed(0)}s.`);

  const proxies = JSON.parse(await k('get', 'pods', '-n', NS, '-l', 'app.kubernetes.io/component=proxy', '-o', 'json')) as {
    items: { spec: { nodeName: string }; status: { podIP?: string } }[];
  };
  const proxy = proxies.items.find((p) => p.status.podIP);
  if (proxy?.status.podIP) {
    const endpoint = `--endpoints=http://${proxy.status.podIP}:2379`;
    await run(binaries().etcdctl, [endpoint, 'put', 'demo/hello', `written through the proxy on ${proxy.spec.nodeName}`]);
    console.log(`Through the proxy on ${proxy.spec.nodeName}: ${(await run(binaries().etcdctl, [endpoint, 'get', 'demo/hello', '--print-value-only'])).trim()}`);
  }
  console.log(`
Look around:
  export KUBECONFIG=${cluster.kubeconfig}
  alias kubectl=${kubectlPath}
  kubectl get etop -n ${NS}
  kubectl get pods -n ${NS} -o wide
  kubectl describe etop example -n ${NS}
Reach etcd through the proxy on ${proxy?.spec.nodeName ?? 'a worker'} (what pods on that node use):
  ${binaries().etcdctl} --endpoints=http://${proxy?.status.podIP ?? '<proxy pod IP>'}:2379 put hello world
  ${binaries().etcdctl} --endpoints=http://${proxy?.status.podIP ?? '<proxy pod IP>'}:2379 get hello`);

  if (once) await stop(available ? 0 : 1);
  console.log('\nRunning until Ctrl-C.');
} catch (err) {
  console.error(`demo: ${err instanceof Error ? err.message : String(err)}`);
  console.error(`The cluster's logs are under ${cluster.dir} until it stops.`);
  await stop(1);
}
