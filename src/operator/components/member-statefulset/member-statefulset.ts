import type { V1Container, V1PodTemplateSpec, V1StatefulSet, V1Volume } from '@kubernetes/client-node';
import { GROUP, type EtcdTopology } from '../../../api/etcd-topology.ts';
import { desiredHash } from '../../apply.ts';
import type { Component, ComponentContext } from '../meta.ts';
import { labels, objectMeta, resourceRequirements, restrictedContainerSecurity, selectorLabels } from '../meta.ts';
import { CLIENT_PORT, memberScheme, METRICS_PORT, namesOf, PEER_PORT } from '../names.ts';
import { destinationWiring, SNAPSHOT_NODE_OPTIONS } from '../snapshot-job/snapshot-job.ts';
import { clusterMembership, configArgs, DATA_DIR, DATA_MOUNT, membershipArgs, restoreClusterToken } from './args.ts';
import { memberTlsVolumes } from '../tls/tls-volumes.ts';

/** The readiness gate the operator sets from etcd's own view of each member. */
export const MEMBER_HEALTHY_GATE = `${GROUP}/member-healthy`;
/** Pod template annotation: the hash of the member configuration, for "is this pod up to date". */
export const CONFIG_HASH_ANNOTATION = 'etcdtopology.io/config-hash';
/** Pod template annotation: the hash of the CA bundle the member trusts (see ComponentContext.trustHash). */
export const TRUST_HASH_ANNOTATION = 'etcdtopology.io/trust-hash';

/** The member image: spec.image, else the upstream etcd image of spec.version. */
export function memberImage(topology: EtcdTopology): string {
  return topology.spec.image ?? `gcr.io/etcd-development/etcd:v${topology.spec.version}`;
}

function container(topology: EtcdTopology, args: string[]): V1Container {
  const probe = (path: string, failureThreshold: number) => ({
    httpGet: { path, port: METRICS_PORT, scheme: 'HTTP' },
    periodSeconds: 10,
    timeoutSeconds: 5,
    failureThreshold,
  });
  return {
    name: 'etcd',
    image: memberImage(topology),
    command: ['etcd'],
    args,
    env: [
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    ],
    ports: [
      { name: 'client', containerPort: CLIENT_PORT, protocol: 'TCP' },
      { name: 'peer', containerPort: PEER_PORT, protocol: 'TCP' },
      { name: 'metrics', containerPort: METRICS_PORT, protocol: 'TCP' },
    ],
    // etcd 3.6 serves /livez and /readyz on the metrics listener, which no client traffic shares.
    startupProbe: { ...probe('/livez', 30), periodSeconds: 5 },
    livenessProbe: probe('/livez', 6),
    readinessProbe: probe('/readyz', 3),
    volumeMounts: [{ name: 'data', mountPath: DATA_MOUNT }, ...memberTlsVolumes(topology).mounts],
    // etcd writes no termination message file: the log tail of a failed run becomes the message, which
    // is how the operator tells a crash loop on a corrupt data directory from any other.
    terminationMessagePolicy: 'FallbackToLogsOnError',
    ...resourceRequirements(topology.spec.members.resources),
    securityContext: restrictedContainerSecurity,
  };
}

function podTemplate(topology: EtcdTopology, args: string[], configHash: string, trustHash: string | undefined): V1PodTemplateSpec {
  const { members } = topology.spec;
  const selector = selectorLabels(topology, 'member');
  const trust: Record<string, string> = topology.spec.tls.enabled && trustHash !== undefined ? { [TRUST_HASH_ANNOTATION]: trustHash } : {};
  return {
    metadata: { labels: labels(topology, 'member'), annotations: { [CONFIG_HASH_ANNOTATION]: configHash, ...trust } },
    spec: {
      serviceAccountName: namesOf(topology).memberServiceAccount,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      readinessGates: [{ conditionType: MEMBER_HEALTHY_GATE }],
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [{ matchExpressions: Object.entries(members.nodeSelector).map(([key, value]) => ({ key, operator: 'In', values: [value] })) }],
          },
        },
        // Two members on one node would fall together: one node failure could then take quorum.
        podAntiAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: selector }, topologyKey: 'kubernetes.io/hostname' }],
        },
      },
      topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: selector } }],
      tolerations: members.tolerations,
      securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } },
      terminationGracePeriodSeconds: 60,
      containers: [container(topology, args)],
      ...(topology.spec.tls.enabled ? { volumes: memberTlsVolumes(topology).volumes } : {}),
    },
  };
}

