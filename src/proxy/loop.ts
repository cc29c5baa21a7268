import net from 'node:net';

/** An address one of the proxy's client listeners is bound to. */
export interface BoundAddress {
  host: string;
  port: number;
}

/** Lower-cases, strips IPv6 brackets and unwraps IPv4-mapped IPv6, so addresses compare as strings. */
export function normalizeHost(host: string): string {
  let h = host.toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.startsWith('::ffff:') && net.isIPv4(h.slice(7))) h = h.slice(7);
  return h;
}

const isWildcard = (h: string): boolean => h === '0.0.0.0' || h === '::' || h === '';

/**
 * Whether a member's advertised client URL would reach one of the proxy's own listeners: same port,
 * and one of the addresses its host resolves to is the listener's address (or, for a wildcard
 * listener, any address of this machine). Forwarding there would loop forever.
 */
export function pointsAtListener(
  targetAddresses: readonly string[],
  targetPort: number,
  listeners: readonly BoundAddress[],
  localAddresses: ReadonlySet<string>,
): boolean {
  const targets = targetAddresses.map(normalizeHost);
  return listeners.some((l) => {
    if (l.port !== targetPort) return false;
    const host = normalizeHost(l.host);
    if (isWildcard(host)) return targets.some((t) => localAddresses.has(t) || isLoopback(t) || isWildcard(t));
    return targets.some((t) => t === host);
  });
}

function isLoopback(addr: string): boolean {
  return addr === '::1' || addr.startsWith('127.');
}

/** The port of an http(s) URL, defaulting by scheme. */
export function urlPort(u: URL): number {
  if (u.port !== '') return Number(u.port);
  return u.protocol === 'https:' ? 443 : 80;
}
