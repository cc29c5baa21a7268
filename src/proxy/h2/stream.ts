import { ErrorCode } from './frames.ts';

/** Why a stream ended without both sides finishing it. */
export type ResetCause =
  /** The peer sent RST_STREAM, or a frame that broke this stream's rules. */
  | 'peer'
  /** The peer's GOAWAY said it never processed this stream (its ID is above last-stream-id). */
  | 'goaway'
  /** The connection closed or failed. */
  | 'connection';

/** What the owner of a stream hears from it. */
export interface StreamHandler {
  /** Response headers (client side), or trailers (both sides); request headers arrive through the server's onStream. */
  onHeaders(stream: H2Stream, headers: string[], endStream: boolean): void;
  /** A DATA payload, a view into the received bytes. Call stream.credit() once it has been passed on. */
  onData(stream: H2Stream, data: Buffer, endStream: boolean): void;
  /** The stream ended abnormally; nothing more comes from it or goes to it. */
  onReset(stream: H2Stream, code: number, cause: ResetCause): void;
  /** Queued DATA bytes went out after the peer opened its window (bytes sent at once are sendData's return value). */
  onSent(stream: H2Stream, bytes: number): void;
}

/** What a stream needs from its connection. */
export interface StreamOwner {
  readonly peerMaxFrameSize: number;
  /** The connection-level window the peer granted. */
  sendWindow: number;
  /** The stream window this side advertised. */
  readonly localInitialWindow: number;
  /** False while the socket's own buffer is full: DATA then waits, whatever the windows say. */
  canWrite(): boolean;
  writeData(streamId: number, data: Buffer, endStream: boolean): void;
  writeHeaders(streamId: number, headers: readonly string[], endStream: boolean): void;
  writeWindowUpdate(streamId: number, increment: number): void;
  writeRst(streamId: number, code: number): void;
  /** The stream waits for the connection window. */
  blocked(stream: H2Stream): void;
  /** The stream is closed: drop it from the table. */
  forget(stream: H2Stream): void;
}

const EMPTY = Buffer.alloc(0);

/**
 * One HTTP/2 stream: its state (RFC 9113, section 5.1), its send queue under flow control, and the
 * credit it returns to the peer. Outgoing DATA waits in the queue while either window is closed; the
 * peer's window is credited only as far as the owner says received bytes were passed on.
 */
export class H2Stream {
  readonly id: number;
  handler: StreamHandler | undefined;
  /** The peer's window for this stream. */
  sendWindow: number;
  /** What the peer may still send before this side credits more. */
  recvWindow: number;
  headersSent = false;
  localEnded = false;
  remoteEnded = false;
  isClosed = false;
  /** Response headers received (client side). */
  headersReceived = false;
  /** This side sent RST_STREAM. */
  resetSent = false;
  /** The peer sent RST_STREAM. */
  resetReceived = false;
  /**
   * Request body bytes still expected from the peer's content-length header (server side), or -1
   * when it sent none; DATA beyond it, or END_STREAM short of it, is malformed (RFC 9113, section 8.1.1).
   */
  expectedLength = -1;
  private readonly owner: StreamOwner;
  // Whether the local side resets the stream with NO_ERROR once it has ended its side while the peer has
  // not (what a server does once its response is complete, RFC 9113 section 8.1).
  private readonly resetAfterEnd: boolean;
  // DATA waiting for window: queue[head..] (a read index, not shift(), which copies a long array on
  // every call: a watch stream held back by its window can queue tens of thousands of messages).
  private queue: Buffer[] = [];
  private head = 0;
  private queuedBytes = 0;
  private endQueued = false;
  private trailers: readonly string[] | undefined;
  private unacked = 0;

  constructor(id: number, owner: StreamOwner, sendWindow: number, resetAfterEnd: boolean) {
    this.id = id;
    this.owner = owner;
    this.sendWindow = sendWindow;
    this.recvWindow = owner.localInitialWindow;
    this.resetAfterEnd = resetAfterEnd;
  }

