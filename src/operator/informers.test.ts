import type { KubernetesObject } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { nodeChanges } from './informers.ts';

const node = (over: { labels?: Record<string, string>; unschedulable?: boolean; ready?: string; heartbeat?: string; images?: number } = {}): KubernetesObject =>
  ({
    metadata: { name: 'n', resourceVersion: String(Math.random()), labels: over.labels ?? { 'etcdtopology.io/role': 'central' } },
    spec: { unschedulable: over.unschedulable },
    status: {
      conditions: [{ type: 'Ready', status: over.ready ?? 'True', lastHeartbeatTime: over.heartbeat ?? '2026-01-01T00:00:00Z' }],
      images: Array.from({ length: over.images ?? 0 }, (_, i) => ({ names: [`img-${i}`] })),
    },
  }) as KubernetesObject;

describe('nodeChanges', () => {
  it('ignores heartbeats, images and resource versions', () => {
    expect(nodeChanges(node({ heartbeat: '2026-01-01T00:00:10Z', images: 3 }))).toBe(nodeChanges(node()));
  });

  it.each([
    ['a label', { labels: { other: 'x' } }],
    ['a cordon', { unschedulable: true }],
    ['readiness', { ready: 'Unknown' }],
  ])('sees %s change', (_, over) => {
    expect(nodeChanges(node(over))).not.toBe(nodeChanges(node()));
  });
});
