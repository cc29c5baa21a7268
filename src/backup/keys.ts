/**
 * Object keys of backups: "<prefix><namespace>/<name>/<UTC time>-r<revision>.db", each with a manifest
 * "<same>.json" written only after the snapshot was verified and stored. The time leads, in a fixed-width
 * form, so that a plain listing sorts by time; a key without its manifest is not a finished backup.
 */

const KEY_RE = /^(\d{8}T\d{6}Z)-r(\d+)\.db$/;

/** The folder of one topology's backups at a destination. */
export function topologyPrefix(prefix: string, namespace: string, name: string): string {
  return `${prefix}${namespace}/${name}/`;
}

/** "20261201T223000Z": sortable, and valid in S3 keys and file names alike. */
export function compactTime(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z').replaceAll('-', '').replaceAll(':', '');
}

/** The key of a new backup. */
export function backupKey(folder: string, time: Date, revision: number): string {
  return `${folder}${compactTime(time)}-r${revision}.db`;
}

/** The manifest that marks a backup finished and verified. */
export function manifestKey(key: string): string {
  return `${key}.json`;
}

/** A key this project wrote for this folder: its time and revision; undefined for anything else. */
export function parseBackupKey(folder: string, key: string): { time: string; revision: number } | undefined {
  if (!key.startsWith(folder)) return undefined;
  const m = KEY_RE.exec(key.slice(folder.length));
  return m ? { time: m[1]!, revision: Number(m[2]) } : undefined;
}

/**
 * What retention deletes after a success: finished backups beyond the newest `keep`, and unfinished
 * ones (a snapshot whose manifest never came, e.g. the process was killed) older than the newest
 * finished one. Only keys of this project's form under this folder are ever considered.
 */
export function retentionPlan(folder: string, keys: readonly string[], keep: number): string[] {
  const present = new Set(keys);
  const ours = keys.filter((k) => parseBackupKey(folder, k) !== undefined).sort().reverse();
  const finished = ours.filter((k) => present.has(manifestKey(k)));
  const newest = finished[0];
  const doomed: string[] = [];
  for (const k of finished.slice(keep)) doomed.push(k, manifestKey(k));
  for (const k of ours) if (!present.has(manifestKey(k)) && newest !== undefined && k < newest) doomed.push(k);
  return doomed;
}

/** The newest finished backup in a listing, or undefined. */
export function latestFinished(folder: string, keys: readonly string[]): string | undefined {
  const present = new Set(keys);
  return keys.filter((k) => parseBackupKey(folder, k) !== undefined && present.has(manifestKey(k))).sort().reverse()[0];
}
