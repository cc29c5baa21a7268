import { describe, expect, it } from 'vitest';
import { context, topology } from '../testing.ts';
import { memberServiceAccount, proxyServiceAccount } from './service-accounts.ts';

describe('ServiceAccounts', () => {
  it.each([
    ['member', memberServiceAccount, 'main-member'],
    ['proxy', proxyServiceAccount, 'main-proxy'],
  ] as const)('the %s ServiceAccount mounts no token', (component, c, name) => {
    const sa = c.desired(topology(), context)!;
    expect(sa).toMatchObject({ kind: 'ServiceAccount', metadata: { name }, automountServiceAccountToken: false });
    expect(sa.metadata?.labels?.['app.kubernetes.io/component']).toBe(component);
  });

  it('there is no proxy ServiceAccount while the proxy is disabled', () => {
    expect(proxyServiceAccount.desired(topology({ proxy: { enabled: false } }), context)).toBeUndefined();
  });
});
