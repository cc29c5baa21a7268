import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type * as Yaml from 'yaml';
import { TopologyError } from '../errors.ts';
import { httpRequest, readText, type HttpAnswer } from '../http-request.ts';

/**
 * The operator's own Kubernetes REST client: one keep-alive connection pool to the API server, JSON in
 * and out. It replaces @kubernetes/client-node in the operator process, whose KubeConfig alone loads
 * the generated client for every API group (79 MiB of RSS before any work, docs/bench/operator-memory.md)
 * and which opened a new TLS connection for every request. The operator makes a handful of kinds of
 * calls (list, watch, server-side apply, patch, delete, create, read), all of them here.
 */

/** Where the API server is and how this process proves who it is. */
export interface KubeTarget {
  server: string;
  tls: { ca?: string; cert?: string; key?: string; rejectUnauthorized: boolean; servername?: string };
  /** A bearer token: fixed, or read from a file (service account tokens rotate: re-read every minute). */
  token?: { value: string } | { file: string };
}

/** The kubeconfig fields this client reads (clientcmd's v1 Config). */
interface KubeconfigFile {
  'current-context'?: string;
  contexts?: { name: string; context?: { cluster?: string; user?: string } }[];
  clusters?: { name: string; cluster?: Record<string, unknown> }[];
  users?: { name: string; user?: Record<string, unknown> }[];
}

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
const USER_FIELDS = ['client-certificate', 'client-certificate-data', 'client-key', 'client-key-data', 'token', 'tokenFile'];

// yaml is loaded only to read a kubeconfig: in its pod the operator uses the service account and never needs it.
const requireModule = createRequire(import.meta.url);
const parseYaml = (text: string): unknown => (requireModule('yaml') as typeof Yaml).parse(text);

const kubeconfigError = (message: string): TopologyError => new TopologyError('ETOP_KUBECONFIG', message);

/**
 * Resolves a kubeconfig's current context into a target (pure but for reading the files it names,
 * through readFile, relative to baseDir). Accepted credentials: a client certificate and key (file or
 * -data), a token, or a tokenFile; exec plugins, auth providers and passwords are refused by name.
 */
export function targetFromKubeconfig(text: string, baseDir: string, readFile: (file: string) => string = (f) => readFileSync(f, 'utf8')): KubeTarget {
  const doc = (parseYaml(text) ?? {}) as KubeconfigFile;
  const contextName = doc['current-context'];
  const context = doc.contexts?.find((c) => c.name === contextName)?.context;
  if (!contextName || !context) throw kubeconfigError(`the kubeconfig has no current context${contextName ? ` named "${contextName}"` : ''}: set current-context to one of its contexts`);
  const cluster = doc.clusters?.find((c) => c.name === context.cluster)?.cluster;
  if (!cluster || typeof cluster['server'] !== 'string') throw kubeconfigError(`the kubeconfig's context "${contextName}" names no cluster with a server`);
  const user = doc.users?.find((u) => u.name === context.user)?.user ?? {};
  const unsupported = Object.keys(user).filter((k) => ['exec', 'auth-provider', 'username', 'password'].includes(k));
  if (unsupported.length > 0) {
    throw kubeconfigError(`the kubeconfig's user "${context.user ?? ''}" authenticates with ${unsupported.join(', ')}, which the operator does not support; accepted: ${USER_FIELDS.join(', ')}, or the pod's service account`);
  }
  const file = (key: string): string | undefined => {
    const data = cluster[`${key}-data`] ?? user[`${key}-data`];
    if (typeof data === 'string') return Buffer.from(data, 'base64').toString('utf8');
    const name = cluster[key] ?? user[key];
    return typeof name === 'string' ? readFile(path.resolve(baseDir, name)) : undefined;
  };
  const token = typeof user['token'] === 'string' ? { value: user['token'] } : typeof user['tokenFile'] === 'string' ? { file: path.resolve(baseDir, user['tokenFile']) } : undefined;
  const servername = cluster['tls-server-name'];
  return {
    server: cluster['server'].replace(/\/+$/, ''),
    tls: {
      ca: file('certificate-authority'),
      cert: file('client-certificate'),
      key: file('client-key'),
      rejectUnauthorized: cluster['insecure-skip-tls-verify'] !== true,
      ...(typeof servername === 'string' ? { servername } : {}),
    },
    ...(token ? { token } : {}),
  };
}

/** The pod's own service account, as client-go's InClusterConfig reads it. */
function inClusterTarget(): KubeTarget {
  const host = process.env['KUBERNETES_SERVICE_HOST']!;
  const port = process.env['KUBERNETES_SERVICE_PORT'] ?? '443';
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    tls: { ca: readFileSync(path.join(SERVICE_ACCOUNT_DIR, 'ca.crt'), 'utf8'), rejectUnauthorized: true },
    token: { file: path.join(SERVICE_ACCOUNT_DIR, 'token') },
  };
}

