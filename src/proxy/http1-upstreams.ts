import { createRequire } from 'node:module';
import type { Agent as UndiciAgent, Dispatcher } from 'undici';
import type { TlsFiles } from './config.ts';
import type { TlsSource } from './tls-reload.ts';

// undici's index loads all of undici (fetch, WebSocket, caches, mocks: about 340 modules, 28 MiB of
// RSS in a bare Node process); the proxy needs only the connection pools and the request API, which
// cost half of that. One process on every node: the saving is multiplied by the fleet. The index
// installs request() on every dispatcher; here it is called on the agent directly instead.
const load = createRequire(import.meta.url);
const Agent = load('undici/lib/dispatcher/agent.js') as typeof UndiciAgent;
const request = load('undici/lib/api/api-request.js') as (this: UndiciAgent, options: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData>;

function agentFor(tls: TlsFiles): UndiciAgent {
  return new Agent({
    // A member whose node is gone never answers the SYN: give up after 3 s (undici waits 10 s) so the
    // call goes to another member, as the HTTP/2 side does within its 5 s opening deadline.
    connect: { ca: tls.ca, cert: tls.cert, key: tls.key, timeout: 3_000 },
    // A streaming watch over the gateway may be quiet for hours: no header or body timeouts.
    headersTimeout: 0,
    bodyTimeout: 0,
    keepAliveTimeout: 30_000,
    connections: 64,
  });
}

/** The undici connection pools to the members for HTTP/1.1: the JSON gateway, health, version, metrics, discovery. */
export class HttpUpstreams {
  private readonly tls: TlsSource;
  private agent: UndiciAgent;
  private generation: number;
  /** Agents of older certificates, closing once their requests (watches included) are done. */
  private readonly retired = new Set<UndiciAgent>();

  constructor(tls: TlsSource) {
    this.tls = tls;
    this.agent = agentFor(tls.current());
    this.generation = tls.generation;
  }

  /** Sends one request to the member at origin, on an agent with the newest certificate files. */
  request(origin: string, options: Omit<Dispatcher.RequestOptions, 'origin'>): Promise<Dispatcher.ResponseData> {
    const files = this.tls.current();
    if (this.tls.generation !== this.generation) {
      const old = this.agent;
      this.retired.add(old);
      void old.close().finally(() => this.retired.delete(old));
      this.agent = agentFor(files);
      this.generation = this.tls.generation;
    }
    return request.call(this.agent, { ...options, origin });
  }

  /** Closes every pool, aborting what is still open. */
  async close(): Promise<void> {
    await Promise.all([this.agent, ...this.retired].map((a) => a.destroy()));
  }
}
