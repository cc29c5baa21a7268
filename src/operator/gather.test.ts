import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { topology } from './components/testing.ts';
import { memberEndpoints } from './gather.ts';

describe('memberEndpoints', () => {
  const pod = (name: string, podIP?: string, phase = 'Running'): V1Pod => ({ metadata: { name }, status: { phase, ...(podIP ? { podIP } : {}) } });
  it("dials each running member at its pod's IP on etcd's client port, in the topology's scheme; a pod without an IP or not running is left out", () => {
    const pods = [pod('main-member-0', '10.0.0.1'), pod('main-member-1'), pod('main-member-2', '10.0.0.3'), pod('main-member-3', '10.0.0.4', 'Pending')];
    expect(memberEndpoints(topology(), pods)).toEqual([
      { name: 'main-member-0', url: 'https://10.0.0.1:2379' },
      { name: 'main-member-2', url: 'https://10.0.0.3:2379' },
    ]);
    expect(memberEndpoints(topology({ tls: { enabled: false } }), pods)[0]!.url).toBe('http://10.0.0.1:2379');
  });
});
