import { z } from 'zod';
import { parseDuration } from '../flags.ts';
import { DURATION_PATTERN, refineWith, toValidation, type Rule, type TransitionRule } from './rules.ts';

/** Rule on spec.tls.secrets: the three Secrets come together, because each one's CA must trust the others. */
export const tlsSecretsTogetherRule: Rule<{ server?: string | undefined; peer?: string | undefined; client?: string | undefined }> = {
  rule: 'has(self.server) && has(self.peer) && has(self.client)',
  message:
    'tls.secrets needs server, peer and client together: the members trust client certificates signed by the server Secret\'s ca.crt ' +
    'and peers signed by the peer Secret\'s ca.crt, so the built-in CA cannot fill in one of them; leave tls.secrets out to use the built-in CA',
  holds: (s) => s.server !== undefined && s.peer !== undefined && s.client !== undefined,
};

/** Rule on spec.tls: TLS, once on, stays on. */
export const tlsStaysOnRule: TransitionRule<{ enabled: boolean }> = {
  rule: '!has(oldSelf.enabled) || !oldSelf.enabled || !has(self.enabled) || self.enabled',
  message:
    'tls.enabled cannot be turned off: the members advertise https:// peer URLs in etcd\'s own member list and every client holds a certificate; ' +
    'moving them back to plaintext would expose the data on the network. Create a new EtcdTopology without TLS and migrate the data instead',
  holds: (self, oldSelf) => !oldSelf.enabled || self.enabled,
};

/** Rule on spec.tls: a plaintext topology is not moved to TLS in place (docs/tls.md describes the migration). */
export const tlsNotEnabledLaterRule: TransitionRule<{ enabled: boolean }> = {
  rule: '!has(oldSelf.enabled) || oldSelf.enabled || !has(self.enabled) || !self.enabled',
  message:
    'tls.enabled cannot be turned on for a topology created without TLS: its members\' peer URLs in etcd are http:// and the operator ' +
    'does not move them to https:// in place; create a new EtcdTopology with TLS and migrate the data (docs/tls.md, "Plaintext topologies")',
  holds: (self, oldSelf) => oldSelf.enabled || !self.enabled,
};

/** The shortest certificate lifetime: renewal at 2/3 must leave the Secret volume time to reach the pods. */
export const MIN_CERTIFICATE_LIFETIME = '1m';

/** Rule on spec.tls.certificateLifetime. */
export const certificateLifetimeRule: Rule<string> = {
  rule: `duration(self) >= duration('${MIN_CERTIFICATE_LIFETIME}')`,
  message:
    `tls.certificateLifetime must be at least ${MIN_CERTIFICATE_LIFETIME}: a certificate is renewed at 2/3 of its lifetime and the new one ` +
    'must reach every pod\'s Secret volume (up to a minute or so on a kubelet) before the old one expires',
  // Not a duration at all is the pattern's to report.
  holds: (self) => (parseDuration(self) ?? Infinity) >= parseDuration(MIN_CERTIFICATE_LIFETIME)!,
};

const secretName = z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'expected a Secret name').max(253);

const secrets = z
  .object({
    server: secretName.optional().meta({ description: 'kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt) the members serve clients with; its ca.crt verifies client certificates.' }),
    peer: secretName.optional().meta({ description: 'kubernetes.io/tls Secret the members use between each other, as server and as client; its ca.crt verifies peers.' }),
    client: secretName.optional().meta({ description: 'kubernetes.io/tls Secret the operator and the proxies present to the members; signed by the server Secret\'s CA.' }),
  })
  .superRefine(refineWith(tlsSecretsTogetherRule))
  .meta({
    description: 'Certificates you issue (for example with cert-manager) instead of the built-in CA; all three or none.',
    'x-kubernetes-validations': [toValidation(tlsSecretsTogetherRule)],
  });

