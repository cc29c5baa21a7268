import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { run } from '../run.ts';

/** Files of one key pair and its certificate, PEM. */
export interface CertFiles {
  cert: string;
  key: string;
}

/** The local cluster's certificates and service-account keys, all under one directory. */
export interface Pki {
  ca: CertFiles;
  apiserver: CertFiles;
  admin: CertFiles;
  controllerManager: CertFiles;
  scheduler: CertFiles;
  serviceAccountKey: string;
  serviceAccountPub: string;
}

const openssl = (args: string[]): Promise<string> => run('openssl', args);

/** Creates a P-256 key (fast to make, accepted by every component, and ES256 for service accounts). */
async function ecKey(file: string): Promise<void> {
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', file]);
}

/** Issues a certificate signed by the CA for a subject, with optional server SANs. */
async function issue(dir: string, name: string, ca: CertFiles, subject: string, sans: string[] = []): Promise<CertFiles> {
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const cert = path.join(dir, `${name}.crt`);
  const ext = path.join(dir, `${name}.ext`);
  await ecKey(key);
  await openssl(['req', '-new', '-key', key, '-subj', subject, '-out', csr]);
  const usage = sans.length > 0 ? 'serverAuth,clientAuth' : 'clientAuth';
  await writeFile(
    ext,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      `extendedKeyUsage=${usage}`,
      ...(sans.length > 0 ? [`subjectAltName=${sans.join(',')}`] : []),
    ].join('\n'),
  );
  // A random serial per certificate: -CAcreateserial shares one serial file, which parallel issues race on.
  const serial = `0x${randomBytes(16).toString('hex')}`;
  await openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', serial, '-days', '7', '-extfile', ext, '-out', cert]);
  return { cert, key };
}

/** Creates a fresh CA, the API server's serving certificate, client certificates and service-account keys. */
export async function createPki(dir: string): Promise<Pki> {
  const ca: CertFiles = { cert: path.join(dir, 'ca.crt'), key: path.join(dir, 'ca.key') };
  await ecKey(ca.key);
  await openssl(['req', '-x509', '-new', '-key', ca.key, '-subj', '/CN=etcd-topology-local-ca', '-days', '7', '-out', ca.cert]);
  const apiserverSans = [
    'IP:127.0.0.1',
    'IP:10.0.0.1',
    'DNS:localhost',
    'DNS:kubernetes',
    'DNS:kubernetes.default',
    'DNS:kubernetes.default.svc',
    'DNS:kubernetes.default.svc.cluster.local',
  ];
  const [apiserver, admin, controllerManager, scheduler] = await Promise.all([
    issue(dir, 'apiserver', ca, '/CN=kube-apiserver', apiserverSans),
    issue(dir, 'admin', ca, '/O=system:masters/CN=admin'),
    issue(dir, 'controller-manager', ca, '/CN=system:kube-controller-manager'),
    issue(dir, 'scheduler', ca, '/CN=system:kube-scheduler'),
  ]);
  const serviceAccountKey = path.join(dir, 'sa.key');
  const serviceAccountPub = path.join(dir, 'sa.pub');
  await ecKey(serviceAccountKey);
  await openssl(['ec', '-in', serviceAccountKey, '-pubout', '-out', serviceAccountPub]);
  return { ca, apiserver: apiserver, admin: admin, controllerManager: controllerManager, scheduler: scheduler, serviceAccountKey, serviceAccountPub };
}

/** A kubeconfig for one client certificate against the API server. */
export function kubeconfig(server: string, ca: string, user: CertFiles, name: string): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: ${server}
    certificate-authority: ${ca}
users:
- name: ${name}
  user:
    client-certificate: ${user.cert}
    client-key: ${user.key}
contexts:
- name: ${name}@local
  context: {cluster: local, user: ${name}}
current-context: ${name}@local
`;
}
