import { z } from 'zod';
import { maintenanceSchema } from './maintenance.ts';
import { quantity } from './quantity.ts';
import { backupSpecSchema, bootstrapSchema } from './backup.ts';
import { bootstrapImmutableRule, DURATION_PATTERN, maxUnavailableRule, memberCountRule, nameRule, refineWith, retentionRule, storageClassImmutableRule, storageSizeImmutableRule, toValidation } from './rules.ts';
import { proxyTls, proxyTlsRule, tls } from './tls.ts';
import { statusSchema } from './status.ts';

export const GROUP = 'etcdtopology.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'EtcdTopology';
export const PLURAL = 'etcdtopologies';
export const SINGULAR = 'etcdtopology';
export const SHORT_NAMES = ['etop'];

/** The etcd release the project is tested with (hack/test-binaries.sh builds the same one). */
export const DEFAULT_ETCD_VERSION = '3.6.16';
/** The label that marks the central nodes, and the taint members tolerate there. */
export const CENTRAL_ROLE_LABEL = `${GROUP}/role`;
export const CENTRAL_TAINT_KEY = `${GROUP}/central`;

const labels = z.record(z.string(), z.string());

const toleration = z.object({
  key: z.string().optional(),
  operator: z.enum(['Exists', 'Equal']).optional(),
  value: z.string().optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
  tolerationSeconds: z.int().optional(),
});

const resources = z.object({
  limits: z.record(z.string(), quantity).optional(),
  requests: z.record(z.string(), quantity).optional(),
});

const duration = z.string().regex(new RegExp(DURATION_PATTERN), 'expected a duration such as 500ms, 30s, 1m or 1h30m');

const members = z.object({
  count: z
    .int()
    .superRefine(refineWith(memberCountRule))
    .default(3)
    .meta({
      description: 'Number of etcd voting members: 1, 3, 5 or 7. Quorum is count/2+1; the cluster survives (count-1)/2 member failures.',
      'x-kubernetes-validations': [toValidation(memberCountRule)],
    }),
  nodeSelector: labels
    .default({ [CENTRAL_ROLE_LABEL]: 'central' })
    .meta({ description: 'Labels of the central nodes the members must run on (required node affinity), one member per node.' }),
  tolerations: z
    .array(toleration)
    .default([{ key: CENTRAL_TAINT_KEY, operator: 'Exists', effect: 'NoSchedule' }])
    .meta({ description: 'Tolerations of the member pods; the default tolerates the recommended central taint etcdtopology.io/central:NoSchedule.' }),
  storage: z
    .object({
      size: quantity.default('8Gi').meta({ description: 'Size of each member\'s PersistentVolumeClaim. Immutable.' }),
      storageClassName: z.string().optional().meta({ description: 'StorageClass of the members\' volumes; the cluster default when unset. Immutable.' }),
    })
    .prefault({})
    .meta({
      description: 'Each member\'s data volume.',
      'x-kubernetes-validations': [toValidation(storageClassImmutableRule), toValidation(storageSizeImmutableRule)],
    }),
  resources: resources.optional().meta({ description: 'Compute requests and limits of the etcd container.' }),
  quotaBackendBytes: quantity
    .default('8Gi')
    .meta({ description: 'etcd --quota-backend-bytes: the database size at which etcd raises the NOSPACE alarm and refuses writes.' }),
  autoCompaction: z
    .object({
      mode: z.enum(['periodic', 'revision']).default('periodic').meta({ description: 'etcd --auto-compaction-mode.' }),
      retention: z.string().max(64).optional().meta({
        description: 'etcd --auto-compaction-retention: a duration (periodic; default 1h) or a number of revisions (revision; default 1000).',
      }),
    })
    .superRefine(refineWith(retentionRule))
    .prefault({ mode: 'periodic', retention: '1h' })
    .meta({ 'x-kubernetes-validations': [toValidation(retentionRule)] }),
});

