import type { V1Job, V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { jobOutcome } from './backup.ts';

const now = new Date('2026-12-01T10:00:00Z');
const job = (o: Partial<V1Job['status']> = {}, created = '2026-12-01T09:59:50Z'): V1Job => ({ metadata: { name: 'j', creationTimestamp: created as unknown as Date }, status: o });
const pod = (status: V1Pod['status']): V1Pod => ({ metadata: { name: 'j-x', creationTimestamp: '2026-12-01T09:59:51Z' as unknown as Date }, status });
const terminated = (exitCode: number, message?: string): V1Pod => pod({ containerStatuses: [{ name: 'snapshot', image: 'i', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode, ...(message ? { message } : {}) } } }] });

describe('jobOutcome', () => {
  it('reads a success from the termination message', () => {
    expect(jobOutcome(job(), [terminated(0, '{"key":"k","revision":5}')], now)).toEqual({ state: 'succeeded', result: { key: 'k', revision: 5 } });
  });
  it('quotes the error the snapshot command reported', () => {
    expect(jobOutcome(job(), [terminated(1, '{"error":"s3://b: upload k failed: NoSuchBucket: The specified bucket does not exist (HTTP 404)","code":"ETOP_BACKUP_DESTINATION"}')], now)).toEqual({
      state: 'failed', message: 's3://b: upload k failed: NoSuchBucket: The specified bucket does not exist (HTTP 404)',
    });
  });
  it('quotes the log tail of a crash without a result', () => {
    expect(jobOutcome(job(), [terminated(137, 'a\nb\nOOMKilled')], now)).toEqual({ state: 'failed', message: 'the snapshot container exited with 137: a | b | OOMKilled' });
  });
  it('fails at once on a pod that cannot start: a missing Secret or key never fixes itself', () => {
    const p = pod({ containerStatuses: [{ name: 'snapshot', image: 'i', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'CreateContainerConfigError', message: 'secret "s3-credentials" not found' } } }] });
    expect(jobOutcome(job(), [p], now)).toEqual({ state: 'failed', message: 'its pod cannot start: CreateContainerConfigError: secret "s3-credentials" not found' });
  });
  it('gives an unschedulable pod (an unbound or missing claim) a grace period, then fails naming why', () => {
    const p = pod({ conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: 'persistentvolumeclaim "backups" not found' }] });
    expect(jobOutcome(job(), [p], now)).toEqual({ state: 'running' });
    expect(jobOutcome(job({}, '2026-12-01T09:59:00Z'), [p], now)).toEqual({ state: 'failed', message: 'its pod cannot be scheduled: Unschedulable: persistentvolumeclaim "backups" not found' });
  });
  it('reports a Job that hit its deadline, and one that vanished', () => {
    expect(jobOutcome(job({ conditions: [{ type: 'Failed', status: 'True', reason: 'DeadlineExceeded', message: 'Job was active longer than specified deadline' }] }), [], now)).toEqual({
      state: 'failed', message: 'its Job failed: DeadlineExceeded Job was active longer than specified deadline',
    });
    expect(jobOutcome(undefined, [], now)).toEqual({ state: 'failed', message: 'its Job was deleted before it finished' });
    expect(jobOutcome(undefined, [], now, new Date('2026-12-01T09:59:00Z'))).toEqual({ state: 'failed', message: 'its Job was deleted before it finished' });
  });
  it('is running while a Job just created is not in the cache yet', () => {
    expect(jobOutcome(undefined, [], now, new Date('2026-12-01T09:59:50Z'))).toEqual({ state: 'running' });
  });
  it('is running while the container runs', () => {
    expect(jobOutcome(job(), [pod({ containerStatuses: [{ name: 'snapshot', image: 'i', imageID: '', ready: true, restartCount: 0, state: { running: {} } }] })], now)).toEqual({ state: 'running' });
  });
});
