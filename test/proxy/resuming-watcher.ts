import { waitFor } from '../harness/ports.ts';
import { etcdClients, grpc, type EtcdClients } from './grpc-client.ts';

interface WatchResponse {
  created?: boolean;
  canceled?: boolean;
  cancel_reason?: string;
  events?: { kv?: { key: Buffer; mod_revision: string } }[];
}

/**
 * A watch on a key range through a proxy, as an etcd client keeps one: when the stream ends with
 * UNAVAILABLE it resumes from the revision after the last event it saw, on whatever target() names
 * then; any other end is a lost watch.
 */
export class ResumingWatcher {
  readonly seen: { key: string; revision: number }[] = [];
  readonly resumes: string[] = [];
  readonly lost: string[] = [];
  private clients: EtcdClients | undefined;
  private stream: grpc.ClientDuplexStream<object, WatchResponse> | undefined;
  private stopped = false;
  private lastRevision = 0;
  private readonly target: () => string | undefined;
  private readonly range: { key: string; rangeEnd: string };

  /** target: host:port of the proxy to watch through now (undefined: none yet). */
  constructor(target: () => string | undefined, range: { key: string; rangeEnd: string }) {
    this.target = target;
    this.range = range;
  }

  async start(): Promise<void> {
    await this.open();
  }

  stop(): void {
    this.stopped = true;
    this.stream?.cancel();
    this.clients?.close();
  }

  private async open(): Promise<void> {
    const target = await waitFor('a proxy to watch through', () => this.target(), { timeoutMs: 30_000, intervalMs: 100 });
    this.clients?.close();
    this.clients = etcdClients(target);
    const stream = (this.clients.watch as unknown as { Watch(): grpc.ClientDuplexStream<object, WatchResponse> }).Watch();
    this.stream = stream;
    let created!: () => void;
    const ready = new Promise<void>((r) => (created = r));
    stream.on('data', (r: WatchResponse) => {
      if (r.created) created();
      if (r.canceled) this.lost.push(`canceled by the server: ${r.cancel_reason ?? ''}`);
      for (const e of r.events ?? []) {
        const revision = Number(e.kv!.mod_revision);
        this.seen.push({ key: e.kv!.key.toString(), revision });
        this.lastRevision = revision;
      }
    });
    // Every call ends with exactly one status (grpc-js emits 'error' as well for a non-OK one).
    stream.on('error', () => undefined);
    stream.on('status', (st: grpc.StatusObject) => {
      if (this.stopped || stream !== this.stream) return;
      if (st.code === grpc.status.UNAVAILABLE) {
        this.resumes.push(`${new Date().toISOString()} from ${target}: ${st.details}`);
        void this.open().catch((e: unknown) => this.lost.push(`could not resume: ${(e as Error).message}`));
      } else this.lost.push(`ended with ${grpc.status[st.code]}: ${st.details}`);
    });
    const start = this.lastRevision === 0 ? {} : { start_revision: String(this.lastRevision + 1) };
    stream.write({ create_request: { key: Buffer.from(this.range.key), range_end: Buffer.from(this.range.rangeEnd), ...start } });
    await ready;
  }
}