const proxy = z.object({
  enabled: z.boolean().default(true).meta({ description: 'Run a proxy on every selected node.' }),
  mode: z.enum(['readwrite', 'readonly']).default('readwrite').meta({ description: 'readonly refuses every write (gRPC UNIMPLEMENTED, HTTP 501).' }),
  nodeSelector: labels.optional().meta({ description: 'Nodes that run a proxy; when unset or empty, every node that is not central.' }),
  tolerations: z.array(toleration).optional().meta({ description: 'Tolerations of the proxy pods.' }),
  hostNetwork: z.boolean().default(false).meta({
    description: 'Listen on the node\'s 127.0.0.1 in the host network, as in the source documents; no node-local Service is made then.',
  }),
  port: z.int().min(1).max(65535).default(2379).meta({ description: 'Client port of the proxy.' }),
  refreshInterval: duration.default('30s').meta({ description: 'How often the proxy re-reads the member list.' }),
  resources: resources.optional().meta({ description: 'Compute requests and limits of the proxy container.' }),
  tls: proxyTls.prefault({}).meta({ description: 'TLS on the proxy\'s own client port (plaintext by default; the proxy always uses mutual TLS to the members when tls.enabled).' }),
});

const disruption = z.object({
  maxUnavailable: z.int().min(0).optional().meta({
    description:
      'Voluntary disruptions (evictions, rolling updates, defragmentation) never leave fewer healthy voters than count - maxUnavailable, ' +
      'nor fewer than quorum. At most (count-1)/2; when unset, 1, or 0 for a single member.',
  }),
});

/** The spec of an EtcdTopology; parsing applies the same defaults as the API server. */
export const specSchema = z
  .object({
    version: z
      .string()
      .regex(/^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$/, 'expected an etcd version such as 3.6.16')
      .default(DEFAULT_ETCD_VERSION)
      .meta({ description: 'etcd version of the members.' }),
    image: z.string().optional().meta({ description: 'Member image; default gcr.io/etcd-development/etcd:v<version>.' }),
    members: members.prefault({}).meta({ description: 'The etcd voting members on the central nodes.' }),
    proxy: proxy.prefault({}).meta({ description: 'The etcd proxy on every other node.' }),
    disruption: disruption.prefault({}).meta({ description: 'How many members voluntary disruptions may take down at once.' }),
    backup: backupSpecSchema.optional().meta({ description: 'Scheduled and on-demand backups (etcd snapshots) to an S3-compatible bucket or a volume; also taken before rolling updates and scale-in.' }),
    bootstrap: bootstrapSchema.optional().meta({ description: 'How the members start when the topology is created; immutable.' }),
    maintenance: maintenanceSchema.prefault({}).meta({ description: 'Defragmentation by rule and NOSPACE recovery.' }),
    tls: tls.prefault({}).meta({ description: 'TLS on every etcd connection: clients, peers, the operator and the proxies (see docs/tls.md).' }),
  })
  .superRefine(refineWith(maxUnavailableRule))
  .superRefine(refineWith(proxyTlsRule))
  .meta({ 'x-kubernetes-validations': [toValidation(maxUnavailableRule), toValidation(bootstrapImmutableRule), toValidation(proxyTlsRule)] });

const metadata = z.looseObject({
  name: z.string().optional(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  generation: z.int().optional(),
  resourceVersion: z.string().optional(),
  labels: labels.optional(),
  annotations: labels.optional(),
});

/** A whole EtcdTopology object as read from the API server. */
export const etcdTopologySchema = z
  .object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(KIND),
    metadata,
    spec: specSchema.prefault({}),
    status: statusSchema.optional(),
  })
  .superRefine(refineWith(nameRule));

export type EtcdTopologySpec = z.infer<typeof specSchema>;
export type EtcdTopologySpecInput = z.input<typeof specSchema>;
export type EtcdTopology = z.infer<typeof etcdTopologySchema>;
export type EtcdTopologyInput = z.input<typeof etcdTopologySchema>;
export type Toleration = z.infer<typeof toleration>;
export type Resources = z.infer<typeof resources>;
export type TlsSpec = z.infer<typeof tls>;
