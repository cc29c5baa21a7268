import { describe, expect, it } from 'vitest';
import { topology } from '../testing.ts';
import { snapshotJobTls } from './tls-volumes.ts';

describe('backup Job TLS', () => {
  it('mounts <name>-client-tls and passes it to `snapshot take`, and nothing without TLS', () => {
    expect(snapshotJobTls(topology())).toEqual({
      volumes: [{ name: 'tls-client', secret: { secretName: 'main-client-tls', defaultMode: 0o440 } }],
      mounts: [{ name: 'tls-client', mountPath: '/etc/etcd-topology/tls', readOnly: true }],
      args: ['--cacert=/etc/etcd-topology/tls/ca.crt', '--cert=/etc/etcd-topology/tls/tls.crt', '--key=/etc/etcd-topology/tls/tls.key'],
    });
    expect(snapshotJobTls(topology({ tls: { secrets: { server: 's', peer: 'p', client: 'c' } } })).volumes[0]?.secret?.secretName).toBe('c');
    expect(snapshotJobTls(topology({ tls: { enabled: false } }))).toEqual({ args: [], volumes: [], mounts: [] });
  });
});
