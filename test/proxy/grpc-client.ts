import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ClientHttp2Session } from 'node:http2';
import path from 'node:path';

const definition = protoLoader.loadSync(path.join(import.meta.dirname, 'etcd-rpc.proto'), { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
const pkg = grpc.loadPackageDefinition(definition) as unknown as { etcdserverpb: Record<string, grpc.ServiceClientConstructor> };

/** Node gRPC clients for the etcd services in the test proto, all on one channel to target. */
export interface EtcdClients {
  kv: grpc.Client;
  watch: grpc.Client;
  lease: grpc.Client;
  cluster: grpc.Client;
  maintenance: grpc.Client;
  /** Calls a unary method and resolves its response. */
  unary<T = Record<string, unknown>>(client: grpc.Client, method: string, request: object, metadata?: grpc.Metadata, options?: grpc.CallOptions): Promise<T>;
  close(): void;
}

/** Connects Node gRPC clients (cleartext HTTP/2) to target. */
export function etcdClients(target: string): EtcdClients {
  const creds = grpc.credentials.createInsecure();
  const kv = new pkg.etcdserverpb['KV']!(target, creds);
  const channel = { channelOverride: kv.getChannel() };
  const clients = {
    kv,
    watch: new pkg.etcdserverpb['Watch']!(target, creds, channel),
    lease: new pkg.etcdserverpb['Lease']!(target, creds, channel),
    cluster: new pkg.etcdserverpb['Cluster']!(target, creds, channel),
    maintenance: new pkg.etcdserverpb['Maintenance']!(target, creds, channel),
  };
  return {
    ...clients,
    unary<T>(client: grpc.Client, method: string, request: object, metadata = new grpc.Metadata(), options: grpc.CallOptions = {}): Promise<T> {
      return new Promise((resolve, reject) => {
        type Call = (r: object, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v: T) => void) => void;
        const fn = (client as unknown as Record<string, Call>)[method]!;
        fn.call(client, request, metadata, options, (err, value) => (err ? reject(err) : resolve(value)));
      });
    },
    close: () => kv.close(),
  };
}

/** A raw unary call with bytes in and bytes out, for paths the test proto does not describe. */
export function rawUnary(target: string, path: string, body: Buffer): Promise<{ status: grpc.status; details: string; response?: Buffer }> {
  const client = new grpc.Client(target, grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      body,
      (err, value) => {
        client.close();
        resolve(err ? { status: err.code, details: err.details } : { status: grpc.status.OK, details: '', response: value });
      },
    );
  });
}

/** A plain GET over an HTTP/2 session (node:http2 as a client): the response body as text. */
export function h2Get(session: ClientHttp2Session, path: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const req = session.request({ ':path': path });
    let data = '';
    req.on('data', (d: Buffer) => (data += d.toString()));
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });
}

export { grpc };
