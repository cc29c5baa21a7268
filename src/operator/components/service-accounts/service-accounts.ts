import type { V1ServiceAccount } from '@kubernetes/client-node';
import type { Component } from '../meta.ts';
import { objectMeta } from '../meta.ts';
import { namesOf } from '../names.ts';

// Least privilege is no privilege: members run upstream etcd and proxies learn the members from etcd's
// own MemberList, so neither calls the Kubernetes API. Each gets its own ServiceAccount without a
// mounted token and without any Role or RoleBinding; a compromised pod holds no API credential.

/** The members' ServiceAccount. */
export const memberServiceAccount: Component<V1ServiceAccount> = {
  apiVersion: 'v1',
  kind: 'ServiceAccount',
  names: (t) => [namesOf(t).memberServiceAccount],
  desired: (t) => ({
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: objectMeta(t, namesOf(t).memberServiceAccount, 'member'),
    automountServiceAccountToken: false,
  }),
};

/** The proxies' ServiceAccount; absent while the proxy is disabled. */
export const proxyServiceAccount: Component<V1ServiceAccount> = {
  apiVersion: 'v1',
  kind: 'ServiceAccount',
  names: (t) => [namesOf(t).proxyServiceAccount],
  desired: (t) =>
    t.spec.proxy.enabled
      ? {
          apiVersion: 'v1',
          kind: 'ServiceAccount',
          metadata: objectMeta(t, namesOf(t).proxyServiceAccount, 'proxy'),
          automountServiceAccountToken: false,
        }
      : undefined,
};
