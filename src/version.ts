import { readFileSync } from 'node:fs';
import path from 'node:path';
import { TopologyError } from './errors.ts';

/**
 * This program's version: package.json's, read from the package.json next to dist/ (or src/ when run
 * from the sources), which the image copies beside dist/ too.
 */
export function version(packageJson = path.join(import.meta.dirname, '..', 'package.json')): string {
  const parsed = JSON.parse(readFileSync(packageJson, 'utf8')) as { name?: unknown; version?: unknown };
  if (parsed.name !== 'etcd-topology' || typeof parsed.version !== 'string') {
    throw new TopologyError('ETOP_INTERNAL', `${packageJson} is not etcd-topology's package.json with a version`);
  }
  return parsed.version;
}
