// Reads the few fields of a DER X.509 certificate that node:crypto's X509Certificate does not
// expose: the subject Name as encoded, and the key identifier extensions (RFC 5280 4.2.1.1-2).
import * as der from './der.ts';

/** The object identifiers of the extensions the built-in CA writes (RFC 5280 4.2.1). */
export const EXTENSION = {
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
} as const;

/** One extension of a certificate: its OID, criticality and the DER inside extnValue. */
export interface CertificateExtension {
  id: string;
  critical: boolean;
  value: Buffer;
}

/** What certificateFields reads. */
export interface CertificateFields {
  /** The subject Name, its encoding copied verbatim (an issuer field must match these bytes). */
  subject: Buffer;
  /** Every extension, in the certificate's order. */
  extensions: CertificateExtension[];
  /** subjectKeyIdentifier's key identifier, if the certificate has one. */
  subjectKeyId: Buffer | undefined;
  /** authorityKeyIdentifier's keyIdentifier [0], if the certificate has one. */
  authorityKeyId: Buffer | undefined;
}

/** Reads a certificate (DER, e.g. X509Certificate.raw); throws if it is not a well-formed one. */
export function certificateFields(certificate: Uint8Array): CertificateFields {
  const [tbs] = der.children(der.decode(certificate));
  const fields = der.children(der.expectTag(tbs, der.Tag.SEQUENCE, 'tbsCertificate'));
  // version [0] EXPLICIT is absent from v1 certificates; then serialNumber comes first.
  const at = fields[0]?.tag === der.contextTag(0, true) ? 1 : 0;
  // serialNumber, signature, issuer, validity, subject
  const subject = der.expectTag(fields[at + 4], der.Tag.SEQUENCE, 'subject');
  const wrapper = fields.find((f) => f.tag === der.contextTag(3, true));
  const list = wrapper === undefined ? [] : der.children(der.expectTag(der.children(wrapper)[0], der.Tag.SEQUENCE, 'extensions'));
  const extensions = list.map((ext): CertificateExtension => {
    // Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
    const parts = der.children(der.expectTag(ext, der.Tag.SEQUENCE, 'extension'));
    const critical = parts.length === 3 && der.expectTag(parts[1], der.Tag.BOOLEAN, 'critical').contents[0] !== 0;
    return { id: der.decodeOid(parts[0]!), critical, value: Buffer.from(der.expectTag(parts.at(-1), der.Tag.OCTET_STRING, 'extnValue').contents) };
  });
  const valueOf = (id: string): Buffer | undefined => extensions.find((e) => e.id === id)?.value;

  // SubjectKeyIdentifier ::= KeyIdentifier ::= OCTET STRING
  const ski = valueOf(EXTENSION.subjectKeyIdentifier);
  const subjectKeyId = ski === undefined ? undefined : Buffer.from(der.expectTag(der.decode(ski), der.Tag.OCTET_STRING, 'subjectKeyIdentifier').contents);
  // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING OPTIONAL, ... }
  const aki = valueOf(EXTENSION.authorityKeyIdentifier);
  const keyIdentifier = aki === undefined ? undefined : der.children(der.expectTag(der.decode(aki), der.Tag.SEQUENCE, 'authorityKeyIdentifier')).find((e) => e.tag === der.contextTag(0));
  const authorityKeyId = keyIdentifier === undefined ? undefined : Buffer.from(keyIdentifier.contents);

  return { subject: Buffer.from(subject.der), extensions, subjectKeyId, authorityKeyId };
}
