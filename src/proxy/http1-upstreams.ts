import { Agent, type Dispatcher } from 'undici';
import type { TlsFiles } from './config.ts';

/** The undici connection pools to the members for HTTP/1.1: the JSON gateway, health, version, metrics, discovery. */
export class HttpUpstreams {
  private readonly agent: Agent;

  constructor(tls: TlsFiles) {
    this.agent = new Agent({
      connect: { ca: tls.ca, cert: tls.cert, key: tls.key },
      // A streaming watch over the gateway may be quiet for hours: no header or body timeouts.
      headersTimeout: 0,
      bodyTimeout: 0,
      keepAliveTimeout: 30_000,
      connections: 64,
    });
  }

  /** Sends one request to the member at origin. */
  request(origin: string, options: Omit<Dispatcher.RequestOptions, 'origin'>): Promise<Dispatcher.ResponseData> {
    return this.agent.request({ ...options, origin });
  }

  /** Closes every pool, aborting what is still open. */
  async close(): Promise<void> {
    await this.agent.destroy();
  }
}
