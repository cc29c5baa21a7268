import type { H2Stream } from './h2/stream.ts';

/** gRPC status codes the proxy produces itself. */
export const Status = { OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, INTERNAL: 13, UNAVAILABLE: 14, UNIMPLEMENTED: 12, RESOURCE_EXHAUSTED: 8 } as const;

const names = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS',
  'UNAUTHENTICATED',
];

/** The name of a gRPC status code as a metrics label (UNKNOWN for anything outside the table). */
export function statusName(code: string | number | undefined): string {
  const n = typeof code === 'number' ? code : Number(code);
  return Number.isInteger(n) ? (names[n] ?? 'UNKNOWN') : 'UNKNOWN';
}

/** Percent-encodes a grpc-message as the gRPC spec asks (printable ASCII except %, as is). */
export function encodeGrpcMessage(message: string): string {
  return Array.from(Buffer.from(message, 'utf8'))
    .map((b) => (b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`))
    .join('');
}

/**
 * Ends a client's gRPC stream with a status of the proxy's own: as trailers after a response that
 * started, else as a trailers-only response.
 */
export function endWithStatus(down: H2Stream, code: number, message: string): void {
  const status = String(code);
  const grpcMessage = encodeGrpcMessage(message);
  if (!down.headersSent) {
    down.sendHeaders([':status', '200', 'content-type', 'application/grpc', 'grpc-status', status, 'grpc-message', grpcMessage], true);
  } else {
    down.sendTrailers(['grpc-status', status, 'grpc-message', grpcMessage]);
  }
}

/** Decodes a grpc-message value (percent-encoded UTF-8), leaving a malformed one as it is. */
export function decodeGrpcMessage(value: string | undefined): string {
  if (value === undefined || !value.includes('%')) return value ?? '';
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

// Connection-specific headers must not cross from one HTTP/2 connection to another.
const hopByHop = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host', 'http2-settings']);

/**
 * Headers for the other side: every header as received, in order (repeated ones stay repeated), minus
 * pseudo-headers other than those kept and connection-specific ones. Takes and returns a flat
 * [name, value, ...] list.
 */
export function forwardedHeaders(headers: readonly string[], keep: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const key = headers[i]!;
    if (key.charCodeAt(0) === 58 /* : */ ? !keep.includes(key) : hopByHop.has(key)) continue;
    out.push(key, headers[i + 1]!);
  }
  return out;
}
