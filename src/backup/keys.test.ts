import { describe, expect, it } from 'vitest';
import { backupKey, compactTime, latestFinished, parseBackupKey, retentionPlan, topologyPrefix } from './keys.ts';

const folder = topologyPrefix('etcd/', 'prod', 'main');

describe('backup keys', () => {
  it('name the topology, the time and the revision, and sort by time', () => {
    const a = backupKey(folder, new Date('2026-12-01T09:05:00.123Z'), 99);
    const b = backupKey(folder, new Date('2026-12-01T10:00:00Z'), 7);
    expect(a).toBe('etcd/prod/main/20261201T090500Z-r99.db');
    expect([b, a].sort()).toEqual([a, b]);
    expect(parseBackupKey(folder, a)).toEqual({ time: '20261201T090500Z', revision: 99 });
    expect(compactTime(new Date('2027-01-02T03:04:05Z'))).toBe('20270102T030405Z');
  });

  it('parse only keys of this folder and this form', () => {
    expect(parseBackupKey(folder, 'etcd/prod/main-2/20261201T090500Z-r1.db')).toBeUndefined();
    expect(parseBackupKey(folder, 'etcd/prod/main/notes.txt')).toBeUndefined();
    expect(parseBackupKey(folder, 'etcd/prod/main/20261201T090500Z-r1.db.json')).toBeUndefined();
    expect(parseBackupKey(folder, 'etcd/prod/main/sub/20261201T090500Z-r1.db')).toBeUndefined();
  });
});

describe('retentionPlan', () => {
  const k = (t: string) => `${folder}${t}-r1.db`;
  const done = (t: string) => [k(t), `${k(t)}.json`];

  const cases: { name: string; keys: string[]; keep: number; want: string[] }[] = [
    { name: 'keeps the newest N finished backups', keys: [...done('20261201T010000Z'), ...done('20261201T020000Z'), ...done('20261201T030000Z')], keep: 2, want: done('20261201T010000Z') },
    { name: 'keeps all when there are N or fewer', keys: [...done('20261201T010000Z'), ...done('20261201T020000Z')], keep: 2, want: [] },
    {
      name: 'deletes an unfinished snapshot older than the newest finished one, not a newer one (it may be in flight)',
      keys: [k('20261201T005000Z'), ...done('20261201T010000Z'), k('20261201T020000Z')],
      keep: 5,
      want: [k('20261201T005000Z')],
    },
    {
      name: 'never touches keys it did not write',
      keys: [`${folder}README`, 'etcd/prod/other/20261201T010000Z-r1.db', 'etcd/prod/other/20261201T010000Z-r1.db.json', ...done('20261201T010000Z'), ...done('20261201T020000Z')],
      keep: 1,
      want: done('20261201T010000Z'),
    },
  ];
  it.each(cases)('$name', ({ keys, keep, want }) => {
    expect(retentionPlan(folder, keys, keep).sort()).toEqual([...want].sort());
  });

  it('latestFinished skips a newer snapshot whose manifest is missing', () => {
    expect(latestFinished(folder, [...done('20261201T010000Z'), k('20261201T020000Z')])).toBe(k('20261201T010000Z'));
    expect(latestFinished(folder, [k('20261201T020000Z')])).toBeUndefined();
  });
});
