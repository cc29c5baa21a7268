import http from 'node:http';
import https from 'node:https';

// The operator's HTTP/1.1 client (its Kubernetes REST client, its etcd admin client, its reads of the
// proxies' TLS reports), on node:http's own: Node's native llhttp parser and Agent pools. undici, used
// before, cost the operator 16 MiB of RSS before its first call (its WebAssembly HTTP parser and its
// modules; the proxy dropped it for the same reason, src/proxy/http1-upstreams.ts).

/** One request. Both timeouts fail the call with a TimeoutError, as an AbortSignal.timeout does. */
export interface HttpCall {
  method: string;
  /** An https.Agent for https URLs (it holds the TLS material), an http.Agent for http ones. */
  agent: http.Agent;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  /** No response headers within this long fails the call. */
  headersTimeoutMs: number;
  /** The response body silent (no data) for this long fails it. */
  bodyTimeoutMs: number;
}

/** The answer's status and its body, to read with readText (or to iterate, for a stream). */
export interface HttpAnswer {
  statusCode: number;
  body: http.IncomingMessage;
}

function timeoutError(ms: number, what: string): Error {
  return Object.assign(new Error(`${what} within ${ms} ms`), { name: 'TimeoutError' });
}

/** Sends one request and resolves when its response headers arrive. */
export function httpRequest(url: URL, call: HttpCall): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? https.request : http.request;
    const req = send(url, { method: call.method, agent: call.agent, headers: call.headers ?? {}, ...(call.signal ? { signal: call.signal } : {}) });
    // The socket's idle timer: first the wait for headers, then the gaps in the body.
    req.setTimeout(call.headersTimeoutMs, () => req.destroy(timeoutError(call.headersTimeoutMs, 'no response headers')));
    // Kept for the request's life: an error after the response (a reset, a timeout) must not go unheard.
    req.on('error', reject);
    req.once('response', (res) => {
      req.setTimeout(call.bodyTimeoutMs, () => {
        const err = timeoutError(call.bodyTimeoutMs, 'no response data');
        res.destroy(err);
        req.destroy(err);
      });
      resolve({ statusCode: res.statusCode ?? 0, body: res });
    });
    req.end(call.body);
  });
}

/** Reads a whole response body as UTF-8 text. */
export async function readText(body: http.IncomingMessage): Promise<string> {
  body.setEncoding('utf8');
  let text = '';
  for await (const chunk of body as AsyncIterable<string>) text += chunk;
  return text;
}

/**
 * Closes an agent once the calls it is serving are done (and its idle connections at once): an
 * agent replaced by one with new TLS material.
 */
export function retireAgent(agent: http.Agent): void {
  const busy = (): boolean => Object.keys(agent.sockets).length > 0 || Object.keys(agent.requests).length > 0;
  const check = (): void => {
    if (busy()) return;
    agent.off('free', later);
    agent.destroy();
  };
  // 'free' is emitted before the socket leaves the busy list.
  const later = (): void => void setImmediate(check);
  agent.on('free', later);
  check();
}
