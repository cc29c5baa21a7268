import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseDuration } from '../flags.ts';
import { buildCrd, CRD_PATH, renderCrdYaml } from './crd.ts';
import { REFERENCE_PATH, renderApiReference } from './reference.ts';
import { DURATION_PATTERN, maxUnavailableRule, memberCountRule, nameRule, retentionRule, storageClassImmutableRule, storageSizeImmutableRule } from './rules.ts';
import type { SchemaNode } from './structural.ts';
import { certificateLifetimeRule, proxyTlsRule, tlsNotEnabledLaterRule, tlsSecretsTogetherRule, tlsStaysOnRule } from './tls.ts';

const root = path.join(import.meta.dirname, '..', '..');

describe('generated files', () => {
  it.each([
    [CRD_PATH, renderCrdYaml],
    [REFERENCE_PATH, renderApiReference],
  ])('%s is up to date (run npm run gen:crds)', (file, render) => {
    expect(readFileSync(path.join(root, file), 'utf8')).toBe(render());
  });
});

type Crd = {
  spec: {
    names: { shortNames: string[] };
    scope: string;
    versions: { subresources: unknown; additionalPrinterColumns: { name: string; jsonPath: string }[]; schema: { openAPIV3Schema: SchemaNode } }[];
  };
};
const crd = parse(renderCrdYaml()) as Crd;
const version = crd.spec.versions[0]!;
const schema = version.schema.openAPIV3Schema;

/** Every node of the schema with its path. */
function nodes(n: SchemaNode, p = ''): [string, SchemaNode][] {
  const out: [string, SchemaNode][] = [[p, n]];
  for (const [k, v] of Object.entries((n['properties'] ?? {}) as Record<string, SchemaNode>)) out.push(...nodes(v, `${p}.${k}`));
  if (typeof n['items'] === 'object') out.push(...nodes(n['items'] as SchemaNode, `${p}[]`));
  if (typeof n['additionalProperties'] === 'object') out.push(...nodes(n['additionalProperties'] as SchemaNode, `${p}{}`));
  return out;
}

const at = (p: string): SchemaNode => {
  const found = nodes(schema).find(([q]) => q === p);
  if (found === undefined) throw new Error(`no schema node ${p}`);
  return found[1];
};

describe('CRD', () => {
  it('is namespaced, short-named etop, with a status subresource', () => {
    expect(crd.spec.scope).toBe('Namespaced');
    expect(crd.spec.names.shortNames).toEqual(['etop']);
    expect(version.subresources).toEqual({ status: {} });
  });

  it('is structural: every node typed, no $ref, no additionalProperties beside properties, no preserve-unknown-fields', () => {
    const text = JSON.stringify(buildCrd());
    expect(text).not.toContain('$ref');
    expect(text).not.toContain('x-kubernetes-preserve-unknown-fields');
    for (const [p, n] of nodes(schema)) {
      expect(n['type'] !== undefined || n['x-kubernetes-int-or-string'] === true, `type at ${p}`).toBe(true);
      expect(n['properties'] !== undefined && n['additionalProperties'] !== undefined, `properties and additionalProperties at ${p}`).toBe(false);
      if (n['anyOf'] !== undefined) expect(n['anyOf'], `anyOf at ${p}`).toEqual([{ type: 'integer' }, { type: 'string' }]);
    }
  });

  it.each([
    ['.spec.members.count', memberCountRule.rule],
    ['.spec', maxUnavailableRule.rule],
    ['.spec.members.autoCompaction', retentionRule.rule],
    ['.spec.members.storage', storageClassImmutableRule.rule],
    ['.spec.members.storage', storageSizeImmutableRule.rule],
    ['', nameRule.rule],
    ['.spec.tls', tlsStaysOnRule.rule],
    ['.spec', proxyTlsRule.rule],
    ['.spec.tls', tlsNotEnabledLaterRule.rule],
    ['.spec.tls.secrets', tlsSecretsTogetherRule.rule],
    ['.spec.tls.certificateLifetime', certificateLifetimeRule.rule],
  ])('carries the CEL rule at %s', (p, rule) => {
    expect((at(p)['x-kubernetes-validations'] as { rule: string }[]).map((v) => v.rule)).toContain(rule);
  });

  it.each([
    ['.spec.members.count', 3],
    ['.spec.version', '3.6.16'],
    ['.spec.members.nodeSelector', { 'etcdtopology.io/role': 'central' }],
    ['.spec.members.storage.size', '8Gi'],
    ['.spec.members.quotaBackendBytes', '8Gi'],
    ['.spec.proxy.refreshInterval', '30s'],
    ['.spec.proxy.port', 2379],
    ['.spec.tls.enabled', true],
    ['.spec.tls.certificateLifetime', '2160h'],
    ['.spec.members', {}],
    ['.spec', {}],
  ])('defaults %s to %j', (p, value) => {
    expect(at(p)['default']).toEqual(value);
  });

  it('has no default for maxUnavailable, whose right value depends on the count', () => {
    expect(at('.spec.disruption.maxUnavailable')['default']).toBeUndefined();
  });

  it('prints members, proxies, leader, Available and age', () => {
    expect(version.additionalPrinterColumns.map((c) => `${c.name}=${c.jsonPath}`)).toEqual([
      'Members=.status.membersReady',
      'Proxies=.status.proxiesReady',
      'Leader=.status.leader',
      'Available=.status.conditions[?(@.type=="Available")].status',
      'Age=.metadata.creationTimestamp',
    ]);
  });
});

