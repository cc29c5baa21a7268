/**
 * CA rotation by overlapping trust, as plain data in and one decision out; the shell
 * (src/operator/tls-certificates.ts) writes the Secrets and observes the members and proxies.
 *
 *   (idle)     one CA signs every leaf and is the whole trust bundle
 *   Trusting   a new CA exists and the bundle holds old and new; leaves are still signed by the old one.
 *              etcd reads --trusted-ca-file and --peer-trusted-ca-file only at start, so every member
 *              restarts (one at a time, through the planner) onto the new bundle; proxies reload it.
 *   Reissuing  every member and proxy trusts both: the new CA signs from now on and every leaf is
 *              reissued; etcd and the proxies pick up new leaf files without a restart.
 *   Retiring   nothing in use is signed by the old CA any more: it leaves the bundle, and the members
 *              restart once more onto the bundle that holds only the new CA.
 *   (idle)     every member and proxy trusts only the new CA.
 */
import { RENEW_AT_FRACTION, type CertificateTimes } from './renewal.ts';

export type CaRotationPhase = 'Trusting' | 'Reissuing' | 'Retiring';
export const CA_ROTATION_PHASES: readonly CaRotationPhase[] = ['Trusting', 'Reissuing', 'Retiring'];

/** Why a rotation started. */
export type CaRotationTrigger = 'OnDemand' | 'CAAging';

/** What the decision reads; the shell gathers it. */
export interface CaRotationFacts {
  now: Date;
  /** The CA that signs leaves now. */
  signing: CertificateTimes;
  /** The phase recorded with the CA; undefined while no rotation is under way. */
  phase: CaRotationPhase | undefined;
  /** The rotate-ca annotation's value, and the value the last rotation answered. */
  requested?: string | undefined;
  answered?: string | undefined;
  /** Members not yet running, ready, on the current trust bundle (a pod to restart, or one restarting). */
  membersNotOnBundle: readonly string[];
  /** Running proxies whose loaded trust is not exactly the current bundle, or that did not say. */
  proxiesNotOnBundle: readonly string[];
  /**
   * Where a certificate not signed by the signing CA is still served or presented: a member's client
   * or peer port, a proxy's client certificate, a leaf Secret. Read only in Reissuing.
   */
  notOnSigningCa: readonly string[];
}

export type CaRotationDecision =
  /** No rotation: the next one is due at renewAt (2/3 of the CA's lifetime). */
  | { action: 'None'; renewAt: Date }
  /** Create the new CA and put it into the bundle beside the old one. */
  | { action: 'Start'; trigger: CaRotationTrigger; message: string }
  | { action: 'Wait'; phase: CaRotationPhase; reason: string; message: string }
  /** Trusting → Reissuing: the new CA signs; Reissuing → Retiring: the old CA leaves the bundle. */
  | { action: 'Advance'; to: 'Reissuing' | 'Retiring'; message: string }
  /** Retiring → idle. */
  | { action: 'Finish'; message: string };

/** When a CA is rotated by age: at the same fraction of its lifetime as a leaf is renewed. */
export function caRenewAt(ca: CertificateTimes): Date {
  const start = ca.notBefore.getTime();
  return new Date(start + (ca.notAfter.getTime() - start) * RENEW_AT_FRACTION);
}

const listed = (names: readonly string[], max = 4): string => (names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')} and ${names.length - max} more`);

/** The next step of a CA rotation, or when the next one is due. */
export function caRotationStep(f: CaRotationFacts): CaRotationDecision {
  switch (f.phase) {
    case undefined: {
      if (f.requested !== undefined && f.requested !== f.answered) {
        return { action: 'Start', trigger: 'OnDemand', message: `rotating the CA as asked (annotation value "${f.requested}"): adding a new CA to the trust bundle beside the current one` };
      }
      const renewAt = caRenewAt(f.signing);
      if (f.now >= renewAt) {
        return { action: 'Start', trigger: 'CAAging', message: `rotating the CA: it reached 2/3 of its lifetime (it expires at ${f.signing.notAfter.toISOString()}); adding a new CA to the trust bundle beside it` };
      }
      return { action: 'None', renewAt };
    }
    case 'Trusting': {
      const waiting = waitingForBundle(f, 'Trusting', 'before the new CA signs any certificate');
      if (waiting) return waiting;
      return { action: 'Advance', to: 'Reissuing', message: 'every member and proxy trusts the old and the new CA: the new CA now signs every certificate' };
    }
    case 'Reissuing': {
      if (f.notOnSigningCa.length > 0) {
        return {
          action: 'Wait',
          phase: 'Reissuing',
          reason: 'WaitingForNewCertificates',
          message: `waiting for ${listed(f.notOnSigningCa)} to use a certificate of the new CA before the old CA leaves the bundle`,
        };
      }
      return { action: 'Advance', to: 'Retiring', message: 'no certificate in use is signed by the old CA any more: it leaves the trust bundle' };
    }
    case 'Retiring': {
      const waiting = waitingForBundle(f, 'Retiring', 'that holds only the new CA');
      if (waiting) return waiting;
      return { action: 'Finish', message: 'the CA rotation is complete: every member and proxy trusts only the new CA, which signs every certificate' };
    }
  }
}

function waitingForBundle(f: CaRotationFacts, phase: 'Trusting' | 'Retiring', why: string): CaRotationDecision | undefined {
  const pending = [...f.membersNotOnBundle.map((m) => `member ${m}`), ...f.proxiesNotOnBundle.map((p) => `proxy ${p}`)];
  if (pending.length === 0) return undefined;
  return { action: 'Wait', phase, reason: 'WaitingForTrust', message: `waiting for ${listed(pending)} to run with the trust bundle ${why}` };
}
