#!/usr/bin/env node
import { TopologyError } from './errors.ts';

const usage = `usage: etcd-topology <command> [flags]

commands:
  proxy      run the node-local etcd proxy
  operator   run the EtcdTopology operator
  check      answer operational questions (check drain NODE)
  backup     take a backup of a topology now (backup NAME [-n NS] [--wait])
  snapshot   the backup and restore steps the operator runs in Jobs and init containers
  version    print the version (also --version)

Every flag also reads from ETCD_TOPOLOGY_<FLAG>. Run a command with --help for its flags.`;

// Each command module exports main(argv) resolving to the exit code; loaded lazily so that the
// proxy never pays for the operator's Kubernetes client and the other way round.
const commands: Record<string, () => Promise<{ main: (argv: string[]) => Promise<number> }>> = {
  proxy: () => import('./proxy/main.ts'),
  operator: () => import('./operator/main.ts'),
  check: () => import('./check/main.ts'),
  backup: () => import('./backup/request.ts'),
  snapshot: () => import('./backup/main.ts'),
};

async function main(argv: string[]): Promise<number> {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  if (major < 22 || (major === 22 && minor < 19)) {
    console.error(`etcd-topology: Node.js ${process.versions.node} is too old; it needs Node.js 22.19 or newer (the image ships Node 24)`);
    return 1;
  }
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.error(usage);
    return command === undefined ? 2 : 0;
  }
  if (command === 'version' || command === '--version') {
    const { version } = await import('./version.ts');
    process.stdout.write(`etcd-topology ${version()}\n`);
    return 0;
  }
  const load = commands[command];
  if (!load) {
    console.error(`etcd-topology: unknown command "${command}"; accepted: ${[...Object.keys(commands), 'version'].join(', ')}`);
    return 2;
  }
  const mod = await load();
  return mod.main(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // Usage errors are one line; anything else is a bug or an environment problem worth its stack.
    if (err instanceof TopologyError) console.error(`etcd-topology: ${err.message}`);
    else console.error(err);
    process.exitCode = err instanceof TopologyError && err.code === 'ETOP_USAGE' ? 2 : 1;
  },
);
