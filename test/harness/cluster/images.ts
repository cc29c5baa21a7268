import path from 'node:path';

/** How one container image runs here: its entrypoint and the executables a command may name. */
export interface ImageMapping {
  /** Matches the image reference (registry/repository:tag). */
  match: RegExp;
  description: string;
  /** What runs when the container gives no command. */
  entrypoint: string[];
  /** Executables by base name, for a container `command` and for exec probes. */
  executables: Record<string, string>;
  /** The image's own environment (a Dockerfile's ENV), below the container's env. */
  env?: Record<string, string>;
}

/** The result of mapping a container to a local command line, or why it cannot run here. */
export type ResolvedCommand = { ok: true; argv: string[]; env?: Record<string, string> | undefined } | { ok: false; reason: string; message: string };

/** The etcd release the version rolling-update test upgrades from (hack/test-binaries.sh etcd-previous). */
export const PREVIOUS_ETCD_VERSION = '3.6.15';

/**
 * Builds the image table of the local cluster from the paths of the built binaries. The etcd image of
 * PREVIOUS_ETCD_VERSION runs that release (built on first use); every other etcd tag runs the pinned one.
 */
export function imageTable(paths: { etcd: string; etcdPrevious: () => string; etcdctl: string; etcdutl: string; node: string; cli: string }): ImageMapping[] {
  const shell = { sh: '/bin/sh', '/bin/sh': '/bin/sh', sleep: '/bin/sleep', cat: '/bin/cat', true: '/bin/true', false: '/bin/false' };
  return [
    {
      match: new RegExp(`^(?:[^/]+/)*etcd:v${PREVIOUS_ETCD_VERSION.replaceAll('.', '\\.')}$`),
      description: `etcd v${PREVIOUS_ETCD_VERSION} (the Go-built previous release)`,
      get entrypoint() {
        return [paths.etcdPrevious()];
      },
      get executables() {
        return { ...shell, etcd: paths.etcdPrevious(), '/usr/local/bin/etcd': paths.etcdPrevious(), etcdctl: paths.etcdctl };
      },
    },
    {
      // gcr.io/etcd-development/etcd, quay.io/coreos/etcd, registry.k8s.io/etcd, bitnami/etcd ...
      match: /^(?:[^/]+\/)*etcd(?::[^/]*|@sha256:[0-9a-f]+)?$/,
      description: 'etcd (the Go-built etcd and etcdctl)',
      entrypoint: [paths.etcd],
      executables: {
        ...shell,
        etcd: paths.etcd,
        etcdctl: paths.etcdctl,
        etcdutl: paths.etcdutl,
        '/usr/local/bin/etcd': paths.etcd,
        '/usr/local/bin/etcdctl': paths.etcdctl,
        '/usr/local/bin/etcdutl': paths.etcdutl,
      },
    },
    {
      match: /^(?:[^/]+\/)*etcd-topology(?::[^/]*|@sha256:[0-9a-f]+)?$/,
      description: "etcd-topology (this repo's dist/cli.js on Node, with etcdutl as the image carries it)",
      entrypoint: [paths.node, paths.cli],
      executables: { ...shell, node: paths.node, 'etcd-topology': paths.cli, etcdutl: paths.etcdutl },
      // The image's ENV: where `snapshot restore` finds etcdutl (the Dockerfile puts it on PATH instead).
      env: { ETCD_TOPOLOGY_ETCDUTL: paths.etcdutl },
    },
    {
      match: /^(?:[^/]+\/)*(?:busybox|pause)(?::[^/]*|@sha256:[0-9a-f]+)?$/,
      description: 'busybox and pause (the machine /bin/sh, sleep, cat)',
      entrypoint: ['/bin/sleep', 'infinity'],
      executables: shell,
    },
  ];
}

/** Maps a container's image, command and args to the argv of a local process, as a container runtime would. */
export function resolveCommand(table: ImageMapping[], image: string, command: string[] | undefined, args: string[] | undefined): ResolvedCommand {
  const mapping = table.find((m) => m.match.test(image));
  if (!mapping) {
    return {
      ok: false,
      reason: 'UnsupportedImage',
      message: `image "${image}" has no mapping to a local command in the local cluster; supported: ${table.map((m) => m.description).join('; ')}`,
    };
  }
  if (command === undefined || command.length === 0) {
    // Kubernetes: args without command replace the image's CMD, so they follow the entrypoint.
    return { ok: true, argv: [...mapping.entrypoint, ...(args ?? [])], env: mapping.env };
  }
  const [exe, ...rest] = command as [string, ...string[]];
  const local = mapping.executables[exe] ?? mapping.executables[path.basename(exe)];
  if (local === undefined) {
    return {
      ok: false,
      reason: 'UnsupportedCommand',
      message: `command "${exe}" is not available in image "${image}" in the local cluster; available: ${Object.keys(mapping.executables).join(', ')}`,
    };
  }
  // A node script is run by the node binary; anything else is executed directly.
  const argv = local.endsWith('.js') ? [mapping.executables['node'] ?? 'node', local] : [local];
  return { ok: true, argv: [...argv, ...rest, ...(args ?? [])], env: mapping.env };
}

/**
 * Expands $(VAR) references the way the kubelet does: $$ escapes a dollar, and a reference to an
 * undefined variable is left as written.
 */
export function expandVars(s: string, vars: Record<string, string>): string {
  return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (all, name: string | undefined) => {
    if (name === undefined) return '$';
    return vars[name] ?? all;
  });
}
