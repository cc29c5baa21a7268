import { createHash } from 'node:crypto';
import type { V1DaemonSet, V1NodeSelectorTerm, V1PodTemplateSpec } from '@kubernetes/client-node';
import type { EtcdTopology } from '../../../api/etcd-topology.ts';
import type { Component, ComponentContext } from '../meta.ts';
import { labels, objectMeta, resourceRequirements, restrictedContainerSecurity, selectorLabels } from '../meta.ts';
import { desiredMemberNames, memberClientURL, namesOf, PROXY_METRICS_PORT } from '../names.ts';
import { proxyTls } from '../tls/tls-volumes.ts';

/**
 * Where proxies run: spec.proxy.nodeSelector when given, else every node that is not central. "Not
 * central" negates the central selector's labels taken together: a node lacking any one of them (NotIn
 * also matches a node without the label) is not central, so there is one OR-ed term per label.
 */
export function proxyNodeTerms(topology: EtcdTopology): V1NodeSelectorTerm[] | undefined {
  const explicit = Object.entries(topology.spec.proxy.nodeSelector ?? {});
  if (explicit.length > 0) return [{ matchExpressions: explicit.map(([key, value]) => ({ key, operator: 'In', values: [value] })) }];
  const central = Object.entries(topology.spec.members.nodeSelector);
  // An empty central selector makes every node central; proxies then run everywhere rather than nowhere.
  if (central.length === 0) return undefined;
  return central.map(([key, value]) => ({ matchExpressions: [{ key, operator: 'NotIn', values: [value] }] }));
}

/** The proxy's command line: seeded with every member's client URL; it discovers the live set itself. */
export function proxyArgs(topology: EtcdTopology): string[] {
  const { proxy } = topology.spec;
  // In the host network the proxy serves the node's own loopback only, as the source documents do;
  // otherwise it serves its pod IP, which the node-local Service routes to.
  const scheme = topology.spec.tls.enabled && proxy.tls.enabled ? 'https' : 'http';
  const listen = proxy.hostNetwork ? `${scheme}://127.0.0.1:${proxy.port}` : `${scheme}://$(POD_IP):${proxy.port}`;
  return [
    'proxy',
    `--endpoints=${desiredMemberNames(topology).map((m) => memberClientURL(topology, m)).join(',')}`,
    `--listen-client-urls=${listen}`,
    `--mode=${proxy.mode}`,
    `--refresh-interval=${proxy.refreshInterval}`,
    `--metrics-addr=$(POD_IP):${PROXY_METRICS_PORT}`,
    ...proxyTls(topology).args,
    // Both ports are shared with the replacement while the DaemonSet rolls (see hostNetworkRoll).
    ...(proxy.hostNetwork ? ['--reuse-port=true'] : []),
  ];
}

/**
 * V8 heap sizing for the proxy: a 2 MiB young generation instead of 16 MiB and an old generation
 * capped at 256 MiB. Measured side by side on the built proxy (docs/bench/proxy.md, "Footprint"):
 * after the benchmark's load 134 MiB RSS with these flags and 301 MiB without, with 10,000 open watch
 * streams 139 and 304 MiB; idle the same (86 MiB). Set here and not in the image, which also runs
 * the operator.
 */
export const PROXY_NODE_OPTIONS = '--max-semi-space-size=2 --max-old-space-size=256';

/**
 * Resources from the same measurements. The memory request covers what a busy proxy holds (134 MiB
 * after the benchmark's load, 139 MiB with 10,000 watch streams) with some margin, so that the
 * scheduler reserves it on every node; idle it holds about 80-90 MiB, of which 50-55 are pages of the
 * node binary (shared, reclaimable). The limit covers the 256 MiB old-space cap plus what lives
 * outside the V8 heap (the binary's pages, code, the young generation, buffers: about 100 MiB) with
 * margin, so the kernel never kills a proxy that V8 would have kept within its heap. No CPU limit:
 * throttling a proxy adds latency to every call on the node; it uses 15-20 µs of CPU per request.
 */
export const defaultProxyResources = { requests: { cpu: '50m', memory: '160Mi' }, limits: { memory: '512Mi' } };

