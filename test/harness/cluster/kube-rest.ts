import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';

/** The parts of a Kubernetes object the node agent reads generically. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    deletionTimestamp?: string;
    ownerReferences?: { kind: string; name: string; uid: string }[];
  };
  [key: string]: unknown;
}

export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

/** A thrown HTTP failure that keeps the status code, so callers can tell 404 and 409 apart. */
export class KubeError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/**
 * A small REST client for the harness: plain JSON over undici with a client certificate. The node
 * agent uses it instead of @kubernetes/client-node to choose patch types and watch parameters exactly
 * as the kubelet would.
 */
export class KubeRest {
  private readonly agent: Agent;
  private readonly server: string;
  private closed = false;
  /** Where the watches say why they list again (a broken or expired watch); the node agent's log. */
  onWatchNote: (line: string) => void = () => undefined;

  constructor(server: string, tls: { ca: string; cert: string; key: string }) {
    this.server = server;
    this.agent = new Agent({
      connect: { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key) },
      // Watches are long-lived; the server ends them itself (timeoutSeconds).
      bodyTimeout: 0,
      headersTimeout: 30_000,
    });
  }

  /** Sends one request; resolves the parsed body, or throws KubeError for any non-2xx answer. */
  async call<T = KubeObject>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const res = await request(`${this.server}${path}`, {
      method: method as 'GET',
      dispatcher: this.agent,
      headers: body === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': contentType },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.body.text();
    if (res.statusCode >= 300) {
      let message = text;
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? text;
      } catch {
        // not a Status object; keep the raw text
      }
      throw new KubeError(res.statusCode, `${method} ${path}: ${res.statusCode} ${message}`);
    }
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  /**
   * Lists then watches a collection until close(), calling onEvent for every change; re-lists
   * when the watch expires (410) or breaks. The first list is delivered as ADDED events.
   */
  watch<T extends KubeObject>(collection: string, onEvent: (event: WatchEvent<T>) => void, query = ''): void {
    const sep = collection.includes('?') || query === '' ? '' : '?';
    const base = `${collection}${sep}${query}`;
    const known = new Map<string, T>();
    const keyOf = (o: T): string => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    const loop = async (): Promise<void> => {
      while (!this.closed) {
        try {
          const list = await this.call<{ metadata: { resourceVersion: string }; items: T[] }>('GET', base);
          const seen = new Set<string>();
          for (const item of list.items) {
            seen.add(keyOf(item));
            const prior = known.get(keyOf(item));
            known.set(keyOf(item), item);
            if (prior?.metadata.resourceVersion !== item.metadata.resourceVersion) onEvent({ type: prior ? 'MODIFIED' : 'ADDED', object: item });
          }
          for (const [key, prior] of known) {
            if (!seen.has(key)) {
              known.delete(key);
              onEvent({ type: 'DELETED', object: prior });
            }
          }
          let rv = list.metadata.resourceVersion;
          for (;;) {
            if (this.closed) return;
            const join = base.includes('?') ? '&' : '?';
            const res = await request(`${this.server}${base}${join}watch=1&allowWatchBookmarks=true&timeoutSeconds=300&resourceVersion=${rv}`, {
              dispatcher: this.agent,
              headers: { accept: 'application/json' },
            });
            if (res.statusCode !== 200) {
              this.onWatchNote(`watch ${base}: HTTP ${res.statusCode} ${(await res.body.text()).slice(0, 200)}; listing again`);
              break;
            }
            let buffer = '';
            let expired = false;
            for await (const chunk of res.body) {
              buffer += (chunk as Buffer).toString();
              let nl: number;
              while ((nl = buffer.indexOf('\n')) !== -1) {
                const line = buffer.slice(0, nl);
                buffer = buffer.slice(nl + 1);
                if (line.trim() === '') continue;
                const event = JSON.parse(line) as WatchEvent<T>;
                if (event.type === 'ERROR') {
                  this.onWatchNote(`watch ${base}: ERROR ${JSON.stringify(event.object).slice(0, 200)}; listing again`);
                  expired = true;
                  continue;
                }
                rv = event.object.metadata.resourceVersion ?? rv;
                if (event.type === 'BOOKMARK') continue;
                if (event.type === 'DELETED') known.delete(keyOf(event.object));
                else known.set(keyOf(event.object), event.object);
                onEvent(event);
              }
            }
            if (expired) break;
          }
        } catch (err) {
          if (this.closed) return;
          this.onWatchNote(`watch ${base}: ${err instanceof Error ? err.message : String(err)}; listing again`);
        }
        if (!this.closed) await new Promise((r) => setTimeout(r, 500));
      }
    };
    void loop();
  }

  /** Stops every watch and closes connections. */
  async close(): Promise<void> {
    this.closed = true;
    await this.agent.destroy();
  }
}
