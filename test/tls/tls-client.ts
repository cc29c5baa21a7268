import { X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import { Agent, request } from 'undici';
import { binaries } from '../harness/binaries.ts';
import type { LocalCluster } from '../harness/cluster/local-cluster.ts';
import { run } from '../harness/run.ts';

/** The PEM material of a kubernetes.io/tls Secret. */
export interface SecretPem {
  cert: string;
  key: string;
  ca: string;
}

/** Reads a TLS Secret through kubectl, as a user would. */
export async function readTlsSecret(cluster: LocalCluster, namespace: string, name: string): Promise<SecretPem> {
  const s = JSON.parse(await cluster.kubectl(['get', 'secret', name, '-n', namespace, '-o', 'json'])) as { data: Record<string, string> };
  const text = (k: string): string => Buffer.from(s.data[k] ?? '', 'base64').toString();
  return { cert: text('tls.crt'), key: text('tls.key'), ca: text('ca.crt') };
}

/** The serial number of a PEM certificate, as node:tls reports a peer's. */
export function serialOf(pem: string): string {
  return new X509Certificate(pem).serialNumber.toUpperCase();
}

/**
 * One TLS handshake to ip:port with the member's DNS name as SNI: the serial of the certificate the
 * member served, or the error. authorized says whether it verified against ca.
 */
export function handshake(ip: string, port: number, servername: string, material: Partial<SecretPem>): Promise<{ serial?: string; authorized: boolean; error?: string }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: ip, port, servername, ca: material.ca, cert: material.cert, key: material.key, rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    const done = (r: { serial?: string; authorized: boolean; error?: string }): void => {
      socket.destroy();
      resolve(r);
    };
    socket.setTimeout(5000, () => done({ authorized: false, error: 'timeout' }));
    socket.once('secureConnect', () => {
      const peer = socket.getPeerCertificate();
      done({ serial: peer.serialNumber?.toUpperCase(), authorized: socket.authorized, ...(socket.authorizationError ? { error: String(socket.authorizationError) } : {}) });
    });
    socket.once('error', (err: NodeJS.ErrnoException) => done({ authorized: false, error: err.code ?? err.message }));
  });
}

/** A JSON gateway call to a member's (or a TLS proxy's) pod IP with mutual TLS, verifying the given DNS name. */
export async function memberGateway<T>(ip: string, servername: string, material: Partial<SecretPem>, route: string, body: unknown, port = 2379): Promise<{ status: number; json?: T; error?: string }> {
  const agent = new Agent({ connect: { ca: material.ca, cert: material.cert, key: material.key, servername } });
  try {
    const res = await request(`https://${ip}:${port}${route}`, { method: 'POST', dispatcher: agent, body: JSON.stringify(body), headers: { 'content-type': 'application/json' }, headersTimeout: 5000, bodyTimeout: 5000 });
    const text = await res.body.text();
    return { status: res.statusCode, json: JSON.parse(text) as T };
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
    return { status: 0, error: e.cause?.code ?? e.code ?? e.message };
  } finally {
    await agent.destroy();
  }
}

/**
 * Runs etcdctl as a user in the cluster would: the member names resolve (a hosts file bound over
 * /etc/hosts in a private mount namespace), and the client certificate comes from files written out
 * of the Secret.
 */
export async function etcdctl(dir: string, hosts: Record<string, string>, secret: SecretPem, args: string[]): Promise<string> {
  const hostsFile = path.join(dir, `hosts-${process.hrtime.bigint()}`);
  await writeFile(hostsFile, ['127.0.0.1 localhost', ...Object.entries(hosts).map(([name, ip]) => `${ip} ${name}`)].join('\n') + '\n');
  const files = { ca: path.join(dir, 'ctl-ca.crt'), cert: path.join(dir, 'ctl-tls.crt'), key: path.join(dir, 'ctl-tls.key') };
  await Promise.all([writeFile(files.ca, secret.ca), writeFile(files.cert, secret.cert), writeFile(files.key, secret.key, { mode: 0o600 })]);
  const script = 'mount --bind "$0" /etc/hosts && shift && exec "$@"';
  return run('unshare', ['--mount', '--propagation', 'private', '/bin/sh', '-c', script, hostsFile, 'x', binaries().etcdctl, `--cacert=${files.ca}`, `--cert=${files.cert}`, `--key=${files.key}`, ...args]);
}

/**
 * Mutual TLS to one topology's members for tests that call them directly: the topology's
 * `<name>-client-tls`, read when first needed (the Secret appears with the topology). Every
 * member's certificate names `*.<name>-peer.<ns>.svc`, so member 0's name serves as SNI for all.
 */
export class MemberTls {
  private agent: Agent | undefined;
  private material: SecretPem | undefined;
  private readonly cluster: LocalCluster;
  private readonly namespace: string;
  private readonly name: string;

  constructor(cluster: LocalCluster, namespace: string, name: string) {
    this.cluster = cluster;
    this.namespace = namespace;
    this.name = name;
  }

  /** The DNS name to verify a member's certificate against. */
  get servername(): string {
    return `${this.name}-member-0.${this.name}-peer.${this.namespace}.svc`;
  }

  /** The client material (throws while the Secret does not exist yet). */
  async pem(): Promise<SecretPem> {
    this.material ??= await readTlsSecret(this.cluster, this.namespace, `${this.name}-client-tls`);
    return this.material;
  }

  /** An undici dispatcher presenting the client certificate. */
  async dispatcher(): Promise<Agent> {
    if (this.agent) return this.agent;
    const m = await this.pem();
    this.agent = new Agent({ connect: { ca: m.ca, cert: m.cert, key: m.key, servername: this.servername } });
    return this.agent;
  }

  async close(): Promise<void> {
    await this.agent?.close();
  }
}
