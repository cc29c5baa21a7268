import http from 'node:http';
import https from 'node:https';
import type { z } from 'zod';
import { httpRequest, readText, retireAgent } from '../http-request.ts';
import { codeForGrpc, EtcdError, isUnavailable } from './errors.ts';
import {
  alarmResponse,
  emptyResponse,
  errorResponse,
  healthResponse,
  memberAddResponse,
  memberChangeResponse,
  memberListResponse,
  statusResponse,
  type AlarmResponse,
  type MemberAddResponse,
  type MemberListResponse,
  type StatusResponse,
} from './responses.ts';

export interface AdminClientOptions {
  /** Per-call deadline for quick calls (member list, status, alarms, health, membership changes). */
  timeoutMs?: number;
  /** Per-call deadline for defragmentation, which blocks the member for as long as it takes. */
  defragmentTimeoutMs?: number;
  /** TLS material for https endpoints without material of their own (setEndpointTls), PEM. */
  tls?: { ca?: string | undefined; cert?: string | undefined; key?: string | undefined };
}

// Idle keep-alive connections to a member are closed after this long; at most this many at once per member.
const IDLE_TIMEOUT_MS = 30_000;
const CONNECTIONS_PER_MEMBER = 4;
const poolOptions = { keepAlive: true, timeout: IDLE_TIMEOUT_MS, maxSockets: CONNECTIONS_PER_MEMBER };

/** Mutual TLS towards one member endpoint: the CA bundle, our client certificate, and the name to verify (and send as SNI). */
export interface EndpointTls {
  ca: string;
  cert: string;
  key: string;
  /** The member's DNS name: endpoints are pod IPs, which the certificates do not name. */
  servername: string;
}

interface CallOptions {
  timeoutMs?: number;
}

/**
 * The operator's etcd admin client over etcd's JSON gateway (HTTP/1.1, node:http). Every call names the
 * member it talks to, because status, defragmentation and leader transfer are per member; use
 * onFirstAvailable for cluster-wide calls that any member may answer.
 */
export class EtcdAdminClient {
  private readonly plain = new http.Agent(poolOptions);
  private readonly secure: https.Agent;
  private readonly timeoutMs: number;
  private readonly defragmentTimeoutMs: number;
  /** Per endpoint origin: its own agent with that member's TLS material, replaced when the material changes. */
  private readonly endpointTls = new Map<string, { material: EndpointTls; agent: https.Agent }>();

  constructor(options: AdminClientOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? 5_000;
    this.defragmentTimeoutMs = options.defragmentTimeoutMs ?? 120_000;
    this.secure = new https.Agent({ ...poolOptions, ...options.tls });
  }

  /** Lists the cluster's members (learners included) as the answering member knows them. */
  memberList(endpoint: string, { linearizable = true, ...options }: CallOptions & { linearizable?: boolean } = {}): Promise<MemberListResponse> {
    return this.post(endpoint, 'member list', '/v3/cluster/member/list', { linearizable }, memberListResponse, options);
  }

  /** One member's own status: its leader, raft index, database size and errors. */
  status(endpoint: string, options?: CallOptions): Promise<StatusResponse> {
    return this.post(endpoint, 'status', '/v3/maintenance/status', {}, statusResponse, options);
  }

  /** The cluster's active alarms (NOSPACE, CORRUPT). */
  alarms(endpoint: string, options?: CallOptions): Promise<AlarmResponse> {
    return this.post(endpoint, 'alarm list', '/v3/maintenance/alarm', { action: 'GET', memberID: '0', alarm: 'NONE' }, alarmResponse, options);
  }

  /** Disarms one alarm (after the cause, e.g. a full database, has been dealt with). */
  async disarmAlarm(endpoint: string, memberId: string, alarm: 'NOSPACE' | 'CORRUPT', options?: CallOptions): Promise<void> {
    await this.post(endpoint, 'alarm disarm', '/v3/maintenance/alarm', { action: 'DEACTIVATE', memberID: memberId, alarm }, alarmResponse, options);
  }

