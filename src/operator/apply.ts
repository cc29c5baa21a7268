import { createHash } from 'node:crypto';
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../telemetry/logger.ts';
import type { ApplyGuards, OwnedObject } from './components/meta.ts';
import type { EventRecorder, EventTarget } from './events.ts';
import type { Informers } from './informers.ts';
import type { KubeWriter } from './kube.ts';

/** The one field manager of every server-side apply this operator sends. */
export const FIELD_MANAGER = 'etcd-topology';
/** Annotation holding the hash of what the operator last applied to an object. */
export const APPLIED_HASH_ANNOTATION = 'etcdtopology.io/applied-hash';

/** A stable hash of a desired object (key order does not matter). */
export function desiredHash(obj: unknown): string {
  return createHash('sha256').update(canonical(obj)).digest('hex').slice(0, 16);
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** A zero value that Kubernetes' Go types drop with omitempty: false, 0, '', [], {}. */
function isOmittedZero(v: unknown): boolean {
  if (v === false || v === 0 || v === '') return true;
  if (Array.isArray(v)) return v.length === 0;
  return v !== null && typeof v === 'object' && Object.keys(v).length === 0;
}

/**
 * True when every field of desired is present with the same value in live. Objects may carry extra
 * fields (server defaults, other managers); arrays must match element by element; a zero value the
 * server omits (hostNetwork: false, tolerations: []) counts as present when live lacks it.
 */
export function containedIn(desired: unknown, live: unknown): boolean {
  if (desired === undefined) return true;
  if (live === undefined && isOmittedZero(desired)) return true;
  if (Array.isArray(desired)) {
    return Array.isArray(live) && live.length === desired.length && desired.every((d, i) => containedIn(d, live[i]));
  }
  if (desired !== null && typeof desired === 'object') {
    if (live === null || typeof live !== 'object' || Array.isArray(live)) return false;
    return Object.entries(desired as Record<string, unknown>).every(([k, v]) => containedIn(v, (live as Record<string, unknown>)[k]));
  }
  return desired === live;
}

/** Stamps the applied-hash annotation on a desired object (returns a new object). */
export function withAppliedHash<T extends KubernetesObject>(desired: T): T {
  const hash = desiredHash(desired);
  return { ...desired, metadata: { ...desired.metadata, annotations: { ...desired.metadata?.annotations, [APPLIED_HASH_ANNOTATION]: hash } } };
}

/**
 * Decides whether an apply is needed: never for an object that already carries what we would send.
 * The hash catches fields we stopped setting (an apply removes them); containment catches drift made
 * by others to fields we own. A no-change resync therefore makes no write call at all.
 */
export function needsApply(stamped: KubernetesObject, live: KubernetesObject | undefined): boolean {
  if (!live) return true;
  const hash = stamped.metadata?.annotations?.[APPLIED_HASH_ANNOTATION];
  if (live.metadata?.annotations?.[APPLIED_HASH_ANNOTATION] !== hash) return true;
  const { metadata: _m, ...desiredBody } = stamped as KubernetesObject & Record<string, unknown>;
  const { metadata: _l, ...liveBody } = live as KubernetesObject & Record<string, unknown>;
  return !containedIn(desiredBody, liveBody) || !containedIn(stamped.metadata?.labels, live.metadata?.labels);
}

/** What the apply loop reads and writes through. */
export interface ApplyDeps {
  informers: Informers;
  writer: KubeWriter;
  events: EventRecorder;
}

/**
 * Server-side applies every owned object whose live copy differs from what we want, unless its
 * component's hold hook keeps it as it is this round, and deletes those that must not exist.
 */
export async function applyOwned(
  deps: ApplyDeps,
  owned: readonly OwnedObject[],
  unwanted: readonly { apiVersion: string; kind: string; name: string }[],
  namespace: string,
  guards: ApplyGuards,
  target: EventTarget,
  log: Logger,
): Promise<void> {
  for (const { object: desired, hold } of owned) {
    const kind = desired.kind!;
    const name = desired.metadata!.name!;
    const live = deps.informers.get<KubernetesObject>(kind, name, desired.metadata?.namespace);
    const held = hold?.(live, guards);
    if (held !== undefined) {
      log.debug({ kind, name, why: held }, `Left ${kind} as it is`);
      continue;
    }
    const stamped = withAppliedHash(desired);
    if (!needsApply(stamped, live)) continue;
    await deps.writer.apply(stamped);
    const verb = live ? 'Updated' : 'Created';
    log.info({ kind, name }, `${verb} ${kind}`);
    deps.events.record(target, 'Normal', verb, `${verb} ${kind} ${name}`);
  }
  for (const u of unwanted) {
    if (!deps.informers.get<KubernetesObject>(u.kind, u.name, namespace)) continue;
    await deps.writer.delete(u.apiVersion, u.kind, namespace, u.name);
    log.info({ kind: u.kind, name: u.name }, `Deleted ${u.kind}`);
    deps.events.record(target, 'Normal', 'Deleted', `Deleted ${u.kind} ${u.name}`);
  }
}
