import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { renewalDecision, type RenewalDecision } from './renewal.ts';

/** The keys of a kubernetes.io/tls Secret in the shape cert-manager writes. */
export const TLS_CRT = 'tls.crt';
export const TLS_KEY = 'tls.key';
export const CA_CRT = 'ca.crt';

/** The decoded material of one TLS Secret that passed every check. */
export interface TlsMaterial {
  cert: string;
  key: string;
  ca: string;
  leaf: X509Certificate;
  renewal: RenewalDecision;
}

/** Why a TLS Secret cannot be used; the message names the Secret and never carries key material. */
export interface TlsProblem {
  reason: 'SecretMissing' | 'SecretNotOwned' | 'SecretKeyMissing' | 'CertificateInvalid' | 'KeyMismatch' | 'NotSignedByCA' | 'NamesNotCovered' | 'CertificateNotYetValid' | 'CertificateExpired';
  message: string;
}

/** What a Secret must satisfy beyond its shape. */
export interface SecretExpectation {
  /** Host names the certificate must be valid for (each member's DNS name). */
  hosts?: readonly string[];
  /** PEM bundle of the CA(s) that must have signed the leaf; default the Secret's own ca.crt. */
  trustedCa?: string;
}

/** Splits a PEM bundle into its certificates. */
export function splitPem(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/**
 * Checks one TLS Secret (data as the API returns it, base64) at now: every key present, the
 * certificate and key parse and belong together, a CA of the bundle signed the leaf, the leaf is
 * within its validity window and covers the hosts. Returns the material or the first problem found.
 */
export function checkTlsSecret(name: string, data: Record<string, string> | undefined, expect: SecretExpectation, now: Date): TlsMaterial | TlsProblem {
  if (data === undefined) return { reason: 'SecretMissing', message: `Secret ${name} does not exist` };
  const missing = [TLS_CRT, TLS_KEY, CA_CRT].filter((k) => !data[k]);
  if (missing.length > 0) return { reason: 'SecretKeyMissing', message: `Secret ${name} has no ${missing.join(', ')}: a kubernetes.io/tls Secret with ca.crt is needed (cert-manager's shape)` };
  // Parsing and verifying is most of a settled reconcile's CPU (a few ms for a topology's secrets),
  // and its result changes only with the Secret: it is kept per content, and only the validity
  // window is checked against now each time. Keyed by a digest and holding only the certificate, so
  // that no key material is kept beyond the Secret's own copy.
  const digest = createHash('sha256')
    .update(JSON.stringify([name, data[TLS_CRT], data[TLS_KEY], data[CA_CRT], expect.trustedCa ?? null, expect.hosts ?? []]))
    .digest('base64');
  let checked = verified.get(digest);
  if (checked === undefined) {
    if (verified.size >= VERIFIED_MAX) verified.clear();
    verified.set(digest, (checked = verify(name, data, expect)));
  }
  if ('reason' in checked) return checked;
  const { leaf } = checked;
  const renewal = renewalDecision({ notBefore: new Date(leaf.validFrom), notAfter: new Date(leaf.validTo) }, now);
  if (renewal.state === 'NotYetValid') return { reason: 'CertificateNotYetValid', message: `Secret ${name}: the certificate is not valid before ${new Date(leaf.validFrom).toISOString()}` };
  if (renewal.state === 'Expired') return { reason: 'CertificateExpired', message: `Secret ${name}: the certificate expired at ${new Date(leaf.validTo).toISOString()}` };
  return { cert: text(data, TLS_CRT), key: text(data, TLS_KEY), ca: text(data, CA_CRT), leaf, renewal };
}

/** Certificates parsed from PEM, by the PEM; cleared when it reaches PARSED_MAX. */
const parsed = new Map<string, X509Certificate>();
const PARSED_MAX = 1024;

/**
 * The certificate in one PEM block, parsed once: every reconcile reads the same few certificates
 * (the CA's, for its dates, fingerprint and signatures), at 100 topologies hundreds of times a second.
 * An X509Certificate does not change, so callers share it. Throws as new X509Certificate does.
 */
export function certificateOf(pem: string): X509Certificate {
  let cert = parsed.get(pem);
  if (cert === undefined) {
    cert = new X509Certificate(pem);
    if (parsed.size >= PARSED_MAX) parsed.clear();
    parsed.set(pem, cert);
  }
  return cert;
}

/** A Secret's value, decoded from base64. */
function text(data: Record<string, string>, key: string): string {
  return Buffer.from(data[key]!, 'base64').toString('utf8');
}

/** Results of verify by digest of what they were computed from; cleared when it reaches VERIFIED_MAX. */
const verified = new Map<string, { leaf: X509Certificate } | TlsProblem>();
// Some secrets per topology (server, peer, client, operator, proxy), with room for renewals.
const VERIFIED_MAX = 4096;

/** The checks of checkTlsSecret that do not depend on the time. */
function verify(name: string, data: Record<string, string>, expect: SecretExpectation): { leaf: X509Certificate } | TlsProblem {
  const [cert, key, ca] = [text(data, TLS_CRT), text(data, TLS_KEY), text(data, CA_CRT)];
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch {
    return { reason: 'CertificateInvalid', message: `Secret ${name}: tls.crt is not a PEM X.509 certificate` };
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    return { reason: 'CertificateInvalid', message: `Secret ${name}: tls.key is not a PEM private key` };
  }
  if (!leaf.checkPrivateKey(privateKey)) return { reason: 'KeyMismatch', message: `Secret ${name}: tls.key is not the private key of the certificate in tls.crt` };
  let cas: X509Certificate[];
  try {
    cas = splitPem(expect.trustedCa ?? ca).map((p) => new X509Certificate(p));
  } catch {
    return { reason: 'CertificateInvalid', message: `Secret ${name}: ca.crt is not a PEM bundle of X.509 certificates` };
  }
  if (!cas.some((c) => c.ca && leaf.checkIssued(c) && leaf.verify(c.publicKey))) {
    const which = expect.trustedCa === undefined ? 'its own ca.crt' : 'the CA that the members trust (the server Secret\'s ca.crt)';
    return { reason: 'NotSignedByCA', message: `Secret ${name}: the certificate (issuer "${leaf.issuer.replaceAll('\n', ', ')}") is not signed by ${which}` };
  }
  const uncovered = (expect.hosts ?? []).filter((h) => leaf.checkHost(h) === undefined);
  if (uncovered.length > 0) return { reason: 'NamesNotCovered', message: `Secret ${name}: the certificate's names do not cover ${uncovered.join(', ')}` };
  return { leaf };
}

/** Whether a check result is a problem. */
export function isProblem(r: TlsMaterial | TlsProblem): r is TlsProblem {
  return 'reason' in r;
}
