import type { V1Container, V1Probe } from '@kubernetes/client-node';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { Agent, request } from 'undici';

// Probes open a fresh connection each time, as the kubelet does: no pooled socket to a process that
// has since gone can answer (or hang) in its place.
const probeAgent = new Agent({ connect: { rejectUnauthorized: false }, keepAliveTimeout: 1, keepAliveMaxTimeout: 1, pipelining: 0 });

/** Where a probe runs: the pod's IP and, for exec probes, how to run a command inside the container. */
export interface ProbeTarget {
  podIP: string;
  container: V1Container;
  /** Runs argv inside the container's mount namespace; resolves the exit code. */
  exec: (argv: string[], timeoutMs: number) => Promise<number>;
}

/** Why a probe cannot be run here at all, or undefined when it can. */
export function unsupportedProbe(probe: V1Probe | undefined): string | undefined {
  if (!probe) return undefined;
  if (probe.grpc) return 'grpc probes are not supported by the local cluster; use httpGet, tcpSocket or exec';
  if (!probe.httpGet && !probe.tcpSocket && !probe.exec) return 'the probe has no handler (httpGet, tcpSocket or exec)';
  return undefined;
}

function resolvePort(port: number | string, container: V1Container): number {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  const named = container.ports?.find((p) => p.name === port);
  if (!named) throw new Error(`named port "${port}" not found in container ${container.name}`);
  return named.containerPort;
}

/** Runs one probe attempt; resolves true on success. Never throws: an error is a failed probe. */
export async function probeOnce(probe: V1Probe, target: ProbeTarget): Promise<boolean> {
  const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
  try {
    if (probe.httpGet) {
      const g = probe.httpGet;
      const scheme = (g.scheme ?? 'HTTP').toLowerCase();
      const host = g.host ?? target.podIP;
      const port = resolvePort(g.port, target.container);
      const headers: Record<string, string> = { 'user-agent': 'kube-probe/local' };
      for (const h of g.httpHeaders ?? []) headers[h.name.toLowerCase()] = h.value;
      const res = await request(`${scheme}://${host}:${port}${g.path ?? '/'}`, {
        dispatcher: probeAgent,
        headers,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.body.text();
      return res.statusCode >= 200 && res.statusCode < 400;
    }
    if (probe.tcpSocket) {
      const port = resolvePort(probe.tcpSocket.port, target.container);
      const host = probe.tcpSocket.host ?? target.podIP;
      return await new Promise<boolean>((resolve) => {
        const socket = net.connect({ host, port, timeout: timeoutMs });
        const done = (ok: boolean): void => {
          socket.destroy();
          resolve(ok);
        };
        socket.once('connect', () => done(true));
        socket.once('timeout', () => done(false));
        socket.once('error', () => done(false));
      });
    }
    if (probe.exec?.command) return (await target.exec(probe.exec.command, timeoutMs)) === 0;
  } catch {
    return false;
  }
  return false;
}

/** Runs argv with a deadline and resolves its exit code (-1 when killed for the deadline or unstartable). */
export function runWithTimeout(argv: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { env, stdio: 'ignore' });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', () => {
      clearTimeout(timer);
      resolve(-1);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code ?? -1);
    });
  });
}
