import { z } from 'zod';
import { stringify } from 'yaml';
import { API_VERSION, GROUP, KIND, PLURAL, SHORT_NAMES, SINGULAR, specSchema, VERSION } from './etcd-topology.ts';
import { nameRule, toValidation } from './rules.ts';
import { statusSchema } from './status.ts';
import { toStructural, type SchemaNode } from './structural.ts';

export const CRD_NAME = `${PLURAL}.${GROUP}`;
/** Where the generated CRD lives, relative to the repository root. */
export const CRD_PATH = `crds/${GROUP}_${PLURAL}.yaml`;

/** The structural OpenAPI schema of one zod schema, as the API server will validate input. */
export function openApiOf(schema: z.ZodType): SchemaNode {
  return toStructural(z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input' }));
}

/** The CustomResourceDefinition of EtcdTopology, generated from the zod schemas. */
export function buildCrd(): SchemaNode {
  const spec = openApiOf(specSchema);
  const status = openApiOf(statusSchema);
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: CRD_NAME },
    spec: {
      group: GROUP,
      names: { kind: KIND, listKind: `${KIND}List`, plural: PLURAL, singular: SINGULAR, shortNames: SHORT_NAMES, categories: ['etcd'] },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'Members', type: 'string', jsonPath: '.status.membersReady', description: 'Healthy voters / members.count' },
            { name: 'Proxies', type: 'string', jsonPath: '.status.proxiesReady', description: 'Ready / desired proxies' },
            { name: 'Leader', type: 'string', jsonPath: '.status.leader', description: 'The member etcd reports as leader' },
            { name: 'Available', type: 'string', jsonPath: '.status.conditions[?(@.type=="Available")].status' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: {
              description: `${KIND} (${API_VERSION}) runs an odd-sized etcd cluster on the central nodes and an etcd proxy on every other node.`,
              type: 'object',
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec: { ...spec, description: 'The desired topology.', default: {} },
                status: { ...status, description: 'What the operator observed, from etcd itself.' },
              },
              'x-kubernetes-validations': [toValidation(nameRule)],
            },
          },
        },
      ],
    },
  };
}

/** The CRD as the YAML file under crds/, byte for byte. */
export function renderCrdYaml(): string {
  return `# Generated from src/api by \`npm run gen:crds\` (hack/gen-crds.ts); do not edit.\n${stringify(buildCrd(), { lineWidth: 0 })}`;
}
