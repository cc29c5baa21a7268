import type { V1Secret } from '@kubernetes/client-node';
import { createHash } from 'node:crypto';
import type { TlsStatus } from '../api/tls.ts';
import { CA_ROTATION_PHASES, type CaRotationPhase, type CaRotationTrigger } from '../pki/ca-rotation.ts';
import type { CertificatePem } from '../pki/issuer.ts';
import { CA_CRT, certificateOf, splitPem, TLS_CRT, TLS_KEY } from '../pki/secret-check.ts';

/** The built-in CA as its Secret holds it: the CA that signs, the bundle every Secret's ca.crt carries, a rotation's state. */
export interface CaState {
  signing: CertificatePem;
  /** PEM bundle: the signing CA, and during a rotation the other one too. */
  bundle: string;
  /** The new CA while it is only trusted, not yet signing (phase Trusting). */
  next?: CertificatePem | undefined;
  phase?: CaRotationPhase | undefined;
  trigger?: CaRotationTrigger | undefined;
  startTime?: string | undefined;
  /** The rotate-ca annotation value the last rotation answered. */
  answered?: string | undefined;
  lastRotation?: string | undefined;
}

/** The CA Secret's keys for the new CA during phase Trusting (tls.* stay the signing CA's). */
export const NEXT_CRT = 'next.crt';
export const NEXT_KEY = 'next.key';

const PREFIX = 'etcdtopology.io/ca-rotation-';
const PHASE = `${PREFIX}phase`;
const TRIGGER = `${PREFIX}trigger`;
const START = `${PREFIX}start-time`;
const ANSWERED = `${PREFIX}answered`;
const LAST = `${PREFIX}last-completion`;

const text = (data: Record<string, string>, k: string): string | undefined => (data[k] ? Buffer.from(data[k], 'base64').toString('utf8') : undefined);

/** The rotation state from a CA Secret whose tls.crt and tls.key have been checked already. */
export function caStateOf(secret: V1Secret, signing: CertificatePem): CaState {
  const data = secret.data ?? {};
  const a = secret.metadata?.annotations ?? {};
  const nextCert = text(data, NEXT_CRT);
  const nextKey = text(data, NEXT_KEY);
  const phase = CA_ROTATION_PHASES.find((p) => p === a[PHASE]);
  return {
    signing,
    bundle: text(data, CA_CRT) ?? signing.cert,
    ...(nextCert !== undefined && nextKey !== undefined ? { next: { cert: nextCert, key: nextKey } } : {}),
    phase,
    trigger: a[TRIGGER] === 'OnDemand' || a[TRIGGER] === 'CAAging' ? a[TRIGGER] : undefined,
    startTime: a[START],
    answered: a[ANSWERED],
    lastRotation: a[LAST],
  };
}

/** The CA Secret's data and annotations for a state. */
export function caSecretContent(state: CaState): { data: Record<string, string>; annotations: Record<string, string> } {
  const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
  const data: Record<string, string> = { [TLS_CRT]: b64(state.signing.cert), [TLS_KEY]: b64(state.signing.key), [CA_CRT]: b64(state.bundle) };
  if (state.next) Object.assign(data, { [NEXT_CRT]: b64(state.next.cert), [NEXT_KEY]: b64(state.next.key) });
  const annotations: Record<string, string> = {};
  if (state.phase) annotations[PHASE] = state.phase;
  if (state.phase && state.trigger) annotations[TRIGGER] = state.trigger;
  if (state.phase && state.startTime) annotations[START] = state.startTime;
  if (state.answered !== undefined) annotations[ANSWERED] = state.answered;
  if (state.lastRotation !== undefined) annotations[LAST] = state.lastRotation;
  return { data, annotations };
}

/** Joins CA certificates into one bundle, each once. */
export function bundleOf(...pems: string[]): string {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const pem of pems.flatMap((p) => splitPem(p))) {
    const fp = certificateOf(pem).fingerprint256;
    if (seen.has(fp)) continue;
    seen.add(fp);
    out.push(pem);
  }
  return `${out.join('\n')}\n`;
}

/** The hash of what members trust: the server and peer Secrets' ca.crt (it goes into the member pod template). */
export function trustHashOf(serverCa: string, peerCa: string): string {
  return createHash('sha256').update(serverCa).update('\0').update(peerCa).digest('hex').slice(0, 16);
}

/** status.tls for a CA state; message says what a rotation waits for. */
export function tlsStatusOf(state: CaState, message: string | undefined): TlsStatus {
  return {
    caNotAfter: new Date(certificateOf(state.signing.cert).validTo).toISOString(),
    ...(state.phase
      ? { caRotation: { phase: state.phase, trigger: state.trigger ?? 'OnDemand', startTime: state.startTime ?? new Date(0).toISOString(), ...(message !== undefined ? { message } : {}) } }
      : {}),
    ...(state.lastRotation !== undefined ? { lastCaRotation: state.lastRotation } : {}),
    ...(state.answered !== undefined ? { rotateCaAnswered: state.answered } : {}),
  };
}