/** spec.tls: on by default, certificates from the built-in CA unless Secrets are given. */
export const tls = z
  .object({
    enabled: z.boolean().default(true).meta({
      description: 'Client and peer TLS with client certificates on every member; the operator and the proxies use mutual TLS. Cannot change after creation.',
    }),
    secrets: secrets.optional(),
    certificateLifetime: z
      .string()
      .regex(new RegExp(DURATION_PATTERN), 'expected a duration such as 2160h')
      .superRefine(refineWith(certificateLifetimeRule))
      .default('2160h')
      .meta({
        'x-kubernetes-validations': [toValidation(certificateLifetimeRule)],
        description: `Lifetime of the leaf certificates the built-in CA issues (at least ${MIN_CERTIFICATE_LIFETIME}); each is renewed at 2/3 of it.`,
      }),
  })
  .meta({ 'x-kubernetes-validations': [toValidation(tlsStaysOnRule), toValidation(tlsNotEnabledLaterRule)] });

/** spec.proxy.tls: the proxy's own listener on the node, plaintext unless enabled. */
export const proxyTls = z.object({
  enabled: z.boolean().default(false).meta({
    description: 'Serve TLS (ALPN h2 and http/1.1) on the proxy\'s client port instead of plaintext; needs tls.enabled.',
  }),
  secret: secretName.optional().meta({
    description:
      'kubernetes.io/tls Secret the proxy serves; default: the built-in CA issues <name>-proxy-serving-tls for the proxy Service\'s names and 127.0.0.1. ' +
      'Required when tls.secrets is set.',
  }),
  requireClientCertificate: z.boolean().default(false).meta({
    description: 'Clients of the proxy must present a certificate signed by the served Secret\'s ca.crt (with the built-in CA, <name>-client-tls is one).',
  }),
});

/** Rule on spec: the proxy's TLS listener needs TLS, and with user Secrets a Secret of its own. */
export const proxyTlsRule: Rule<{ tls: { enabled: boolean; secrets?: unknown }; proxy: { tls: { enabled: boolean; secret?: string | undefined } } }> = {
  rule:
    '!has(self.proxy) || !has(self.proxy.tls) || !has(self.proxy.tls.enabled) || !self.proxy.tls.enabled || ' +
    '(has(self.tls) && (!has(self.tls.enabled) || self.tls.enabled) && (!has(self.tls.secrets) || has(self.proxy.tls.secret)))',
  message:
    'proxy.tls.enabled needs tls.enabled (the built-in CA issues the proxy\'s certificate) and, when tls.secrets is set, proxy.tls.secret: ' +
    'the operator issues nothing while you bring your own certificates',
  fieldPath: '.proxy.tls',
  holds: (spec) => !spec.proxy.tls.enabled || (spec.tls.enabled && (spec.tls.secrets === undefined || spec.proxy.tls.secret !== undefined)),
};

/** The annotation that asks for one CA rotation now (built-in CA); any new value starts one. */
export const ROTATE_CA_ANNOTATION = 'etcdtopology.io/rotate-ca';

/** status.tls: the built-in CA and its rotation, as the operator last saw them. */
export const tlsStatusSchema = z.object({
  caNotAfter: z.string().optional().meta({ format: 'date-time', description: 'When the CA that signs the certificates now expires.' }),
  caRotation: z
    .object({
      phase: z.enum(['Trusting', 'Reissuing', 'Retiring']).meta({
        description:
          'Trusting: the bundle holds the old and the new CA and every member and proxy is moving onto it; Reissuing: the new CA signs, every leaf is reissued; ' +
          'Retiring: nothing uses the old CA any more and it leaves the bundle.',
      }),
      trigger: z.enum(['OnDemand', 'CAAging']).meta({ description: `OnDemand: the ${ROTATE_CA_ANNOTATION} annotation; CAAging: the CA reached 2/3 of its lifetime.` }),
      startTime: z.string().meta({ format: 'date-time' }),
      message: z.string().optional().meta({ description: 'What the rotation waits for now.' }),
    })
    .optional()
    .meta({ description: 'The CA rotation under way; absent when none is.' }),
  lastCaRotation: z.string().optional().meta({ format: 'date-time', description: 'When the last CA rotation finished.' }),
  rotateCaAnswered: z.string().optional().meta({ description: `The value of the ${ROTATE_CA_ANNOTATION} annotation the last rotation answered.` }),
});

export type TlsStatus = z.infer<typeof tlsStatusSchema>;
