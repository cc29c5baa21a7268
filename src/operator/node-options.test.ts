import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { OPERATOR_MALLOC_ARENA_MAX, OPERATOR_NODE_OPTIONS } from './node-options.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const read = (file: string): string => readFileSync(path.join(root, file), 'utf8');

describe('OPERATOR_NODE_OPTIONS', () => {
  it("is the chart's nodeOptions default, so the benchmark measures what is deployed", () => {
    expect((parse(read('deploy/etcd-topology/values.yaml')) as { nodeOptions: unknown }).nodeOptions).toBe(OPERATOR_NODE_OPTIONS);
  });

  it("goes with OPERATOR_MALLOC_ARENA_MAX, the chart's mallocArenaMax default", () => {
    expect((parse(read('deploy/etcd-topology/values.yaml')) as { mallocArenaMax: unknown }).mallocArenaMax).toBe(OPERATOR_MALLOC_ARENA_MAX);
  });

  it("is the operator container's NODE_OPTIONS in the rendered manifests", () => {
    interface Doc {
      kind?: string;
      spec?: { template?: { spec?: { containers?: { name: string; env?: { name: string; value?: string }[] }[] } } };
    }
    const deployment = parseAllDocuments(read('deploy/manifests/etcd-topology.yaml')).map((d) => d.toJS() as Doc | null).find((d) => d?.kind === 'Deployment');
    const env = deployment?.spec?.template?.spec?.containers?.find((c) => c.name === 'operator')?.env ?? [];
    expect(env.find((e) => e.name === 'NODE_OPTIONS')?.value).toBe(OPERATOR_NODE_OPTIONS);
    expect(env.find((e) => e.name === 'MALLOC_ARENA_MAX')?.value).toBe(String(OPERATOR_MALLOC_ARENA_MAX));
  });
});
