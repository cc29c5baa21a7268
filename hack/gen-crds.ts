// Writes crds/ and docs/api.md from the zod schema in src/api (the single source of the API).
// A unit test (src/api/crd.test.ts) fails when either file is stale.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CRD_PATH, renderCrdYaml } from '../src/api/crd.ts';
import { REFERENCE_PATH, renderApiReference } from '../src/api/reference.ts';

const root = path.join(import.meta.dirname, '..');
for (const [file, text] of [
  [CRD_PATH, renderCrdYaml()],
  [REFERENCE_PATH, renderApiReference()],
] as const) {
  await mkdir(path.dirname(path.join(root, file)), { recursive: true });
  await writeFile(path.join(root, file), text);
  console.log(`gen-crds: wrote ${file}`);
}
