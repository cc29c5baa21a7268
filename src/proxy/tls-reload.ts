import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { splitPem } from '../pki/secret-check.ts';
import type { TlsFiles } from './config.ts';

/** The TLS material towards the members, as the proxy's connections read it: the newest files. */
export interface TlsSource {
  /** The material to use for a new connection now. */
  current(): TlsFiles;
  /** Changes whenever current() returns newly read material. */
  readonly generation: number;
}

type Paths = { ca?: string | undefined; cert?: string | undefined; key?: string | undefined };

/**
 * Re-reads the CA, certificate and key files when any of them changed (inode, size or mtime: a
 * Secret volume swaps its `..data` symlink, so every file changes at once), checked at most once a
 * second and only when a connection is made. A half-visible or unreadable change keeps the material
 * that worked until the next check; a key that does not match its certificate is never used,
 * because tls.connect would fail every new connection with it.
 */
export class ReloadingTls implements TlsSource {
  private readonly paths: Paths;
  private files: TlsFiles;
  private stamp: string;
  private checkedAt = 0;
  private gen = 0;
  private readonly onReload: ((err: Error | undefined) => void) | undefined;

  constructor(paths: Paths, initial: TlsFiles, onReload?: (err: Error | undefined) => void) {
    this.paths = paths;
    this.files = initial;
    this.stamp = this.stat();
    this.onReload = onReload;
  }

  get generation(): number {
    return this.gen;
  }

  current(): TlsFiles {
    const now = Date.now();
    if (now - this.checkedAt < 1000) return this.files;
    this.checkedAt = now;
    const stamp = this.stat();
    if (stamp === this.stamp) return this.files;
    try {
      const read = (p: string | undefined): Buffer | undefined => (p === undefined ? undefined : readFileSync(p));
      const next: TlsFiles = { ca: read(this.paths.ca), cert: read(this.paths.cert), key: read(this.paths.key) };
      if (this.stat() !== stamp) return this.files; // changed while being read: take it next time
      if (next.cert && next.key && !new X509Certificate(next.cert).checkPrivateKey(createPrivateKey(next.key))) throw new Error('the key file does not match the certificate file');
      this.files = next;
      this.stamp = stamp;
      this.gen++;
      this.onReload?.(undefined);
    } catch (err) {
      this.onReload?.(err as Error);
    }
    return this.files;
  }

  private stat(): string {
    return [this.paths.ca, this.paths.cert, this.paths.key]
      .map((p) => {
        if (p === undefined) return '-';
        try {
          const s = statSync(p);
          return `${s.ino}:${s.size}:${s.mtimeMs}`;
        } catch {
          return 'missing';
        }
      })
      .join('|');
  }
}

/** Where the proxy's telemetry server reports its TLS material towards the members. */
export const TLS_REPORT_PATH = '/tls';

/** Certificates (public, PEM) trusted and presented on one side of the proxy; never a key. */
export interface TlsSideReport {
  trusted: string[];
  certificate?: string;
}

/**
 * What the proxy trusts and presents towards the members now (the material a new connection to a
 * member would use), and, when it serves TLS on its client port, what that listener serves and which
 * client CAs it accepts (the material applied to the listener, not merely read).
 */
export interface TlsReport extends TlsSideReport {
  listener?: TlsSideReport;
}

/** The report of the material towards the members and, when given, of the client listener. */
export function tlsReport(upstream: TlsFiles, listener?: TlsFiles): TlsReport {
  return { ...sideReport(upstream), ...(listener !== undefined ? { listener: sideReport(listener) } : {}) };
}

function sideReport(files: TlsFiles): TlsSideReport {
  const certificate = files.cert === undefined ? undefined : splitPem(files.cert.toString('utf8'))[0];
  return { trusted: files.ca === undefined ? [] : splitPem(files.ca.toString('utf8')), ...(certificate !== undefined ? { certificate } : {}) };
}