  /** Moves leadership to the member with targetId; etcd only accepts this at the current leader's endpoint. */
  async moveLeader(leaderEndpoint: string, targetId: string, options?: CallOptions): Promise<void> {
    await this.post(leaderEndpoint, 'move leader', '/v3/maintenance/transfer-leadership', { targetID: targetId }, emptyResponse, options);
  }

  /** Defragments the member at endpoint; it serves nothing until done, so call it on one member at a time. */
  async defragment(endpoint: string, options?: CallOptions): Promise<void> {
    await this.post(endpoint, 'defragment', '/v3/maintenance/defragment', {}, emptyResponse, { timeoutMs: options?.timeoutMs ?? this.defragmentTimeoutMs });
  }

  /**
   * Compacts the keyspace up to revision; physical waits until the old revisions are gone from the
   * backend, so that a defragmentation afterwards frees them.
   */
  async compact(endpoint: string, revision: number, { physical = true, ...options }: CallOptions & { physical?: boolean } = {}): Promise<void> {
    await this.post(endpoint, 'compact', '/v3/kv/compaction', { revision: String(revision), physical }, emptyResponse, options);
  }

  /** Adds a member with the given peer URLs, as a learner unless told otherwise; returns the new member and the new list. */
  memberAdd(endpoint: string, peerURLs: readonly string[], { learner = true, ...options }: CallOptions & { learner?: boolean } = {}): Promise<MemberAddResponse> {
    return this.post(endpoint, 'member add', '/v3/cluster/member/add', { peerURLs, isLearner: learner }, memberAddResponse, options);
  }

  /** Promotes a learner to a voter; etcd refuses while the learner has not caught up. */
  async memberPromote(endpoint: string, id: string, options?: CallOptions): Promise<void> {
    await this.post(endpoint, 'member promote', '/v3/cluster/member/promote', { ID: id }, memberChangeResponse, options);
  }

  /** Removes a member from the cluster. */
  async memberRemove(endpoint: string, id: string, options?: CallOptions): Promise<void> {
    await this.post(endpoint, 'member remove', '/v3/cluster/member/remove', { ID: id }, memberChangeResponse, options);
  }

  /** GET /health: whether the member serves a linearizable read now, and why not. */
  async health(endpoint: string, options?: CallOptions): Promise<{ healthy: boolean; reason: string }> {
    const { status, body } = await this.send(endpoint, 'health', 'GET', '/health', undefined, options);
    // /health answers 503 with the same body shape when the member is unhealthy: that is an answer, not a failure.
    if (status !== 200 && status !== 503) throw this.failed(endpoint, 'health', status, body);
    const parsed = this.parse(endpoint, 'health', healthResponse, body);
    return { healthy: parsed.health === 'true', reason: parsed.reason };
  }

  /** Runs fn against each endpoint in turn until one is reachable; throws the last unavailability otherwise. */
  async onFirstAvailable<T>(endpoints: readonly string[], fn: (endpoint: string) => Promise<T>): Promise<T> {
    let last: unknown = new EtcdError('ETOP_ETCD_UNAVAILABLE', { endpoint: '(none)', operation: 'call', detail: 'no endpoints were given' });
    for (const endpoint of endpoints) {
      try {
        return await fn(endpoint);
      } catch (err) {
        if (!isUnavailable(err)) throw err;
        last = err;
      }
    }
    throw last;
  }

