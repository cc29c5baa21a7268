/**
 * V8 heap sizing for the operator: a 2 MiB young generation instead of 16 MiB and an old generation
 * capped at 96 MiB. At 100 topologies on 1,000 nodes the operator keeps about 41 MiB live, but with
 * Node's defaults V8 grew its heap to 191 MiB committed under allocation pressure (RSS 264 MiB);
 * docs/bench/operator.md has the run with these flags. The chart's `nodeOptions` default and
 * `npm run bench:operator` use this constant (src/operator/node-options.test.ts checks the chart),
 * so what is measured is what is deployed. Raise the cap with the number of topologies and nodes.
 */
export const OPERATOR_NODE_OPTIONS = '--max-semi-space-size=2 --max-old-space-size=96';

/**
 * glibc's malloc arenas for the operator: one, malloc's main arena. By default every thread that
 * allocates gets an arena of its own (V8's GC and compiler helpers, libuv's pool: up to 8 per core),
 * and each keeps what was freed in it. At 100 topologies on 1,000 nodes (docs/bench/operator-memory.md,
 * session 13) the operator's RSS was 153-154 MiB settled with glibc's default and 147-148 with 2
 * arenas, and with 2 it still grew by 5-21 MiB while spec changes ran, in the second arena's
 * anonymous pages; with 1 it was 139-140 settled and 144-145 after the changes, for the same CPU
 * (0.55 s/s against 0.53-0.54 while the changes ran: malloc's lock costs it nothing measurable).
 * The chart's `mallocArenaMax` and `npm run bench:operator` use it, as OPERATOR_NODE_OPTIONS.
 */
export const OPERATOR_MALLOC_ARENA_MAX = 1;
