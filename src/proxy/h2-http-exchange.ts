import type { IncomingHttpHeaders } from 'node:http';
import { Readable, Writable } from 'node:stream';
import { ErrorCode } from './h2/frames.ts';
import type { H2Stream, StreamHandler } from './h2/stream.ts';
import type { HttpReply, HttpRequest } from './http1-forward.ts';

/**
 * A plain HTTP request over an HTTP/2 stream (the JSON gateway, /health, /version over h2c or TLS),
 * as the Readable request body and Writable reply that forwardHttp works with. The client's window is
 * credited as the body is read, and reply writes wait while the client's window is closed.
 */
export function h2Exchange(stream: H2Stream, headers: string[], endStream: boolean): { req: HttpRequest; reply: HttpReply } {
  const object: IncomingHttpHeaders = {};
  let method = 'GET';
  let path = '/';
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    if (name === ':method') method = value;
    else if (name === ':path') path = value;
    else if (name === ':authority') object.host ??= value;
    else if (name.charCodeAt(0) !== 58) {
      const prev = object[name];
      object[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : `${prev}, ${value}`;
    }
  }
  let uncredited = 0;
  const body = new Readable({
    read() {
      // Asked for more: what was pushed so far has been taken, so the client may send more.
      stream.credit(uncredited);
      uncredited = 0;
    },
  });
  let drained: (() => void) | undefined;
  let ended = false;
  const reply = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      stream.sendData(chunk);
      if (stream.queued === 0 || stream.isClosed) callback();
      else drained = callback;
    },
    final(callback) {
      ended = true;
      stream.end();
      if (stream.queued === 0 || stream.isClosed) callback();
      else drained = callback;
    },
    destroy(err, callback) {
      if (!ended) stream.reset(ErrorCode.CANCEL);
      callback(err);
    },
  });
  const release = (): void => {
    const cb = drained;
    drained = undefined;
    cb?.();
  };
  const handler: StreamHandler = {
    onHeaders: (_s, _h, end) => {
      if (end) body.push(null);
    },
    onData: (_s, data, end) => {
      if (data.length > 0) {
        uncredited += data.length;
        body.push(data);
      }
      if (end) body.push(null);
    },
    onReset: () => {
      body.destroy();
      release();
      reply.destroy();
    },
    onSent: () => {
      if (stream.queued === 0) release();
    },
  };
  stream.handler = handler;
  if (endStream) body.push(null);
  return {
    req: { method, path, headers: object, body },
    reply: {
      head: (status, h) => {
        const out = [':status', String(status)];
        for (const [name, value] of Object.entries(h)) {
          const lower = name.toLowerCase();
          if (lower === 'connection' || lower === 'transfer-encoding' || lower === 'keep-alive') continue;
          for (const v of Array.isArray(value) ? value : [value]) out.push(lower, String(v));
        }
        stream.sendHeaders(out, false);
      },
      body: reply,
      headersSent: () => stream.headersSent,
      destroy: () => reply.destroy(),
    },
  };
}