/** The first file of $KUBECONFIG (a list), else ~/.kube/config. */
function defaultKubeconfigFile(): string {
  const env = process.env['KUBECONFIG']?.split(path.delimiter).find((f) => f !== '');
  return env ?? path.join(os.homedir(), '.kube', 'config');
}

/** An answer of the API server that is not 2xx, shaped as kubeApiError reads it (code and body). */
export class KubeHttpError extends Error {
  readonly code: number;
  readonly body: string;
  constructor(method: string, urlPath: string, code: number, body: string) {
    super(`${method} ${urlPath}: HTTP ${code}`);
    this.name = 'KubeHttpError';
    this.code = code;
    this.body = body;
  }
}

/** One event of a watch, as the API server streams it (one JSON object per line). */
export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface RequestOptions {
  query?: Record<string, string | undefined>;
  body?: unknown;
  contentType?: string;
  /** Aborts the call (its promise rejects): a caller that gave up on it must not have it land later. */
  signal?: AbortSignal;
}

/** No answer within this long fails a call (client-go has no default; the API server's own is 60 s). */
const CALL_TIMEOUT_MS = 60_000;
/** Idle keep-alive connections to the API server are closed after this long. */
const IDLE_TIMEOUT_MS = 30_000;
const TOKEN_REREAD_MS = 60_000;

/**
 * The Kubernetes verb and resource of a request ("get secrets", "list nodes", "watch pods", "patch
 * etcdtopologies/status"), for counting calls by kind.
 */