  /** Bytes waiting for the peer's window. */
  get queued(): number {
    return this.queuedBytes;
  }

  /** Sends the first header block (request or response); endStream makes it the whole message (e.g. trailers-only). */
  sendHeaders(headers: readonly string[], endStream: boolean): void {
    if (this.isClosed || this.headersSent) return;
    this.headersSent = true;
    this.owner.writeHeaders(this.id, headers, endStream);
    if (endStream) this.endedLocally();
  }

  /** Sends DATA, queued behind earlier DATA and under flow control; returns how many bytes went out now. */
  sendData(data: Buffer, endStream = false): number {
    if (this.isClosed || this.localEnded || this.endQueued || this.trailers !== undefined) return 0;
    if (data.length > 0) {
      this.queue.push(data);
      this.queuedBytes += data.length;
    }
    if (endStream) this.endQueued = true;
    return this.flush();
  }

  /** Ends this side with trailers, after any queued DATA. */
  sendTrailers(trailers: readonly string[]): void {
    if (this.isClosed || this.localEnded || this.endQueued || this.trailers !== undefined) return;
    this.trailers = trailers;
    this.flush();
  }

  /** Ends this side (an empty DATA frame with END_STREAM, after any queued DATA). */
  end(): void {
    this.sendData(EMPTY, true);
  }

  /** Sends RST_STREAM and forgets the stream; queued data is dropped. */
  reset(code: number = ErrorCode.CANCEL): void {
    if (this.isClosed) return;
    this.resetSent = true;
    this.owner.writeRst(this.id, code);
    this.close();
  }

  /** Returns window to the peer for bytes received that have been passed on. */
  credit(bytes: number): void {
    if (bytes <= 0 || this.isClosed || this.remoteEnded) return;
    this.unacked += bytes;
    // Batched: one WINDOW_UPDATE per half window instead of one per frame.
    if (this.unacked >= this.owner.localInitialWindow / 2) {
      this.recvWindow += this.unacked;
      this.owner.writeWindowUpdate(this.id, this.unacked);
      this.unacked = 0;
    }
  }

  /** Writes queued DATA as far as both windows allow; returns the bytes written. */
  flush(): number {
    let written = 0;
    const owner = this.owner;
    while (this.head < this.queue.length) {
      const allowed = Math.min(this.sendWindow, owner.sendWindow, owner.peerMaxFrameSize);
      if (allowed <= 0 || !owner.canWrite()) break;
      const head = this.queue[this.head]!;
      const n = Math.min(head.length, allowed);
      if (n === head.length) this.queue[this.head++] = EMPTY;
      else this.queue[this.head] = head.subarray(n);
      if (this.head === this.queue.length) {
        this.queue = [];
        this.head = 0;
      } else if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      this.queuedBytes -= n;
      this.sendWindow -= n;
      owner.sendWindow -= n;
      written += n;
      const last = this.queue.length === 0 && this.endQueued && this.trailers === undefined;
      owner.writeData(this.id, n === head.length ? head : head.subarray(0, n), last);
      if (last) {
        this.endedLocally();
        return written;
      }
    }
    if (this.queue.length > 0) {
      owner.blocked(this);
    } else if (this.trailers !== undefined) {
      owner.writeHeaders(this.id, this.trailers, true);
      this.endedLocally();
    } else if (this.endQueued) {
      owner.writeData(this.id, EMPTY, true);
      this.endedLocally();
    }
    return written;
  }

  /** The peer ended its side. */
  endedRemotely(): void {
    this.remoteEnded = true;
    if (this.localEnded) this.close();
  }

  /** Forgets the stream without telling the peer (after RST_STREAM either way, or a lost connection). */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.queue = [];
    this.head = 0;
    this.queuedBytes = 0;
    this.owner.forget(this);
  }

  private endedLocally(): void {
    this.localEnded = true;
    if (this.remoteEnded) this.close();
    else if (this.resetAfterEnd) this.reset(ErrorCode.NO_ERROR);
  }
}
