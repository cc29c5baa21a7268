import { defineConfig } from 'vitest/config';

// Two projects: pure unit tests beside the code, and tests against real processes
// (etcd members, the local Kubernetes cluster) under test/, which run one file at a time
// because the machine has two cores and each file starts its own servers.
export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['src/**/*.test.ts'], environment: 'node' } },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          // The node-pool upgrade scenario runs alone (npm run test:upgrade): in 1 of 12 runs on
          // 2026-12-02 a replacement member's pod stayed Pending on its new node for 5 minutes
          // (cause not found yet, issue 12 item 7), so it is kept out of npm test until fixed.
          exclude: ['test/quorum/node-pool-upgrade.test.ts'],
          environment: 'node',
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 300_000,
        },
      },
      {
        test: {
          name: 'upgrade',
          include: ['test/quorum/node-pool-upgrade.test.ts'],
          environment: 'node',
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