/** The hash of everything a rolling update must apply: the pod template without membership flags, with the trust bundle's hash. */
export function memberConfigHash(topology: EtcdTopology, trustHash?: string): string {
  return desiredHash(podTemplate(topology, configArgs(topology), '', trustHash));
}

/**
 * The init container that restores a new member's data directory from the backup the cluster starts
 * from, in this project's image (which carries etcdutl): the same snapshot, key and sha256 for every
 * member, with this member's name and the full initial cluster. It does nothing once the data exists.
 */
function restoreContainer(t: EtcdTopology, context: ComponentContext, initialCluster: string[]): { container: V1Container; volumes: V1Volume[] } {
  const from = t.spec.bootstrap!.fromBackup!;
  const restore = context.restore!;
  const wiring = destinationWiring(from, { readOnly: true });
  const host = `$(POD_NAME).${namesOf(t).peerService}.${t.metadata.namespace}.svc`;
  return {
    container: {
      name: 'restore',
      image: context.proxyImage,
      args: [
        'snapshot', 'restore',
        `--topology=${t.metadata.namespace}/${t.metadata.name}`,
        ...wiring.args,
        `--key=${restore.key}`,
        ...(restore.sha256 ? [`--sha256=${restore.sha256}`] : []),
        '--name=$(POD_NAME)',
        ...initialCluster.filter((a) => a.startsWith('--initial-cluster=')),
        `--initial-cluster-token=${restoreClusterToken(t)}`,
        `--initial-advertise-peer-urls=${memberScheme(t)}://${host}:${PEER_PORT}`,
        `--data-dir=${DATA_DIR}`,
      ],
      env: [{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }, { name: 'NODE_OPTIONS', value: SNAPSHOT_NODE_OPTIONS }, ...wiring.env],
      volumeMounts: [{ name: 'data', mountPath: DATA_MOUNT }, ...wiring.mounts],
      terminationMessagePolicy: 'FallbackToLogsOnError',
      securityContext: restrictedContainerSecurity,
    },
    volumes: wiring.volumes,
  };
}

/**
 * The member StatefulSet. Updates are OnDelete, because the operator replaces members itself, one at a
 * time, followers first and the leader last, only while quorum allows. Pods are managed in Parallel,
 * because a new cluster elects its first leader only once a quorum of members runs, so OrderedReady
 * would wait forever for member 0 to become ready alone.
 */
export const memberStatefulSet: Component<V1StatefulSet> = {
  apiVersion: 'apps/v1',
  kind: 'StatefulSet',
  names: (t) => [namesOf(t).memberStatefulSet],
  desired: (t: EtcdTopology, context: ComponentContext) => {
    const membership = clusterMembership(t, context);
    const storage = t.spec.members.storage;
    const membershipFlags = membershipArgs(t, membership);
    const template = podTemplate(t, [...configArgs(t), ...membershipFlags], memberConfigHash(t, context.trustHash), context.trustHash);
    // Like the membership flags, the restore step is read only by members of a new cluster, so it is
    // kept out of the configuration hash: dropping it once the cluster exists restarts nothing.
    if (t.spec.bootstrap?.fromBackup && context.restore && membership.state === 'new') {
      const { container: init, volumes } = restoreContainer(t, context, membershipFlags);
      template.spec!.initContainers = [init];
      if (volumes.length > 0) template.spec!.volumes = [...(template.spec!.volumes ?? []), ...volumes];
    }
    return {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: objectMeta(t, namesOf(t).memberStatefulSet, 'member'),
      spec: {
        serviceName: namesOf(t).peerService,
        replicas: membership.replicas,
        podManagementPolicy: 'Parallel',
        updateStrategy: { type: 'OnDelete' },
        // Volumes outlive scale-in and deletion: etcd data is never thrown away by a controller.
        persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
        selector: { matchLabels: selectorLabels(t, 'member') },
        template,
        volumeClaimTemplates: [
          {
            apiVersion: 'v1',
            kind: 'PersistentVolumeClaim',
            metadata: { name: 'data', labels: labels(t, 'member') },
            spec: {
              accessModes: ['ReadWriteOnce'],
              ...(storage.storageClassName !== undefined ? { storageClassName: storage.storageClassName } : {}),
              resources: { requests: { storage: String(storage.size) } },
            },
          },
        ],
      },
    };
  },
  hold: (live, context, guards) => {
    // Rendering without the member set would describe a brand-new cluster (an operator that has just
    // started, or restarted during an etcd outage, has not read it yet).
    if (live && context.members === undefined) return 'the member set has not been read from etcd yet';
    // A restore whose backup is not resolved yet: no member may start, and none may start empty.
    if (!live && guards.holdMembers) return 'no member may start yet';
    return undefined;
  },
};
