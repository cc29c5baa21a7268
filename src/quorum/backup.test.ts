import { describe, expect, it } from 'vitest';
import { backupDue, backupReadiness, backupSource, gateOnBackup, retryBackoffMs, type BackupFacts } from './backup.ts';
import type { MemberHealth } from './members.ts';
import type { Step } from './plan.ts';

const t = (s: string) => new Date(`2026-12-01T${s}Z`);
const base: BackupFacts = { now: t('10:30:00'), createdAt: t('08:00:00'), failures: 0, beforeChange: false, inFlight: false };

describe('backupDue', () => {
  const cases: { name: string; facts: Partial<BackupFacts>; want: ReturnType<typeof backupDue> }[] = [
    { name: 'nothing to do without a schedule, request or change', facts: {}, want: { due: false } },
    { name: 'a slot after the last success is due', facts: { latestSlot: t('10:00:00'), lastSuccessTime: t('09:00:05') }, want: { due: true, reason: 'Scheduled' } },
    { name: 'a slot already covered is not due', facts: { latestSlot: t('10:00:00'), lastSuccessTime: t('10:00:07') }, want: { due: false } },
    { name: 'many missed slots (operator down for hours) are caught up once: one due now, none after it', facts: { latestSlot: t('10:00:00'), lastSuccessTime: t('04:00:00') }, want: { due: true, reason: 'Scheduled' } },
    { name: 'a slot before the topology existed is not missed', facts: { latestSlot: t('07:00:00') }, want: { due: false } },
    { name: 'a new annotation value is due at once', facts: { onDemandRequested: 'b', onDemandAnswered: 'a' }, want: { due: true, reason: 'OnDemand' } },
    { name: 'an answered annotation is not due again', facts: { onDemandRequested: 'a', onDemandAnswered: 'a' }, want: { due: false } },
    { name: 'nothing starts while a backup is in flight', facts: { inFlight: true, onDemandRequested: 'b' }, want: { due: false } },
    { name: 'a risky step asks for one', facts: { beforeChange: true }, want: { due: true, reason: 'BeforeChange' } },
    {
      name: 'after a failure the schedule waits out the back-off',
      facts: { latestSlot: t('10:00:00'), lastSuccessTime: t('09:00:00'), lastFailureTime: t('10:29:50'), failures: 1 },
      want: { due: false, retryAt: t('10:30:20') },
    },
    { name: 'and retries after it', facts: { latestSlot: t('10:00:00'), lastSuccessTime: t('09:00:00'), lastFailureTime: t('10:29:00'), failures: 1 }, want: { due: true, reason: 'Retry' } },
    { name: 'an on-demand request ignores the back-off', facts: { onDemandRequested: 'x', lastFailureTime: t('10:29:59'), failures: 3 }, want: { due: true, reason: 'OnDemand' } },
  ];
  it.each(cases)('$name', ({ facts, want }) => {
    expect(backupDue({ ...base, ...facts })).toEqual(want);
  });

  it('backs off 30 s doubling up to 10 minutes', () => {
    expect([1, 2, 3, 10].map(retryBackoffMs)).toEqual([30_000, 60_000, 120_000, 600_000]);
  });
});

const m = (name: string, o: Partial<MemberHealth> = {}): MemberHealth => ({ id: name, name, isLearner: false, healthy: true, isLeader: false, raftIndex: 100, revision: 5, dbSize: 1, ...o });

describe('backupSource', () => {
  it('takes a healthy caught-up follower, never the leader of a cluster with followers', () => {
    const got = backupSource([m('a-0', { isLeader: true }), m('a-1', { raftIndex: 99 }), m('a-2')]);
    expect(got).toMatchObject({ name: 'a-2' });
  });
  it('skips a follower that is down or far behind', () => {
    expect(backupSource([m('a-0', { isLeader: true, raftIndex: 5000 }), m('a-1', { healthy: false }), m('a-2', { raftIndex: 4999 })])).toMatchObject({ name: 'a-2' });
    const none = backupSource([m('a-0', { isLeader: true, raftIndex: 5000 }), m('a-1', { healthy: false }), m('a-2', { raftIndex: 10 })]);
    expect('none' in none && none.none).toMatch(/no healthy, caught-up follower/);
  });
  it('takes the leader only when it is the sole voter, and never a learner', () => {
    expect(backupSource([m('a-0', { isLeader: true })])).toMatchObject({ name: 'a-0' });
    expect(backupSource([m('a-0', { isLeader: true }), m('a-1', { isLearner: true })])).toMatchObject({ name: 'a-0' });
  });
});

