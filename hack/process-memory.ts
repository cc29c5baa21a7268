// A process's resident memory as the kernel counts it (/proc/PID/status and smaps), for the
// benchmarks: RSS split into private anonymous pages (heaps, what the process allocated) and file
// pages (the node binary and libraries, shared and clean), sampled over a window rather than once.
import { readFileSync } from 'node:fs';

export interface RssSample {
  rss: number;
  anon: number;
  file: number;
}

const kB = (status: string, field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;

/** RSS, RssAnon and RssFile of pid now, in bytes. */
export function rssSample(pid: number): RssSample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { rss: kB(status, 'VmRSS'), anon: kB(status, 'RssAnon'), file: kB(status, 'RssFile') };
}

/** Samples a process's RSS every intervalMs until stopped; a process that has exited ends it. */
export class RssSampler {
  readonly samples: RssSample[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(pid: number, intervalMs = 1000) {
    const take = (): void => {
      try {
        this.samples.push(rssSample(pid));
      } catch {
        clearInterval(this.timer);
      }
    };
    this.timer = setInterval(take, intervalMs);
    this.timer.unref();
    take();
  }

  stop(): RssSample[] {
    clearInterval(this.timer);
    return this.samples;
  }
}

/** Median and max of each field over the samples. */
export function rssFigures(samples: readonly RssSample[]): { count: number; median: RssSample; max: RssSample } {
  const pick = (field: keyof RssSample, q: 'median' | 'max'): number => {
    const xs = samples.map((s) => s[field]).sort((a, b) => a - b);
    if (xs.length === 0) return 0;
    return q === 'max' ? xs[xs.length - 1]! : xs[Math.floor((xs.length - 1) / 2)]!;
  };
  const of = (q: 'median' | 'max'): RssSample => ({ rss: pick('rss', q), anon: pick('anon', q), file: pick('file', q) });
  return { count: samples.length, median: of('median'), max: of('max') };
}

/**
 * Where a process's resident pages are, from /proc/PID/smaps: the glibc heap ([heap], malloc's main
 * arena), other anonymous mappings (the V8 heap, code space, thread stacks and malloc's thread arenas),
 * and the files mapped, largest first.
 */
export function residentByMapping(pid: number): { name: string; bytes: number }[] {
  const text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  const totals = new Map<string, number>();
  let current = '';
  for (const line of text.split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header) {
      const pathname = header[1]!.trim();
      current = pathname === '' ? 'anonymous' : pathname;
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) totals.set(current, (totals.get(current) ?? 0) + Number(rss[1]) * 1024);
  }
  return [...totals].map(([name, bytes]) => ({ name, bytes })).filter((m) => m.bytes > 0).sort((a, b) => b.bytes - a.bytes);
}
