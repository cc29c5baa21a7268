/**
 * Every error code the project throws, in one place (as undici's lib/core/errors.js): a code is
 * stable, machine-readable and names the kind of failure; the message says what failed and what to do.
 */
export type ErrorCode =
  // A user-supplied value (flag, environment variable) was invalid.
  | 'ETOP_USAGE'
  // No Kubernetes cluster configured (no --kubeconfig, no in-cluster service account).
  | 'ETOP_KUBECONFIG'
  // An EtcdTopology could not be rendered into objects (no uid, name or namespace: not read from the API).
  | 'ETOP_RENDER'
  // A condition update with a reason that is not PascalCase (a programming error).
  | 'ETOP_CONDITION_REASON'
  // The CRD generator met a schema that is not structural.
  | 'ETOP_CRD_SCHEMA'
  // A string that is not a Kubernetes quantity.
  | 'ETOP_QUANTITY'
  // A server (metrics, health) could not listen on its address.
  | 'ETOP_LISTEN'
  // A broken installation or a bug: what should never happen (the message says what did).
  | 'ETOP_INTERNAL'
  // An EtcdTopology the operator cannot parse (an older CRD, a hand-edited object).
  | 'ETOP_INVALID_SPEC'
  // The Kubernetes API refused a request: Forbidden (RBAC), Invalid (schema or admission), and the rest.
  | KubeErrorCode
  // An etcd call failed: unreachable or overloaded, refused, or answered out of contract.
  | 'ETOP_ETCD_UNAVAILABLE'
  // The proxy's connection to a member (TCP and TLS handshake) was not made in time: nothing was sent.
  | 'ETOP_CONNECT_TIMEOUT'
  | 'ETOP_ETCD_REQUEST'
  | 'ETOP_ETCD_RESPONSE'
  // Backup and restore (src/backup/errors.ts).
  | 'ETOP_BACKUP_SNAPSHOT' // etcd's snapshot stream failed or was cut
  | 'ETOP_BACKUP_INTEGRITY' // a sha256 did not match: the snapshot or the stored object is corrupt
  | 'ETOP_BACKUP_DESTINATION' // the bucket or volume refused, or could not be reached
  | 'ETOP_BACKUP_NOT_FOUND' // no such backup (key, or no finished backup for "latest")
  | 'ETOP_BACKUP_RESTORE' // etcdutl snapshot restore failed
  | 'ETOP_BACKUP'; // a backup command failed otherwise

/** The codes of Kubernetes API failures, by what the API server answered. */
export type KubeErrorCode =
  | 'ETOP_KUBE_FORBIDDEN' // 401/403: RBAC or authentication refused the request
  | 'ETOP_KUBE_INVALID' // 400/422: the object was refused (schema, validation, an admission policy or webhook)
  | 'ETOP_KUBE_CONFLICT' // 409: another writer changed the object first, or it already exists
  | 'ETOP_KUBE_NOT_FOUND' // 404
  | 'ETOP_KUBE_UNAVAILABLE' // 429, 5xx, a timeout or no connection: try again later
  | 'ETOP_KUBE_API'; // any other answer

/** The one error base class: every error that crosses a module boundary carries a stable code. */
export class TopologyError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TopologyError';
    this.code = code;
  }
}

/** A user-supplied value (flag, env var, spec field) was invalid; the message names it and what is accepted. */
export class UsageError extends TopologyError {
  constructor(message: string) {
    super('ETOP_USAGE', message);
    this.name = 'UsageError';
  }
}

/** An EtcdTopology the operator cannot parse; field is its path ("spec.members.count"). */
export class InvalidSpecError extends TopologyError {
  readonly field: string;
  constructor(field: string, message: string) {
    super('ETOP_INVALID_SPEC', message);
    this.name = 'InvalidSpecError';
    this.field = field;
  }
}

/**
 * A Kubernetes API request failed. The message names the request ("apply StatefulSet default/main-member")
 * and quotes the API server's answer; status and reason are the HTTP status and the Status object's reason.
 */
export class KubeApiError extends TopologyError {
  declare readonly code: KubeErrorCode;
  readonly verb: string;
  readonly object: string;
  readonly status: number | undefined;
  readonly reason: string | undefined;
  /** What the API server said (its Status message), or the transport error's message. */
  readonly apiMessage: string;
  constructor(
    code: KubeErrorCode,
    request: { verb: string; object: string },
    answer: { status?: number | undefined; reason?: string | undefined; message: string },
    options?: { cause?: unknown },
  ) {
    const said = answer.status === undefined ? `no answer from the API server: ${answer.message}` : `the API server answered ${answer.status}${answer.reason ? ` ${answer.reason}` : ''}: ${answer.message}`;
    super(code, `${request.verb} ${request.object} failed: ${said}`, options);
    this.name = 'KubeApiError';
    this.verb = request.verb;
    this.object = request.object;
    this.status = answer.status;
    this.reason = answer.reason;
    this.apiMessage = answer.message;
  }
}

/** Whether err is a Kubernetes API error with the given code. */
export function isKubeError(err: unknown, code: KubeErrorCode): err is KubeApiError {
  return err instanceof KubeApiError && err.code === code;
}
