import type { KubernetesObject } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { ownedNames, ownedObjects, renderOwned, unwantedOwned } from './registry.ts';
import { context, topology } from './testing.ts';

const kindName = (o: KubernetesObject): string => `${o.kind}/${o.metadata?.name}`;

describe('renderOwned', () => {
  it('renders every owned object of a default topology in apply order', () => {
    expect(renderOwned(topology(), context).map(kindName)).toEqual([
      'ServiceAccount/main-member',
      'ServiceAccount/main-proxy',
      'Service/main-peer',
      'Service/main-client',
      'PodDisruptionBudget/main-member',
      'StatefulSet/main-member',
      'DaemonSet/main-proxy',
      'Service/main-proxy',
    ]);
  });

  it.each(renderOwned(topology(), context).map((o) => [kindName(o), o] as const))('%s is owned, labelled and namespaced', (_, o) => {
    expect(o.metadata?.namespace).toBe('etcd');
    expect(o.metadata?.ownerReferences).toEqual([
      { apiVersion: 'etcdtopology.io/v1alpha1', kind: 'EtcdTopology', name: 'main', uid: 'uid-1', controller: true, blockOwnerDeletion: true },
    ]);
    expect(o.metadata?.labels).toMatchObject({
      'app.kubernetes.io/name': 'etcd-topology',
      'app.kubernetes.io/instance': 'main',
      'app.kubernetes.io/managed-by': 'etcd-topology',
    });
    expect(['member', 'proxy']).toContain(o.metadata?.labels?.['app.kubernetes.io/component']);
  });

  it.each([
    { name: 'proxy disabled', spec: { proxy: { enabled: false } }, unwanted: ['ServiceAccount/main-proxy', 'DaemonSet/main-proxy', 'Service/main-proxy'] },
    { name: 'host network', spec: { proxy: { hostNetwork: true } }, unwanted: ['Service/main-proxy'] },
    { name: 'default', spec: {}, unwanted: [] },
  ])('$name: leaves out and lists for deletion $unwanted', ({ spec, unwanted }) => {
    const t = topology(spec);
    const rendered = renderOwned(t, context).map(kindName);
    const gone = unwantedOwned(t, context).map((o) => `${o.kind}/${o.name}`);
    expect(gone).toEqual(unwanted);
    for (const u of unwanted) expect(rendered).not.toContain(u);
    expect(rendered.length + gone.length).toBe(ownedNames(t).length);
  });

  it('refuses to render a topology that was never stored (no uid), since nothing could own the objects', () => {
    const t = topology();
    delete t.metadata.uid;
    expect(() => renderOwned(t, context)).toThrow(expect.objectContaining({ code: 'ETOP_RENDER' }));
  });
});

describe('ownedObjects', () => {
  it("binds each component's hold hook to the round's render input: only the member StatefulSet has one", () => {
    const owned = ownedObjects(topology(), context);
    expect(owned.filter((o) => o.hold !== undefined).map((o) => kindName(o.object))).toEqual(['StatefulSet/main-member']);
    const sts = owned.find((o) => o.object.kind === 'StatefulSet')!;
    expect(sts.hold!(sts.object, { holdMembers: false })).toBe('the member set has not been read from etcd yet');
    const known = ownedObjects(topology(), { ...context, members: [{ name: 'main-member-0' }] }).find((o) => o.object.kind === 'StatefulSet')!;
    expect(known.hold!(known.object, { holdMembers: false })).toBeUndefined();
  });
});
