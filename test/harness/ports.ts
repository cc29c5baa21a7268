import { readFileSync } from 'node:fs';
import net from 'node:net';

/**
 * The kernel's ephemeral range, from which it picks the local port of every outgoing connection
 * (and of listen(0)). A test server must not take its port from there: between freePort() closing
 * the probe and the server binding, an outgoing connection may take the port, and a client that
 * dials the port before the server listens can connect to itself (a TCP self-connect, source port
 * = destination port), holding the port so the server cannot bind it.
 */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (low > 0) return low;
  } catch {
    // Not Linux: fall back to the IANA dynamic range.
  }
  return 49152;
}

/** freePort's pool: from 10000 to just below the ephemeral range. */
const POOL_LOW = 10_000;
const POOL_HIGH = ephemeralLow() - 1;
/** Ports this process probed already: never given twice, even after the server using one closed. */
const handedOut = new Set<number>();

function tryListen(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * A TCP port on host (127.0.0.1 by default) that is free now, outside the kernel's ephemeral range
 * (see ephemeralLow), and not handed out before by this process. Each worker starts at a random
 * point of the pool, so parallel test processes rarely probe the same ports.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const size = POOL_HIGH - POOL_LOW + 1;
  if (size < 1_000) throw new Error(`freePort: the ephemeral range starts at ${POOL_HIGH + 1}; test ports need 1,000 ports between ${POOL_LOW} and it`);
  const start = Math.floor(Math.random() * size);
  for (let i = 0; i < 500; i++) {
    const port = POOL_LOW + ((start + i) % size);
    if (handedOut.has(port)) continue;
    // Taken before the probe, so that concurrent calls never probe and hand out the same port; a
    // port found busy stays taken too.
    handedOut.add(port);
    if (await tryListen(port, host)) return port;
  }
  throw new Error(`freePort: no free port on ${host} in ${POOL_LOW}-${POOL_HIGH} after 500 tries`);
}

/** Thrown by a waitFor check to stop polling at once and fail with the wrapped error. */
export class StopWaiting extends Error {
  constructor(cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
  }
}

/** Polls check until it returns a value other than undefined/false, or throws after timeoutMs with the last error. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  { timeoutMs = 60_000, intervalMs = 200 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      if (err instanceof StopWaiting) throw err.cause;
      last = err;
    }
    if (Date.now() > deadline) {
      const reason = last instanceof Error ? `: ${last.message}` : '';
      throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}${reason}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
