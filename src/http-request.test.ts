import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { httpRequest, readText, retireAgent } from './http-request.ts';

// A real node:http server on 127.0.0.1 whose handler each test sets.
let server: http.Server | undefined;
const agents: http.Agent[] = [];

async function serve(handler: http.RequestListener): Promise<URL> {
  server = http.createServer(handler);
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
}

function agent(): http.Agent {
  const a = new http.Agent({ keepAlive: true });
  agents.push(a);
  return a;
}

afterEach(async () => {
  for (const a of agents.splice(0)) a.destroy();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

describe('httpRequest', () => {
  it('sends the method, headers and body, and resolves the status and body', async () => {
    const url = await serve(async (req, res) => {
      let body = '';
      for await (const chunk of req) body += String(chunk);
      res.writeHead(201, { 'content-type': 'text/plain' }).end(`${req.method} ${String(req.headers['x-test'])} ${body}`);
    });
    const res = await httpRequest(url, { method: 'POST', agent: agent(), headers: { 'x-test': 'yes' }, body: 'hello', headersTimeoutMs: 2000, bodyTimeoutMs: 2000 });
    expect(res.statusCode).toBe(201);
    expect(await readText(res.body)).toBe('POST yes hello');
  });

  it('fails with a TimeoutError when no headers come within headersTimeoutMs', async () => {
    const url = await serve(() => undefined);
    await expect(httpRequest(url, { method: 'GET', agent: agent(), headersTimeoutMs: 100, bodyTimeoutMs: 5000 })).rejects.toMatchObject({ name: 'TimeoutError', message: 'no response headers within 100 ms' });
  });

  it('fails the body read with a TimeoutError when the body goes silent for bodyTimeoutMs', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200);
      res.write('part');
    });
    const res = await httpRequest(url, { method: 'GET', agent: agent(), headersTimeoutMs: 2000, bodyTimeoutMs: 150 });
    await expect(readText(res.body)).rejects.toMatchObject({ name: 'TimeoutError', message: 'no response data within 150 ms' });
  });

  it('fails the body read, without an unhandled error, when the server resets the connection mid-body', async () => {
    const url = await serve((req, res) => {
      res.writeHead(200);
      res.write('part', () => req.socket.destroy());
    });
    const res = await httpRequest(url, { method: 'GET', agent: agent(), headersTimeoutMs: 2000, bodyTimeoutMs: 2000 });
    await expect(readText(res.body)).rejects.toThrow();
  });

  it('is stopped by its signal', async () => {
    const url = await serve(() => undefined);
    const abort = new AbortController();
    const pending = httpRequest(url, { method: 'GET', agent: agent(), signal: abort.signal, headersTimeoutMs: 5000, bodyTimeoutMs: 5000 });
    abort.abort();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
  });
});

describe('retireAgent', () => {
  it('lets the call in flight finish, then closes the agent', async () => {
    let answer: (() => void) | undefined;
    const url = await serve((_req, res) => {
      answer = () => res.end('late');
    });
    const a = agent();
    const pending = httpRequest(url, { method: 'GET', agent: a, headersTimeoutMs: 5000, bodyTimeoutMs: 5000 });
    await expect.poll(() => answer).toBeDefined();
    const ownListeners = a.listenerCount('free');
    retireAgent(a);
    answer!();
    expect(await readText((await pending).body)).toBe('late');
    await expect.poll(() => Object.keys(a.sockets).length + Object.keys(a.freeSockets).length).toBe(0);
    expect(a.listenerCount('free')).toBe(ownListeners);
  });
});
