import { readFileSync } from 'node:fs';
import { UsageError } from '../errors.ts';
import { flagReaders as f, readFlags, type FlagValues } from '../flag-core.ts';

/**
 * The proxy's flags; each also reads from ETCD_TOPOLOGY_<FLAG>. Read without zod, unlike the other
 * commands' flags: the proxy runs on every worker node and zod alone costs it about 17 MiB of resident
 * memory (docs/bench/proxy-memory.md).
 */
export const proxyFlags = {
  endpoints: f.urlList(),
  listenClientUrls: f.urlList(),
  mode: f.oneOf(['readwrite', 'readonly'], 'readwrite'),
  refreshInterval: f.duration('30s'),
  failureWait: f.duration('5s'),
  metricsAddr: f.hostPort('127.0.0.1:9379'),
  cacert: f.file(),
  cert: f.file(),
  key: f.file(),
  listenCert: f.file(),
  listenKey: f.file(),
  listenCacert: f.file(),
  drainTimeout: f.duration('10s'),
  leaderRouting: f.boolean(true),
  watchCoalescing: f.boolean(true),
  watchClientBuffer: f.integer(4 * 1024 * 1024, 65536, { unit: 'bytes', example: 4194304 }),
  reusePort: f.boolean(false),
  revision: f.text('a name for this proxy\'s pod template, such as 5d8c1f0a2b'),
};

export type ProxyFlags = FlagValues<typeof proxyFlags>;

export const proxyUsage = `usage: etcd-topology proxy --endpoints URL[,URL...] --listen-client-urls URL[,URL...] [flags]

  --endpoints URLs           etcd client URLs to start from; the member list is then read from the cluster
  --listen-client-urls URLs  where clients connect: http:// (gRPC h2c + HTTP/1.1) or https:// (TLS, ALPN h2 + http/1.1)
  --mode MODE                readwrite (default) or readonly (every write refused: gRPC UNIMPLEMENTED, HTTP 501)
  --refresh-interval D       how often the member list is read again (default 30s)
  --failure-wait D           how long a failed member is held off (default 5s)
  --metrics-addr HOST:PORT   /metrics, /healthz and /readyz (default 127.0.0.1:9379)
  --cacert F --cert F --key F  TLS to the etcd members: CA bundle, client certificate and key
  --listen-cert F --listen-key F  certificate and key served on https:// listen URLs
  --listen-cacert F          when set, https:// clients must present a certificate signed by this CA
  --drain-timeout D          on SIGTERM, how long in-flight unary calls may take to finish (default 10s)
  --leader-routing=false     send writes like reads, by least outstanding requests, instead of to the leader
                             (default true: writes and lease keep-alives go to the leader the proxy learns)
  --watch-coalescing=BOOL    identical watches from this proxy's clients share one watch on a member (default true)
  --watch-client-buffer N    bytes of watch responses a client may leave unread before its watch stream is
                             ended with RESOURCE_EXHAUSTED (default 4194304; with coalescing only)
  --reuse-port=BOOL          bind the client and metrics ports with SO_REUSEPORT (default false), so that a new
                             proxy can start on the same host port while the old one drains (host network)
  --revision NAME            this proxy's pod template as the operator names it; /readyz?revision=OTHER answers
                             503, so that a readiness probe that reached the other proxy on a shared port fails

Every flag also reads from ETCD_TOPOLOGY_<FLAG>, for example ETCD_TOPOLOGY_LISTEN_CLIENT_URLS.`;

/** TLS material read from the flags' files. */
export interface TlsFiles {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** The proxy's configuration: flags parsed, cross-checked, and TLS files read. */
export interface ProxyConfig extends ProxyFlags {
  upstreamTls: TlsFiles;
  listenerTls: TlsFiles;
}

/** Parses and cross-checks the proxy's flags, reading TLS files; throws UsageError naming the flag. */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ProxyConfig {
  const { flags, positionals } = readFlags('proxy', proxyFlags, argv, env);
  if (positionals.length > 0) throw new UsageError(`proxy: unexpected argument ${JSON.stringify(positionals[0])}; flags start with --`);
  if ((flags.cert === undefined) !== (flags.key === undefined)) throw new UsageError('proxy: --cert and --key must be given together');
  if ((flags.listenCert === undefined) !== (flags.listenKey === undefined)) {
    throw new UsageError('proxy: --listen-cert and --listen-key must be given together');
  }
  const https = flags.listenClientUrls.filter((u) => u.startsWith('https:'));
  if (https.length > 0 && flags.listenCert === undefined) {
    throw new UsageError(`proxy: --listen-client-urls has ${https[0]}, which needs --listen-cert and --listen-key`);
  }
  for (const u of flags.listenClientUrls) {
    const url = new URL(u);
    if (url.port === '') throw new UsageError(`proxy: invalid value ${JSON.stringify(u)} for --listen-client-urls: give a port`);
    if (url.pathname !== '/' && url.pathname !== '') {
      throw new UsageError(`proxy: invalid value ${JSON.stringify(u)} for --listen-client-urls: a listen URL has no path`);
    }
  }
  if (flags.refreshInterval <= 0) throw new UsageError('proxy: invalid value for --refresh-interval: must be above zero');
  return {
    ...flags,
    upstreamTls: { ca: readFlagFile('cacert', flags.cacert), cert: readFlagFile('cert', flags.cert), key: readFlagFile('key', flags.key) },
    listenerTls: {
      ca: readFlagFile('listen-cacert', flags.listenCacert),
      cert: readFlagFile('listen-cert', flags.listenCert),
      key: readFlagFile('listen-key', flags.listenKey),
    },
  };
}

function readFlagFile(flag: string, path: string | undefined): Buffer | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UsageError(`proxy: cannot read --${flag} ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}
