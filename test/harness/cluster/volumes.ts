import type { V1KeyToPath, V1Volume } from '@kubernetes/client-node';
import { chmod, mkdir, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { KubeRest } from './kube-rest.ts';
import { fieldValue, PodConfigError } from './pod-env.ts';
import type { PersistentVolume, PersistentVolumeClaim, Pod } from './types.ts';

/** A prepared volume: the host directory that container mounts bind. */
export interface PreparedVolume {
  name: string;
  dir: string;
  /** Re-renders the content (service-account tokens expire); undefined for volumes that never change. */
  refresh?: () => Promise<void>;
  /** When the content should next be refreshed (ms since epoch). */
  refreshAt?: number;
}

/** How often a Secret or ConfigMap volume is compared with its object (the kubelet's sync is about a minute; tests want seconds). */
export const OBJECT_VOLUME_SYNC_MS = 2_000;

interface Context {
  api: KubeRest;
  pod: Pod;
  podDir: string;
  nodeDir: string;
}

/** Writes files atomically into dir (rename), so a reader never sees half a token. */
async function writeFiles(dir: string, files: Record<string, { data: string | Buffer; mode?: number }>): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [rel, { data, mode }] of Object.entries(files)) {
    const file = path.join(dir, rel);
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp`;
    await writeFile(tmp, data);
    await chmod(tmp, mode ?? 0o644);
    await rename(tmp, file);
  }
}

/**
 * Writes files the way the kubelet's atomic writer does: into a new timestamped directory, then
 * swaps the `..data` symlink to it with one rename, so a reader sees either every old file or
 * every new one (tls.crt and tls.key always match). Each visible name is a symlink through `..data`.
 */
export async function writeAtomically(dir: string, files: Record<string, { data: string | Buffer; mode?: number }>): Promise<void> {
  await mkdir(dir, { recursive: true });
  const stamp = `..${new Date().toISOString().replace(/[:.]/g, '_')}.${process.hrtime.bigint()}`;
  const previous = await readlink(path.join(dir, '..data')).catch(() => undefined);
  await writeFiles(path.join(dir, stamp), files);
  const tmpLink = path.join(dir, '..data_tmp');
  await rm(tmpLink, { force: true });
  await symlink(stamp, tmpLink);
  await rename(tmpLink, path.join(dir, '..data'));
  for (const rel of Object.keys(files)) {
    const top = rel.split('/')[0]!;
    const link = path.join(dir, top);
    if ((await readlink(link).catch(() => undefined)) === `..data/${top}`) continue;
    await symlink(`..data/${top}`, `${link}.tmp`);
    await rename(`${link}.tmp`, link);
  }
  if (previous !== undefined && previous !== stamp) await rm(path.join(dir, previous), { recursive: true, force: true });
}

function pick(data: Record<string, Buffer>, items: V1KeyToPath[] | undefined, defaultMode: number | undefined, what: string): Record<string, { data: Buffer; mode?: number }> {
  const out: Record<string, { data: Buffer; mode?: number }> = {};
  if (!items || items.length === 0) {
    for (const [k, v] of Object.entries(data)) out[k] = { data: v, mode: defaultMode };
    return out;
  }
  for (const item of items) {
    const v = data[item.key];
    if (v === undefined) throw new PodConfigError('CreateContainerConfigError', `key "${item.key}" not found in ${what}`);
    out[item.path] = { data: v, mode: item.mode ?? defaultMode };
  }
  return out;
}

async function objectData(api: KubeRest, kind: 'configmaps' | 'secrets', ns: string, name: string, optional: boolean | undefined): Promise<Record<string, Buffer> | undefined> {
  const what = `${kind === 'configmaps' ? 'configmap' : 'secret'} "${name}"`;
  const obj = await api
    .call<{ data?: Record<string, string>; binaryData?: Record<string, string> }>('GET', `/api/v1/namespaces/${ns}/${kind}/${name}`)
    .catch((err: unknown) => {
      // As the kubelet: an object that cannot be read now (a slow or restarting API server) is a
      // volume that cannot be set up yet, and the pod waits in ContainerCreating, mounting again.
      if ((err as { status?: number }).status !== 404) throw new PodConfigError('ContainerCreating', `MountVolume.SetUp failed: could not read ${what}: ${(err as Error).message}`);
      return undefined;
    });
  if (!obj) {
    if (optional) return undefined;
    // A missing object, too, keeps the pod in ContainerCreating until it exists (FailedMount).
    throw new PodConfigError('ContainerCreating', `MountVolume.SetUp failed: ${what} not found`);
  }
  const out: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(obj.data ?? {})) out[k] = kind === 'secrets' ? Buffer.from(v, 'base64') : Buffer.from(v);
  for (const [k, v] of Object.entries(obj.binaryData ?? {})) out[k] = Buffer.from(v, 'base64');
  return out;
}

function decode(rendered: string): Record<string, { data: Buffer; mode?: number }> {
  const entries = JSON.parse(rendered) as [string, string, number | undefined][];
  return Object.fromEntries(entries.map(([k, b64, mode]) => [k, { data: Buffer.from(b64, 'base64'), mode }]));
}

/** Prepares one pod volume on the host and returns the directory container mounts bind. */
export async function prepareVolume(ctx: Context, volume: V1Volume): Promise<PreparedVolume> {
  const { api, pod } = ctx;
  const ns = pod.metadata.namespace ?? 'default';
  const dir = path.join(ctx.podDir, 'volumes', volume.name);
  if (volume.emptyDir) {
    await mkdir(dir, { recursive: true });
    return { name: volume.name, dir };
  }
  if (volume.hostPath) {
    // Each node has its own root for hostPath volumes, so two nodes never share a host directory.
    const hostDir = path.join(ctx.nodeDir, 'host', volume.hostPath.path);
    await mkdir(hostDir, { recursive: true });
    return { name: volume.name, dir: hostDir };
  }
  if (volume.persistentVolumeClaim) {
    const claim = volume.persistentVolumeClaim.claimName;
    const pvc = await api.call<PersistentVolumeClaim>('GET', `/api/v1/namespaces/${ns}/persistentvolumeclaims/${claim}`).catch(() => undefined);
    if (!pvc?.spec?.volumeName || pvc.status?.phase !== 'Bound') throw new PodConfigError('ContainerCreating', `persistentvolumeclaim "${claim}" is not bound yet`);
    // As the kubelet: a claim being deleted is never mounted (the pod waits; its claim protection
    // keeps the claim only while such a pod exists).
    if (pvc.metadata.deletionTimestamp) throw new PodConfigError('ContainerCreating', `persistentvolumeclaim "${claim}" is being deleted`);
    const pv = await api.call<PersistentVolume>('GET', `/api/v1/persistentvolumes/${pvc.spec.volumeName}`);
    const pvPath = pv.spec?.local?.path ?? pv.spec?.hostPath?.path;
    if (!pvPath) throw new PodConfigError('CreateContainerConfigError', `persistentvolume "${pv.metadata.name}" is neither local nor hostPath`);
    await mkdir(pvPath, { recursive: true });
    return { name: volume.name, dir: pvPath };
  }
  if (volume.configMap || volume.secret) {
    const isCm = volume.configMap !== undefined;
    const src = (volume.configMap ?? volume.secret)!;
    const name = (volume.configMap?.name ?? volume.secret?.secretName)!;
    const what = `${isCm ? 'configmap' : 'secret'} "${name}"`;
    const render = async (): Promise<string> => {
      const data = await objectData(api, isCm ? 'configmaps' : 'secrets', ns, name, src.optional);
      const files = pick(data ?? {}, src.items, src.defaultMode, what);
      return JSON.stringify(Object.entries(files).map(([k, v]) => [k, v.data.toString('base64'), v.mode]));
    };
    let written = await render();
    await writeAtomically(dir, decode(written));
    // Like the kubelet: a changed object reaches the running pod's volume in place, atomically.
    const prepared: PreparedVolume = { name: volume.name, dir, refreshAt: Date.now() + OBJECT_VOLUME_SYNC_MS };
    prepared.refresh = async () => {
      prepared.refreshAt = Date.now() + OBJECT_VOLUME_SYNC_MS;
      const next = await render();
      if (next === written) return;
      await writeAtomically(dir, decode(next));
      written = next;
    };
    return prepared;
  }
  if (volume.downwardAPI) {
    const files: Record<string, { data: string; mode?: number }> = {};
    for (const item of volume.downwardAPI.items ?? []) {
      if (!item.fieldRef) throw new PodConfigError('CreateContainerConfigError', `downwardAPI item "${item.path}": only fieldRef is supported`);
      files[item.path] = { data: fieldValue(pod, item.fieldRef.fieldPath), mode: item.mode ?? volume.downwardAPI.defaultMode };
    }
    await writeFiles(dir, files);
    return { name: volume.name, dir };
  }
  if (volume.projected) {
    let refreshAt: number | undefined;
    const render = async (): Promise<void> => {
      const files: Record<string, { data: string | Buffer; mode?: number }> = {};
      const mode = volume.projected!.defaultMode;
      for (const source of volume.projected!.sources ?? []) {
        if (source.serviceAccountToken) {
          const expirationSeconds = source.serviceAccountToken.expirationSeconds ?? 3607;
          const sa = pod.spec?.serviceAccountName ?? 'default';
          const res = await api.call<{ status: { token: string } }>('POST', `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, {
            apiVersion: 'authentication.k8s.io/v1',
            kind: 'TokenRequest',
            spec: {
              audiences: source.serviceAccountToken.audience ? [source.serviceAccountToken.audience] : undefined,
              expirationSeconds,
              boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name, uid: pod.metadata.uid },
            },
          });
          files[source.serviceAccountToken.path] = { data: res.status.token, mode: mode ?? 0o644 };
          // The kubelet refreshes at 80% of the lifetime.
          refreshAt = Date.now() + expirationSeconds * 800;
        } else if (source.configMap || source.secret) {
          const isCm = source.configMap !== undefined;
          const src = (source.configMap ?? source.secret)!;
          const data = await objectData(api, isCm ? 'configmaps' : 'secrets', ns, src.name ?? '', src.optional);
          Object.assign(files, pick(data ?? {}, src.items, mode, `${isCm ? 'configmap' : 'secret'} "${src.name}"`));
        } else if (source.downwardAPI) {
          for (const item of source.downwardAPI.items ?? []) {
            if (!item.fieldRef) throw new PodConfigError('CreateContainerConfigError', `downwardAPI item "${item.path}": only fieldRef is supported`);
            files[item.path] = { data: fieldValue(pod, item.fieldRef.fieldPath), mode: item.mode ?? mode };
          }
        } else {
          throw new PodConfigError('CreateContainerConfigError', `projected volume "${volume.name}": unsupported source ${Object.keys(source).join(',')}`);
        }
      }
      await writeFiles(dir, files);
    };
    await render();
    const prepared: PreparedVolume = { name: volume.name, dir, refreshAt };
    if (refreshAt !== undefined) {
      prepared.refresh = async () => {
        await render();
        prepared.refreshAt = refreshAt;
      };
    }
    return prepared;
  }
  const kind = Object.keys(volume).find((k) => k !== 'name') ?? 'unknown';
  throw new PodConfigError('UnsupportedVolume', `volume "${volume.name}" of type ${kind} is not supported by the local cluster; supported: emptyDir, hostPath, persistentVolumeClaim, configMap, secret, downwardAPI, projected`);
}
