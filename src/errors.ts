/** The one error base class: every error that crosses a module boundary carries a stable code. */
export class TopologyError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
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
