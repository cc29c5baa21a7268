import http from 'node:http';

/** The metrics port's path where a proxy names its pod template revision (JSON { revision }). */
export const REVISION_PATH = '/revision';

/** How long after its own first ready answer a proxy still answers its predecessor's probes (see Readiness). */
export const VOUCH_AFTER_READY_MS = 30_000;

/**
 * What /readyz?revision=ASKED answers. On the host network a new proxy binds the same metrics port as
 * the one it replaces (SO_REUSEPORT), so while both run the kubelet's probes for either pod reach
 * either process, at random. A probe for another revision is refused (a new pod must not be reported
 * ready by the old process), except one for the predecessor: the revision that was serving on this
 * port when this process started. This process answers that one as ready: the predecessor serves its
 * clients until the DaemonSet deletes it, and refusing its probes could mark it unready (3 refusals
 * in a row, about 1 in 8 over 15 s) while the new pod is not ready yet, leaving the node with no ready
 * proxy. It stops doing so VOUCH_AFTER_READY_MS after its own first ready answer, by when the DaemonSet
 * has deleted the predecessor, so that a later pod of that revision (a rollback) is not vouched for.
 */
export class Readiness {
  private readonly own: string | undefined;
  private readonly predecessor: string | undefined;
  private readonly now: () => number;
  private readyAt: number | undefined;

  constructor(own: string | undefined, predecessor: string | undefined, now: () => number = Date.now) {
    this.own = own;
    this.predecessor = predecessor;
    this.now = now;
  }

  /** The failure to report (undefined: ready) for a probe asking for asked (null: any), given this process's own (undefined: none). */
  answer(asked: string | null, failure: string | undefined): string | undefined {
    if (asked === null || asked === this.own) {
      if (failure === undefined) this.readyAt ??= this.now();
      return failure;
    }
    if (asked === this.predecessor && (this.readyAt === undefined || this.now() - this.readyAt < VOUCH_AFTER_READY_MS)) return undefined;
    return `this is the proxy of pod template revision ${this.own ?? '(none: no --revision)'}; the probe asks for ${asked}`;
  }
}

/**
 * The revision of the proxy serving on a metrics address (HOST:PORT) now, or undefined when none
 * answers within timeoutMs (or one too old to name it). Asked before this process binds the address.
 */
export function revisionServedAt(addr: string, timeoutMs = 1000): Promise<string | undefined> {
  const i = addr.lastIndexOf(':');
  const bound = addr.slice(0, i).replace(/^\[|\]$/g, '');
  const host = bound === '' || bound === '0.0.0.0' ? '127.0.0.1' : bound === '::' ? '::1' : bound;
  return new Promise((resolve) => {
    const req = http.get({ host, port: Number(addr.slice(i + 1)), path: REVISION_PATH, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        if (res.statusCode !== 200) return resolve(undefined);
        try {
          const revision = (JSON.parse(body) as { revision?: unknown }).revision;
          resolve(typeof revision === 'string' ? revision : undefined);
        } catch {
          resolve(undefined);
        }
      });
      res.on('error', () => resolve(undefined));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}