describe('the TypeScript twins of the CEL rules', () => {
  it.each([
    [1, true], [3, true], [5, true], [7, true],
    [0, false], [2, false], [4, false], [6, false], [9, false], [-1, false],
  ])('members.count %d allowed: %s', (count, ok) => {
    expect(memberCountRule.holds(count)).toBe(ok);
  });

  it.each([
    [1, undefined, true], [1, 0, true], [1, 1, false],
    [3, 1, true], [3, 2, false],
    [5, 2, true], [5, 3, false],
    [7, 3, true], [7, 4, false],
  ])('count %d with maxUnavailable %s allowed: %s', (count, maxUnavailable, ok) => {
    expect(maxUnavailableRule.holds({ members: { count }, disruption: { maxUnavailable } })).toBe(ok);
  });

  it.each([
    [undefined, undefined, true],
    ['fast', 'fast', true],
    ['fast', 'slow', false],
    [undefined, 'fast', false],
    ['fast', undefined, false],
  ])('storageClassName %s -> %s allowed: %s', (before, after, ok) => {
    expect(storageClassImmutableRule.holds({ storageClassName: after }, { storageClassName: before })).toBe(ok);
  });

  it.each([
    ['8Gi', '8Gi', true],
    ['8Gi', '16Gi', false],
    [1024, 1024, true],
  ])('storage size %s -> %s allowed: %s', (before, after, ok) => {
    expect(storageSizeImmutableRule.holds({ size: after }, { size: before })).toBe(ok);
  });

  it.each([
    ['periodic', '1h', true], ['periodic', '1h30m', true], ['periodic', '5', true], ['periodic', '1d', false],
    ['revision', '1000', true], ['revision', '1h', false], ['revision', undefined, true],
  ] as const)('retention %s %s allowed: %s', (mode, retention, ok) => {
    expect(retentionRule.holds({ mode, retention })).toBe(ok);
  });

  it.each([
    [true, true, true], [true, false, false], [false, false, true], [false, true, false],
  ])('tls.enabled %s -> %s allowed: %s', (before, after, ok) => {
    expect(tlsStaysOnRule.holds({ enabled: after }, { enabled: before }) && tlsNotEnabledLaterRule.holds({ enabled: after }, { enabled: before })).toBe(ok);
  });

  it.each(['500ms', '30s', '1m', '1h30m', '1.5h', '30', '1d', '', 'h'])('DURATION_PATTERN agrees with parseDuration on %j', (s) => {
    expect(new RegExp(DURATION_PATTERN).test(s)).toBe(parseDuration(s) !== undefined);
  });
});