/**
 * How a host-network proxy is replaced without leaving its node without one. Both pods live in the
 * node's network namespace, so the new proxy binds the same client and metrics ports beside the old
 * one (--reuse-port: SO_REUSEPORT) and the DaemonSet rolls with a surge as on the pod network; the
 * old one then drains (stops accepting, finishes unary calls, ends watches with UNAVAILABLE).
 * - No `ports` are declared: in the host network each one is also a hostPort, and the scheduler never
 *   places a second pod with the same hostPort on a node, so the surge pod would stay Pending.
 * - While both run, the kubelet's readiness probe may reach either process. The probe names the pod
 *   template's revision (a hash of the template without it) and a proxy answers 503 to a probe for
 *   another revision, so the new pod is not reported ready by the old process (which would get the
 *   old pod deleted before the new proxy serves, or even if it never starts); the new process answers
 *   the old pod's probes as ready, so that the old pod does not turn unready before the new one is
 *   ready (src/proxy/readiness.ts).
 */
export function templateRevision(template: V1PodTemplateSpec): string {
  return createHash('sha256').update(JSON.stringify(template)).digest('hex').slice(0, 12);
}

/** The proxy DaemonSet: this project's own image running `etcd-topology proxy` on every selected node. */
export const proxyDaemonSet: Component<V1DaemonSet> = {
  apiVersion: 'apps/v1',
  kind: 'DaemonSet',
  names: (t) => [namesOf(t).proxyDaemonSet],
  desired: (t: EtcdTopology, context: ComponentContext) => {
    if (!t.spec.proxy.enabled) return undefined;
    let template = podTemplate(t, context, undefined);
    if (t.spec.proxy.hostNetwork) template = podTemplate(t, context, templateRevision(template));
    return {
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: objectMeta(t, namesOf(t).proxyDaemonSet, 'proxy'),
      spec: {
        selector: { matchLabels: selectorLabels(t, 'proxy') },
        // A surge roll starts the new proxy on a node before the old one stops, so the node keeps a
        // ready proxy: on the pod network the node-local Service moves clients over, on the host
        // network both share the port (hostNetworkRoll above).
        updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
        template,
      },
    };
  },
};

/** The proxy pod; revision (host network only) goes into --revision and the readiness probe's query. */
function podTemplate(t: EtcdTopology, context: ComponentContext, revision: string | undefined): V1PodTemplateSpec {
  const { proxy } = t.spec;
  const terms = proxyNodeTerms(t);
  const tls = proxyTls(t);
  const readyz = revision === undefined ? '/readyz' : `/readyz?revision=${revision}`;
  return {
    metadata: { labels: labels(t, 'proxy') },
    spec: {
      serviceAccountName: namesOf(t).proxyServiceAccount,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      hostNetwork: proxy.hostNetwork,
      // A host-network pod still resolves the members' Service names through cluster DNS.
      dnsPolicy: proxy.hostNetwork ? 'ClusterFirstWithHostNet' : 'ClusterFirst',
      ...(terms ? { affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: terms } } } } : {}),
      ...(proxy.tolerations ? { tolerations: proxy.tolerations } : {}),
      securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, ...(t.spec.tls.enabled ? { fsGroup: 65532 } : {}), seccompProfile: { type: 'RuntimeDefault' } },
      terminationGracePeriodSeconds: 30,
      containers: [
        {
          name: 'proxy',
          image: context.proxyImage,
          args: [...proxyArgs(t), ...(revision === undefined ? [] : [`--revision=${revision}`])],
          env: [
            { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
            { name: 'NODE_OPTIONS', value: PROXY_NODE_OPTIONS },
          ],
          ...(proxy.hostNetwork
            ? {}
            : {
                ports: [
                  { name: 'client', containerPort: proxy.port, protocol: 'TCP' },
                  { name: 'metrics', containerPort: PROXY_METRICS_PORT, protocol: 'TCP' },
                ],
              }),
          readinessProbe: { httpGet: { path: readyz, port: PROXY_METRICS_PORT, scheme: 'HTTP' }, periodSeconds: 5, failureThreshold: 3 },
          // Liveness asks only whether the process serves: restarting proxies cannot fix an etcd outage.
          livenessProbe: { tcpSocket: { port: PROXY_METRICS_PORT }, periodSeconds: 10, failureThreshold: 6 },
          ...resourceRequirements(proxy.resources ?? defaultProxyResources),
          securityContext: restrictedContainerSecurity,
          ...(tls.mounts.length > 0 ? { volumeMounts: tls.mounts } : {}),
        },
      ],
      ...(tls.volumes.length > 0 ? { volumes: tls.volumes } : {}),
    },
  };
}
