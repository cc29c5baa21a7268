import { describe, expect, it } from 'vitest';
import type { Condition } from '../api/conditions.ts';
import type { Logger } from '../telemetry/logger.ts';
import type { EventRecorder } from './events.ts';
import type { KubeWriter } from './kube.ts';
import { writeStatus } from './status-writer.ts';

const condition = (type: string, status: 'True' | 'False', reason: string, message: string): Condition => ({ type, status, reason, message, lastTransitionTime: '2026-12-02T00:00:00Z' });
const target = { apiVersion: 'etcdtopology.io/v1alpha1', kind: 'EtcdTopology', name: 'x', namespace: 'ns' };
const log = { info: () => undefined } as unknown as Logger;

function fakes() {
  const patches: unknown[] = [];
  const events: [string, string, string][] = [];
  const writer = { patchTopologyStatus: (_ns: string, _name: string, body: unknown) => Promise.resolve(void patches.push(body)) } as unknown as KubeWriter;
  const recorder = { record: (_t: unknown, type: string, reason: string, message: string) => void events.push([type, reason, message]) } as unknown as EventRecorder;
  return { deps: { writer, events: recorder }, patches, events };
}

describe('writeStatus', () => {
  const ok = [condition('Available', 'True', 'QuorumHealthy', 'fine'), condition('Progressing', 'False', 'ReconcileComplete', 'done'), condition('Degraded', 'False', 'AsExpected', 'no fault observed')];
  const failed = [ok[0]!, condition('Progressing', 'False', 'ReconcileFailed', 'step apply failed'), condition('Degraded', 'True', 'ReconcileFailed', 'step apply failed')];

  it('writes nothing and records nothing when the status is unchanged', async () => {
    const f = fakes();
    await writeStatus(f.deps, { conditions: ok }, { conditions: ok }, target, log);
    expect(f.patches).toEqual([]);
    expect(f.events).toEqual([]);
  });

  it('records one Event per cause: Degraded and Progressing failing together are one warning', async () => {
    const f = fakes();
    await writeStatus(f.deps, { conditions: ok }, { conditions: failed }, target, log);
    expect(f.patches).toHaveLength(1);
    expect(f.events).toEqual([['Warning', 'ReconcileFailed', 'Degraded=True: step apply failed']]);
  });

  it('records each condition that changed for its own cause', async () => {
    const f = fakes();
    await writeStatus(f.deps, { conditions: failed }, { conditions: ok }, target, log);
    expect(f.events).toEqual([
      ['Normal', 'ReconcileComplete', 'Progressing=False: done'],
      ['Normal', 'AsExpected', 'Degraded=False: no fault observed'],
    ]);
  });
});
