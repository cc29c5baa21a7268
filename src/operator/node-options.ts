/**
 * V8 heap sizing for the operator: a 2 MiB young generation instead of 16 MiB and an old generation
 * capped at 96 MiB. At 100 topologies on 1,000 nodes the operator keeps about 41 MiB live, but with
 * Node's defaults V8 grew its heap to 191 MiB committed under allocation pressure (RSS 264 MiB);
 * docs/bench/operator.md has the run with these flags. The chart's `nodeOptions` default and
 * `npm run bench:operator` use this constant (src/operator/node-options.test.ts checks the chart),
 * so what is measured is what is deployed. Raise the cap with the number of topologies and nodes.
 */
export const OPERATOR_NODE_OPTIONS = '--max-semi-space-size=2 --max-old-space-size=96';
