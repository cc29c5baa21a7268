/** The HTTP/2 connection preface a client with prior knowledge sends first (RFC 9113, section 3.4). */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/**
 * Decides from the first bytes of a cleartext connection which protocol it speaks: 'h2' once the
 * whole preface is there, 'http1' as soon as a byte differs from it, 'more' while the bytes so far
 * are a prefix of it.
 */
export function sniffProtocol(head: Uint8Array): 'h2' | 'http1' | 'more' {
  const n = Math.min(head.length, H2_PREFACE.length);
  for (let i = 0; i < n; i++) if (head[i] !== H2_PREFACE[i]) return 'http1';
  return head.length >= H2_PREFACE.length ? 'h2' : 'more';
}
