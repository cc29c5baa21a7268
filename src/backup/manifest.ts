import { z } from 'zod';
import { BackupError } from './errors.ts';

/** What a finished backup records beside its snapshot (the ".json" manifest) and in status. */
export const manifestSchema = z.object({
  topology: z.string(),
  key: z.string(),
  time: z.string(),
  revision: z.int().min(0),
  size: z.int().min(0),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  member: z.string(),
  etcdVersion: z.string(),
  clusterId: z.string().optional(),
  durationSeconds: z.number().min(0),
});

export type Manifest = z.infer<typeof manifestSchema>;

/** Parses a manifest, naming its key when it is not one. */
export function parseManifest(key: string, text: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new BackupError('ETOP_BACKUP_INTEGRITY', `manifest ${key} is not JSON`);
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) throw new BackupError('ETOP_BACKUP_INTEGRITY', `manifest ${key} is not a backup manifest: ${parsed.error.issues[0]?.path.join('.')} ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}
