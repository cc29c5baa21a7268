import { TopologyError, type ErrorCode } from '../errors.ts';

/** The codes of etcd call failures (src/errors.ts). */
export type EtcdErrorCode = Extract<ErrorCode, `ETOP_ETCD_${string}`>;

/** gRPC status codes that mean "this member cannot serve now", as opposed to "the request is wrong". */
const UNAVAILABLE_GRPC_CODES = new Set([4 /* DEADLINE_EXCEEDED */, 14 /* UNAVAILABLE */]);

/**
 * An etcd call failed. code is ETOP_ETCD_UNAVAILABLE when the member could not be reached or could
 * not serve in time (try another member or later), ETOP_ETCD_REQUEST when etcd refused the request
 * (grpcCode says why), ETOP_ETCD_RESPONSE when the answer was not what etcd's API promises.
 */
export class EtcdError extends TopologyError {
  readonly endpoint: string;
  readonly operation: string;
  readonly grpcCode: number | undefined;
  constructor(
    code: EtcdErrorCode,
    { endpoint, operation, grpcCode, detail }: { endpoint: string; operation: string; grpcCode?: number; detail: string },
    options?: { cause?: unknown },
  ) {
    super(code, `etcd ${operation} at ${endpoint} failed: ${detail}`, options);
    this.name = 'EtcdError';
    this.endpoint = endpoint;
    this.operation = operation;
    this.grpcCode = grpcCode;
  }
}

/**
 * A learner refuses every call but Status and serializable reads (FAILED_PRECONDITION with this
 * message) before handling it: that member cannot serve the call, another one may.
 */
const LEARNER_REFUSAL = 'etcdserver: rpc not supported for learner';

/** The error code for a gRPC status etcd returned. */
export function codeForGrpc(grpcCode: number, message = ''): 'ETOP_ETCD_UNAVAILABLE' | 'ETOP_ETCD_REQUEST' {
  return UNAVAILABLE_GRPC_CODES.has(grpcCode) || (grpcCode === 9 && message === LEARNER_REFUSAL) ? 'ETOP_ETCD_UNAVAILABLE' : 'ETOP_ETCD_REQUEST';
}

/** Whether an error says the member was unreachable or overloaded, so another member may answer. */
export function isUnavailable(err: unknown): boolean {
  return err instanceof TopologyError && err.code === 'ETOP_ETCD_UNAVAILABLE';
}
