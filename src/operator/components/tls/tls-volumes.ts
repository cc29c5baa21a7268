import type { V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import type { EtcdTopology } from '../../../api/etcd-topology.ts';
import { peerCommonName, tlsSecretNames } from '../../../pki/sans.ts';

/** Where members find their certificates. */
export const MEMBER_TLS_DIR = '/etc/etcd/tls';
/** Where the proxy finds its client certificate. */
export const PROXY_TLS_DIR = '/etc/etcd-topology/tls';

// Group-readable for the pods' fsGroup; Secret volumes are updated in place on renewal, so a
// renewed certificate reaches a running member without a restart.
const secretVolume = (name: string, secretName: string): V1Volume => ({ name, secret: { secretName, defaultMode: 0o440 } });

/** The member pod's TLS volumes and mounts: the server and peer Secrets; none without TLS. */
export function memberTlsVolumes(topology: EtcdTopology): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  if (!topology.spec.tls.enabled) return { volumes: [], mounts: [] };
  const names = tlsSecretNames(topology);
  return {
    volumes: [secretVolume('tls-server', names.server), secretVolume('tls-peer', names.peer)],
    mounts: [
      { name: 'tls-server', mountPath: `${MEMBER_TLS_DIR}/server`, readOnly: true },
      { name: 'tls-peer', mountPath: `${MEMBER_TLS_DIR}/peer`, readOnly: true },
    ],
  };
}

/**
 * etcd's TLS flags: clients and peers must present a certificate of the topology's CA; peers of the
 * built-in CA must also carry its peer common name (a user's CA names its peers as it likes).
 */
export function memberTlsArgs(topology: EtcdTopology): string[] {
  if (!topology.spec.tls.enabled) return [];
  const server = `${MEMBER_TLS_DIR}/server`;
  const peer = `${MEMBER_TLS_DIR}/peer`;
  return [
    `--cert-file=${server}/tls.crt`,
    `--key-file=${server}/tls.key`,
    `--trusted-ca-file=${server}/ca.crt`,
    '--client-cert-auth',
    `--peer-cert-file=${peer}/tls.crt`,
    `--peer-key-file=${peer}/tls.key`,
    `--peer-trusted-ca-file=${peer}/ca.crt`,
    '--peer-client-cert-auth',
    // Without this etcd also matches a connecting peer's certificate names against its source IP (by
    // reverse lookup), which a pod IP never passes: peers are authenticated by the CA and the CN instead.
    '--peer-skip-client-san-verification',
    ...(topology.spec.tls.secrets === undefined ? [`--peer-cert-allowed-cn=${peerCommonName(topology)}`] : []),
    '--tls-min-version=TLS1.2',
  ];
}

/** Where the proxy finds the certificate it serves (spec.proxy.tls). */
export const PROXY_SERVING_DIR = '/etc/etcd-topology/serving';

/**
 * The proxy pod's TLS volumes, mounts and flags: its client certificate towards the members (with
 * tls.enabled), and the certificate it serves on its own port (with proxy.tls.enabled, clients
 * verified against that Secret's ca.crt when requireClientCertificate).
 */
export function proxyTls(topology: EtcdTopology): { volumes: V1Volume[]; mounts: V1VolumeMount[]; args: string[] } {
  if (!topology.spec.tls.enabled) return { volumes: [], mounts: [], args: [] };
  const names = tlsSecretNames(topology);
  const out = clientCertificate(names.proxy, PROXY_TLS_DIR);
  const serving = topology.spec.proxy.tls;
  if (serving.enabled) {
    out.volumes.push(secretVolume('tls-serving', names.proxyServing));
    out.mounts.push({ name: 'tls-serving', mountPath: PROXY_SERVING_DIR, readOnly: true });
    out.args.push(`--listen-cert=${PROXY_SERVING_DIR}/tls.crt`, `--listen-key=${PROXY_SERVING_DIR}/tls.key`);
    if (serving.requireClientCertificate) out.args.push(`--listen-cacert=${PROXY_SERVING_DIR}/ca.crt`);
  }
  return out;
}

/** Where a backup Job finds the client certificate it presents to the member it snapshots. */
export const SNAPSHOT_TLS_DIR = '/etc/etcd-topology/tls';

/** A backup Job's client certificate (<name>-client-tls, the one for people and tools); nothing without TLS. */
export function snapshotJobTls(topology: EtcdTopology): { args: string[]; volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  if (!topology.spec.tls.enabled) return { args: [], volumes: [], mounts: [] };
  return clientCertificate(tlsSecretNames(topology).client, SNAPSHOT_TLS_DIR);
}

/** A client certificate Secret mounted at dir, and the --cacert/--cert/--key flags that read it. */
function clientCertificate(secretName: string, dir: string): { volumes: V1Volume[]; mounts: V1VolumeMount[]; args: string[] } {
  return {
    volumes: [secretVolume('tls-client', secretName)],
    mounts: [{ name: 'tls-client', mountPath: dir, readOnly: true }],
    args: [`--cacert=${dir}/ca.crt`, `--cert=${dir}/tls.crt`, `--key=${dir}/tls.key`],
  };
}