  /**
   * Sets (or with undefined, clears) the TLS material for calls to an https endpoint. New material
   * (a renewed certificate) gets a new agent; the old one finishes its calls and closes.
   */
  setEndpointTls(endpoint: string, material: EndpointTls | undefined): void {
    const origin = new URL(endpoint).origin;
    const current = this.endpointTls.get(origin);
    const same = (a: EndpointTls, b: EndpointTls): boolean => a.ca === b.ca && a.cert === b.cert && a.key === b.key && a.servername === b.servername;
    if (current && material && same(current.material, material)) return;
    if (current) {
      this.endpointTls.delete(origin);
      retireAgent(current.agent);
    }
    if (material) {
      const agent = new https.Agent({ ...poolOptions, ca: material.ca, cert: material.cert, key: material.key, servername: material.servername });
      this.endpointTls.set(origin, { material, agent });
    }
  }

  /** Closes the client's connections (a call still in flight fails). */
  close(): Promise<void> {
    for (const { agent } of this.endpointTls.values()) agent.destroy();
    this.endpointTls.clear();
    this.plain.destroy();
    this.secure.destroy();
    return Promise.resolve();
  }

  private async post<S extends z.ZodType>(endpoint: string, operation: string, path: string, payload: unknown, schema: S, options?: CallOptions): Promise<z.infer<S>> {
    const { status, body } = await this.send(endpoint, operation, 'POST', path, JSON.stringify(payload), options);
    if (status < 200 || status > 299) throw this.failed(endpoint, operation, status, body);
    return this.parse(endpoint, operation, schema, body);
  }

  private async send(endpoint: string, operation: string, method: 'GET' | 'POST', path: string, payload: string | undefined, options?: CallOptions): Promise<{ status: number; body: string }> {
    const timeoutMs = options?.timeoutMs ?? this.timeoutMs;
    try {
      const url = new URL(path, endpoint);
      const res = await httpRequest(url, {
        method,
        agent: this.endpointTls.get(url.origin)?.agent ?? (url.protocol === 'https:' ? this.secure : this.plain),
        headers: payload === undefined ? {} : { 'content-type': 'application/json' },
        ...(payload === undefined ? {} : { body: payload }),
        signal: AbortSignal.timeout(timeoutMs),
        headersTimeoutMs: timeoutMs,
        bodyTimeoutMs: timeoutMs,
      });
      return { status: res.statusCode, body: await readText(res.body) };
    } catch (err) {
      throw new EtcdError('ETOP_ETCD_UNAVAILABLE', { endpoint, operation, detail: describeTransportError(err, timeoutMs) }, { cause: err });
    }
  }

  private failed(endpoint: string, operation: string, status: number, body: string): EtcdError {
    const parsed = errorResponse.safeParse(safeJson(body));
    if (parsed.success) {
      return new EtcdError(codeForGrpc(parsed.data.code, parsed.data.message), { endpoint, operation, grpcCode: parsed.data.code, detail: `${parsed.data.message} (gRPC code ${parsed.data.code}, HTTP ${status})` });
    }
    const code = status === 502 || status === 503 || status === 504 ? 'ETOP_ETCD_UNAVAILABLE' : 'ETOP_ETCD_REQUEST';
    return new EtcdError(code, { endpoint, operation, detail: `HTTP ${status}: ${body.slice(0, 200)}` });
  }

  private parse<S extends z.ZodType>(endpoint: string, operation: string, schema: S, body: string): z.infer<S> {
    const parsed = schema.safeParse(safeJson(body));
    if (!parsed.success) {
      throw new EtcdError('ETOP_ETCD_RESPONSE', { endpoint, operation, detail: `unexpected response ${body.slice(0, 200)}: ${parsed.error.issues[0]?.message ?? ''}` });
    }
    return parsed.data;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function describeTransportError(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError' || /Timeout/.test((err as { code?: string }).code ?? ''))) {
    return `no answer within ${timeoutMs}ms`;
  }
  const code = (err as { code?: string; cause?: { code?: string } }).code ?? (err as { cause?: { code?: string } }).cause?.code;
  const message = err instanceof Error ? err.message : String(err);
  return code === undefined ? message : `${code}: ${message}`;
}

/** etcd's decimal member ID in the hex form etcdctl prints. */
export function memberIdHex(id: string): string {
  return BigInt(id).toString(16);
}
