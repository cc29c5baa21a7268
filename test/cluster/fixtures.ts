// Manifests the harness tests apply: a plain etcd StatefulSet as any user could write it.

/** A headless Service and a 3-member etcd StatefulSet pinned to central nodes, one per node. */
export function etcdStatefulSet(ns: string, replicas = 3, image = 'gcr.io/etcd-development/etcd:v3.6.16'): string {
  const initial = Array.from({ length: replicas }, (_, i) => `etcd-${i}=http://etcd-${i}.etcd.${ns}.svc:2380`).join(',');
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'List',
    items: [
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'etcd', namespace: ns },
        spec: {
          clusterIP: 'None',
          publishNotReadyAddresses: true,
          selector: { app: 'etcd' },
          ports: [
            { name: 'client', port: 2379 },
            { name: 'peer', port: 2380 },
          ],
        },
      },
      {
        apiVersion: 'apps/v1',
        kind: 'StatefulSet',
        metadata: { name: 'etcd', namespace: ns },
        spec: {
          serviceName: 'etcd',
          replicas,
          podManagementPolicy: 'Parallel',
          selector: { matchLabels: { app: 'etcd' } },
          template: {
            metadata: { labels: { app: 'etcd' } },
            spec: {
              nodeSelector: { 'etcdtopology.io/role': 'central' },
              tolerations: [{ key: 'etcdtopology.io/central', operator: 'Exists', effect: 'NoSchedule' }],
              affinity: {
                podAntiAffinity: {
                  requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { app: 'etcd' } } }],
                },
              },
              terminationGracePeriodSeconds: 10,
              containers: [
                {
                  name: 'etcd',
                  image,
                  command: ['etcd'],
                  args: [
                    '--name=$(POD_NAME)',
                    '--data-dir=/var/lib/etcd/data',
                    '--listen-client-urls=http://$(POD_IP):2379',
                    '--advertise-client-urls=http://$(POD_NAME).etcd.$(POD_NAMESPACE).svc:2379',
                    '--listen-peer-urls=http://$(POD_IP):2380',
                    '--initial-advertise-peer-urls=http://$(POD_NAME).etcd.$(POD_NAMESPACE).svc:2380',
                    `--initial-cluster=${initial}`,
                    '--initial-cluster-state=new',
                    `--initial-cluster-token=${ns}-etcd`,
                    '--listen-metrics-urls=http://$(POD_IP):2381',
                    '--unsafe-no-fsync',
                  ],
                  env: [
                    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                    { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
                  ],
                  ports: [
                    { name: 'client', containerPort: 2379 },
                    { name: 'peer', containerPort: 2380 },
                    { name: 'metrics', containerPort: 2381 },
                  ],
                  readinessProbe: { httpGet: { path: '/readyz', port: 'metrics' }, periodSeconds: 2, failureThreshold: 3 },
                  livenessProbe: { httpGet: { path: '/livez', port: 'metrics' }, periodSeconds: 5, failureThreshold: 6, initialDelaySeconds: 10 },
                  volumeMounts: [{ name: 'data', mountPath: '/var/lib/etcd' }],
                },
              ],
            },
          },
          volumeClaimTemplates: [
            { metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } },
          ],
        },
      },
      {
        apiVersion: 'policy/v1',
        kind: 'PodDisruptionBudget',
        metadata: { name: 'etcd', namespace: ns },
        spec: { minAvailable: Math.floor(replicas / 2) + 1, selector: { matchLabels: { app: 'etcd' } } },
      },
    ],
  });
}

/** A DaemonSet of sleeping busybox pods, which does not tolerate the central taint. */
export function sleeperDaemonSet(ns: string): string {
  return JSON.stringify({
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: 'sleeper', namespace: ns },
    spec: {
      selector: { matchLabels: { app: 'sleeper' } },
      template: {
        metadata: { labels: { app: 'sleeper' } },
        spec: { terminationGracePeriodSeconds: 2, containers: [{ name: 'sleep', image: 'busybox:1.36', command: ['sleep', 'infinity'] }] },
      },
    },
  });
}
