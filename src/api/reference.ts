import { openApiOf } from './crd.ts';
import { API_VERSION, KIND, SHORT_NAMES, specSchema } from './etcd-topology.ts';
import type { SchemaNode } from './structural.ts';

/** Where the generated API reference lives, relative to the repository root. */
export const REFERENCE_PATH = 'docs/api.md';

interface Row {
  path: string;
  type: string;
  default: string;
  text: string;
}

/** The spec field reference (docs/api.md), generated from the same schema as the CRD. */
export function renderApiReference(): string {
  const rows: Row[] = [];
  walk(openApiOf(specSchema), 'spec', rows);
  const table = rows.map((r) => `| \`${r.path}\` | ${r.type} | ${r.default} | ${r.text} |`).join('\n');
  return `<!-- Generated from src/api by \`npm run gen:crds\` (hack/gen-crds.ts); do not edit. -->
# ${KIND} API reference

\`apiVersion: ${API_VERSION}\`, \`kind: ${KIND}\`, namespaced, short name \`${SHORT_NAMES.join(', ')}\`.
Every field is optional; the API server fills in the defaults below.

| field | type | default | description |
| --- | --- | --- | --- |
${table}

## Decisions worth knowing

- **members.count** is 1, 3, 5 or 7. An even count tolerates no more failures than the odd count
  below it while needing a larger quorum; more than 7 slows every write.
- **disruption.maxUnavailable** is at most the fault tolerance, (count-1)/2. It has no schema default
  because the right default depends on the count: when unset the operator uses 1, or 0 for a single
  member. A single member tolerates no failure, so its PodDisruptionBudget allows no eviction at all:
  draining its node is refused until you scale to 3 members (or delete the topology). A one-member
  topology is for development; there is no way to disrupt it voluntarily without an outage.
- **members.storage.storageClassName** and **members.storage.size** are immutable, because a
  StatefulSet's volume claim template is; expand the PersistentVolumeClaims directly if the class allows.
- **members.autoCompaction.retention**, when unset, is 1h in periodic mode and 1000 revisions in
  revision mode.
- **proxy.nodeSelector** unset or empty means every node that does not carry the central selector's
  labels. With **proxy.hostNetwork** the proxy listens on the node's 127.0.0.1 only, so no node-local
  Service is made: only host-network clients on the node can reach it, as in the source documents.
- **metadata.name** must be a DNS-1035 label of at most 45 characters, because the Services and the
  member StatefulSet are named after it.

## Status

\`status.conditions\` holds Available, Progressing and Degraded (Kubernetes condition conventions).
Wait for a topology with \`kubectl wait --for=condition=Available etop/NAME\`.
\`kubectl get etop\` shows members ready/desired, proxies ready/desired, the leader, Available and age.
`;
}

function walk(node: SchemaNode, path: string, rows: Row[]): void {
  const props = node['properties'] as Record<string, SchemaNode> | undefined;
  if (props === undefined) return;
  for (const [key, child] of Object.entries(props)) {
    const p = `${path}.${key}`;
    const rules = (child['x-kubernetes-validations'] as { message: string }[] | undefined) ?? [];
    const text = [child['description'] as string | undefined, ...rules.map((r) => `Rule: ${r.message}.`)].filter((t) => t !== undefined).join(' ');
    rows.push({ path: p, type: typeOf(child), default: child['default'] === undefined ? '' : `\`${JSON.stringify(child['default'])}\``, text: text.replaceAll('|', '\\|').replaceAll('<', '&lt;').replaceAll('>', '&gt;') });
    if (child['type'] === 'object') walk(child, p, rows);
    const items = child['items'] as SchemaNode | undefined;
    if (items !== undefined) walk(items, `${p}[]`, rows);
  }
}

function typeOf(n: SchemaNode): string {
  if (n['x-kubernetes-int-or-string'] === true) return 'quantity';
  if (n['enum'] !== undefined) return (n['enum'] as unknown[]).map(String).join(' \\| ');
  if (n['type'] === 'array') return `${typeOf((n['items'] as SchemaNode | undefined) ?? {})}[]`;
  if (n['type'] === 'object' && n['additionalProperties'] !== undefined) return `map[string]${typeOf(n['additionalProperties'] as SchemaNode)}`;
  return typeof n['type'] === 'string' ? n['type'] : 'any';
}