describe('gateOnBackup', () => {
  const rolling: Step = { action: 'DeletePod', pod: 'a-1', releaseVolume: false, reason: 'RollingUpdate', message: 'Replacing a-1 with the new configuration' };
  const scaleIn: Step = { action: 'RemoveMember', member: 'a-4', id: '4', reason: 'ScaleIn', message: 'removing a-4 from etcd' };
  const replace: Step = { action: 'DeletePod', pod: 'a-1', releaseVolume: true, reason: 'MemberFailed', message: 'replacing a-1' };
  const g = { configured: true, generation: 4, failedSinceSuccess: false };
  it('holds the first rolling-update or scale-in step until a backup of this generation exists', () => {
    expect(gateOnBackup(rolling, { ...g, backupGeneration: 3 })).toEqual({ action: 'Wait', reason: 'BackupBeforeChange', message: 'taking a backup before replacing a-1 with the new configuration' });
    expect(gateOnBackup(scaleIn, g)).toMatchObject({ action: 'Wait', reason: 'BackupBeforeChange' });
  });
  it('lets the step go once the backup of this generation succeeded', () => {
    expect(gateOnBackup(rolling, { ...g, backupGeneration: 4 })).toBe(rolling);
  });
  it('says so when that backup failed', () => {
    const held = gateOnBackup(rolling, { ...g, backupGeneration: 3, failedSinceSuccess: true, lastFailure: 'NoSuchBucket' });
    expect(held.reason).toBe('BackupBeforeChangeFailed');
    expect(held.message).toMatch(/the backup taken first failed \(NoSuchBucket\)/);
  });
  it('never holds a trust rollout (a CA rotation): same data, version and membership, and a held rotation could outlive its CA', () => {
    const trust: Step = { action: 'DeletePod', pod: 'a-1', releaseVolume: false, reason: 'TrustRollout', message: 'restarting a-1 onto the new CA bundle' };
    const moveLeader: Step = { action: 'MoveLeader', from: '1', to: '2', toName: 'a-2', reason: 'TrustRollout', message: 'moving leadership' };
    expect(gateOnBackup(trust, { ...g, backupGeneration: 3, failedSinceSuccess: true, lastFailure: 'NoSuchBucket' })).toBe(trust);
    expect(gateOnBackup(moveLeader, { ...g, backupGeneration: 3 })).toBe(moveLeader);
  });
  it('never holds a repair, and does nothing without spec.backup', () => {
    expect(gateOnBackup(replace, g)).toBe(replace);
    expect(gateOnBackup(rolling, { ...g, configured: false })).toBe(rolling);
  });
});

describe('backupReadiness', () => {
  const hour = 3_600_000;
  const created = t('00:00:00');
  it('is True with the last key while backups are fresh', () => {
    expect(backupReadiness({ now: t('10:30:00'), intervalMs: hour, createdAt: created, lastSuccess: { time: t('10:00:05'), key: 'k', revision: 9 } })).toEqual({
      status: 'True', reason: 'BackupSucceeded', message: 'the last backup is k (revision 9)',
    });
  });
  it('is False with the error after a failed attempt', () => {
    const r = backupReadiness({ now: t('10:30:00'), intervalMs: hour, createdAt: created, lastSuccess: { time: t('09:00:00'), key: 'k', revision: 9 }, lastFailure: { time: t('10:00:03'), message: 'InvalidAccessKeyId' } });
    expect([r.status, r.reason]).toEqual(['False', 'BackupFailed']);
    expect(r.message).toMatch(/InvalidAccessKeyId/);
  });
  it('is False when the newest backup is older than twice the interval', () => {
    expect(backupReadiness({ now: t('10:30:00'), intervalMs: hour, createdAt: created, lastSuccess: { time: t('08:29:00'), key: 'k', revision: 9 } })).toMatchObject({ status: 'False', reason: 'BackupStale' });
  });
  it('is Unknown before the first backup, unless that is overdue', () => {
    expect(backupReadiness({ now: t('00:30:00'), intervalMs: hour, createdAt: created })).toMatchObject({ status: 'Unknown', reason: 'NoBackupYet' });
    expect(backupReadiness({ now: t('03:00:00'), intervalMs: hour, createdAt: created })).toMatchObject({ status: 'False', reason: 'BackupStale' });
  });
});
