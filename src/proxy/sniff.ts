/** The HTTP/2 connection preface a client with prior knowledge sends first (RFC 9113, section 3.4). */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

// An HTTP/1.x request line: a method token, a target, and the version (RFC 9112, section 3).
const requestLine = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+ [^ ]+ HTTP\/1\.[0-9]\r?$/;
// What may come before the line is complete: part of a method token, or a token and a space.
const requestStart = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+( |$)/;
// A request line longer than this is left to the HTTP/1.1 parser, which answers it with an error status.
const LINE_LIMIT = 8192;

/**
 * Decides from the first bytes of a cleartext connection which protocol it speaks: 'h2' once the
 * whole preface is there; 'http1' once a byte differs from it and the first line is an HTTP/1.x
 * request line; 'neither' when that line is something else (an invalid preface, garbage), which no
 * HTTP/1.1 answer would help and which RFC 9113, section 3.4, says to end by closing the
 * connection; 'more' while the bytes so far do not decide.
 */
export function sniffProtocol(head: Buffer): 'h2' | 'http1' | 'neither' | 'more' {
  const n = Math.min(head.length, H2_PREFACE.length);
  let i = 0;
  while (i < n && head[i] === H2_PREFACE[i]) i++;
  if (i === n) return head.length >= H2_PREFACE.length ? 'h2' : 'more';
  const eol = head.indexOf(0x0a);
  if (eol < 0) {
    // A byte that cannot start a request (a TLS ClientHello, binary) decides at once.
    if (!requestStart.test(head.toString('latin1', 0, Math.min(head.length, 64)))) return 'neither';
    return head.length >= LINE_LIMIT ? 'http1' : 'more';
  }
  return requestLine.test(head.toString('latin1', 0, eol)) ? 'http1' : 'neither';
}
