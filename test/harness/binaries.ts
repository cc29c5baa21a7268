import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

/** Absolute paths of the Go-built test binaries (see hack/test-binaries.sh). */
export interface Binaries {
  etcd: string;
  /** The etcd release before the pinned one (hack/test-binaries.sh etcd-previous), to upgrade from. */
  etcdPrevious: string;
  etcdctl: string;
  etcdutl: string;
  benchmark: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  kubectl: string;
  kwok: string;
  /** An S3-compatible server over a directory, for backup tests. */
  versitygw: string;
  /** Prometheus's promtool (hack/test-binaries.sh promtool), to check and unit-test the chart's alert rules. */
  promtool: string;
  /** HTTP/2 conformance tester (hack/test-binaries.sh h2spec). */
  h2spec: string;
}

const setOf: Record<keyof Binaries, [set: string, file: string]> = {
  etcd: ['etcd', 'etcd'],
  etcdPrevious: ['etcd-previous', 'etcd'],
  etcdctl: ['etcd', 'etcdctl'],
  etcdutl: ['etcd', 'etcdutl'],
  benchmark: ['etcd', 'benchmark'],
  kubeApiserver: ['kubernetes', 'kube-apiserver'],
  kubeControllerManager: ['kubernetes', 'kube-controller-manager'],
  kubeScheduler: ['kubernetes', 'kube-scheduler'],
  kubectl: ['kubernetes', 'kubectl'],
  kwok: ['kwok', 'kwok'],
  versitygw: ['versitygw', 'versitygw'],
  promtool: ['promtool', 'promtool'],
  h2spec: ['h2spec', 'h2spec'],
};
const dirs = new Map<string, string>();

/** The bin directory of one set, asking hack/test-binaries.sh (which builds it when missing) once per process. */
function setDir(set: string): string {
  let dir = dirs.get(set);
  if (dir === undefined) {
    const script = path.join(import.meta.dirname, '..', '..', 'hack', 'test-binaries.sh');
    const out = execFileSync('bash', [script, set], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const variable = `${set.toUpperCase().replaceAll('-', '_')}_BIN`;
    const line = out.split('\n').find((l) => l.startsWith(`${variable}=`));
    if (line === undefined) throw new Error(`hack/test-binaries.sh ${set} printed no ${variable} line`);
    dir = line.slice(line.indexOf('=') + 1);
    dirs.set(set, dir);
  }
  return dir;
}

/**
 * The test binaries, each located (and built when missing) only when first read, so that etcd-only
 * tests never wait for the Kubernetes build.
 */
export function binaries(): Binaries {
  const result = {} as Binaries;
  for (const [name, [set, file]] of Object.entries(setOf) as [keyof Binaries, [string, string]][]) {
    Object.defineProperty(result, name, {
      enumerable: true,
      get: () => {
        const full = path.join(setDir(set), file);
        if (!existsSync(full)) throw new Error(`test binary ${full} is missing; run: bash hack/test-binaries.sh ${set}`);
        return full;
      },
    });
  }
  return result;
}
