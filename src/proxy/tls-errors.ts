/**
 * Whether a failed HTTP/1.1 call to a member ended in the TLS handshake, so that the member's HTTP
 * server never read the request (and a write may go to another member):
 *
 * - an alert the member sent (OpenSSL's `ERR_SSL_*_ALERT_*`, for example `tlsv1 alert internal error`,
 *   which Go's TLS server sends when etcd cannot load its certificate files for a handshake, as while
 *   a Secret volume swaps them). Go's net/http and gRPC servers finish the handshake before they read a
 *   byte of a request, and a Go server sends alerts only in the handshake (or on a corrupt record);
 * - this side rejecting the member's certificate (node:tls's verification codes): http1-upstreams.ts writes a
 *   request only after `secureConnect`, which a failed verification never reaches.
 *
 * Anything else (a reset, a timeout, a closed socket) may have reached etcd and is not counted here;
 * that includes a member refusing the client certificate under TLS 1.3, which it checks after this
 * side has finished its handshake and written the request: the call sees a closed socket.
 */
export function refusedInTlsHandshake(code: string): boolean {
  return TLS_ALERT.test(code) || REJECTED_CERTIFICATE.has(code);
}

const TLS_ALERT = /^ERR_SSL_(SSLV3|TLSV1|TLSV13)_ALERT_[A-Z_]+$/;

// The codes node:tls gives a server certificate that does not verify (OpenSSL's X509_V_ERR_* names, and the host name check).
const REJECTED_CERTIFICATE = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);
