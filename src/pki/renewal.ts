/** When a certificate is renewed and when it counts as about to expire: pure, the clock passed in. */

/** A certificate's validity window. */
export interface CertificateTimes {
  notBefore: Date;
  notAfter: Date;
}

/** Leaves are renewed at this fraction of their lifetime (cert-manager's default too). */
export const RENEW_AT_FRACTION = 2 / 3;
/** Within this fraction of the lifetime before expiry, a certificate not yet renewed makes TLSReady False. */
export const EXPIRY_WARNING_FRACTION = 1 / 10;

export type RenewalState = 'NotYetValid' | 'Valid' | 'RenewalDue' | 'ExpiringSoon' | 'Expired';

/** What the renewal policy says about one certificate now. */
export interface RenewalDecision {
  state: RenewalState;
  /** Issue a replacement now (the built-in CA does; a user Secret is the user's issuer's job). */
  renew: boolean;
  /** Good enough for TLSReady: not expired, valid already, and not within the warning window. */
  ready: boolean;
  renewAt: Date;
  warnAt: Date;
}

/** The renewal decision for one certificate at now. */
export function renewalDecision(times: CertificateTimes, now: Date): RenewalDecision {
  const start = times.notBefore.getTime();
  const end = times.notAfter.getTime();
  const lifetime = Math.max(0, end - start);
  const renewAt = new Date(start + lifetime * RENEW_AT_FRACTION);
  const warnAt = new Date(end - lifetime * EXPIRY_WARNING_FRACTION);
  const t = now.getTime();
  const state: RenewalState = t < start ? 'NotYetValid' : t >= end ? 'Expired' : t >= warnAt.getTime() ? 'ExpiringSoon' : t >= renewAt.getTime() ? 'RenewalDue' : 'Valid';
  return { state, renew: state !== 'Valid' && state !== 'NotYetValid', ready: state === 'Valid' || state === 'RenewalDue', renewAt, warnAt };
}

/**
 * The validity window of a certificate issued now: backdated a little (a twentieth of the lifetime, at
 * most five minutes) so that a node whose clock runs slightly behind still accepts it.
 */
export function newValidity(lifetimeMs: number, now: Date): CertificateTimes {
  const backdate = Math.min(5 * 60_000, Math.floor(lifetimeMs / 20));
  return { notBefore: new Date(now.getTime() - backdate), notAfter: new Date(now.getTime() + lifetimeMs) };
}