export function requestKind(method: string, urlPath: string, watch = false): { verb: string; resource: string } {
  const parts = (urlPath.split('?')[0] ?? '').split('/').filter(Boolean);
  // /api/v1/... or /apis/group/version/...
  let rest = parts[0] === 'api' ? parts.slice(2) : parts[0] === 'apis' ? parts.slice(3) : parts;
  if (rest[0] === 'namespaces' && rest.length > 2) rest = rest.slice(2);
  const [resource = '', name, sub] = rest;
  const verb = watch
    ? 'watch'
    : ({ GET: name === undefined ? 'list' : 'get', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' } as Record<string, string>)[method] ?? method.toLowerCase();
  return { verb, resource: sub === undefined ? resource : `${resource}/${sub}` };
}

export class KubeClient {
  readonly server: string;
  /** Called once per request sent (a metric of calls by verb and resource). */
  onRequest: ((verb: string, resource: string) => void) | undefined;
  private readonly agent: http.Agent;
  private readonly token: KubeTarget['token'];
  private cachedToken: { value: string; readAt: number } | undefined;

  constructor(target: KubeTarget) {
    this.server = target.server;
    this.token = target.token;
    const { ca, cert, key, rejectUnauthorized, servername } = target.tls;
    this.agent = this.server.startsWith('https:')
      ? new https.Agent({ keepAlive: true, timeout: IDLE_TIMEOUT_MS, ca, cert, key, rejectUnauthorized, ...(servername ? { servername } : {}) })
      : new http.Agent({ keepAlive: true, timeout: IDLE_TIMEOUT_MS });
  }

  /** --kubeconfig, else the in-cluster service account, else the default kubeconfig ($KUBECONFIG, ~/.kube/config). */
  static load(file: string | undefined): KubeClient {
    if (!file && process.env['KUBERNETES_SERVICE_HOST']) return new KubeClient(inClusterTarget());
    const chosen = file ?? defaultKubeconfigFile();
    let text: string;
    try {
      text = readFileSync(chosen, 'utf8');
    } catch (err) {
      throw new TopologyError('ETOP_KUBECONFIG', `no Kubernetes cluster configured: cannot read kubeconfig ${chosen} (${(err as Error).message}); pass --kubeconfig, set KUBECONFIG, or run in a pod`, { cause: err });
    }
    return new KubeClient(targetFromKubeconfig(text, path.dirname(chosen)));
  }

  /** Sends one call and resolves the parsed JSON answer; a non-2xx answer throws KubeHttpError. */
  async call<T>(method: HttpMethod, urlPath: string, options: RequestOptions = {}): Promise<T> {
    if (this.onRequest) {
      const { verb, resource } = requestKind(method, urlPath);
      this.onRequest(verb, resource);
    }
    const res = await this.send(method, urlPath, options, CALL_TIMEOUT_MS, options.signal ? { signal: options.signal } : {});
    const text = await readText(res.body);
    if (res.statusCode < 200 || res.statusCode > 299) throw new KubeHttpError(method, urlPath, res.statusCode, text);
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  /**
   * Watches a collection from resourceVersion, calling onEvent for each event in order, until the
   * server ends the watch (resolves) or it fails (rejects). signal stops it.
   */
  async watch<T>(urlPath: string, query: Record<string, string | undefined>, onEvent: (e: WatchEvent<T>) => void, signal: AbortSignal): Promise<void> {
    if (this.onRequest) this.onRequest('watch', requestKind('GET', urlPath, true).resource);
    const timeoutSeconds = 240 + Math.floor(Math.random() * 120);
    const res = await this.send('GET', urlPath, { query: { ...query, watch: 'true', allowWatchBookmarks: 'true', timeoutSeconds: String(timeoutSeconds) } }, 30_000, {
      signal,
      // The whole watch is bounded by the server's timeout; a connection silent for longer is dead.
      bodyTimeout: (timeoutSeconds + 30) * 1000,
    });
    if (res.statusCode !== 200) throw new KubeHttpError('GET', `${urlPath} (watch)`, res.statusCode, await readText(res.body));
    res.body.setEncoding('utf8');
    let buffer = '';
    for await (const chunk of res.body as AsyncIterable<string>) {
      buffer += chunk;
      for (let nl = buffer.indexOf('\n'); nl !== -1; nl = buffer.indexOf('\n')) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line.trim() !== '') onEvent(JSON.parse(line) as WatchEvent<T>);
      }
    }
  }

  /** Closes the client's connections (a call still in flight fails). */
  close(): Promise<void> {
    this.agent.destroy();
    return Promise.resolve();
  }

  private send(method: HttpMethod, urlPath: string, options: RequestOptions, headersTimeout: number, extra: { signal?: AbortSignal; bodyTimeout?: number } = {}): Promise<HttpAnswer> {
    const url = new URL(this.server + urlPath);
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const headers: Record<string, string> = { accept: 'application/json' };
    const token = this.bearer();
    if (token) headers['authorization'] = `Bearer ${token}`;
    if (options.body !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
    return httpRequest(url, {
      method,
      agent: this.agent,
      headers,
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
      headersTimeoutMs: headersTimeout,
      bodyTimeoutMs: extra.bodyTimeout ?? headersTimeout,
      ...(extra.signal ? { signal: extra.signal } : {}),
    });
  }

  private bearer(): string | undefined {
    const t = this.token;
    if (!t) return undefined;
    if ('value' in t) return t.value;
    const now = Date.now();
    if (!this.cachedToken || now - this.cachedToken.readAt > TOKEN_REREAD_MS) this.cachedToken = { value: readFileSync(t.file, 'utf8').trim(), readAt: now };
    return this.cachedToken.value;
  }
}

/** Where a kind lives in the API (the operator's kinds only; REST has no kind-to-path rule). */
const RESOURCES: Record<string, { apiVersion: string; plural: string; namespaced: boolean }> = {
  Pod: { apiVersion: 'v1', plural: 'pods', namespaced: true },
  Secret: { apiVersion: 'v1', plural: 'secrets', namespaced: true },
  Service: { apiVersion: 'v1', plural: 'services', namespaced: true },
  ServiceAccount: { apiVersion: 'v1', plural: 'serviceaccounts', namespaced: true },
  PersistentVolumeClaim: { apiVersion: 'v1', plural: 'persistentvolumeclaims', namespaced: true },
  PersistentVolume: { apiVersion: 'v1', plural: 'persistentvolumes', namespaced: false },
  Event: { apiVersion: 'v1', plural: 'events', namespaced: true },
  ConfigMap: { apiVersion: 'v1', plural: 'configmaps', namespaced: true },
  StatefulSet: { apiVersion: 'apps/v1', plural: 'statefulsets', namespaced: true },
  DaemonSet: { apiVersion: 'apps/v1', plural: 'daemonsets', namespaced: true },
  Job: { apiVersion: 'batch/v1', plural: 'jobs', namespaced: true },
  PodDisruptionBudget: { apiVersion: 'policy/v1', plural: 'poddisruptionbudgets', namespaced: true },
  Lease: { apiVersion: 'coordination.k8s.io/v1', plural: 'leases', namespaced: true },
};

/** The REST path of a collection (name undefined) or of one object, for a kind the operator uses. */
export function resourcePath(apiVersion: string, kind: string, namespace: string | undefined, name?: string, plural?: string): string {
  const known = RESOURCES[kind];
  const resource = plural ?? (known?.apiVersion === apiVersion ? known.plural : undefined);
  if (resource === undefined) throw new TopologyError('ETOP_INTERNAL', `no REST path known for ${apiVersion} ${kind}; known kinds: ${Object.keys(RESOURCES).join(', ')}`);
  const group = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  const scope = namespace !== undefined && (known?.namespaced ?? true) ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `${group}${scope}/${resource}${name === undefined ? '' : `/${encodeURIComponent(name)}`}`;
}
