import type { Logger } from '../telemetry/logger.ts';
import { frameMessage } from './grpc-frame.ts';
import type { H2Stream, StreamHandler } from './h2/stream.ts';
import type { MemberConnections } from './member-connections.ts';
import { readFields } from './protobuf.ts';
import type { UpstreamSet } from './upstreams.ts';

/** grpc.health.v1 HealthCheckResponse.ServingStatus NOT_SERVING. */
const NOT_SERVING = 2;
// gRPC status UNIMPLEMENTED: a member without the health service (or without Watch) is not watched again.
const UNIMPLEMENTED = '12';
const EMPTY_REQUEST = frameMessage(new Uint8Array(0)); // HealthCheckRequest{service: ""}: the whole server

/** The status in a HealthCheckResponse (field 1), 0 (UNKNOWN) when absent, undefined when the message is malformed. */
export function healthStatus(message: Uint8Array): number | undefined {
  try {
    const status = readFields(message).find((f) => f.num === 1 && f.wireType === 0);
    return status === undefined ? 0 : Number(status.varint);
  } catch {
    return undefined;
  }
}

/** Reassembles length-prefixed gRPC messages from DATA payloads as they arrive. */
export class GrpcMessageReader {
  private buffer = Buffer.alloc(0);

  /** The complete messages in what has arrived so far (uncompressed ones; a compressed one is skipped). */
  push(data: Buffer): Buffer[] {
    this.buffer = this.buffer.length === 0 ? Buffer.from(data) : Buffer.concat([this.buffer, data]);
    const out: Buffer[] = [];
    while (this.buffer.length >= 5) {
      const length = this.buffer.readUInt32BE(1);
      if (this.buffer.length < 5 + length) break;
      if (this.buffer[0] === 0) out.push(this.buffer.subarray(5, 5 + length));
      this.buffer = this.buffer.subarray(5 + length);
    }
    return out;
  }
}

export interface MemberHealthOptions {
  upstreams: UpstreamSet;
  members: MemberConnections;
  /** How long to wait before watching a member again after its watch ended. */
  retryMs: number;
  log: Logger;
}

/**
 * Watches every member's gRPC health service (grpc.health.v1.Health/Watch, one stream per member on
 * the proxy's connection to it) and tells the upstream set when a member reports NOT_SERVING, as etcd
 * does while it defragments with --feature-gates=StopGRPCServiceOnDefrag=true: new calls then go to
 * the other members. A member whose watch ended counts as serving again until it says otherwise;
 * whether it answers at all is the connection's and the probes' business.
 */
export class MemberHealth {
  private readonly o: MemberHealthOptions;
  private readonly watches = new Map<string, HealthWatch>();
  private stopped = false;

  constructor(options: MemberHealthOptions) {
    this.o = options;
  }

  /** Watches the members in urls that are not watched yet, and stops watching the others. */
  sync(urls: readonly string[]): void {
    if (this.stopped) return;
    for (const [url, w] of this.watches) {
      if (urls.includes(url)) continue;
      w.stop();
      this.watches.delete(url);
    }
    for (const url of urls) {
      if (this.watches.has(url)) continue;
      const w = new HealthWatch(url, this.o);
      this.watches.set(url, w);
      w.start();
    }
  }

  /** Stops every watch. */
  stop(): void {
    this.stopped = true;
    for (const w of this.watches.values()) w.stop();
    this.watches.clear();
  }
}

class HealthWatch implements StreamHandler {
  private readonly url: string;
  private readonly o: MemberHealthOptions;
  private stream: H2Stream | undefined;
  private reader = new GrpcMessageReader();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private notServing = false;

  constructor(url: string, options: MemberHealthOptions) {
    this.url = url;
    this.o = options;
  }

  start(): void {
    if (this.stopped) return;
    const entry = this.o.members.get(this.url);
    const headers = [':method', 'POST', ':scheme', entry.scheme, ':path', '/grpc.health.v1.Health/Watch', ':authority', entry.authority, 'content-type', 'application/grpc', 'te', 'trailers'];
    this.reader = new GrpcMessageReader();
    this.stream = entry.conn.request(headers, false, this);
    this.stream.sendData(EMPTY_REQUEST, true);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.stream?.reset();
    this.stream = undefined;
  }

  onHeaders(stream: H2Stream, headers: string[], endStream: boolean): void {
    if (stream !== this.stream) return;
    if (!stream.headersReceived) stream.headersReceived = true;
    if (!endStream) return;
    // Trailers, or a trailers-only answer: the watch is over.
    const status = headers[headers.indexOf('grpc-status') + 1];
    if (headers.includes('grpc-status') && status === UNIMPLEMENTED) {
      this.o.log.info({ member: this.url }, 'etcd member has no gRPC health Watch; not watching its serving status');
      this.stopped = true;
      this.set(true);
      return;
    }
    this.ended();
  }

  onData(stream: H2Stream, data: Buffer): void {
    if (stream !== this.stream) return;
    stream.credit(data.length);
    for (const message of this.reader.push(data)) {
      const status = healthStatus(message);
      if (status !== undefined) this.set(status !== NOT_SERVING);
    }
  }

  onReset(stream: H2Stream): void {
    if (stream === this.stream) this.ended();
  }

  onSent(): void {}

  private set(serving: boolean): void {
    if (serving === !this.notServing) return;
    this.notServing = !serving;
    this.o.upstreams.setServing(this.url, serving);
    if (serving) this.o.log.info({ member: this.url }, 'etcd member reports SERVING again; sending it new calls');
    else this.o.log.warn({ member: this.url }, 'etcd member reports NOT_SERVING (defragmenting?); sending new calls to other members');
  }

  private ended(): void {
    this.stream = undefined;
    this.set(true);
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.start(), this.o.retryMs);
    this.timer.unref();
  }
}
