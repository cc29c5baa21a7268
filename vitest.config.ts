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
          environment: 'node',
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
